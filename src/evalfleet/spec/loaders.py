"""Load plans and suites from files, with file:line errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from evalfleet._util.parsing import value_error_text
from evalfleet._util.paths import PathEscapeError, safe_join
from evalfleet.errors import SpecError
from evalfleet.spec._validate import validate
from evalfleet.spec._yaml import UNPAIRED_SURROGATE, LineMap, is_text, load_yaml_file
from evalfleet.spec.plan import Plan, SuiteRef
from evalfleet.spec.task import Suite, Task

BUILTIN_SUITES = ("humaneval", "repo-tasks")
_MAX_FILE_BYTES = 8 * 1024 * 1024


@functools.cache
def _task_adapter() -> TypeAdapter[Task]:
    return TypeAdapter(Task)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan YAML file.

    Raises:
        SpecError: naming the file, line and field of the first problem.
    """
    p = Path(path)
    data, lines = load_yaml_file(p)
    if not isinstance(data, dict):
        raise SpecError("a plan must be a YAML mapping", source=str(p), line=1)
    data = {**data, "base_dir": str(p.resolve().parent)}
    return validate(Plan, data, source=str(p), lines=lines)


def builtin_suite_dir(name: str) -> Path:
    """Folder of a packaged folder suite."""
    return Path(__file__).resolve().parent.parent / "suites" / name.replace("-", "_")


def load_suite_ref(ref: SuiteRef, plan: Plan | None = None) -> Suite:
    """Load the suite a plan names and apply its filter."""
    if ref.builtin is not None:
        if ref.builtin == "humaneval":
            from evalfleet.spec.humaneval import load_humaneval

            suite = load_humaneval()
        elif ref.builtin in BUILTIN_SUITES:
            suite = load_suite(builtin_suite_dir(ref.builtin))
        else:
            raise SpecError(f"unknown built-in suite '{ref.builtin}' "
                            f"(known: {', '.join(BUILTIN_SUITES)})", field="suite.builtin")
    else:
        assert ref.path is not None
        suite = load_suite(plan.resolve(ref.path) if plan else Path(ref.path))
    return filter_suite(suite, ref)


def filter_suite(suite: Suite, ref: SuiteRef) -> Suite:
    """Keep the tasks the reference selects; unknown ids or categories are an error."""
    tasks = list(suite.tasks)
    if ref.ids:
        missing = [i for i in ref.ids if i not in suite.by_id]
        if missing:
            raise SpecError(f"task ids not in suite {suite.name}: {', '.join(missing[:5])}",
                            field="suite.ids")
        wanted = set(ref.ids)
        tasks = [t for t in tasks if t.id in wanted]
    if ref.categories:
        known = {t.category for t in suite.tasks}
        unknown = [c for c in ref.categories if c not in known]
        if unknown:
            raise SpecError(f"categories not in suite {suite.name}: {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(known))})", field="suite.categories")
        cats = set(ref.categories)
        tasks = [t for t in tasks if t.category in cats]
    if ref.limit is not None:
        tasks = tasks[: ref.limit]
    if not tasks:
        raise SpecError(f"the filter leaves no task of suite {suite.name}", field="suite")
    return suite.model_copy(update={"tasks": tuple(tasks)}) if len(tasks) != len(suite.tasks) \
        else suite


def _read_dir(root: Path, rel: str, source: str, fld: str) -> dict[str, str]:
    try:
        base = safe_join(root, rel)
    except PathEscapeError as exc:
        raise SpecError(str(exc), source=source, field=fld) from None
    if not base.is_dir():
        raise SpecError(f"folder '{rel}' does not exist", source=source, field=fld)
    files: dict[str, str] = {}
    for f in sorted(base.rglob("*")):
        if f.is_symlink():
            raise SpecError(f"'{f.relative_to(root)}' is a symbolic link; suites may not "
                            "contain links", source=source, field=fld)
        if not f.is_file() or "__pycache__" in f.parts:
            continue
        if f.stat().st_size > _MAX_FILE_BYTES:
            raise SpecError(f"'{f.relative_to(root)}' is larger than 8 MiB", source=source,
                            field=fld)
        try:
            files[f.relative_to(base).as_posix()] = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"'{f.relative_to(root)}' is not UTF-8 text", source=source,
                            field=fld) from None
    return files


