"""What the SIMULATED model knows: the built-in problems, their solutions, and its replies.

The simulator recognises HumanEval problems (their prompt inside a user message) and repo-tasks
problems (their ``input`` inside a user message), decides per run whether it "solves" the task,
and builds the reply: the reference solution, or a subtly broken variant of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

from evalfleet.spec.humaneval import difficulty_of, read_problems
from evalfleet.spec.loaders import builtin_suite_dir, load_suite
from evalfleet.testing import _mutate

TASK_OFFSET_SD = 0.8
"""Standard deviation of the latent per-task difficulty offset (logit scale)."""
DIFFICULTY_SLOPE = 0.9
"""Logit change per difficulty level away from 3."""
P_MIN, P_MAX = 0.02, 0.98
"""Bounds of the per-run success probability."""
UNCHANGED_SHARE = 0.25
"""Share of failed repo-task runs that write the original files back."""
PARTIAL_SHARE = 0.3
"""Share of failed repo-task runs that write an incomplete fix (when the fix has two hunks)."""


@dataclass(frozen=True)
class KnownTask:
    """A problem the simulator can answer."""

    id: str
    """Task id as in its suite."""
    kind: Literal["humaneval", "repo"]
    """Which built-in suite it comes from."""
    difficulty: int
    """Difficulty 1-5, as in the suite."""
    needle: str
    """Text whose presence in a user message identifies the task."""
    prompt: str = ""
    """HumanEval: the function signature and docstring."""
    canonical: str = ""
    """HumanEval: the reference body."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Repo task: the repository as the agent receives it."""
    solution: Mapping[str, str] = field(default_factory=dict)
    """Repo task: the changed files with their full corrected content."""


@dataclass(frozen=True)
class Reply:
    """One assistant message: text, or tool calls as OpenAI function-call dictionaries."""

    content: str | None
    tool_calls: tuple[dict[str, Any], ...] = ()


def solution_files(task_id: str, suite_dir: Path | None = None) -> dict[str, str]:
    """The reference solution of a repo task: changed files, paths relative to the repo root."""
    root = (suite_dir or builtin_suite_dir("repo-tasks")) / "tasks" / task_id / "solution"
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class TaskCatalog:
    """Known tasks and how to recognise them in a conversation."""

    def __init__(self, tasks: Sequence[KnownTask]) -> None:
        # Longest needles first, so a task whose text contains another's is matched exactly.
        self._tasks = sorted(tasks, key=lambda t: len(t.needle), reverse=True)
        self.by_id = {t.id: t for t in tasks}

    def recognise(self, texts: Sequence[str]) -> KnownTask | None:
        """The task whose text appears verbatim in one of ``texts`` (user messages)."""
        for task in self._tasks:
            if any(task.needle in text for text in texts):
                return task
        return None


@cache
def builtin_catalog() -> TaskCatalog:
    """HumanEval and repo-tasks, loaded once per process."""
    tasks = [KnownTask(id=p["task_id"], kind="humaneval", difficulty=difficulty_of(p),
                       needle=p["prompt"].strip(), prompt=p["prompt"],
                       canonical=p["canonical_solution"])
             for p in read_problems()]
    suite_dir = builtin_suite_dir("repo-tasks")
    tasks += [KnownTask(id=t.id, kind="repo", difficulty=t.difficulty, needle=t.input.strip(),
                        files=dict(t.files), solution=solution_files(t.id, suite_dir))
              for t in load_suite(suite_dir).tasks]
    return TaskCatalog(tasks)


