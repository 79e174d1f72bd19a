"""File access under a directory that the sandboxed code writes to at the same time.

The driver may run as root while the sandboxed code plants symlinks, FIFOs or hard links in its
directory. Every path is therefore walked one component at a time with ``O_NOFOLLOW`` from a
directory descriptor, so a link can neither redirect a write nor be swapped in half-way, and files
are replaced (unlink, then ``O_EXCL`` create) instead of written through.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evalfleet._util.paths import PathEscapeError, check_relative
from evalfleet.errors import AgentError, InfraError, SpecError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _parts(rel: str) -> tuple[str, ...]:
    try:
        return check_relative(rel).parts
    except PathEscapeError as exc:
        raise SpecError(str(exc), field="files") from None


def _open_dir(parent_fd: int, name: str, rel: str, *, create: bool, owner: int | None) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise FileNotFoundError(errno.ENOENT, "no such file in the sandbox", rel) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InfraError(f"refusing to follow {rel!r}: {name!r} is a symlink or not a "
                             f"directory") from None
        raise
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass  # made concurrently; the open below still refuses a symlink
    else:
        if owner is not None:
            os.chown(name, owner, owner, dir_fd=parent_fd, follow_symlinks=False)
    return _open_dir(parent_fd, name, rel, create=False, owner=owner)


def _walk(root: Path, parts: tuple[str, ...], rel: str, *, create: bool,
          owner: int | None) -> int:
    """A descriptor of the directory holding ``parts[-1]``; the caller closes it."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in parts[:-1]:
            nxt = _open_dir(fd, name, rel, create=create, owner=owner)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_files(root: Path, files: Mapping[str, str | bytes], owner: int | None) -> None:
    """Create or replace ``files`` under ``root``; chown them to ``owner`` when given.

    Raises:
        SpecError: a path is absolute, contains ``..`` or is empty.
        InfraError: a path runs through a symlink or a non-directory, or names a directory.
    """
    checked = [(rel, _parts(rel), content) for rel, content in files.items()]
    for rel, parts, content in checked:
        data = content.encode() if isinstance(content, str) else bytes(content)
        dir_fd = _walk(root, parts, rel, create=True, owner=owner)
        try:
            name = parts[-1]
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise InfraError(f"cannot write {rel!r}: it is a directory") from None
            try:
                fd = os.open(name, _NEW_FILE_FLAGS, 0o644, dir_fd=dir_fd)
            except FileExistsError:
                raise InfraError(f"cannot write {rel!r}: it was re-created concurrently") \
                    from None
            try:
                if owner is not None:
                    os.fchown(fd, owner, owner)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)


def read_file(root: Path, rel: str, max_bytes: int, owner: int | None = None) -> bytes:
    """At most ``max_bytes`` of the regular file ``rel`` under ``root``, owned by ``owner``
    when given (a hard link to a host file keeps its owner, so it is refused).

    Raises:
        SpecError: the path is absolute, contains ``..`` or is empty.
        InfraError: the path runs through a symlink or names something other than a file
            of the sandbox.
        FileNotFoundError: there is no such file.
    """
    parts = _parts(rel)
    dir_fd = _walk(root, parts, rel, create=False, owner=None)
    try:
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such file in the sandbox", rel) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InfraError(f"refusing to read {rel!r}: it is a symlink") from None
            raise
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InfraError(f"refusing to read {rel!r}: not a regular file")
        if owner is not None and st.st_uid != owner:
            raise InfraError(f"refusing to read {rel!r}: owned by uid {st.st_uid}, not the "
                             f"sandbox")
        chunks: list[bytes] = []
        left = max(0, max_bytes)
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_SKIPPED_DIRS = frozenset({"__pycache__"})
MAX_DEPTH = 200
"""Deepest directory nesting a snapshot follows: the walk recurses, and an agent's thousand
nested directories must be its failure, not a RecursionError of the driver."""


def snapshot_tree(root: Path, *, owner: int | None, max_files: int,
                  max_bytes: int) -> dict[str, bytes]:
    """Regular files under ``root`` by relative POSIX path; see ``Sandbox.snapshot``.

    Walks with descriptors and ``O_NOFOLLOW``: a symlink is never followed, a hard link to a
    file of another owner is skipped. Meant for a tree no process writes to any more.

    Raises:
        AgentError: more than ``max_files`` files or ``max_bytes`` bytes.
    """
    out: dict[str, bytes] = {}
    total = 0

    def walk(dir_fd: int, prefix: str, depth: int = 0) -> None:
        nonlocal total
        if depth > MAX_DEPTH:
            raise AgentError(f"the agent left directories nested more than {MAX_DEPTH} deep in "
                             f"its working directory")
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if owner is not None and st.st_uid != owner:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name in _SKIPPED_DIRS:
                    continue
                try:
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    walk(sub, rel + "/", depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                if len(out) >= max_files or total + st.st_size > max_bytes:
                    raise AgentError(f"the agent left more than {max_files} files or "
                                     f"{max_bytes // (1024 * 1024)} MB in its working directory")
                try:
                    fd = os.open(entry.name, _READ_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    chunks: list[bytes] = []
                    while chunk := os.read(fd, 1 << 20):
                        chunks.append(chunk)
                        total += len(chunk)
                        if total > max_bytes:
                            raise AgentError(f"the agent left more than "
                                             f"{max_bytes // (1024 * 1024)} MB in its working "
                                             f"directory")
                finally:
                    os.close(fd)
                out[rel] = b"".join(chunks)

    top = os.open(root, _DIR_FLAGS)
    try:
        walk(top, "")
    finally:
        os.close(top)
    return out


def _force_writable(path: str, top: str) -> None:
    # Never above ``top``: the base directory's mode keeps every sandbox reachable.
    for p in (os.path.dirname(path), path):
        if p != top and not p.startswith(top + "/"):
            continue
        try:
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(p, 0o700)
        except OSError:
            pass


def remove_tree(path: Path) -> None:
    """Delete ``path`` even where the sandboxed code made files or directories read-only."""
    failures: list[str] = []

    top = os.path.abspath(str(path))

    def retry(func: Callable[..., Any], p: str, *_: object) -> None:
        _force_writable(p, top)
        failures.append(p)

    for _ in range(8):  # each pass can unlock one more level of read-only directories
        failures.clear()
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)
        if not os.path.lexists(path):
            return
    raise InfraError(f"could not remove sandbox directory {path}: {failures[:3]}")
