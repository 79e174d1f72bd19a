"""Import an object named ``package.module:attr.path``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_callable(path: str) -> Callable[..., Any]:
    """The callable at ``module:attr``.

    Raises:
        ValueError: the module or attribute cannot be imported, or is not callable.
    """
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import '{path}': {exc}") from None
    if not callable(obj):
        raise ValueError(f"'{path}' is not callable")
    return obj  # type: ignore[no-any-return]
