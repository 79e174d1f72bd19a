"""Where sandboxes live on the host, which uid they run as, and how they are torn down.

Running as root, each sandbox gets a uid of its own, drawn from a range no account uses, so:
RLIMIT_NPROC counts exactly that sandbox's processes; the sandbox cannot read root's files
(``/etc/shadow``), another sandbox's directory (mode 0700, other owner) or another sandbox's
processes; and ``kill(-1)`` as that uid reaches every process it left behind. A shared uid such as
65534 would give none of the last three. The uid is claimed by creating the directory ``u<uid>``.

Layout of one sandbox (``root`` is owned by the driver, so sandboxed code cannot swap its
children for symlinks; the children belong to the sandbox uid, mode 0700)::

    <base>/u<uid>/work   the working directory (``host_dir``)
    <base>/u<uid>/home   HOME
    <base>/u<uid>/tmp    TMPDIR
    <base>/u<uid>/out    the outbox: where a scorer's test runner writes its report, outside
                         the working directory (``Sandbox.outdir`` inside, ``read_output``)
    <base>/u<uid>/lock   flock()ed by the driver while the sandbox lives

As root, ``<base>/u<uid>`` is a tmpfs of ``disk_mb``: work, home, tmp and the outbox share that
total (tmpfs pages are RAM, charged to the sandbox's memory cgroup where it has one). Each sandbox
also gets a memory and a pids cgroup where the host lets us create them (see ``_cgroup``), so
``memory_mb`` and ``max_processes`` hold for all its processes together.

The lock is created under a temporary name, locked, then renamed into place, so no other driver
sweeping the same base directory ever sees a sandbox with a lock nobody holds.

Closing a sandbox kills what still runs as its uid, even processes that left their session, and
deletes what it left at the top of /tmp, /var/tmp and /dev/shm. A driver that crashes leaves its
sandboxes behind; the next provider to start on the same base directory finds their locks free
and cleans them up the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import signal
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evalfleet.errors import InfraError
from evalfleet.sandbox import _mountns
from evalfleet.sandbox._cgroup import CgroupRoots, SandboxCgroups
from evalfleet.sandbox._files import remove_tree
from evalfleet.sandbox._mountns import (
    ChildNamespaces,
    Interpreter,
    InterpreterExposure,
    UnreachableInterpreterError,
)
from evalfleet.sandbox._process import ChildSetup, kill_uid
from evalfleet.sandbox.base import SandboxLimits

_LOCK = "lock"
_MB = 1024 * 1024
STALE_UNLOCKED_S = 600.0
"""A sandbox directory without a lock file is left alone this long (it may be being created)."""
DEFAULT_UID_RANGE = (1_900_000_000, 1_000_000)
"""(first uid, count) for sandboxes when running as root: above the ranges systemd and
/etc/subuid hand out, below 2**31."""
UID_CLAIMS = Path("/run/evalfleet-uids")
"""As root, one file per sandbox uid in use, flock()ed by the driver holding it, so drivers with
different base directories never give two live sandboxes the same uid."""
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The installed evalfleet package (editable or not): its suites ship reference solutions and
hidden tests, so sandboxed code must not read it."""


def _package_dirs(keep: Sequence[str]) -> list[str]:
    """The installed evalfleet package to hide, or, for a source checkout (an editable install),
    the whole checkout: its ``.git`` and tests hold the same reference solutions. Entries of the
    checkout that hold one of the directories in ``keep`` (a venv inside it) stay visible."""
    pkg = os.path.realpath(PACKAGE_DIR)
    cur = os.path.dirname(pkg)
    for _ in range(2):
        if any(os.path.exists(os.path.join(cur, m)) for m in ("pyproject.toml", ".git")):
            break
        cur = os.path.dirname(cur)
    else:
        return [pkg]

    def holds(d: str) -> bool:
        return any(k == d or k.startswith(d + "/") for k in keep)

    if not holds(cur):
        return [cur]
    try:
        names = os.listdir(cur)
    except OSError:
        return [pkg]
    return [os.path.join(cur, n) for n in names
            if not holds(os.path.join(cur, n)) and os.path.isdir(os.path.join(cur, n))] + [pkg]