def task_offset(task_id: str) -> float:
    """The task's latent difficulty offset: a fixed N(0, 0.8) draw from a hash of its id."""
    digest = hashlib.sha256(f"evalfleet-sim-offset|{task_id}".encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return NormalDist(0.0, TASK_OFFSET_SD).inv_cdf(u)


def success_probability(skill: float, difficulty: int, task_id: str) -> float:
    """``logit(p) = logit(skill) + 0.9 * (3 - difficulty) + offset(task)``, clipped."""
    s = min(max(skill, 1e-6), 1 - 1e-6)
    z = math.log(s / (1 - s)) + DIFFICULTY_SLOPE * (3 - difficulty) + task_offset(task_id)
    return min(max(1 / (1 + math.exp(-z)), P_MIN), P_MAX)


def run_rng(salt: int, model: str, user: str, task_id: str) -> random.Random:
    """The randomness of one run: every turn with the same ``user`` draws the same values."""
    digest = hashlib.sha256(f"{salt}|{model}|{user}|{task_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@cache
def _sites(source: str, region: tuple[tuple[int, int], ...] | None) -> list[_mutate.Site]:
    return _mutate.find_sites(source, region)


def humaneval_code(task: KnownTask, success: bool, rng: random.Random) -> str:
    """The complete function: prompt + canonical body, or a mutant of it when not ``success``."""
    source = task.prompt + task.canonical
    if success:
        return source
    first = len(task.prompt.splitlines()) + 1
    region = ((first, len(source.splitlines()) + 1),)
    site = _mutate.choose_site(_sites(source, region), rng)
    if site is None:  # nothing to mutate: answer the bare signature
        return task.prompt + "    pass\n"
    return _mutate.apply_site(source, site)


def repo_answer_files(task: KnownTask, success: bool, rng: random.Random) -> dict[str, str]:
    """The files the model writes: the solution, or a broken variant of it.

    A failed run writes, with the shares below: the original files back (no real change), an
    incomplete fix (one changed hunk of a file reverted), or the solution with one mutation on
    a changed line (else in a changed function).
    """
    answer = dict(task.solution)
    if success:
        return answer
    paths = sorted(answer)
    original = {p: task.files[p] for p in paths if p in task.files}
    u = rng.random()
    if u < UNCHANGED_SHARE:
        return original or answer
    if u < UNCHANGED_SHARE + PARTIAL_SHARE:
        partial = [(p, text) for p in paths if p in original
                   for text in _mutate.partial_reverts(original[p], answer[p])]
        if partial:
            path, text = rng.choice(partial)
            return {**answer, path: text}
    for path in rng.sample(paths, len(paths)):
        before = original.get(path)
        for regions in (_mutate.changed_lines(before, answer[path]),
                        _mutate.changed_functions(before, answer[path])):
            site = _mutate.choose_site(_sites(answer[path], tuple(regions)), rng)
            if site is not None:
                return {**answer, path: _mutate.apply_site(answer[path], site)}
    return original or answer


def _fence(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code.rstrip()}\n```"


def humaneval_reply(task: KnownTask, success: bool, rng: random.Random) -> Reply:
    """A single assistant message with the complete function in a fenced block."""
    code = humaneval_code(task, success, rng)
    return Reply(f"Here is the completed function:\n\n{_fence(code)}\n")


def _tool_call(name: str, arguments: dict[str, str], key: str) -> dict[str, Any]:
    call_id = "call_" + hashlib.sha256(key.encode()).hexdigest()[:24]
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def _tools_used(messages: Sequence[Mapping[str, Any]]) -> set[str]:
    used: set[str] = set()
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                fn = call.get("function")
                if isinstance(fn, Mapping):
                    used.add(str(fn.get("name", "")))
    return used


def repo_reply(task: KnownTask, messages: Sequence[Mapping[str, Any]], tools: set[str],
               success: bool, rng: random.Random, key: str) -> Reply:
    """The next message of the repo-task conversation (see the simulator's docstring)."""
    files = repo_answer_files(task, success, rng)
    paths = sorted(files)
    if "write_file" not in tools:
        blocks = "\n\n".join(f"### {p}\n\n{_fence(files[p], _lang(p))}" for p in paths)
        return Reply("Here are the changed files, each in full:\n\n" + blocks + "\n")
    used = _tools_used(messages)
    if "write_file" in used:
        return Reply(f"I changed {', '.join(paths)} to resolve the issue; the rest of the "
                     "repository is unchanged. (evalfleet simulated model)")
    if not used:
        calls = []
        if "run_shell" in tools:
            calls.append(_tool_call("run_shell", {"command": "ls -R"}, f"{key}|ls"))
        if "read_file" in tools:
            calls += [_tool_call("read_file", {"path": p}, f"{key}|read|{p}")
                      for p in paths if p in task.files]
        if calls:
            return Reply(None, tuple(calls))
    return Reply(None, tuple(_tool_call("write_file", {"path": p, "content": files[p]},
                                        f"{key}|write|{p}") for p in paths))


def generic_reply() -> Reply:
    """The answer to a prompt the simulator does not recognise."""
    return Reply(
        "I could not match this request to a task I know, so here is a general outline: read "
        "the relevant code, write a failing test, make the smallest change that fixes it.\n\n"
        + _fence("def solve(*args, **kwargs):\n    raise NotImplementedError") + "\n")


def _lang(path: str) -> str:
    return "python" if path.endswith(".py") else ""
