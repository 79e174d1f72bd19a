"""The warehouse's file system: where ``results/`` and ``trajectories/`` live.

The warehouse root (setting ``warehouse_url``, ``EVALFLEET_WAREHOUSE_URL``; default the home)
is a plain path or any fsspec URL: ``file:///data/evals``, ``memory://name``, ``s3://bucket/p``
(with the fsspec backend installed, e.g. ``s3fs``). Every write, listing, read, rename and
delete of results and trajectory files goes through the functions below. Each takes a
:class:`Root` and a path relative to it, in the form the journal records
(``results/eval_id=E/B.parquet``, ``trajectories/E/B.jsonl.zst``):

- ``root_of(where)``: the :class:`Root` of a plain path or URL (one-line ``SpecError`` if
  fsspec does not know it); ``as_root(root_or_path)``: a ``Path`` as a local root.
- ``location(root, rel)``: what a reader opens: an absolute (or home-relative) local path, or a
  URL such as ``memory:///name/results/...``; ``is_url(location)`` tells the two apart.
- ``makedirs(root, rel)``: a directory and its parents (mode 0700 locally; object stores have
  no directories and nothing is made).
- ``write_atomic(root, rel, data)``: a whole file: written to ``rel + ".tmp"``, fsynced where
  local, renamed to ``rel``.
- ``open_tmp(root, rel)`` / ``publish_tmp(root, rel)``: the same for a file written as a
  stream: open ``rel + ".tmp"`` for writing, then fsync (file and directory, where local) and
  rename it to ``rel``.
- ``open_read(root, rel)``, ``read_bytes(root, rel)``, ``parquet_file(root, rel)``: reads
  (seekable; ``FileNotFoundError`` when missing).
- ``is_file(root, rel)``, ``size(root, rel)`` (0 when missing), ``sizes(root, rels)`` (one
  listing per directory on a remote file system).
- ``remove(root, rel)``: delete, missing is fine; ``file(root, rel)``: the file as an object
  with ``unlink(missing_ok=...)`` (a ``Path`` locally).
- ``list_files(root, rel_dir)``: the files of one directory as :class:`Entry` (name, path,
  modification time, symlink); empty when the directory does not exist.
- ``missing(locations)``: which of some reader locations do not exist;
  ``register_duckdb(con, locations)``: lets a DuckDB connection read remote locations through
  fsspec (never DuckDB's httpfs: extension autoloading is switched off on that connection).

Local roots (plain paths and ``file://``) use ``os`` directly: the same calls, modes (0700
directories, 0600 files) and fsyncs as before the warehouse could be elsewhere.

**Consistency on object stores.** A rename there is a copy and a delete, not atomic, and there
is no fsync. It is still safe because the journal decides what is committed: a batch's files
are recorded (one journal transaction) only after ``publish_tmp``/``write_atomic`` returned, and
readers open only files a committed batch references. A crash or a failed copy midway leaves
files no batch references (a ``.tmp``, a copy, or both), which the eval's driver removes as
orphans after their grace period; compaction's swap and purge work the same way.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from evalfleet.errors import SpecError

if TYPE_CHECKING:
    import duckdb
    import pyarrow.parquet as pq

TMP_SUFFIX = ".tmp"
"""A file being written is named its final name plus this suffix."""


@dataclass(frozen=True, slots=True, eq=False)
class Root:
    """Where ``results/`` and ``trajectories/`` live.

    ``fs`` is None for the local file system (``base`` is then a directory path, which may
    be relative, as a home may be); otherwise an fsspec file system and ``base`` the root's
    path in it (without protocol).
    """

    url: str
    """As configured (for messages)."""
    base: str
    fs: Any = None

    @property
    def local(self) -> bool:
        """Whether this is the local file system (``os`` calls, fsync, modes)."""
        return self.fs is None

    def local_path(self, rel: str) -> Path:
        """The local path of ``rel`` (a local root only)."""
        return Path(self.base) / rel

    def fs_path(self, rel: str) -> str:
        """The path of ``rel`` in the remote file system (a remote root only)."""
        return posixpath.join(self.base, rel) if rel else self.base


@dataclass(frozen=True, slots=True)
class Entry:
    """A file of a listed directory."""

    name: str
    rel: str
    mtime: float | None
    """Last modification (seconds since the epoch); None where the file system does not say."""
    symlink: bool = False


def root_of(where: str | Path) -> Root:
    """The root a plain path or an fsspec URL names.

    Raises:
        SpecError: fsspec knows no such protocol, or its backend is not installed.
    """
    if isinstance(where, Path):
        return Root(str(where), str(where.expanduser().absolute()))
    text = where.strip()
    if not text:
        raise SpecError("the warehouse URL is empty", field="EVALFLEET_WAREHOUSE_URL")
    if "://" not in text:
        return Root(text, str(Path(text).expanduser().absolute()))
    import fsspec.core
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, path = fsspec.core.url_to_fs(text)
    except (ValueError, ImportError, TypeError) as exc:
        raise SpecError(f"warehouse {text}: {_first_line(exc)}",
                        field="EVALFLEET_WAREHOUSE_URL") from None
    if isinstance(fs, LocalFileSystem):
        return Root(text, str(Path(path)))
    return Root(text, str(path).rstrip("/"), fs)


def as_root(where: Root | Path) -> Root:
    """``where`` as a root: a ``Path`` (a home) is a local root as it is (relative or not)."""
    return where if isinstance(where, Root) else Root(str(where), str(where))


def location(root: Root, rel: str) -> str:
    """What a reader opens for ``rel``: a local path, or a URL with the protocol."""
    if root.fs is None:
        return str(root.local_path(rel))
    return str(root.fs.unstrip_protocol(root.fs_path(rel)))


def is_url(loc: str) -> bool:
    """Whether a location names a remote file system (``proto://...``), not a local path."""
    return "://" in loc


def makedirs(root: Root, rel: str) -> None:
    """Create a directory and its missing parents: locally with mode 0700 (existing ones keep
    theirs; sandboxed code under another uid must not list other evals' files)."""
    if root.fs is not None:
        root.fs.makedirs(root.fs_path(rel), exist_ok=True)  # a no-op on object stores
        return
    path = root.local_path(rel)
    missing: list[Path] = []
    cur = path
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            d.mkdir(mode=0o700)


def write_atomic(root: Root, rel: str, data: bytes) -> None:
    """Write a whole file: ``rel + ".tmp"`` (0600, fsynced, locally), renamed to ``rel``."""
    if root.fs is not None:
        tmp = root.fs_path(rel + TMP_SUFFIX)
        root.fs.pipe_file(tmp, data)
        root.fs.mv(tmp, root.fs_path(rel))
        return
    path = root.local_path(rel)
    tmp_path = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_path, path)


