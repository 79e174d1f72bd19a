"""The journal: evals and runs with status, leases and attempts (SQLite WAL by default).

Exactly-once: a run becomes ``done`` in the same transaction that records the results batch
holding its row, and only if it was not ``done`` already; the first result wins.

Two ways to open it: :meth:`Journal.open` for the driver (creates the file and tables, and
applies the :data:`MIGRATIONS` an older journal lacks) and :meth:`Journal.open_readonly` for
readers (never creates, writes or write-locks anything, and reads an older journal as it is).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    and_,
    case,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlalchemy.sql.selectable import ScalarSelect

from evalfleet.errors import SpecError, StoreError, UnknownEvalError
from evalfleet.store.liveness import process_alive
from evalfleet.store.rollups import RunFact, aggregate
from evalfleet.store.schema import (
    OPEN_STATUSES_SQL,
    ROLLUP_KEY,
    RUN_OUTCOMES,
    RUN_STATUSES,
    alerts,
    batches,
    decode_run_id,
    encode_run_id,
    eval_keys,
    evals,
    for_postgresql,
    metadata,
    migrations,
    pool_demands,
    quarantined_tasks,
    retention_applied,
    rollup_backfill,
    rollups,
    runs,
    runs_v1,
    task_failures,
    trajectory_pins,
    trend_references,
)
from evalfleet.store.snapshot import readonly_connection

_CHUNK = 5000
_INSERT_COLUMNS = ("eval_key", "seq", "run_id", "task_id", "agent_index", "repeat", "status",
                   "attempts", "stratum")
"""What creating a run writes (``Journal._insert_runs``), in this order."""
_PG_CREATE_LOCK = 0x6576616C666C6565  # PostgreSQL advisory lock held while creating tables

RunRow = tuple[str, str, int, int] | tuple[str, str, int, int, str | None]
"""A run to record: ``(run_id, task_id, agent_index, repeat)``, optionally with its stratum
(the task's category) last."""


@dataclass(frozen=True, slots=True)
class Migration:
    """A change to the journal's tables since its first release, applied by the writer.

    ``ddl`` runs only when ``table`` lacks ``column`` (a journal created by this version has
    it already, from the table definitions; a new table always has, so its ``ddl`` is empty);
    either way the name is recorded in the ``migrations`` table, so the check is made once per
    journal. ``record`` (optional SQL) runs in the transaction that records the name, so
    exactly one writer runs it, before any writer of this version commits a batch.
    """

    name: str
    table: str
    column: str
    ddl: str
    record: str = ""
    apply: Callable[[Connection], None] | None = None
    """Instead of ``ddl``: a function making the change in the migration's transaction (a
    table rebuilt, not a column added)."""


_OPEN: TextClause = text(OPEN_STATUSES_SQL)
"""The partial index's condition as a literal WHERE term (see ``OPEN_STATUSES_SQL``), rendered
exactly as the index's: a boolean-typed column would render ``status IN (0, 2) = 1`` on SQLite,
which the planner cannot match to the index, and every lease would read all the eval's runs."""


_OUTCOME_CODES = {name: i for i, name in enumerate(RUN_OUTCOMES)}
"""A run's outcome as stored (its index in ``RUN_OUTCOMES``), for statements sent as raw SQL."""


def _mark(conn: Connection) -> str:
    """The DBAPI's positional placeholder, for statements sent as raw SQL with values already
    in their stored form: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _codes_sql(column: str, names: Sequence[str]) -> str:
    """SQL mapping a column of names to their :class:`~evalfleet.store.schema.Code` (NULL
    stays NULL; so does a name not in the list, which fails the migration on the NOT NULL
    status column; older journals only ever wrote names in the lists)."""
    whens = " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(names))
    return f"CASE {column} {whens} END"


def _compact_runs(conn: Connection) -> None:
    """Migration ``runs_compact``: rebuild the runs table in the compact layout (schema.runs).

    Every eval (and any eval id a run names) gets its integer key; the rows are copied in one
    INSERT ... SELECT with that key instead of the eval id, without the batch id, and with the
    lease columns only where the run is leased; then the old table is dropped. One
    transaction on both engines: a failure leaves the journal as it was.
    """
    pg = conn.dialect.name == "postgresql"
    if pg:  # one migrator at a time; the others find the column added when they get the lock
        conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
        if "eval_key" in {c["name"] for c in inspect(conn).get_columns("runs")}:
            return
    eval_keys.create(conn, checkfirst=True)
    conn.exec_driver_sql(
        "INSERT INTO eval_keys (eval_id) SELECT eval_id FROM (SELECT eval_id, created_at "
        "FROM evals UNION ALL SELECT DISTINCT eval_id, CAST(NULL AS FLOAT) FROM runs) AS ids "
        "WHERE eval_id NOT IN (SELECT eval_id FROM eval_keys) "
        "GROUP BY eval_id ORDER BY min(created_at), eval_id")
    conn.exec_driver_sql("ALTER TABLE runs RENAME TO runs_v1")
    if pg:  # index names are per schema there: free the ones the new table takes
        conn.exec_driver_sql("ALTER INDEX runs_pkey RENAME TO runs_v1_pkey")
    runs.create(conn)
    if pg:
        run_id = ("CASE WHEN r.run_id ~ '^[0-9a-f]{24}$' THEN decode(r.run_id, 'hex') "
                  "ELSE (CASE WHEN octet_length(r.run_id) = 11 THEN '\\x0000'::bytea "
                  "ELSE '\\x00'::bytea END) || convert_to(r.run_id, 'UTF8') END")
    else:  # SQLite before 3.41 has no unhex(): the same function as every insert, by name
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.create_function("evalfleet_run_id", 1, encode_run_id, deterministic=True)
        run_id = "evalfleet_run_id(r.run_id)"
    conn.exec_driver_sql(
        "INSERT INTO runs (eval_key, seq, run_id, task_id, agent_index, repeat, status, "
        "lease_owner, lease_expires, attempts, outcome, passed, cost_usd, stratum) "
        f"SELECT k.eval_key, r.seq, {run_id}, r.task_id, r.agent_index, r.repeat, "
        f"{_codes_sql('r.status', RUN_STATUSES)}, "
        "CASE WHEN r.status = 'leased' THEN r.lease_owner END, "
        "CASE WHEN r.status = 'leased' THEN r.lease_expires END, "
        f"r.attempts, {_codes_sql('r.outcome', RUN_OUTCOMES)}, r.passed, r.cost_usd, "
        "r.stratum FROM runs_v1 r JOIN eval_keys k ON k.eval_id = r.eval_id")
    conn.exec_driver_sql("DROP TABLE runs_v1")


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_runs_stratum", "runs", "stratum",
              "ALTER TABLE runs ADD COLUMN stratum VARCHAR(100)"),
    Migration("0002_batches_superseded_by", "batches", "superseded_by",
              "ALTER TABLE batches ADD COLUMN superseded_by VARCHAR(64)"),
    Migration("0003_batches_superseded_at", "batches", "superseded_at",
              "ALTER TABLE batches ADD COLUMN superseded_at FLOAT"),
    # rollups (a new table): list the live batches committed so far for the backfill
    # (store/rollups.py), unless rollups exist already (a journal whose record was lost)
    Migration("0004_rollups", "rollups", "eval_id", "",
              record="INSERT INTO rollup_backfill (batch_id, eval_id) "
                     "SELECT batch_id, eval_id FROM batches WHERE superseded_by IS NULL "
                     "AND NOT EXISTS (SELECT 1 FROM rollups) AND batch_id NOT IN "
                     "(SELECT batch_id FROM rollup_backfill)"),
    # poison-task quarantine (new tables): infrastructure failures per task, quarantined tasks
    Migration("0005_task_failures", "task_failures", "eval_id", ""),
    Migration("0006_quarantined_tasks", "quarantined_tasks", "eval_id", ""),
    # tiered retention (new tables): pinned trajectories, what retention did to each eval
    Migration("0007_trajectory_pins", "trajectory_pins", "run_id", ""),
    Migration("0008_retention_applied", "retention_applied", "eval_id", ""),
    # the compact runs table: integer eval keys, clustered by (eval, seq), no batch id, a
    # partial index on the runs not done (schema.runs); readers of an older journal read it
    # as it is (Journal.compact)
    Migration("0009_runs_compact", "runs", "eval_key", "", apply=_compact_runs),
    # evals sharing a pool of slots (a new table): their live demands (execution/shares.py)
    Migration("0010_pool_demands", "pool_demands", "pool", ""),
)
"""Named migrations, oldest first. Only ever append."""


class LeasedRun(NamedTuple):
    """A run handed to a worker (named tuples, like :class:`CommitRow`: one per run, built
    faster than frozen dataclasses and as immutable)."""

    run_id: str
    task_id: str
    agent_index: int
    repeat: int
    attempts: int


class CommitRow(NamedTuple):
    """What the journal keeps of a committed run."""

    run_id: str
    outcome: str
    passed: bool | None
    cost_usd: float
    attempts: int
    fact: RunFact | None = None
    """What the rollups count of it (a row without is committed but not rolled up)."""


def driver_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _postgres_read_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.close()
    dbapi_conn.commit()


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600, or take group and other bits off an existing one.

    SQLite gives its -wal and -shm files the mode of the database file, so this also keeps
    those private; sandboxed code under another uid must not read other evals' data.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        st = path.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
    else:
        os.close(fd)


def _shown(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _why(exc: BaseException) -> str:
    """A database error's own message (``orig``), on one line."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _engine(url: str) -> Engine:
    """An engine for a journal URL (``EVALFLEET_JOURNAL_URL``).

    Raises:
        SpecError: the URL does not parse, names an unknown database, or its driver is not
            installed (a setting to fix, exit 2, not a traceback).
    """
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, ImportError) as exc:
        raise SpecError(f"journal URL {_shown(url)!r} cannot be used: {_why(exc)}",
                        field="EVALFLEET_JOURNAL_URL") from None
    if engine.dialect.name == "postgresql":
        for_postgresql()
    return engine