def default_base_dir() -> Path:
    """``$TMPDIR/evalfleet-sandboxes``."""
    return Path(tempfile.gettempdir()) / "evalfleet-sandboxes"


def count_user_tasks(uid: int) -> int:
    """Processes and threads ``uid`` holds now (what RLIMIT_NPROC counts)."""
    n = 0
    with os.scandir("/proc") as it:
        for entry in it:
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    n += len(os.listdir(f"/proc/{entry.name}/task"))
    return n


def live_pids(uid: int) -> list[int]:
    """Processes owned by ``uid`` that are not zombies."""
    found = []
    with os.scandir("/proc") as it:
        for entry in it:
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                if entry.stat().st_uid == uid:
                    stat_line = Path(f"/proc/{entry.name}/stat").read_bytes()
                    if stat_line[stat_line.rindex(b")") + 2:][:1] != b"Z":
                        found.append(int(entry.name))
    return found


@dataclass(slots=True)
class Allocation:
    """One sandbox's directories, uid and cgroups on the host."""

    root: Path
    work: Path
    home: Path
    tmp: Path
    out: Path
    """The outbox (see the module docstring)."""
    uid: int | None
    """The sandbox's own uid, or None when the driver is not root and runs code as itself."""
    cgroups: SandboxCgroups | None
    lock_fd: int
    """Holds the flock that marks the sandbox as alive."""
    setup: ChildSetup
    process_limit_mechanism: str
    """``pids-cgroup``, ``rlimit-nproc`` (per-sandbox uid) or ``rlimit-nproc-shared-uid``
    (the driver's own uid, so the count includes its other processes), joined by ``+``."""
    uid_claim_fd: int = -1
    """Holds the host-wide claim on ``uid`` (see ``UID_CLAIMS``), or -1."""
    disk_mounted: bool = False
    """Whether ``root`` is a tmpfs of ``disk_mb`` (unmounted on release)."""
    isolation: list[str] = field(default_factory=list)
    """What bounds memory, processes and disk: ``memory:...``, ``pids:...``, ``disk:...``."""