def open_tmp(root: Root, rel: str) -> BinaryIO:
    """Open ``rel + ".tmp"`` for writing (0600 locally); :func:`publish_tmp` then renames it."""
    if root.fs is not None:
        fh: BinaryIO = root.fs.open(root.fs_path(rel + TMP_SUFFIX), "wb")
        return fh
    fd = os.open(root.local_path(rel + TMP_SUFFIX), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 0o600)
    return open(fd, "wb")  # the caller closes it


def publish_tmp(root: Root, rel: str) -> None:
    """Rename a closed ``rel + ".tmp"`` to ``rel``; locally fsync the file first and the
    directory after, so the rename itself is durable where the file system allows."""
    if root.fs is not None:
        root.fs.mv(root.fs_path(rel + TMP_SUFFIX), root.fs_path(rel))
        return
    final = root.local_path(rel)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    with contextlib.suppress(OSError):
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def open_read(root: Root, rel: str) -> BinaryIO:
    """Open a file for reading (seekable).

    Raises:
        FileNotFoundError: it does not exist.
    """
    if root.fs is not None:
        fh: BinaryIO = root.fs.open(root.fs_path(rel), "rb")
        return fh
    return root.local_path(rel).open("rb")


def read_bytes(root: Root, rel: str) -> bytes:
    """A whole file.

    Raises:
        FileNotFoundError: it does not exist.
    """
    if root.fs is not None:
        data: bytes = root.fs.cat_file(root.fs_path(rel))
        return data
    return root.local_path(rel).read_bytes()


@contextlib.contextmanager
def parquet_file(root: Root, rel: str) -> Iterator[pq.ParquetFile]:
    """A Parquet file open for reading (locally by path: Arrow's own reader, no Python I/O).

    Raises:
        FileNotFoundError: it does not exist.
    """
    import pyarrow.parquet as pq

    if root.fs is None:
        with pq.ParquetFile(str(root.local_path(rel))) as pf:
            yield pf
        return
    with open_read(root, rel) as fh, pq.ParquetFile(fh) as pf:
        yield pf


def is_file(root: Root, rel: str) -> bool:
    """Whether ``rel`` is an existing file."""
    if root.fs is not None:
        return bool(root.fs.isfile(root.fs_path(rel)))
    return root.local_path(rel).is_file()


def size(root: Root, rel: str | None) -> int:
    """Bytes of a file; 0 when ``rel`` is empty or the file is missing."""
    if not rel:
        return 0
    try:
        if root.fs is not None:
            return int(root.fs.size(root.fs_path(rel)) or 0)
        return root.local_path(rel).stat().st_size
    except FileNotFoundError:
        return 0


