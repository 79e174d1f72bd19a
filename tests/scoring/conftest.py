"""A sandbox provider per kind: ``local`` always, ``bwrap`` wherever it is installed."""

from __future__ import annotations

import shutil

HAVE_BWRAP = shutil.which("bwrap") is not None

