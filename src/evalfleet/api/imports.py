"""Imports: Inspect AI logs and a generic JSON Lines format, as evalfleet evals.

Every import is written the way the driver writes an eval, so that rows, journal and
everything derived from them (rollups, reports, slices) stay consistent:

1. the eval is created in the journal with all its runs pending, under deterministic run ids
   (:func:`evalfleet.api.evals.run_id`), and its id is derived from the source (an Inspect
   log's eval id; the ``eval`` field of a JSON Lines row), so the same source always maps to
   the same eval;
2. the importer claims the eval as its driver (one writer per eval) and commits the runs as
   :class:`~evalfleet.spec.result.RunResult` batches through :meth:`Store.commit`, the
   exactly-once commit (a crash between batches leaves the rest pending; importing again
   commits only those);
3. the eval ends ``completed`` (``failed`` for an Inspect log that did not finish), and the
   claim is released.

Importing the same source again commits nothing and says it was already imported; a source
whose runs differ from the eval imported under the same id is refused.

The JSON Lines format is documented in docs/import-format.md.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalfleet._util import short_hash
from evalfleet._util.parsing import value_error_text
from evalfleet.api.evals import run_id as make_run_id
from evalfleet.api.reads import open_store
from evalfleet.errors import ErrorKind, SpecError, UnknownEvalError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.plan import Plan, SuiteRef
from evalfleet.spec.result import RunResult, RunStatus
from evalfleet.spec.task import ScorerSpec, Suite, Task
from evalfleet.store import Store
from evalfleet.store.journal import driver_name
from evalfleet.store.results import RowContext

INSPECT_EXTRA = "pip install 'evalfleet[inspect]'"
"""How to get the optional dependency that reads Inspect logs."""
IMPORT_BATCH = 10_000
"""Runs per exactly-once commit of an import: one Parquet file each, large enough that an
import does not leave many small files, small enough that a crash redoes little."""
_CLAIM_STALE_S = 120.0
"""An importer's claim is taken over once its heartbeat is this old (or, on this host, its
process is gone); it heartbeats after every batch."""
_ERROR_CHARS = 500
_OUTPUT_CHARS = 2000
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_UNUSED_SAMPLE_FIELDS = ("messages", "events", "store", "attachments")
"""Sample fields of an Inspect log the import never reads (the transcript)."""
_INSPECT_LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
"""Inspect's CORRECT / INCORRECT / PARTIAL / NOANSWER, valued as its ``value_to_float``."""
_EXCLUDED: frozenset[str] = frozenset({"infra_error", "scorer_error", "config_error",
                                       "cancelled"})