class Host:
    """Facts found once per provider: base dir, uid switching, interpreter, cgroups, mounts.

    Args:
        base_dir: Parent of the sandbox directories.
        uid_range: ``(first, count)`` of sandbox uids as root.
        use_cgroups: Put each sandbox in memory and pids cgroups where the host lets us.
        python: The interpreter sandboxed commands run as ``python3`` (default: this one).
        hidden_paths: More directories sandboxed code must not read (e.g. the evalfleet home).
        site_packages: Let sandboxed code import the interpreter's third-party packages.
        child_namespaces: Give each command's child (as root) a mount namespace that hides
            private directories, and IPC and network namespaces of its own (``local``; bwrap
            does this itself).
    """

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *,
                 uid_range: tuple[int, int] = DEFAULT_UID_RANGE, use_cgroups: bool = True,
                 python: str | None = None, hidden_paths: Sequence[str | os.PathLike[str]] = (),
                 site_packages: bool = False, child_namespaces: bool = False) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else default_base_dir()
        self.uid_range = uid_range
        self.use_cgroups = use_cgroups
        self.python = python
        self.hidden_paths = tuple(os.path.abspath(p) for p in hidden_paths)
        self.site_packages = site_packages
        self.child_namespaces = child_namespaces
        self.switch_uid = os.geteuid() == 0
        self.interpreter: Interpreter | None = None
        self.exposure: InterpreterExposure | None = None
        self.cgroups: CgroupRoots | None = None
        self.can_mount_disk = False
        self.uid_claims: Path | None = None
        self._tag = ""
        self.warnings: list[str] = []
        """What this host cannot enforce, found by :meth:`prepare`."""
        self._prepared = False

    def prepare(self) -> None:
        """Create and check the base directory and probe the host; idempotent.

        Raises:
            InfraError: the base directory is unsafe or the interpreter cannot be exposed.
        """
        if self._prepared:
            return
        base = self.base_dir
        try:
            base.mkdir(mode=0o711 if self.switch_uid else 0o700, parents=True, exist_ok=True)
            st = os.lstat(base)
        except OSError as exc:
            raise InfraError(f"cannot create the sandbox base directory {base}: {exc}") from exc
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise InfraError(f"unsafe sandbox base directory {base}: it must be a directory "
                             f"owned by uid {os.geteuid()} and writable by no one else")
        try:
            self.interpreter = _mountns.describe_interpreter(self.python)
        except OSError as exc:
            raise InfraError(str(exc)) from exc
        real_base = str(base.resolve())
        for hidden in self.hidden_dirs():
            if real_base == hidden or real_base.startswith(hidden + "/"):
                raise InfraError(f"the sandbox base directory {base} lies inside {hidden}, "
                                 f"which sandboxed code must not read; choose another base_dir")
        if self.switch_uid:
            if stat.S_IMODE(st.st_mode) != 0o711:
                os.chmod(base, 0o711)
            blocked = _mountns.first_untraversable(real_base)
            if blocked is not None:
                raise InfraError(f"the sandbox base directory {base} is unreachable for "
                                 f"sandbox uids ({blocked} is not searchable by others); "
                                 f"choose another base_dir")
            try:
                self.exposure = _mountns.interpreter_exposure(self.interpreter.prefixes)
            except (UnreachableInterpreterError, OSError) as exc:
                raise InfraError(str(exc)) from exc
            self.can_mount_disk = _probe_tmpfs(base)
            with contextlib.suppress(OSError):
                UID_CLAIMS.mkdir(mode=0o700, exist_ok=True)
                if os.lstat(UID_CLAIMS).st_uid == 0 and os.access(UID_CLAIMS, os.W_OK):
                    self.uid_claims = UID_CLAIMS
        # cgroup names carry the base directory, so equal uids under two bases never meet.
        self._tag = hashlib.sha256(real_base.encode()).hexdigest()[:10]
        if self.use_cgroups:
            self.cgroups = CgroupRoots.detect()
        self.warnings = self._find_warnings()
        self._prepared = True
        self.sweep_stale()

    def _find_warnings(self) -> list[str]:
        out = []
        if not self.switch_uid:
            out.append("not running as root: sandboxed commands run as the driver's own user")
        cg = self.cgroups
        if cg is None or not cg.has_memory:
            out.append("no memory cgroup: memory_mb holds per process (RLIMIT_AS), not for a "
                       "sandbox's processes together")
        if (cg is None or not cg.has_pids) and not self.switch_uid:
            out.append("no pids cgroup and no uid per sandbox: max_processes counts all the "
                       "driver user's processes")
        if not self.can_mount_disk:
            out.append("no tmpfs per sandbox: disk_mb is not enforced, only file_size_mb per "
                       "file (RLIMIT_FSIZE)")
        return out

    def hidden_dirs(self) -> tuple[str, ...]:
        """Directories that sandboxed code must not read, resolved, outermost only."""
        prefixes = self.interpreter.prefixes if self.interpreter is not None else ()
        found = set(_package_dirs(prefixes))
        found.update(os.path.realpath(p) for p in self.hidden_paths)
        if not self.site_packages and self.interpreter is not None:
            found.update(self.interpreter.site_dirs)
        return tuple(d for d in sorted(found)
                     if not any(o != d and d.startswith(o + "/") for o in found))

    def process_limit_mechanism(self) -> str:
        """The mechanisms that bound a new sandbox's processes (see :class:`Allocation`)."""
        self.prepare()
        has_pids = self.cgroups is not None and self.cgroups.has_pids
        return "+".join(_mechanisms(has_pids, self.switch_uid))

    def allocate(self, limits: SandboxLimits, *, extra_procs: int = 0) -> Allocation:
        """Directories, uid and cgroups for a new sandbox whose wrapper needs ``extra_procs``."""
        self.prepare()
        uid, root, claim_fd = self._claim_root()
        disk = False
        cgroups: SandboxCgroups | None = None
        lock_fd = -1
        try:
            if self.can_mount_disk:
                _mountns.mount_tmpfs(str(root), limits.disk_mb * _MB, 0o711)
                disk = True
            lock_fd = _create_locked(root)
            dirs = [root / "work", root / "home", root / "tmp", root / "out"]
            for d in dirs:
                d.mkdir(mode=0o700)
                if uid is not None:
                    os.chown(d, uid, uid)
            max_procs = limits.max_processes + extra_procs
            nproc = max_procs if uid is not None else count_user_tasks(os.getuid()) + max_procs
            if self.cgroups is not None:
                cgroups = self.cgroups.create(self._cgroup_name(root.name), max_pids=max_procs,
                                              memory_bytes=limits.memory_mb * _MB)
            namespaces = self._namespaces(uid, root, dirs[2], disk=disk, limits=limits)
        except BaseException:
            if lock_fd >= 0:
                os.close(lock_fd)
            try:
                _kill_and_remove(root, None, cgroups)
            finally:
                self._give_back(uid, claim_fd)
            raise
        setup = ChildSetup(limits=limits, nproc=nproc, uid=uid,
                           cgroup_procs_fds=tuple(cgroups.procs_fds) if cgroups else (),
                           namespaces=namespaces)
        controllers = cgroups.controllers if cgroups else set()
        version = self.cgroups.version if self.cgroups else ""
        isolation = [
            f"memory:cgroup-{version}" if "memory" in controllers else "memory:rlimit-per-process",
            f"pids:cgroup-{version}" if "pids" in controllers
            else ("pids:rlimit-uid" if uid is not None else "pids:rlimit-shared-uid"),
            "disk:tmpfs" if disk else "disk:file-size-only",
        ]
        return Allocation(root=root, work=dirs[0], home=dirs[1], tmp=dirs[2], out=dirs[3], uid=uid,
                          cgroups=cgroups, lock_fd=lock_fd, setup=setup, disk_mounted=disk,
                          uid_claim_fd=claim_fd,
                          process_limit_mechanism="+".join(_mechanisms("pids" in controllers,
                                                                       uid is not None)),
                          isolation=isolation)

    def _namespaces(self, uid: int | None, root: Path, tmp: Path, *, disk: bool,
                    limits: SandboxLimits) -> ChildNamespaces | None:
        """What each command's child enters before dropping to ``uid`` (None: nothing)."""
        if uid is None:
            return None
        own = self.child_namespaces
        hides = tuple(d.encode() for d in self.hidden_dirs()) if own else ()
        if self.exposure is None and not own:
            return None
        shm = limits.memory_mb * _MB if own and os.path.isdir("/dev/shm") else 0
        scratch, rebinds = self._scratch_plan(root, tmp) if disk and own else ((), ())
        return ChildNamespaces(exposure=self.exposure, hides=hides, shm_bytes=shm,
                               scratch=scratch, scratch_source=str(tmp).encode(),
                               rebinds=rebinds, private_proc=own, new_ipc=own,
                               new_net=own and not limits.network)

    def _scratch_plan(self, root: Path, tmp: Path) -> tuple[
            tuple[bytes, ...], tuple[tuple[bytes, bytes, bool], ...]]:
        """Replace the host's /tmp and /var/tmp with the sandbox's own tmp (bounded by its
        disk), keeping reachable what lives under them: the sandbox's own directory (its paths
        stay valid) and the interpreter. Makes the mount points in ``tmp`` now, as root, under
        a sticky bit, so the sandbox can neither move them nor swap in symlinks."""
        scratch = sorted({os.path.realpath(d) for d in _REPLACED_SCRATCH if os.path.isdir(d)})
        keep = [(os.path.realpath(root), False)]
        if self.interpreter is not None:
            keep += [(p, True) for p in self.interpreter.prefixes]
        rebinds: list[tuple[bytes, bytes, bool]] = []
        for source, ro in keep:
            for s in scratch:
                if not source.startswith(s + "/"):
                    continue
                parts = source[len(s) + 1:].split("/")
                cur = tmp
                for part in parts:
                    cur = cur / part
                    with contextlib.suppress(FileExistsError):
                        cur.mkdir(mode=0o755)
                rebinds.append((source.encode(), f"{s}/{'/'.join(parts)}".encode(), ro))
        os.chmod(tmp, 0o1700)
        return tuple(s.encode() for s in scratch), tuple(rebinds)

    def _claim_root(self) -> tuple[int | None, Path, int]:
        if not self.switch_uid:
            root = Path(tempfile.mkdtemp(prefix="s", dir=self.base_dir))
            return None, root, -1
        first, count = self.uid_range
        for _ in range(100):
            uid = first + secrets.randbelow(count)
            claim = self._take(uid)
            if claim is None:
                continue  # a sandbox of another base directory has it
            root = self.base_dir / f"u{uid}"
            try:
                root.mkdir(mode=0o711)
            except FileExistsError:
                self._give_back(uid, claim)
                continue
            except OSError as exc:
                self._give_back(uid, claim)
                raise InfraError(f"cannot create a sandbox under {self.base_dir}: {exc}") from exc
            if live_pids(uid):  # left by a crashed driver of another base directory
                _kill_members(uid, None)
            return uid, root, claim
        raise InfraError(f"no free sandbox uid in {first}..{first + count - 1}")

    def _take(self, uid: int) -> int | None:
        """A descriptor holding the host-wide claim on ``uid`` (-1 without a claims directory),
        or None when another driver holds it."""
        if self.uid_claims is None:
            return -1
        path = self.uid_claims / str(uid)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held, now = os.fstat(fd), os.lstat(path)
            if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
                raise BlockingIOError("given back meanwhile")  # its holder unlinked it
        except OSError:
            os.close(fd)
            return None
        return fd

    def _give_back(self, uid: int | None, fd: int) -> None:
        if fd < 0 or uid is None or self.uid_claims is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.uid_claims / str(uid))  # before closing: see the check in _take
        os.close(fd)

    def _cgroup_name(self, name: str) -> str:
        return f"{name}-{self._tag}" if self._tag else name

    def release(self, alloc: Allocation, groups: set[int]) -> None:
        """Kill everything the sandbox still runs, then delete its cgroups and directory."""
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        try:
            _kill_and_remove(alloc.root, alloc.uid, alloc.cgroups)
        finally:
            os.close(alloc.lock_fd)  # if removal failed, a later sweep retries it
            self._give_back(alloc.uid, alloc.uid_claim_fd)

    def kill_processes(self, alloc: Allocation, groups: set[int]) -> None:
        """Kill every process of the sandbox and wait until none is left; files stay.

        Raises:
            InfraError: processes of the sandbox survived.
        """
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        if not _kill_members(alloc.uid, alloc.cgroups):
            raise InfraError("processes of the sandbox survived SIGKILL")

    def sweep_stale(self) -> int:
        """Remove sandboxes whose driver died (their lock is free); the number removed."""
        with os.scandir(self.base_dir) as it:
            entries = [e for e in it if e.name[:1] in ("u", "s")
                       and e.is_dir(follow_symlinks=False)]
        removed = 0
        for entry in entries:
            root = Path(entry.path)
            try:
                with _lock_if_stale(root):
                    uid = self._uid_of(entry.name)
                    claim = self._take(uid) if uid is not None else -1
                    try:
                        # A uid that another driver holds now is not ours to kill.
                        _kill_and_remove(root, uid if claim is not None else None,
                                         self._cgroups_of(entry.name))
                    finally:
                        if claim is not None:
                            self._give_back(uid, claim)
                    removed += 1
            except (OSError, InfraError):  # alive (lock held), young, or not ours to remove
                continue
        return removed

    def _uid_of(self, name: str) -> int | None:
        return int(name[1:]) if self.switch_uid and name[0] == "u" and name[1:].isdigit() \
            else None

    def _cgroups_of(self, name: str) -> SandboxCgroups | None:
        if self.cgroups is None:
            return None
        return self.cgroups.existing(self._cgroup_name(name))