def sizes(root: Root, rels: Iterable[str | None]) -> dict[str, int]:
    """Bytes of several files (0 for missing ones): on a remote file system one listing per
    directory instead of a request per file."""
    wanted = [r for r in rels if r]
    if root.fs is None:
        return {r: size(root, r) for r in wanted}
    out: dict[str, int] = {}
    for folder in sorted({posixpath.dirname(r) for r in wanted}):
        listed = {e.rel: sz for e, sz in _listing(root, folder)}
        out.update({r: listed.get(r, 0) for r in wanted if posixpath.dirname(r) == folder})
    return out


class RemoteFile:
    """A file of a remote root, with the one ``Path`` method deleting needs."""

    def __init__(self, root: Root, rel: str) -> None:
        self.root, self.rel = root, rel

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the file.

        Raises:
            FileNotFoundError: it does not exist and ``missing_ok`` is false.
        """
        try:
            self.root.fs.rm_file(self.root.fs_path(self.rel))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def __repr__(self) -> str:
        return f"RemoteFile({location(self.root, self.rel)!r})"


def file(root: Root, rel: str) -> Path | RemoteFile:
    """The file ``rel`` as an object with ``unlink(missing_ok=...)``: a ``Path`` locally."""
    return root.local_path(rel) if root.fs is None else RemoteFile(root, rel)


def remove(root: Root, rel: str) -> None:
    """Delete a file; a missing one is fine."""
    file(root, rel).unlink(missing_ok=True)


def list_files(root: Root, rel_dir: str) -> list[Entry]:
    """The files (not directories) directly in ``rel_dir``; empty when it does not exist."""
    if root.fs is not None:
        return [e for e, _ in _listing(root, rel_dir)]
    base = root.local_path(rel_dir)
    if not base.is_dir():
        return []
    out: list[Entry] = []
    for f in base.iterdir():
        rel = f"{rel_dir}/{f.name}"
        if f.is_symlink():
            out.append(Entry(f.name, rel, None, symlink=True))
            continue
        try:
            if not f.is_file():
                continue
            out.append(Entry(f.name, rel, f.stat().st_mtime))
        except FileNotFoundError:  # removed meanwhile
            continue
    return out


def _listing(root: Root, rel_dir: str) -> list[tuple[Entry, int]]:
    """Files of a remote directory with their sizes, read fresh (not from fsspec's cache:
    another process may have written since)."""
    fs = root.fs
    path = root.fs_path(rel_dir)
    with contextlib.suppress(Exception):
        fs.invalidate_cache(path)
    try:
        infos = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    out: list[tuple[Entry, int]] = []
    for info in infos:
        if info.get("type") != "file":
            continue
        name = posixpath.basename(str(info["name"]).rstrip("/"))
        out.append((Entry(name, f"{rel_dir}/{name}", _mtime(fs, info)),
                    int(info.get("size") or 0)))
    return out


def _mtime(fs: Any, info: dict[str, Any]) -> float | None:
    """A remote file's modification time from its listing (or asking the file system)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        t = info.get(key)
        if isinstance(t, datetime):
            return t.timestamp()
        if isinstance(t, int | float):
            return float(t)
    try:
        modified = fs.modified(info["name"])
    except (NotImplementedError, FileNotFoundError, OSError, KeyError):
        return None
    return modified.timestamp() if isinstance(modified, datetime) else None


def missing(locations: Iterable[str]) -> list[str]:
    """The locations (local paths or URLs) that are not existing files; URLs are checked with
    one fresh listing per directory."""
    out: list[str] = []
    folders: dict[str, list[str]] = {}
    for loc in locations:
        if is_url(loc):
            folders.setdefault(loc.rsplit("/", 1)[0], []).append(loc)
        elif not Path(loc).is_file():
            out.append(loc)
    for folder, locs in folders.items():
        fs, path = _fs_of(folder)
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)
        try:
            present = {posixpath.basename(str(i["name"]).rstrip("/"))
                       for i in fs.ls(path, detail=True) if i.get("type") == "file"}
        except FileNotFoundError:
            present = set()
        out += [loc for loc in locs if loc.rsplit("/", 1)[1] not in present]
    return out


def register_duckdb(con: duckdb.DuckDBPyConnection, locations: Iterable[str]) -> bool:
    """Let ``con`` read the given remote locations through fsspec (DuckDB's
    ``register_filesystem``); returns whether any was remote.

    Extension autoloading and autoinstalling are switched off first: a remote URL must never
    make DuckDB download httpfs (it fails offline, and is not part of the wheel).
    """
    protocols: dict[str, Any] = {}
    for loc in locations:
        if is_url(loc):
            proto = loc.split("://", 1)[0]
            if proto not in protocols:
                protocols[proto] = _fs_of(loc)[0]
    if not protocols:
        return False
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    registered = set(con.list_filesystems())
    for fs in {id(f): f for f in protocols.values()}.values():
        names = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
        if not registered.intersection(names):
            con.register_filesystem(fs)
            registered.update(names)
    return True


def _fs_of(url: str) -> tuple[Any, str]:
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(url)
    return fs, str(path)


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
