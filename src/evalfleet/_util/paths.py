"""Path helpers that refuse to leave a root directory."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathEscapeError(ValueError):
    """A relative path would resolve outside its root."""


def check_relative(rel: str) -> PurePosixPath:
    """Validate a sandbox-relative POSIX path: relative, no ``..``, no NUL, not empty."""
    if not rel or "\x00" in rel:
        raise PathEscapeError(f"invalid path {rel!r}")
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part == ".." for part in p.parts):
        raise PathEscapeError(f"path {rel!r} escapes its directory")
    if str(p) in (".", ""):
        raise PathEscapeError(f"path {rel!r} names the directory itself")
    return p


def safe_join(root: Path, rel: str) -> Path:
    """Join ``rel`` under ``root``; raise :class:`PathEscapeError` if it escapes.

    Symlinks already inside ``root`` are resolved, so a link pointing outside is caught too.
    """
    p = check_relative(rel)
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real / p))
    if target != root_real and root_real not in target.parents:
        raise PathEscapeError(f"path {rel!r} escapes its directory")
    return target