def _probe_tmpfs(base: Path) -> bool:
    """Whether a tmpfs can be mounted (and unmounted) under ``base`` here."""
    try:
        probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=base))
    except OSError:
        return False
    try:
        _mountns.mount_tmpfs(str(probe), _MB, 0o700)
    except OSError:
        return False
    else:
        with contextlib.suppress(OSError):
            _mountns.unmount(str(probe))
        return True
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _create_locked(root: Path) -> int:
    """Create ``root/lock`` already flock()ed: made under another name and renamed into place, so
    a sweep never finds the lock file before its holder has it locked."""
    tmp = root / f".lock-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, root / _LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _lock_if_stale(root: Path) -> Iterator[None]:
    """Hold the lock of a dead sandbox; raise OSError if it lives or may be being created."""
    try:
        fd = os.open(root / _LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if time.time() - os.lstat(root).st_mtime < STALE_UNLOCKED_S:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the driver lives
        # Free because its driver closed the sandbox meanwhile: the lock we hold is then no
        # longer the one at that path (its tmpfs is gone, or the directory is).
        held, now = os.fstat(fd), os.lstat(root / _LOCK)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            raise FileNotFoundError(f"{root} was released meanwhile")
        yield
    finally:
        os.close(fd)


SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
"""World-writable host directories where local sandboxes can leave files; cleaned on close."""
_REPLACED_SCRATCH = ("/tmp", "/var/tmp", "/run/lock", "/var/lock")
"""World-writable host directories that ``local`` as root replaces with the sandbox's tmp."""


def _kill_members(uid: int | None, cgroups: SandboxCgroups | None) -> bool:
    """SIGKILL everything in the cgroups and everything running as ``uid``; True when none is
    left (or, with neither a cgroup nor a uid, when there is nothing to check)."""
    has_cgroup = cgroups is not None and bool(cgroups.dirs)
    emptied = cgroups.kill_all() if cgroups is not None and has_cgroup else False
    if uid is None or emptied:
        return emptied or not has_cgroup
    for _ in range(10):  # a scan is ~0.2 ms; spawning the killer ~3 ms, so scan first
        if not live_pids(uid):
            return True
        kill_uid(uid)
    return not live_pids(uid)


def _kill_and_remove(root: Path, uid: int | None, cgroups: SandboxCgroups | None) -> None:
    _kill_members(uid, cgroups)
    if uid is not None:
        _remove_spill(uid)
    if os.path.ismount(root):  # its disk: the tmpfs goes, and its pages with it
        _mountns.unmount(str(root))
    if cgroups is not None:
        cgroups.remove()
    remove_tree(root)


def _owner(entry: os.DirEntry[str]) -> int | None:
    try:
        return entry.stat(follow_symlinks=False).st_uid
    except OSError:
        return None


def _remove_spill(uid: int) -> None:
    """Delete what ``uid`` left at the top of the shared scratch directories."""
    for scratch in SHARED_SCRATCH:
        with contextlib.suppress(OSError), os.scandir(scratch) as it:
            mine = [Path(e.path) for e in it if _owner(e) == uid]
        for p in mine:
            with contextlib.suppress(OSError, InfraError):
                if p.is_dir() and not p.is_symlink():
                    remove_tree(p)
                else:
                    p.unlink()


def _mechanisms(cgroup: bool, own_uid: bool) -> list[str]:
    out = ["pids-cgroup"] if cgroup else []
    out.append("rlimit-nproc" if own_uid else "rlimit-nproc-shared-uid")
    return out