def _task_from_yaml(path: Path, suite_root: Path) -> Task:
    data, lines = load_yaml_file(path)
    source = str(path)
    if not isinstance(data, dict):
        raise SpecError("a task must be a YAML mapping", source=source, line=1)
    data = dict(data)
    for key, target in (("files_from", "files"), ("hidden_files_from", "hidden_files")):
        if key in data:
            rel = data.pop(key)
            if not isinstance(rel, str):
                raise SpecError("expected a folder name", source=source,
                                line=lines.line_of((key,)), field=key)
            files = _read_dir(path.parent, rel, source, key)
            data[target] = {**files, **(data.get(target) or {})}
    return validate(Task, data, source=source, lines=lines)


def load_suite(path: str | Path) -> Suite:
    """Load a suite folder (``suite.yaml`` + ``tasks/``) or a JSONL file of tasks.

    A folder holds ``suite.yaml`` (name, version, description) and tasks as ``tasks/*.yaml`` or
    ``tasks/*/task.yaml``; a task may read its sandbox files from a folder beside it with
    ``files_from`` and its scorer-only files with ``hidden_files_from``.
    """
    p = Path(path)
    if not p.exists():
        raise SpecError("suite does not exist", source=str(p))
    if p.is_file():
        return _load_jsonl(p)
    meta: dict[str, Any] = {"name": p.name}
    meta_file = p / "suite.yaml"
    if meta_file.exists():
        data, lines = load_yaml_file(meta_file)
        if not isinstance(data, dict):
            raise SpecError("suite.yaml must be a mapping", source=str(meta_file), line=1)
        allowed = {"name", "version", "description"}
        for key in data:
            if key not in allowed:
                raise SpecError("unknown field", source=str(meta_file),
                                line=lines.line_of((key,)), field=key)
        meta.update(data)
    task_files = sorted((p / "tasks").glob("*.yaml")) + sorted((p / "tasks").glob("*/task.yaml"))
    if (p / "tasks.jsonl").exists():
        jsonl = _load_jsonl(p / "tasks.jsonl")
        tasks = list(jsonl.tasks)
    else:
        tasks = []
    tasks += [_task_from_yaml(f, p) for f in task_files]
    if not tasks:
        raise SpecError("suite has no tasks (expected tasks/*.yaml, tasks/*/task.yaml or "
                        "tasks.jsonl)", source=str(p))
    _check_unique(tasks, str(p))
    return validate(Suite, {**meta, "tasks": tasks}, source=str(meta_file))


def _check_unique(tasks: list[Task], source: str) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise SpecError(f"duplicate task id '{t.id}'", source=source, field="id")
        seen.add(t.id)


def _load_jsonl(path: Path) -> Suite:
    source = str(path)
    tasks: list[Task] = []
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", source=source) from None
    seen: dict[str, int] = {}
    # Each line is parsed and validated by pydantic in one call (about 7 us a task, against
    # 9-11 us for json.loads and then validation). A line it rejects goes through json.loads
    # and the validation with file:line errors, so every message is as before; the fast path
    # only takes the lines that validate.
    fast = _task_adapter().validate_json
    with fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    task = fast(line)
                except ValidationError:
                    task = _task_of_line(line, lineno, source)
                if task.id in seen:
                    raise SpecError(f"duplicate task id '{task.id}' (first on line "
                                    f"{seen[task.id]})", source=source, line=lineno, field="id")
                seen[task.id] = lineno
                tasks.append(task)
        except UnicodeDecodeError:
            raise SpecError("file is not valid UTF-8", source=source) from None
    if not tasks:
        raise SpecError("suite has no tasks", source=source)
    return Suite(name=path.stem, tasks=tuple(tasks))


def _task_of_line(line: str, lineno: int, source: str) -> Task:
    """The task on a line the fast path rejected, or the SpecError naming its problem."""
    try:
        data = json.loads(line)
    except ValueError as exc:  # bad syntax, or an integer of more than 4,300 digits
        raise SpecError(f"invalid JSON: {value_error_text(exc)}", source=source,
                        line=lineno) from None
    if not isinstance(data, dict):
        raise SpecError("each line must be a JSON object", source=source, line=lineno)
    # json.loads decodes a lone "\ud800" escape to a string no text can hold
    if not is_text(json.dumps(data, ensure_ascii=False)):
        raise SpecError(f"the line holds {UNPAIRED_SURROGATE}", source=source, line=lineno)
    return validate(Task, data, source=source, lines=LineMap(source, {(): lineno}))