@dataclass(frozen=True, slots=True)
class ImportedEval:
    """What importing one source did."""

    eval_id: str
    source: str
    """The file imported (and, for JSON Lines, which ``eval`` of it)."""
    outcome: Literal["imported", "already_imported", "resumed"]
    """``resumed``: an earlier import of the same source stopped midway; this one committed
    the rest."""
    runs: int
    """Runs in the source."""
    committed: int
    """Runs this import committed (0 when already imported)."""
    errored: int
    """Runs recorded as errored (missing data, not failures)."""
    tasks: int
    agents: tuple[str, ...]
    status: str
    """The eval's status: completed, or failed for an Inspect log that did not finish."""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agents": list(self.agents)}


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A source turned into an eval, validated, nothing written yet."""

    eval_id: str
    source: str
    plan: Plan
    suite: Suite
    results: list[RunResult]
    status: str


# -- the write path shared by every import ---------------------------------------------------

def _write(store: Store, prep: _Prepared) -> ImportedEval:
    """Create the eval (runs pending) unless it exists, then commit its runs exactly once."""
    batch_size = IMPORT_BATCH
    journal = store.journal
    rows = [(r.run_id, r.task_id, r.agent_index, r.repeat, prep.suite.by_id[r.task_id].category)
            for r in prep.results]
    ids = [r[0] for r in rows]
    outcome: Literal["imported", "already_imported", "resumed"] = "imported"
    try:
        existing = journal.get_eval(prep.eval_id)
    except UnknownEvalError:
        existing = None
    if existing is None:
        journal.create_eval(eval_id=prep.eval_id, plan_name=prep.plan.name,
                            plan_json=prep.plan.model_dump_json(), suite_name=prep.suite.name,
                            suite_hash=prep.suite.suite_hash, planned=len(rows), rows=rows)
    else:
        done = journal.done_among(ids)
        if len(done) == len(ids) and existing["planned"] == len(ids):
            return _summary(prep, "already_imported", 0, existing["status"])
        if existing["status"] not in ("created", "running", "interrupted") \
                or existing["planned"] != len(ids) \
                or Plan.model_validate(existing["plan"]).agents != prep.plan.agents:
            raise SpecError(f"eval {prep.eval_id} was imported before from a different "
                            f"{prep.source} ({len(done)} of its {existing['planned']} runs "
                            f"match this one's {len(ids)}); import it under another eval id",
                            field="eval")
        outcome = "resumed"  # an import that stopped midway: commit what it did not
    driver = driver_name()
    journal.claim_driver(prep.eval_id, driver, stale_after_s=_CLAIM_STALE_S)
    finished = False
    committed = 0
    try:
        store.remove_orphans(prep.eval_id, driver)  # a crashed import's uncommitted files
        ctx = RowContext(eval_id=prep.eval_id, plan_name=prep.plan.name, suite=prep.suite,
                         agents=prep.plan.agents)
        for i in range(0, len(prep.results), batch_size):
            committed += store.commit(ctx, prep.results[i:i + batch_size]).committed
            journal.heartbeat_driver(prep.eval_id, driver)
        journal.set_status(prep.eval_id, prep.status, finished=True)
        finished = True
    finally:
        if not finished:
            journal.set_status(prep.eval_id, "interrupted")
        journal.release_driver(prep.eval_id, driver)
    return _summary(prep, outcome, committed, prep.status)


def _summary(prep: _Prepared, outcome: Literal["imported", "already_imported", "resumed"],
             committed: int, status: str) -> ImportedEval:
    return ImportedEval(
        eval_id=prep.eval_id, source=prep.source, outcome=outcome, runs=len(prep.results),
        committed=committed, errored=sum(r.status == "errored" for r in prep.results),
        tasks=len(prep.suite.tasks), agents=tuple(a.label for a in prep.plan.agents),
        status=status)


def _safe_name(text: str, limit: int) -> str:
    """``text`` as a plan, agent or eval name: runs of other characters become ``-``."""
    name = _UNSAFE.sub("-", text).strip("-._")[:limit].rstrip("-._")
    return name or "imported"


def _unix(value: datetime | str | None) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _first_line(text: object, limit: int = _ERROR_CHARS) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    return (lines[0] if lines else str(text))[:limit]


# -- Inspect AI logs ----------------------------------------------------------------------------

def _inspect_log_api() -> Any:
    """``inspect_ai.log``, or a one-line error naming the extra that brings it."""
    try:
        return importlib.import_module("inspect_ai.log")
    except ImportError:
        raise SpecError(f"reading Inspect logs needs inspect-ai, which is not installed: "
                        f"{INSPECT_EXTRA}") from None


def inspect_score(value: Any, where: str) -> tuple[float, bool | None]:
    """An Inspect score value as (score in [0, 1], passed).

    C / I / P / N are 1 / 0 / 0.5 / 0 (Inspect's ``value_to_float``); a boolean is 1 or 0; a
    number in [0, 1] is kept. ``passed`` is whether the value is C (or 1), None for a partial
    number.

    Raises:
        SpecError: any other value (a dict, a list, text, a number outside [0, 1]), naming
            ``where`` (log, sample and epoch).
    """
    if isinstance(value, bool):
        return float(value), value
    if isinstance(value, str) and value in _INSPECT_LETTERS:
        return _INSPECT_LETTERS[value], value == "C"
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        score = float(value)
        return score, (score == 1.0) if score in (0.0, 1.0) else None
    raise SpecError(f"{where}: score {value!r} is neither C, I, P, N nor a number in [0, 1]; "
                    "evalfleet keeps scores in [0, 1]")


def _metric_value(value: Any) -> float | None:
    """A non-primary scorer's value as a metric: letters valued as Inspect does, numbers as
    they are; None for anything else (text, lists, dicts)."""
    if isinstance(value, str):
        return _INSPECT_LETTERS.get(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"{getattr(m, 'role', '')}: {getattr(m, 'text', '')}" for m in value)


def _usage(sample: Any) -> tuple[int, int, int, float]:
    """Tokens in (cache reads and writes included), cached, out, and dollars of a sample."""
    usages = list((sample.model_usage or {}).values())
    if not usages and getattr(sample.output, "usage", None) is not None:
        usages = [sample.output.usage]
    t_in = t_cached = t_out = 0
    cost = 0.0
    for u in usages:
        cached = int(u.input_tokens_cache_read or 0)
        t_in += int(u.input_tokens or 0) + cached + int(u.input_tokens_cache_write or 0)
        t_cached += cached
        t_out += int(u.output_tokens or 0)
        cost += float(u.total_cost or 0.0)
    return t_in, t_cached, t_out, cost


def _inspect_task(sample: Any, task_id: str, task_name: str, scorer: ScorerSpec) -> Task:
    meta = sample.metadata or {}
    category = meta.get("category")
    difficulty = meta.get("difficulty")
    domain = meta.get("domain")
    repository = meta.get("repository")
    target = sample.target
    return Task(
        id=task_id, input=_input_text(sample.input),
        target=target if isinstance(target, str) else [str(t) for t in target],
        category=category if isinstance(category, str) and 0 < len(category) <= 100
        else task_name[:100],
        difficulty=difficulty if isinstance(difficulty, int) and not isinstance(
            difficulty, bool) and 1 <= difficulty <= 5 else 3,
        domain=domain if isinstance(domain, str) and len(domain) <= 100 else "",
        metadata={"repository": repository} if isinstance(repository, str) and repository
        else {},
        scorer=scorer)


def _primary_scorer(log: Any, wanted: str | None, where: str) -> str:
    names: list[str] = []
    if log.results is not None:
        names = [s.name for s in log.results.scores]
    if not names:
        for s in log.samples or []:
            if s.scores:
                names = list(s.scores)
                break
    if wanted is not None:
        if wanted not in names:
            raise SpecError(f"{where}: no scorer '{wanted}' (it has: "
                            f"{', '.join(names) or 'none'})", field="--scorer")
        return wanted
    if not names:
        raise SpecError(f"{where}: the log has no scores to import")
    return names[0]


def prepare_inspect(path: Path, *, scorer: str | None = None, agent: str | None = None
                    ) -> _Prepared:
    """Read an Inspect ``.eval`` (or ``.json``) log and turn it into an eval, writing nothing.

    One task per sample id (category from the sample's metadata ``category``, else the task
    name; difficulty, domain and repository likewise), one run per (sample, epoch) with repeat
    ``epoch - 1``, the score of ``scorer`` (default: the log's first) as the run's score and
    the other scorers' numeric values as metrics. A sample that ended in an error is an
    errored run (``infra_error``: missing data, not a failure).

    Raises:
        SpecError: inspect-ai is not installed, the file is not an Inspect log, a sample id is
            not a valid task id, or a score is not C/I/P/N or a number in [0, 1].
    """
    log_api = _inspect_log_api()
    where = str(path)
    if not path.is_file():
        raise SpecError(f"{where}: no such file")
    kwargs: dict[str, Any] = {}
    if "exclude_fields" in inspect.signature(log_api.read_eval_log).parameters:
        # what the import does not use, and what makes a log big (newer inspect-ai only)
        kwargs["exclude_fields"] = set(_UNUSED_SAMPLE_FIELDS)
    try:
        log = log_api.read_eval_log(str(path), **kwargs)
    except Exception as exc:  # any reader failure is a bad file here, said on one line
        raise SpecError(f"{where}: not a readable Inspect log ({type(exc).__name__}: "
                        f"{_first_line(exc, 200)})") from None
    samples = list(log.samples or [])
    if not samples:
        raise SpecError(f"{where}: the log has no samples (status {log.status})")
    spec = log.eval
    primary = _primary_scorer(log, scorer, where)
    task_name = spec.task or "inspect"
    scorer_spec = ScorerSpec(kind="inspect", args={"scorer": primary})
    steps = [s.solver for s in (log.plan.steps if log.plan else [])]
    if agent is not None:
        name, _, version = agent.partition("@")
    else:
        name = _safe_name(spec.model, 100)
        version = short_hash(steps, spec.solver, spec.model_args,
                             spec.model_generate_config.model_dump(mode="json",
                                                                   exclude_none=True),
                             length=10)
    try:
        agent_spec = AgentSpec(name=name, version=version or "0", kind="inspect",
                               model=spec.model, args={"solver": spec.solver, "plan": steps})
    except ValidationError as exc:
        raise SpecError(f"agent '{agent}': {exc.errors()[0]['msg']}", field="--agent") from None
    eval_key = spec.eval_id or f"{spec.run_id}/{spec.task_id}/{spec.created}"
    eval_id = f"{_safe_name(task_name, 40)}-inspect-{short_hash('inspect', eval_key, length=12)}"
    tasks: dict[str, Task] = {}
    results: list[RunResult] = []
    seen: set[tuple[str, int]] = set()
    max_epoch = 1
    for s in samples:
        task_id = str(s.id)
        at = f"{where}: sample {task_id!r} epoch {s.epoch}"
        if not _TASK_ID.match(task_id):
            raise SpecError(f"{at}: sample id is not a valid task id (letters, digits and "
                            "_.:/@+- , at most 200 characters)")
        if task_id not in tasks:
            try:
                tasks[task_id] = _inspect_task(s, task_id, task_name, scorer_spec)
            except ValidationError as exc:
                raise SpecError(f"{at}: {exc.errors()[0]['msg']}") from None
        if (task_id, int(s.epoch)) in seen:
            raise SpecError(f"{at}: the log holds this sample and epoch twice")
        seen.add((task_id, int(s.epoch)))
        max_epoch = max(max_epoch, int(s.epoch))
        results.append(_inspect_run(s, at, primary, eval_id, agent_spec, log))
    suite = Suite(name=task_name[:200], version=str(spec.task_version),
                  tasks=tuple(tasks.values()))
    plan = Plan(name=_safe_name(task_name, 100),
                description=f"Imported from the Inspect log {path.name} (task {task_name}, "
                            f"Inspect eval id {spec.eval_id}, status {log.status}).",
                suite=SuiteRef(path=str(path)), agents=(agent_spec,),
                runs_per_task=min(max_epoch, 1000))
    return _Prepared(eval_id=eval_id, source=where, plan=plan, suite=suite, results=results,
                     status="completed" if log.status == "success" else "failed")


def _inspect_run(s: Any, at: str, primary: str, eval_id: str, agent: AgentSpec,
                 log: Any) -> RunResult:
    task_id = str(s.id)
    repeat = int(s.epoch) - 1
    t_in, t_cached, t_out, cost = _usage(s)
    started = _unix(s.started_at)
    finished = _unix(s.completed_at)
    latency = float(s.total_time) if s.total_time is not None else \
        (finished - started if started and finished else 0.0)
    scores = s.scores or {}
    status: RunStatus = "completed"
    error_kind: str | None = None
    error: str | None = None
    score: float | None = None
    passed: bool | None = None
    metrics: dict[str, float] = {}
    answer: Any = None
    if s.error is not None:
        status, error_kind = "errored", "infra_error"
        error = _first_line(getattr(s.error, "message", s.error))
    elif primary not in scores:
        status, error_kind = "errored", "scorer_error"
        error = f"no score from scorer '{primary}'"
    else:
        score, passed = inspect_score(scores[primary].value, f"{at}, scorer '{primary}'")
        answer = scores[primary].answer
    for name, sc in scores.items():
        extra = _metric_value(sc.value)
        if name != primary and extra is not None:
            metrics[name] = extra  # other scorers' numbers, kept as they are
    completion = getattr(s.output, "completion", "") or ""
    trajectory = {"events": [{
        "kind": "imported", "source": "inspect", "log": Path(log.location or "").name,
        "sample_id": task_id, "epoch": int(s.epoch), "answer": answer,
        "output": completion[:_OUTPUT_CHARS], "error": error}]}
    return RunResult(
        run_id=make_run_id(eval_id, task_id, agent.fingerprint, repeat), task_id=task_id,
        agent_index=0, repeat=repeat, status=status, error_kind=error_kind, error=error,
        score=score, passed=passed, metrics=metrics, tokens_in=t_in, tokens_cached=t_cached,
        tokens_out=t_out, cost_usd=cost, latency_s=max(latency, 0.0), attempts=1,
        worker="inspect", started_at=started, finished_at=finished, trajectory=trajectory)


def import_inspect(logs: Sequence[Path], *, scorer: str | None = None, agent: str | None = None,
                   settings: Settings | None = None) -> list[ImportedEval]:
    """Import Inspect AI logs, one eval per log (see :func:`prepare_inspect`).

    Logs are imported in order; each is validated whole before anything of it is written.
    A log imported before is not imported again (``already_imported``).

    Raises:
        SpecError: inspect-ai is missing, or a log is unreadable or holds a score outside
            [0, 1] (logs before it stay imported).
    """
    if not logs:
        raise SpecError("give at least one Inspect log file", field="LOG")
    _inspect_log_api()  # the missing extra is said before the home is touched
    settings = settings or load_settings()
    prepared = (prepare_inspect(Path(p), scorer=scorer, agent=agent) for p in logs)
    return _write_all(settings, prepared)


def _write_all(settings: Settings, prepared: Iterable[_Prepared]) -> list[ImportedEval]:
    out: list[ImportedEval] = []
    store: Store | None = None
    try:
        for prep in prepared:
            if store is None:
                store = open_store(settings)  # after the first source validated
            out.append(_write(store, prep))
    finally:
        if store is not None:
            store.close()
    return out


# -- generic JSON Lines -------------------------------------------------------------------------

class ImportRow(BaseModel):
    """One run of the generic JSON Lines import format (docs/import-format.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eval: str = Field(pattern=_NAME_PATTERN,
                      description="Eval id the run belongs to (also its plan and suite name).")
    task_id: str = Field(pattern=_TASK_ID.pattern, description="Task id.")
    agent: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Agent name.")
    agent_version: str = Field("0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$",
                               description="Agent version.")
    model: str | None = Field(None, max_length=200, description="Model name.")
    repeat: int = Field(0, ge=0, le=100_000, description="Repeat index k, from 0.")
    status: RunStatus | None = Field(
        None, description="completed, failed (counts as a failure), errored (missing data) "
                          "or cancelled; default from error_kind, else completed.")
    score: float | None = Field(None, ge=0, le=1, allow_inf_nan=False,
                                description="Score in [0, 1].")
    passed: bool | None = Field(None, description="Whether the run passed.")
    error_kind: ErrorKind | None = Field(None, description="Why the run did not complete.")
    error: str | None = Field(None, max_length=10_000, description="Error message.")
    tokens_in: int = Field(0, ge=0, description="Prompt tokens (cached ones included).")
    tokens_cached: int = Field(0, ge=0, description="Prompt tokens served from a cache.")
    tokens_out: int = Field(0, ge=0, description="Completion tokens.")
    cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False, description="Model dollars.")
    latency_s: float = Field(0.0, ge=0, allow_inf_nan=False, description="Wall seconds.")
    started_at: datetime | None = Field(None, description="ISO 8601 or Unix seconds.")
    finished_at: datetime | None = Field(None, description="ISO 8601 or Unix seconds.")
    category: str = Field("general", min_length=1, max_length=100, description="Category.")
    difficulty: int = Field(3, ge=1, le=5, description="Difficulty 1-5.")
    domain: str = Field("", max_length=100, description="Domain.")
    repository: str = Field("", max_length=200, description="Repository.")
    input: str = Field("", description="The task's prompt (part of its task_hash).")
    target: str | list[str] | None = Field(None, description="Expected answer (part of "
                                                             "task_hash).")
    metrics: dict[str, float] = Field(default_factory=dict, description="Extra metrics.")

    @model_validator(mode="after")
    def _consistent(self) -> ImportRow:
        status = self.outcome
        if status in ("completed", "failed") and self.error_kind in _EXCLUDED:
            raise ValueError(f"a {status} run cannot have error_kind {self.error_kind}")
        if status in ("errored", "cancelled") and (self.score is not None or self.passed):
            raise ValueError(f"an {status} run has no score or passed (it is missing data)")
        if status == "completed" and self.score is None and self.passed is None:
            raise ValueError("a completed run needs a score or passed")
        if self.tokens_cached > self.tokens_in:
            raise ValueError("tokens_cached is part of tokens_in and cannot exceed it")
        return self

    @property
    def outcome(self) -> RunStatus:
        """The run's status, given or derived from ``error_kind``."""
        if self.status is not None:
            return self.status
        if self.error_kind == "cancelled":
            return "cancelled"
        if self.error_kind in _EXCLUDED:
            return "errored"
        return "failed" if self.error_kind is not None else "completed"


_TASK_FIELDS = ("category", "difficulty", "domain", "repository", "input", "target")


def _row_error(exc: ValidationError, path: Path, line: int) -> SpecError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return SpecError(msg, source=str(path), line=line, field=loc or None)


def read_jsonl(path: Path) -> list[_Prepared]:
    """Parse and check a JSON Lines file of runs into one prepared eval per ``eval`` value.

    Raises:
        SpecError: naming the line (and field) of the first problem: not JSON, not an object,
            an unknown or invalid field, a run given twice, or a task or agent described
            differently on two lines.
    """
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    by_eval: dict[str, list[tuple[int, ImportRow]]] = {}
    runs_seen: dict[tuple[str, str, str, str, int], int] = {}
    tasks_seen: dict[tuple[str, str], tuple[int, ImportRow]] = {}
    agents_seen: dict[tuple[str, str, str], tuple[int, ImportRow]] = {}
    with path.open(encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:  # bad syntax, or an integer of more than 4,300 digits
                raise SpecError(f"not valid JSON ({value_error_text(exc)})", source=str(path),
                                line=n) from None
            if not isinstance(obj, dict):
                raise SpecError(f"expected a JSON object, got {type(obj).__name__}",
                                source=str(path), line=n)
            try:
                row = ImportRow.model_validate(obj)
            except ValidationError as exc:
                raise _row_error(exc, path, n) from None
            key = (row.eval, row.task_id, row.agent, row.agent_version, row.repeat)
            if key in runs_seen:
                raise SpecError(f"run {row.agent}@{row.agent_version} {row.task_id} repeat "
                                f"{row.repeat} is already on line {runs_seen[key]}",
                                source=str(path), line=n, field="repeat")
            runs_seen[key] = n
            first = tasks_seen.setdefault((row.eval, row.task_id), (n, row))
            for f in _TASK_FIELDS:
                if getattr(row, f) != getattr(first[1], f):
                    raise SpecError(f"task {row.task_id} has another {f} on line {first[0]}",
                                    source=str(path), line=n, field=f)
            agent_first = agents_seen.setdefault((row.eval, row.agent, row.agent_version),
                                                 (n, row))
            if row.model != agent_first[1].model:
                raise SpecError(f"agent {row.agent}@{row.agent_version} has another model on "
                                f"line {agent_first[0]}", source=str(path), line=n,
                                field="model")
            by_eval.setdefault(row.eval, []).append((n, row))
    if not by_eval:
        raise SpecError(f"{path}: no runs (the file is empty)")
    return [_prepare_jsonl(path, name, rows) for name, rows in by_eval.items()]


def _prepare_jsonl(path: Path, eval_name: str, rows: list[tuple[int, ImportRow]]) -> _Prepared:
    agents: dict[tuple[str, str], AgentSpec] = {}
    tasks: dict[str, Task] = {}
    for n, row in rows:
        if (row.agent, row.agent_version) not in agents:
            agents[(row.agent, row.agent_version)] = AgentSpec(
                name=row.agent, version=row.agent_version, kind="imported", model=row.model)
        if row.task_id not in tasks:
            try:
                tasks[row.task_id] = Task(
                    id=row.task_id, input=row.input, target=row.target,
                    category=row.category, difficulty=row.difficulty, domain=row.domain,
                    metadata={"repository": row.repository} if row.repository else {},
                    scorer=ScorerSpec(kind="imported"))
            except ValidationError as exc:
                raise _row_error(exc, path, n) from None
    index = {key: i for i, key in enumerate(agents)}
    specs = tuple(agents.values())
    results = [_jsonl_run(row, eval_name, index[(row.agent, row.agent_version)],
                          specs[index[(row.agent, row.agent_version)]]) for _, row in rows]
    suite = Suite(name=eval_name, tasks=tuple(tasks.values()))
    plan = Plan(name=eval_name, description=f"Imported from {path.name} (JSON Lines).",
                suite=SuiteRef(path=str(path)), agents=specs,
                runs_per_task=min(max(r.repeat for _, r in rows) + 1, 1000))
    return _Prepared(eval_id=eval_name, source=f"{path} (eval {eval_name})", plan=plan,
                     suite=suite, results=results, status="completed")


def _jsonl_run(row: ImportRow, eval_id: str, agent_index: int, agent: AgentSpec) -> RunResult:
    status = row.outcome
    score, passed = row.score, row.passed
    if status in ("completed", "failed"):
        if score is None:
            score = 1.0 if passed else 0.0
        if passed is None and status == "failed":
            passed = False
    else:
        score, passed = None, None
    error_kind = row.error_kind
    if status == "errored" and error_kind is None:
        error_kind = "infra_error"
    if status == "cancelled":
        error_kind = "cancelled"
    return RunResult(
        run_id=make_run_id(eval_id, row.task_id, agent.fingerprint, row.repeat),
        task_id=row.task_id, agent_index=agent_index, repeat=row.repeat, status=status,
        error_kind=error_kind, error=row.error[:_ERROR_CHARS] if row.error else None,
        score=score, passed=passed, metrics=dict(row.metrics), tokens_in=row.tokens_in,
        tokens_cached=row.tokens_cached, tokens_out=row.tokens_out, cost_usd=row.cost_usd,
        latency_s=row.latency_s, attempts=1, worker="import",
        started_at=_unix(row.started_at), finished_at=_unix(row.finished_at))


def import_jsonl(path: Path, *, settings: Settings | None = None) -> list[ImportedEval]:
    """Import a JSON Lines file of runs (docs/import-format.md), one eval per ``eval`` value.

    The whole file is checked before anything is written; an eval imported before is not
    imported again (``already_imported``).

    Raises:
        SpecError: the first problem in the file, naming its line and field.
    """
    prepared = read_jsonl(Path(path))
    return _write_all(settings or load_settings(), prepared)