_OPEN_ATTEMPTS = 40
"""Tries at creating or migrating the tables while other writers do the same (about 16 s)."""


def _contended(exc: OperationalError) -> bool:
    """Whether another writer creating or migrating the same journal got in the way: a table
    it just created, or SQLite refusing to upgrade a read transaction to a write one because
    another writer committed meanwhile ("database is locked" without waiting out the busy
    timeout, since waiting could deadlock). A fresh transaction then succeeds."""
    text = str(exc.orig)
    return "already exists" in text or "database is locked" in text or "duplicate column" in text


class NoJournalError(UnknownEvalError):
    """A reader found no journal: nothing has run in that home yet."""


class Journal:
    """Durable run bookkeeping over SQLAlchemy Core."""

    def __init__(self, url: str, *, engine: Engine | None = None, readonly: bool = False) -> None:
        self.url = url
        self.shown_url = _shown(url)
        """The URL with its password masked, for messages."""
        self.readonly = readonly
        self._has_stratum: bool | None = None
        self._has_superseded: bool | None = None
        self._compact = False
        self.engine: Engine = engine or _engine(url)
        if readonly:
            return  # tables are never created by a reader
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        # writers opening a new journal at once: one creates, the others wait
                        conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
                    metadata.create_all(conn)
                break
            except OperationalError as exc:
                # another process may be creating the same tables right now: look again
                if _contended(exc) and attempt < _OPEN_ATTEMPTS - 1:
                    time.sleep(0.02 * (attempt + 1))
                    continue
                raise StoreError(f"cannot open the journal at {_shown(url)}: "
                                 f"{_why(exc)}") from None
        self.migrate()

    def _columns(self, table: str, conn: Connection | None = None) -> set[str]:
        return {c["name"] for c in inspect(conn or self.engine).get_columns(table)}

    def migrate(self) -> list[str]:
        """Apply the migrations this journal has not recorded; returns the names applied.

        Safe when several writers open an old journal at once: a column another writer just
        added is taken as added, and a name it just recorded as recorded.

        Raises:
            StoreError: a migration failed (the journal is left as it was before it).
        """
        with self.engine.connect() as conn:
            recorded = set(conn.execute(select(migrations.c.name)).scalars())
        applied: list[str] = []
        for m in MIGRATIONS:
            if m.name in recorded:
                continue
            for attempt in range(_OPEN_ATTEMPTS):
                try:
                    with self.engine.begin() as conn:
                        if m.column not in self._columns(m.table, conn):
                            if m.apply is not None:
                                m.apply(conn)
                            else:
                                conn.exec_driver_sql(m.ddl)
                            applied.append(m.name)
                    break
                except DBAPIError as exc:
                    if m.column in self._columns(m.table):
                        break  # another writer added it meanwhile
                    if isinstance(exc, OperationalError) and _contended(exc) \
                            and attempt < _OPEN_ATTEMPTS - 1:
                        time.sleep(0.02 * (attempt + 1))
                        continue
                    raise StoreError(f"cannot migrate the journal at {_shown(self.url)} "
                                     f"({m.name}): {_why(exc)}") from None
            for attempt in range(_OPEN_ATTEMPTS):
                try:
                    with self.engine.begin() as conn:
                        conn.execute(migrations.insert().values(name=m.name,
                                                                applied_at=time.time()))
                        if m.record:
                            conn.exec_driver_sql(m.record)
                    break
                except IntegrityError:
                    break  # another writer recorded it meanwhile
                except OperationalError as exc:
                    if _contended(exc) and attempt < _OPEN_ATTEMPTS - 1:
                        time.sleep(0.02 * (attempt + 1))
                        continue
                    raise StoreError(f"cannot migrate the journal at {_shown(self.url)} "
                                     f"({m.name}): {_why(exc)}") from None
        return applied

    @property
    def has_stratum(self) -> bool:
        """Whether the runs table has the ``stratum`` column (a reader of a journal no writer
        has migrated yet sees it without)."""
        cached: bool | None = getattr(self, "_has_stratum", None)
        if cached is None:
            cached = self._has_stratum = "stratum" in self._columns("runs")
        return cached

    @property
    def compact(self) -> bool:
        """Whether the runs table has the compact layout (migration ``0009_runs_compact``); a
        reader of a journal no writer has migrated yet reads the older layout (``runs_v1``).
        Only a yes is cached: a writer may migrate the journal while this object is open."""
        if not getattr(self, "_compact", False):
            self._compact = "eval_key" in self._columns("runs")
        return bool(self._compact)

    @staticmethod
    def eval_key(eval_id: str) -> ScalarSelect[Any]:
        """The eval's integer key, as a scalar subquery (NULL for an unknown eval, which then
        matches no run)."""
        return select(eval_keys.c.eval_key).where(eval_keys.c.eval_id == eval_id) \
            .scalar_subquery()

    def _of(self, eval_id: str) -> ColumnElement[bool]:
        """The condition selecting the eval's runs in the compact table (writers)."""
        return runs.c.eval_key == self.eval_key(eval_id)

    def _rt(self, eval_id: str) -> tuple[Any, ColumnElement[bool]]:
        """The runs table in this journal's layout and the condition selecting the eval's runs
        in it (readers: an older journal is read as it is)."""
        if self.compact:
            return runs, self._of(eval_id)
        return runs_v1, runs_v1.c.eval_id == eval_id

    @classmethod
    def open(cls, home: Path, url: str | None = None) -> Journal:
        """The journal at ``url``, by default SQLite ``journal.db`` in ``home`` (created 0600)."""
        if url is None:
            path = home / "journal.db"
            _private_file(path)
            for side in ("journal.db-wal", "journal.db-shm"):
                if (home / side).exists():
                    _private_file(home / side)
            url = f"sqlite:///{path}"
        return cls(url)

    @classmethod
    def open_readonly(cls, home: Path, url: str | None = None) -> Journal:
        """The journal opened for reading only: nothing is created, written or write-locked.

        SQLite is opened with ``mode=ro`` (SQLite itself may add the WAL index file ``-shm``
        next to the journal, which every WAL reader needs; it holds no data). A PostgreSQL
        session is made read-only.

        Raises:
            NoJournalError: the home or its journal does not exist, or holds no tables.
        """
        if url is None:
            path = (home / "journal.db").absolute()
            if not path.is_file():
                where = "does not exist" if not home.exists() else "has no journal.db"
                raise NoJournalError(f"no evals in {home} (the home {where}; nothing has run "
                                     "there yet)")

            def connect() -> sqlite3.Connection:
                # mode=ro, query_only; immutable on a read-only file system (snapshot.py)
                return readonly_connection(path)

            engine = create_engine("sqlite://", creator=connect, future=True)
            journal = cls(f"sqlite:///{path}", engine=engine, readonly=True)
        else:
            engine = _engine(url)
            if engine.dialect.name == "postgresql":
                event.listen(engine, "connect", _postgres_read_only)
            journal = cls(url, engine=engine, readonly=True)
        try:
            has_tables = inspect(journal.engine).has_table("evals")
        except SQLAlchemyError as exc:
            journal.close()
            raise StoreError(f"cannot read the journal of {home}: "
                             f"{_why(exc)}") from None
        if not has_tables:
            journal.close()
            raise NoJournalError(f"no evals in {home} (its journal has no evals table)")
        return journal

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # evals ------------------------------------------------------------------------------------
    def create_eval(self, *, eval_id: str, plan_name: str, plan_json: str, suite_name: str,
                    suite_hash: str, planned: int, rows: Iterable[RunRow]) -> None:
        """Insert an eval and its runs (:data:`RunRow`), in chunks."""
        with self.engine.begin() as conn:
            conn.execute(evals.insert().values(
                eval_id=eval_id, plan_name=plan_name, plan_json=plan_json,
                suite_name=suite_name, suite_hash=suite_hash, status="created",
                planned=planned, created_at=time.time(), duplicates_dropped=0))
            key = conn.execute(eval_keys.insert().values(eval_id=eval_id)
                               .returning(eval_keys.c.eval_key)).scalar_one()
            self._insert_runs(conn, int(key), rows, first_seq=0)

    @staticmethod
    def _insert_runs(conn: Connection, eval_key: int, rows: Iterable[RunRow],
                     first_seq: int) -> int:
        """Insert ``rows`` as pending runs numbered from ``first_seq``; returns how many.

        Streams: ``rows`` is consumed :data:`_CHUNK` at a time, each chunk one ``executemany``
        of a single prepared INSERT with the values already in their stored form (12-byte run
        ids, the pending code), so a generator of a million runs is never a list and no row
        goes through SQLAlchemy's per-row processing.
        """
        mark = _mark(conn)
        sql = (f"INSERT INTO runs ({', '.join(_INSERT_COLUMNS)}) "
               f"VALUES ({', '.join([mark] * len(_INSERT_COLUMNS))})")
        pending = RUN_STATUSES.index("pending")
        chunk: list[tuple[Any, ...]] = []
        n = 0
        for n, row in enumerate(rows, start=1):
            chunk.append((eval_key, first_seq + n - 1, encode_run_id(row[0]), row[1], row[2],
                          row[3], pending, 0, row[4] if len(row) > 4 else None))
            if len(chunk) >= _CHUNK:
                conn.exec_driver_sql(sql, chunk)
                chunk = []
        if chunk:
            conn.exec_driver_sql(sql, chunk)
        return n

    def add_runs(self, eval_id: str, rows: Sequence[RunRow]) -> int:
        """Add runs to an eval as pending, after its others in dispatch order; returns how many.

        Runs whose id the eval already has are left alone, so adding the same runs twice (a
        driver that crashed after adding a round and recomputes it) adds nothing the second
        time. One transaction: the runs are all added or none.
        """
        ids = [r[0] for r in rows]
        with self.engine.begin() as conn:
            present: set[str] = set()
            for i in range(0, len(ids), 500):
                present.update(conn.execute(select(runs.c.run_id).where(
                    runs.c.run_id.in_(ids[i:i + 500]))).scalars())
            fresh = [r for r in rows if r[0] not in present]
            if not fresh:
                return 0
            key = conn.execute(select(eval_keys.c.eval_key)
                               .where(eval_keys.c.eval_id == eval_id)).scalar()
            if key is None:
                raise UnknownEvalError(f"no eval '{eval_id}' in this home")
            last = conn.execute(select(func.max(runs.c.seq))
                                .where(runs.c.eval_key == key)).scalar()
            return self._insert_runs(conn, int(key), fresh,
                                     first_seq=0 if last is None else int(last) + 1)

    def set_planned(self, eval_id: str, planned: int) -> None:
        """Record how many runs the eval plans now (adaptive depth adds rounds)."""
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(evals.c.eval_id == eval_id)
                         .values(planned=planned))

    def get_eval(self, eval_id: str) -> dict[str, Any]:
        """The eval's row as a dict (``plan`` parsed)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(evals).where(evals.c.eval_id == eval_id)).mappings().first()
        if row is None:
            raise UnknownEvalError(f"no eval '{eval_id}' in this home")
        out = dict(row)
        out["plan"] = json.loads(out.pop("plan_json"))
        return out

    def find_evals(self, prefix: str) -> list[str]:
        """Eval ids starting with ``prefix``, compared literally and case-sensitively."""
        if not prefix:
            return []
        # not LIKE: ``_`` and ``%`` are wildcards there, and SQLite's LIKE ignores case
        head = func.substr(evals.c.eval_id, 1, len(prefix))
        with self.engine.connect() as conn:
            return sorted(conn.execute(select(evals.c.eval_id)
                                       .where(head == prefix)).scalars())

    def list_evals(self) -> list[dict[str, Any]]:
        """Every eval, newest first, without the plan."""
        cols = [c for c in evals.c if c.name != "plan_json"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(evals.c.created_at.desc())).mappings()
            return [dict(r) for r in rows]

    def update_plan(self, eval_id: str, plan_json: str) -> None:
        """Replace the plan snapshot (e.g. a raised budget on resume)."""
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(evals.c.eval_id == eval_id)
                         .values(plan_json=plan_json))

    def set_status(self, eval_id: str, status: str, *, finished: bool = False) -> None:
        """Change an eval's status."""
        values: dict[str, Any] = {"status": status}
        if finished:
            values["finished_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(evals.c.eval_id == eval_id).values(**values))

    def claim_driver(self, eval_id: str, driver: str, stale_after_s: float, *,
                     maintenance: bool = False) -> None:
        """Make ``driver`` the eval's driver; refuse if another live driver holds it.

        ``maintenance`` (``evalfleet compact``) takes the same claim without marking the eval
        running: its status and start time stay as they are.

        The claim is one conditional UPDATE (compare-and-set), so of several drivers claiming
        at once exactly one wins. Another driver's claim is taken over only when its heartbeat
        is older than ``stale_after_s`` or, on this host, its process is gone.

        Raises:
            UnknownEvalError: no such eval.
            StoreError: another driver holds the eval.
        """
        for _ in range(10):
            now = time.time()
            taken: dict[str, Any] = {"driver": driver, "driver_heartbeat": now}
            if not maintenance:
                taken.update(started_at=now, status="running")
            free = or_(evals.c.driver.is_(None), evals.c.driver == driver,
                       evals.c.driver_heartbeat.is_(None),
                       evals.c.driver_heartbeat < now - stale_after_s)
            with self.engine.begin() as conn:
                res = conn.execute(evals.update().where(and_(evals.c.eval_id == eval_id, free))
                                   .values(**taken))
                if res.rowcount == 1:
                    return
                row = conn.execute(select(evals.c.driver, evals.c.driver_heartbeat)
                                   .where(evals.c.eval_id == eval_id)).first()
            if row is None:
                raise UnknownEvalError(f"no eval '{eval_id}' in this home")
            other, beat = row
            if process_alive(other):
                age = f"{now - beat:.0f}s ago" if beat is not None else "never"
                raise StoreError(f"eval {eval_id} is being run by {other} (heartbeat "
                                 f"{age}); stop it first")
            # its process is gone: take it over, but only if nobody else did meanwhile
            same = and_(evals.c.eval_id == eval_id, evals.c.driver == other,
                        evals.c.driver_heartbeat == beat)
            with self.engine.begin() as conn:
                if conn.execute(evals.update().where(same).values(**taken)).rowcount == 1:
                    return
        raise StoreError(f"eval {eval_id}: could not claim it (other drivers keep taking it)")

    def release_driver(self, eval_id: str, driver: str) -> None:
        """Give up ``driver``'s claim on the eval (it finished or stopped cleanly).

        The driver's name stays as a record of who ran it last; without a heartbeat the claim
        is free for the next driver at once.
        """
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(and_(evals.c.eval_id == eval_id,
                                                   evals.c.driver == driver))
                         .values(driver_heartbeat=None))

    def holds(self, eval_id: str, driver: str) -> bool:
        """Whether ``driver`` holds the eval's claim now (named, and not released)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(evals.c.driver, evals.c.driver_heartbeat)
                               .where(evals.c.eval_id == eval_id)).first()
        return row is not None and row[0] == driver and row[1] is not None

    def heartbeat_driver(self, eval_id: str, driver: str) -> None:
        """Record that the driver is alive."""
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(and_(evals.c.eval_id == eval_id,
                                                   evals.c.driver == driver))
                         .values(driver_heartbeat=time.time()))

    # runs -------------------------------------------------------------------------------------
    def lease(self, eval_id: str, owner: str, n: int, lease_s: float,
              skip_agents: Collection[int] = ()) -> list[LeasedRun]:
        """Lease up to ``n`` runs that are pending or whose lease expired.

        Runs of the agents in ``skip_agents`` (those whose budget is spent) are not leased.
        A lease is not an attempt: the ``attempts`` column counts attempts that ran and ended
        (:meth:`record_failures`, :meth:`commit_batch`), so a lease that expired or was
        released before its attempt ended (a crashed driver, a run leased and never started)
        costs the run none of its ``max_attempts``; each leased run carries the number of the
        attempt it is about to make (attempts ended + 1).
        """
        now = time.time()
        key = self.eval_key(eval_id)
        cond = and_(runs.c.eval_key == key, _OPEN,
                    or_(runs.c.status == "pending",
                        and_(runs.c.status == "leased", runs.c.lease_expires < now)))
        if skip_agents:
            cond = and_(cond, runs.c.agent_index.not_in(sorted(skip_agents)))
        avail = select(runs.c.seq).where(cond).order_by(runs.c.status, runs.c.seq).limit(n)
        update = runs.update().values(status="leased", lease_owner=owner,
                                      lease_expires=now + lease_s) \
            .returning(runs.c.run_id, runs.c.task_id, runs.c.agent_index, runs.c.repeat,
                       runs.c.attempts, runs.c.seq)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # lock the chosen rows first (FOR UPDATE SKIP LOCKED: two leasers never take
                # the same run), then update exactly those: a LIMIT ... SKIP LOCKED subquery
                # inside the UPDATE may be run again per row and take more than n
                seqs = list(conn.execute(avail.with_for_update(skip_locked=True)).scalars())
                if not seqs:
                    return []
                stmt = update.where(and_(runs.c.eval_key == key, runs.c.seq.in_(seqs)))
            else:  # one statement: SQLite's write lock serializes leases
                stmt = update.where(and_(runs.c.eval_key == key,
                                         runs.c.seq.in_(avail.scalar_subquery())))
            rows = sorted(conn.execute(stmt).all(), key=lambda r: r[5])
        return [LeasedRun(r[0], r[1], r[2], r[3], r[4] + 1) for r in rows]

    def renew(self, eval_id: str, owner: str, run_ids: Sequence[str], lease_s: float) -> int:
        """Extend the leases ``owner`` holds on ``run_ids``; returns how many it still holds."""
        if not run_ids:
            return 0
        total = 0
        with self.engine.begin() as conn:
            for i in range(0, len(run_ids), 500):
                res = conn.execute(runs.update().where(and_(
                    runs.c.run_id.in_(run_ids[i:i + 500]), runs.c.lease_owner == owner,
                    runs.c.status == "leased")).values(lease_expires=time.time() + lease_s))
                total += res.rowcount
        return total

    def release(self, eval_id: str, owner: str, run_ids: Sequence[str] | None = None) -> None:
        """Return ``owner``'s leased runs of the eval to pending (clean shutdown), or only
        those of ``run_ids`` (leased but not started, e.g. of an agent out of budget)."""
        cond = and_(self._of(eval_id), _OPEN, runs.c.lease_owner == owner,
                    runs.c.status == "leased")
        with self.engine.begin() as conn:
            if run_ids is None:
                # the leased runs found through the open runs' index, then the owner's among
                # them: with the owner in the same condition SQLite reads every run of the eval
                # (the index lacks the owner column)
                leased = select(runs.c.seq).where(and_(self._of(eval_id), _OPEN,
                                                       runs.c.status == "leased"))
                conn.execute(runs.update().where(and_(
                    self._of(eval_id), runs.c.seq.in_(leased.scalar_subquery()),
                    runs.c.lease_owner == owner, runs.c.status == "leased"))
                             .values(status="pending", lease_owner=None, lease_expires=None))
                return
            for i in range(0, len(run_ids), 500):
                conn.execute(runs.update().where(and_(cond, runs.c.run_id.in_(
                    run_ids[i:i + 500]))).values(status="pending", lease_owner=None,
                                                 lease_expires=None))

    def reset_leases(self, eval_id: str) -> int:
        """Return every leased run of the eval to pending (resume after a crash)."""
        with self.engine.begin() as conn:
            res = conn.execute(runs.update().where(and_(
                self._of(eval_id), _OPEN, runs.c.status == "leased"))
                .values(status="pending", lease_owner=None, lease_expires=None))
            return int(res.rowcount)

    def lease_state(self, eval_id: str) -> tuple[int, int, float | None]:
        """(pending, leased, earliest lease expiry) of the eval."""
        t, of = self._rt(eval_id)
        open_ = _OPEN if t is runs else t.c.status.in_(("pending", "leased"))
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.status, func.count(), func.min(t.c.lease_expires))
                                .where(and_(of, open_)).group_by(t.c.status)).all()
        pending = leased = 0
        earliest: float | None = None
        for status, n, exp in rows:
            if status == "pending":
                pending = n
            else:
                leased, earliest = n, exp
        return pending, leased, earliest

    def pending_runs(self, eval_id: str) -> list[tuple[str, str, int, int]]:
        """``(run_id, task_id, agent_index, repeat)`` of the eval's pending runs, in dispatch
        order (read through the partial index of the runs not done)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.run_id, runs.c.task_id, runs.c.agent_index,
                                       runs.c.repeat)
                                .where(and_(self._of(eval_id), _OPEN,
                                            runs.c.status == "pending"))
                                .order_by(runs.c.status, runs.c.seq)).all()
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def done_among(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` are already committed."""
        out: set[str] = set()
        done = RUN_STATUSES.index("done")
        with self.engine.connect() as conn:
            # ids in their stored form in a prepared statement, 500 at a time: no SQLAlchemy
            # processing per id (a commit asks this of every row it writes)
            mark = _mark(conn)
            for i in range(0, len(run_ids), 500):
                part = [encode_run_id(r) for r in run_ids[i:i + 500]]
                rows = conn.exec_driver_sql(
                    f"SELECT run_id FROM runs WHERE run_id IN ({', '.join([mark] * len(part))})"
                    f" AND status = {mark}", (*part, done))
                out.update(decode_run_id(bytes(r[0])) for r in rows)
        return out

    def commit_batch(self, *, eval_id: str, batch_id: str, results_path: str,
                     trajectories_path: str | None, rows: Sequence[CommitRow],
                     duplicates: int = 0) -> int:
        """Record a results batch and mark its runs done, atomically; returns rows committed.

        Raises:
            StoreError: if a run in the batch was committed meanwhile (there is one writer, so
                this means two drivers ran the same eval); nothing is committed then.
        """
        # one prepared UPDATE per row with the values in their stored form (12-byte run id,
        # status and outcome codes), as _insert_runs does: no row goes through SQLAlchemy's
        # per-row parameter processing (about a tenth of a commit's time)
        done = RUN_STATUSES.index("done")
        params: list[tuple[Any, ...]] = []
        for r in rows:
            if r.outcome not in _OUTCOME_CODES:
                raise ValueError(f"{r.outcome!r} is not one of {', '.join(RUN_OUTCOMES)}")
            passed = None if r.passed is None else int(r.passed)
            params.append((done, _OUTCOME_CODES[r.outcome], passed, r.cost_usd, r.attempts,
                           encode_run_id(r.run_id), done))
        with self.engine.begin() as conn:
            conn.execute(batches.insert().values(
                batch_id=batch_id, eval_id=eval_id, results_path=results_path,
                trajectories_path=trajectories_path, n_rows=len(rows),
                committed_at=time.time()))
            mark = _mark(conn)
            res = conn.exec_driver_sql(
                f"UPDATE runs SET status = {mark}, outcome = {mark}, passed = {mark}, "
                f"cost_usd = {mark}, attempts = {mark}, lease_owner = NULL, "
                f"lease_expires = NULL WHERE run_id = {mark} AND status <> {mark}", params)
            if res.rowcount != len(rows):
                raise StoreError(f"batch {batch_id}: {len(rows) - res.rowcount} runs were "
                                 "already committed by another writer")
            if duplicates:
                conn.execute(evals.update().where(evals.c.eval_id == eval_id).values(
                    duplicates_dropped=evals.c.duplicates_dropped + duplicates))
            # in the same transaction: rollups hold exactly the committed rows
            _add_rollups(conn, aggregate(eval_id, (r.fact for r in rows if r.fact)))
        return len(rows)

    def add_duplicates(self, eval_id: str, n: int) -> None:
        """Count late duplicates dropped outside a batch commit."""
        with self.engine.begin() as conn:
            conn.execute(evals.update().where(evals.c.eval_id == eval_id).values(
                duplicates_dropped=evals.c.duplicates_dropped + n))

    # poison-task quarantine ------------------------------------------------------------------
    def record_failures(self, eval_id: str,
                        failures: Sequence[tuple[str, str, int, str]]) -> None:
        """Record attempts that ended in an infrastructure error, ``(run_id, task_id, attempt,
        error)`` each, as they end: each counts as an attempt of its run (one that ran and
        ended) and as a failure of its task for the quarantine."""
        if not failures:
            return
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(task_failures.insert(), [
                {"eval_id": eval_id, "task_id": t, "run_id": r, "attempt": a,
                 "error": e[:500], "at": now} for r, t, a, e in failures])
            # the run's ended attempts are at least this one (a commit sets the total)
            for r, _, a, _ in failures:
                conn.execute(runs.update().where(and_(runs.c.run_id == r,
                                                      runs.c.attempts < a)).values(attempts=a))

    def infra_failures(self, eval_id: str) -> dict[str, int]:
        """Infrastructure failures recorded per task of the eval (none from a journal without
        the table)."""
        if not self.has_table("task_failures"):
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(task_failures.c.task_id, func.count())
                                .where(task_failures.c.eval_id == eval_id)
                                .group_by(task_failures.c.task_id)).all()
        return {str(t): int(n) for t, n in rows}

    def quarantine_task(self, eval_id: str, task_id: str, failures: int,
                        run_ids: Sequence[str] = ()) -> int:
        """Quarantine a task: record it (once) and end its pending runs, and the leased
        ``run_ids`` (leased, never started), as ``quarantined``; returns how many runs ended so.
        Runs of the task added later are ended by calling it again."""
        cond = and_(self._of(eval_id), _OPEN, runs.c.task_id == task_id,
                    runs.c.status == "pending")
        if run_ids:
            cond = or_(cond, and_(runs.c.run_id.in_(list(run_ids)), runs.c.status == "leased"))
        with self.engine.begin() as conn:
            known = conn.execute(select(quarantined_tasks.c.task_id).where(and_(
                quarantined_tasks.c.eval_id == eval_id,
                quarantined_tasks.c.task_id == task_id))).first()
            if known is None:
                conn.execute(quarantined_tasks.insert().values(
                    eval_id=eval_id, task_id=task_id, failures=failures,
                    quarantined_at=time.time()))
            res = conn.execute(runs.update().where(cond).values(
                status="quarantined", outcome="quarantined", lease_owner=None,
                lease_expires=None))
            return int(res.rowcount)

    def put_demand(self, pool: str, eval_id: str, priority: int, share: float,
                   want: int) -> None:
        """Record or renew an eval's demand on a shared pool of slots."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(pool_demands.update().where(and_(
                pool_demands.c.pool == pool, pool_demands.c.eval_id == eval_id)).values(
                priority=priority, share=share, want=want, heartbeat=now))
            if res.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(pool_demands.insert().values(
                            pool=pool, eval_id=eval_id, priority=priority, share=share,
                            want=want, heartbeat=now))
                except IntegrityError:  # inserted meanwhile by the same eval's other call
                    pass

    def pool_demands(self, pool: str, fresh_s: float) -> list[tuple[str, int, float, int]]:
        """``(eval_id, priority, share, want)`` of the demands on ``pool`` renewed in the
        last ``fresh_s`` seconds (none from a journal without the table)."""
        if not self.has_table("pool_demands"):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(pool_demands.c.eval_id, pool_demands.c.priority,
                                       pool_demands.c.share, pool_demands.c.want)
                                .where(and_(pool_demands.c.pool == pool,
                                            pool_demands.c.heartbeat >= time.time() - fresh_s))
                                .order_by(pool_demands.c.eval_id)).all()
        return [(str(e), int(p), float(s), int(w)) for e, p, s, w in rows]

    def drop_demand(self, pool: str, eval_id: str) -> None:
        """Withdraw an eval's demand (its dispatch ended)."""
        with self.engine.begin() as conn:
            conn.execute(pool_demands.delete().where(and_(
                pool_demands.c.pool == pool, pool_demands.c.eval_id == eval_id)))

    def quarantined(self, eval_id: str, evidence: int = 5) -> list[dict[str, Any]]:
        """The eval's quarantined tasks: task id, failures when quarantined, when, runs ended
        ``quarantined``, and the evidence (the last ``evidence`` infrastructure errors, with
        their run and attempt); none from a journal without the tables."""
        if not self.has_table("quarantined_tasks"):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(quarantined_tasks.c.task_id, quarantined_tasks.c.failures,
                                       quarantined_tasks.c.quarantined_at)
                                .where(quarantined_tasks.c.eval_id == eval_id)
                                .order_by(quarantined_tasks.c.quarantined_at)).all()
            out: list[dict[str, Any]] = []
            for task_id, failures, at in rows:
                t, of = self._rt(eval_id)
                ended = conn.execute(select(func.count()).where(and_(
                    of, t.c.task_id == task_id,
                    t.c.status == "quarantined"))).scalar_one()
                errs = conn.execute(select(task_failures.c.run_id, task_failures.c.attempt,
                                           task_failures.c.error)
                                    .where(and_(task_failures.c.eval_id == eval_id,
                                                task_failures.c.task_id == task_id))
                                    .order_by(task_failures.c.failure_id.desc())
                                    .limit(evidence)).all()
                out.append({"task_id": task_id, "failures": int(failures),
                            "quarantined_at": float(at), "runs_quarantined": int(ended),
                            "errors": [{"run_id": r, "attempt": int(a), "error": e}
                                       for r, a, e in reversed(errs)]})
        return out

    def cancel_pending(self, eval_id: str, agent_index: int | None = None) -> int:
        """Mark every pending run cancelled (budget stop), or only those of one agent (its
        budget is spent); returns how many."""
        cond = and_(self._of(eval_id), _OPEN, runs.c.status == "pending")
        if agent_index is not None:
            cond = and_(cond, runs.c.agent_index == agent_index)
        with self.engine.begin() as conn:
            res = conn.execute(runs.update().where(cond)
                               .values(status="cancelled", outcome="cancelled"))
            return int(res.rowcount)

    def uncancel(self, eval_id: str) -> int:
        """Return cancelled runs to pending (resume with more budget)."""
        with self.engine.begin() as conn:
            res = conn.execute(runs.update().where(and_(
                self._of(eval_id), runs.c.status == "cancelled"))
                .values(status="pending", outcome=None))
            return int(res.rowcount)

    def counts(self, eval_id: str) -> dict[str, int]:
        """Run counts by status and by outcome (``outcome:completed`` ...)."""
        t, of = self._rt(eval_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.status, t.c.outcome, func.count())
                                .where(of)
                                .group_by(t.c.status, t.c.outcome)).all()
        out: dict[str, int] = {}
        for status, outcome, n in rows:
            out[status] = out.get(status, 0) + n
            if outcome:
                out[f"outcome:{outcome}"] = out.get(f"outcome:{outcome}", 0) + n
        return out

    def cancelled_by_agent(self, eval_id: str) -> dict[int, int]:
        """Cancelled runs per agent index (agents without any are left out): one indexed
        lookup, where :meth:`progress` reads every run of the eval."""
        t, of = self._rt(eval_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.agent_index, func.count())
                                .where(and_(of,
                                            t.c.status == "cancelled"))
                                .group_by(t.c.agent_index)).all()
        return {int(i): int(n) for i, n in rows}

    def progress(self, eval_id: str) -> dict[str, Any]:
        """Per-agent counts and cost for status displays."""
        t, of = self._rt(eval_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.agent_index, t.c.status, t.c.outcome,
                                       func.count(),
                                       func.coalesce(func.sum(t.c.cost_usd), 0.0),
                                       func.coalesce(func.sum(t.c.passed), 0))
                                .where(of)
                                .group_by(t.c.agent_index, t.c.status, t.c.outcome)).all()
        agents: dict[int, dict[str, Any]] = {}
        for idx, status, outcome, n, cost, passed in rows:
            a = agents.setdefault(idx, {"planned": 0, "done": 0, "errored": 0, "running": 0,
                                        "cancelled": 0, "passed": 0, "cost_usd": 0.0})
            a["planned"] += n
            if status == "done":
                a["done"] += n
                a["passed"] += int(passed)
                if outcome == "errored":
                    a["errored"] += n
            elif status == "leased":
                a["running"] += n
            elif status == "cancelled":
                a["cancelled"] += n
            a["cost_usd"] += float(cost)
        return {"agents": agents}

    def strata(self, eval_id: str) -> dict[tuple[int, str | None], tuple[int, int, int, float]]:
        """``(agent_index, stratum) -> (planned, done, ran, spent)`` of the eval's runs.

        ``planned`` counts every run of the stratum whatever its status, ``done`` the committed
        ones, ``ran`` those of them that were executed (a reused run is committed without an
        attempt) and ``spent`` their total cost. The stratum is the task's category; it is None
        for runs recorded before the journal had the column (then each agent is one stratum).
        """
        t, of = self._rt(eval_id)
        stratum = t.c.stratum if self.has_stratum else None
        is_done = t.c.status == "done"
        done = func.sum(case((is_done, 1), else_=0))
        ran = func.sum(case((and_(is_done, t.c.attempts > 0), 1), else_=0))
        keys = [t.c.agent_index] + ([stratum] if stratum is not None else [])
        with self.engine.connect() as conn:
            rows = conn.execute(select(*keys, func.count(), func.coalesce(done, 0),
                                       func.coalesce(ran, 0),
                                       func.coalesce(func.sum(t.c.cost_usd), 0.0))
                                .where(of).group_by(*keys)).all()
        out: dict[tuple[int, str | None], tuple[int, int, int, float]] = {}
        for r in rows:
            key = (int(r[0]), r[1] if stratum is not None else None)
            out[key] = (int(r[-4]), int(r[-3]), int(r[-2]), float(r[-1]))
        return out

    def planned_tasks(self, eval_id: str, agent_index: int) -> frozenset[str]:
        """Task ids an eval planned for one of its agents."""
        t, of = self._rt(eval_id)
        with self.engine.connect() as conn:
            return frozenset(conn.execute(select(t.c.task_id).distinct().where(and_(
                of, t.c.agent_index == agent_index))).scalars())

    @property
    def has_superseded(self) -> bool:
        """Whether the batches table has the compaction columns (a reader of a journal no
        writer has migrated yet sees it without; then no batch was ever compacted). Only a
        yes is cached: a writer may migrate the journal while this object is open."""
        if not self._has_superseded:
            self._has_superseded = "superseded_by" in self._columns("batches")
        return bool(self._has_superseded)

    def iter_batches(self, eval_id: str, *,
                     include_superseded: bool = False) -> Iterator[dict[str, Any]]:
        """Live committed batches of the eval, oldest first, read in one SELECT.

        A batch that compaction superseded is left out (its rows are in the compacted batch)
        unless ``include_superseded``; so a reader sees every committed row exactly once.
        """
        stmt = select(batches).where(batches.c.eval_id == eval_id)
        if not include_superseded and self.has_superseded:
            stmt = stmt.where(batches.c.superseded_by.is_(None))
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(
                stmt.order_by(batches.c.committed_at, batches.c.batch_id)).mappings()]
        yield from rows

    def live_results_paths(self, eval_id: str | None = None) -> list[str]:
        """Parquet files of the live batches (of ``eval_id``, else of every eval), read in
        one SELECT: each committed row is in exactly one of them."""
        stmt = select(batches.c.results_path)
        if eval_id is not None:
            stmt = stmt.where(batches.c.eval_id == eval_id)
        if self.has_superseded:
            stmt = stmt.where(batches.c.superseded_by.is_(None))
        with self.engine.connect() as conn:
            return sorted(conn.execute(stmt).scalars())

    def commit_compaction(self, *, eval_id: str, batch_id: str, results_path: str,
                          trajectories_path: str | None, n_rows: int,
                          replaced: Sequence[str], now: float | None = None,
                          drops_trajectories: Collection[str] = ()) -> None:
        """Swap compacted files in, in one transaction: record the new batch and mark the
        replaced batches superseded by it (runs do not name their batch: nothing per run
        changes).

        ``drops_trajectories`` (retention): runs whose trajectories the new files leave out;
        if any of them is pinned by then (:meth:`pin` takes the same row lock), nothing changes.

        Raises:
            StoreError: a replaced batch is not a live batch of the eval (another compaction
                got there first), or their rows do not add up to ``n_rows``, or a dropped
                trajectory is pinned; nothing changes.
        """
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            if drops_trajectories:
                conn.execute(select(evals.c.eval_id).where(evals.c.eval_id == eval_id)
                             .with_for_update())
                dropped = list(drops_trajectories)
                for i in range(0, len(dropped), 500):
                    hit = conn.execute(select(trajectory_pins.c.run_id).where(
                        trajectory_pins.c.run_id.in_(dropped[i:i + 500])).limit(1)).first()
                    if hit is not None:
                        raise StoreError(f"retention of eval {eval_id}: run {hit[0]} was "
                                         "pinned meanwhile; nothing changed")
            conn.execute(batches.insert().values(
                batch_id=batch_id, eval_id=eval_id, results_path=results_path,
                trajectories_path=trajectories_path, n_rows=n_rows, committed_at=now))
            swapped = total = 0
            for i in range(0, len(replaced), 500):
                chunk = list(replaced[i:i + 500])
                live = and_(batches.c.batch_id.in_(chunk), batches.c.eval_id == eval_id,
                            batches.c.superseded_by.is_(None))
                total += int(conn.execute(select(func.coalesce(func.sum(batches.c.n_rows), 0))
                                          .where(live)).scalar_one())
                swapped += conn.execute(batches.update().where(live).values(
                    superseded_by=batch_id, superseded_at=now)).rowcount
            if swapped != len(replaced) or total != n_rows:
                raise StoreError(f"compaction of eval {eval_id}: {len(replaced) - swapped} of "
                                 f"{len(replaced)} batches are no longer live, or their "
                                 f"{total} rows are not the {n_rows} compacted; nothing changed")

    def retired_batches(self, eval_id: str | None = None, *,
                        before: float) -> list[dict[str, Any]]:
        """Batches superseded before ``before`` (of ``eval_id``, else of every eval)."""
        if not self.has_superseded:
            return []
        stmt = select(batches).where(and_(batches.c.superseded_by.is_not(None),
                                          batches.c.superseded_at < before))
        if eval_id is not None:
            stmt = stmt.where(batches.c.eval_id == eval_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt.order_by(batches.c.batch_id)).mappings()]

    def drop_retired(self, batch_ids: Sequence[str]) -> int:
        """Forget superseded batches whose files are deleted; a live batch is never dropped."""
        n = 0
        with self.engine.begin() as conn:
            for i in range(0, len(batch_ids), 500):
                n += conn.execute(batches.delete().where(and_(
                    batches.c.batch_id.in_(list(batch_ids[i:i + 500])),
                    batches.c.superseded_by.is_not(None)))).rowcount
        return n

    def has_batch(self, batch_id: str) -> bool:
        """Whether the batch is committed."""
        with self.engine.connect() as conn:
            return conn.execute(select(batches.c.batch_id)
                                .where(batches.c.batch_id == batch_id)).first() is not None

    def referenced_paths(self, eval_id: str | None = None) -> set[str]:
        """Every results or trajectory file a committed batch (of ``eval_id``) references."""
        stmt = select(batches.c.results_path, batches.c.trajectories_path)
        if eval_id is not None:
            stmt = stmt.where(batches.c.eval_id == eval_id)
        with self.engine.connect() as conn:
            out: set[str] = set()
            for rp, tp in conn.execute(stmt):
                out.add(rp)
                if tp:
                    out.add(tp)
            return out

    # rollups, alerts and trend references ----------------------------------------------------
    def has_table(self, name: str) -> bool:
        """Whether the journal has table ``name`` (a reader of a journal no writer of this
        version opened yet finds it without the newer tables)."""
        return bool(inspect(self.engine).has_table(name))

    def rollup_rows(self, *, first_day: str | None = None, last_day: str | None = None,
                    agent_name: str | None = None,
                    category: str | None = None) -> list[dict[str, Any]]:
        """Rollup rows (every column), of days in [first_day, last_day] when given; none
        from a journal without the table."""
        if not self.has_table("rollups"):
            return []
        stmt = select(rollups)
        if first_day is not None:
            stmt = stmt.where(rollups.c.day >= first_day)
        if last_day is not None:
            stmt = stmt.where(rollups.c.day <= last_day)
        if agent_name is not None:
            stmt = stmt.where(rollups.c.agent_name == agent_name)
        if category is not None:
            stmt = stmt.where(rollups.c.category == category)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt.order_by(*rollups.primary_key))
                    .mappings()]

    def rollup_backfill_pending(self) -> list[tuple[str, str, str]]:
        """``(batch_id, eval_id, results_path)`` of batches still to be rolled up."""
        if not self.has_table("rollup_backfill"):
            return []
        stmt = (select(rollup_backfill.c.batch_id, rollup_backfill.c.eval_id,
                       batches.c.results_path)
                .join(batches, batches.c.batch_id == rollup_backfill.c.batch_id)
                .order_by(rollup_backfill.c.batch_id))
        with self.engine.connect() as conn:
            return [(str(a), str(b), str(c)) for a, b, c in conn.execute(stmt)]

    def add_backfill(self, batch_id: str, rows: Sequence[dict[str, Any]]) -> bool:
        """Add a backfilled batch's rollups and strike it off, in one transaction; False if it
        was struck off already (another writer did it)."""
        with self.engine.begin() as conn:
            gone = conn.execute(rollup_backfill.delete()
                                .where(rollup_backfill.c.batch_id == batch_id)).rowcount
            if gone != 1:
                return False
            _add_rollups(conn, rows)
        return True

    def record_alerts(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store alerts (``kind, metric, agent, category, day, statistic, threshold,
        evidence``); one already stored for the same kind, metric, agent, category and day is
        kept as it was. Returns how many were new. Only a writer calls this."""
        if not rows:
            return 0
        now = time.time()
        new = 0
        with self.engine.begin() as conn:
            for r in rows:
                stmt = _insert_for(conn)(alerts).values(**r, created_at=now)
                new += conn.execute(stmt.on_conflict_do_nothing(
                    index_elements=["kind", "metric", "agent", "category", "day"])).rowcount
        return new

    def list_alerts(self, *, first_day: str | None = None) -> list[dict[str, Any]]:
        """Stored alerts (of days from ``first_day``), oldest day first; none from a journal
        without the table."""
        if not self.has_table("alerts"):
            return []
        stmt = select(alerts)
        if first_day is not None:
            stmt = stmt.where(alerts.c.day >= first_day)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                stmt.order_by(alerts.c.day, alerts.c.alert_id)).mappings()]

    def set_reference(self, agent_name: str, eval_id: str) -> None:
        """Make ``eval_id`` the frozen reference of ``agent_name``'s trends."""
        stmt = _insert_for_engine(self.engine)(trend_references).values(
            agent_name=agent_name, eval_id=eval_id, set_at=time.time())
        stmt = stmt.on_conflict_do_update(
            index_elements=["agent_name"],
            set_={"eval_id": stmt.excluded.eval_id, "set_at": stmt.excluded.set_at})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def references(self) -> dict[str, str]:
        """Agent name -> its stored reference eval."""
        if not self.has_table("trend_references"):
            return {}
        with self.engine.connect() as conn:
            return {str(a): str(e) for a, e in conn.execute(
                select(trend_references.c.agent_name, trend_references.c.eval_id))}

    # trajectory pins and retention (store/retention.py) ---------------------------------------
    def match_runs(self, prefix: str, limit: int = 6) -> list[tuple[str, str]]:
        """``(run_id, eval_id)`` of the runs whose id is ``prefix`` or starts with it (at most
        ``limit``, the exact match first)."""
        with self.engine.connect() as conn:
            # the compact table names the eval by its key: join for the id
            t: Any = runs
            ids = select(runs.c.run_id, eval_keys.c.eval_id).join(
                eval_keys, eval_keys.c.eval_key == runs.c.eval_key)
            if not self.compact:
                t = runs_v1
                ids = select(runs_v1.c.run_id, runs_v1.c.eval_id)
            exact = conn.execute(ids.where(t.c.run_id == prefix)).first()
            if exact is not None:
                return [(str(exact[0]), str(exact[1]))]
            if not prefix:
                return []
            if t is runs:  # 12-byte ids: a hex prefix is a range of them (read on the index)
                if len(prefix) > 24 or not all(c in "0123456789abcdef" for c in prefix):
                    return []
                starts = and_(runs.c.run_id.between(prefix.ljust(24, "0"),
                                                    prefix.ljust(24, "f")),
                              func.length(runs.c.run_id) == 12)
            else:
                # not LIKE: ``_`` and ``%`` are wildcards there, and SQLite's LIKE ignores case
                starts = func.substr(t.c.run_id, 1, len(prefix)) == prefix
            rows = conn.execute(ids.where(starts).order_by(t.c.run_id).limit(limit)).all()
        return [(str(r), str(e)) for r, e in rows]

    def pin(self, run_id: str, eval_id: str, kind: str, note: str = "",
            now: float | None = None) -> bool:
        """Pin a run's trajectory (retention never removes it); True if the pin is new, False
        if the run was pinned with that kind already (its note is then replaced).

        Takes the eval's row lock first, as retention's swap does, so a pin and a swap that
        would remove the same trajectory never both commit (PostgreSQL included).
        """
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(select(evals.c.eval_id).where(evals.c.eval_id == eval_id)
                         .with_for_update())
            known = conn.execute(select(trajectory_pins.c.run_id).where(and_(
                trajectory_pins.c.run_id == run_id, trajectory_pins.c.kind == kind))).first()
            if known is not None:
                conn.execute(trajectory_pins.update().where(and_(
                    trajectory_pins.c.run_id == run_id, trajectory_pins.c.kind == kind))
                    .values(note=note))
                return False
            conn.execute(trajectory_pins.insert().values(
                run_id=run_id, kind=kind, eval_id=eval_id, note=note, created_at=now))
        return True

    def unpin(self, run_id: str, kind: str | None = None) -> int:
        """Remove a run's pins (of ``kind``, else all); returns how many."""
        cond = trajectory_pins.c.run_id == run_id
        if kind is not None:
            cond = and_(cond, trajectory_pins.c.kind == kind)
        with self.engine.begin() as conn:
            return int(conn.execute(trajectory_pins.delete().where(cond)).rowcount)

    def pins(self, eval_id: str | None = None) -> list[dict[str, Any]]:
        """Pinned trajectories (of ``eval_id``), oldest first; none from a journal without the
        table."""
        if not self.has_table("trajectory_pins"):
            return []
        stmt = select(trajectory_pins)
        if eval_id is not None:
            stmt = stmt.where(trajectory_pins.c.eval_id == eval_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt.order_by(
                trajectory_pins.c.created_at, trajectory_pins.c.run_id,
                trajectory_pins.c.kind)).mappings()]

    def record_retention(self, eval_id: str, tier: str, *, kept: int, removed: int,
                         now: float | None = None) -> None:
        """Record what retention left of an eval's trajectories (one row per eval)."""
        values = {"tier": tier, "applied_at": time.time() if now is None else now,
                  "trajectories_kept": kept, "trajectories_removed": removed}
        stmt = _insert_for_engine(self.engine)(retention_applied).values(
            eval_id=eval_id, **values)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["eval_id"], set_=values))

    def retention_records(self) -> dict[str, dict[str, Any]]:
        """Eval id -> what retention last did to it; empty from a journal without the table."""
        if not self.has_table("retention_applied"):
            return {}
        with self.engine.connect() as conn:
            return {str(r["eval_id"]): dict(r)
                    for r in conn.execute(select(retention_applied)).mappings()}


def _insert_for_engine(engine: Engine) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_update``): SQLite's or PostgreSQL's."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _insert_for(conn: Connection) -> Any:
    return _insert_for_engine(conn.engine)


def _add_rollups(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows`` (one per key: :func:`evalfleet.store.rollups.aggregate`) to the rollups,
    inserting a key not yet there and adding to one that is (one upsert)."""
    if not rows:
        return
    upsert = _UPSERTS.get(conn.dialect.name)
    if upsert is None:  # built once per dialect: ~80 column expressions
        stmt = _insert_for(conn)(rollups)
        sums = {c.name: c + getattr(stmt.excluded, c.name)
                for c in rollups.c if c.name not in ROLLUP_KEY}
        upsert = _UPSERTS[conn.dialect.name] = stmt.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY), set_=sums)
    conn.execute(upsert, list(rows))


_UPSERTS: dict[str, Any] = {}
"""The rollups upsert statement per dialect name."""
