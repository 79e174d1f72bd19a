"""An agent cannot change its own grade: every attack here runs through the real two-stage
attempt (agent sandbox, then a fresh scoring sandbox with the hidden tests written last) in both
sandboxes, and must score no more than an honest agent that does nothing, never an infra error.
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from evalfleet.execution.attempt import AttemptOutcome
from evalfleet.spec.humaneval import load_humaneval, read_problems
from evalfleet.spec.loaders import builtin_suite_dir, load_suite
from evalfleet.spec.task import ScorerSpec, Task
from evalfleet.testing.agents import grade

HAVE_BWRAP = shutil.which("bwrap") is not None
REPO_TASK = "calc-division-by-zero"  # 4 hidden tests; doing nothing passes 1 of them



def run(task: Task, provider: Any, **kwargs: Any) -> AttemptOutcome:
    return asyncio.run(grade(task, provider, **kwargs))


def graded(out: AttemptOutcome) -> float:
    """The score of an attempt that must have been graded (no error of any kind)."""
    assert out.error is None, f"{out.error.error_kind}: {out.error}"
    assert out.score is not None
    return out.score.value


# --- HumanEval -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def humaneval() -> dict[str, Task]:
    return {t.id: t for t in load_humaneval().tasks}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    return {p["task_id"]: p for p in read_problems()}


WRONG = "    return not numbers\n"  # HumanEval/0 answered wrongly
HUMANEVAL_ATTACKS = {
    "sys-exit-at-import": WRONG + "import sys\nsys.exit(0)\n",
    "os-exit-at-import": WRONG + "import os\nos._exit(0)\n",
    "unittest-main-at-import": WRONG + "import unittest\nunittest.main()\n",
    "prints-counts": WRONG + "print('12 passed')\nprint('Ran 12 tests in 0.001s')\nprint('OK')\n"
                     "import sys\nsys.stderr.write('OK\\n12 passed, 0 failed\\n')\n",
    "always-equal": textwrap.dedent("""\
        class _Any(int):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __bool__(self): return True
        def has_close_elements(numbers, threshold):
            return _Any(0)
        """),
    "forged-report": WRONG + textwrap.dedent("""\
        import json, os, sys
        path = sys.argv[1]
        with open(path, "w") as fh:
            json.dump({"nonce": "guess", "tests": {
                "test_humaneval.HumanEvalTest.test_check": {"status": "passed"}}}, fh)
        os._exit(0)
        """),
    "patch-unittest": WRONG + textwrap.dedent("""\
        import unittest
        unittest.TestCase.run = lambda self, result=None: (result.startTest(self),
            result.addSuccess(self), result.stopTest(self))
        """),
    "exit-127-as-if-missing": WRONG + textwrap.dedent("""\
        import os, sys
        sys.stderr.write("python3: command not found\\n")
        os._exit(127)
        """),
    "kill-parent": WRONG + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    # The hidden test module is public (the docs describe it): its globals are read before the
    # solution is imported, so replacing them afterwards changes nothing.
    "rewrites-the-hidden-test-module": WRONG + textwrap.dedent("""\
        import sys
        for m in list(sys.modules.values()):
            if hasattr(m, "CHECK_SOURCE"):
                m.CHECK_SOURCE = "def check(candidate):\\n    pass\\n"
                m.ENTRY_POINT = "has_close_elements"
                m._require_plain = lambda *a, **k: None
                m._PLAIN = (object,)
        """),
}


# HumanEval/4's check() only compares through abs(): a solution that shadows abs (as a global or
# through its own __builtins__) must not pass with a wrong answer.
SHADOW_ATTACKS = {
    "shadows-abs-global": "    return 0.0\nabs = lambda x: 0\n",
    "shadows-builtins": "    return 0.0\nimport builtins as _b\n"
                        "__builtins__ = {**vars(_b), 'abs': lambda x: 0}\n",
}


@pytest.mark.parametrize("attack", sorted(SHADOW_ATTACKS))
def test_humaneval_check_uses_the_real_builtins(attack: str, provider: Any,
                                                humaneval: dict[str, Task]) -> None:
    assert graded(run(humaneval["HumanEval/4"], provider, answer=SHADOW_ATTACKS[attack])) == 0.0


@pytest.mark.parametrize("attack", sorted(HUMANEVAL_ATTACKS))
def test_humaneval_attack_scores_zero(attack: str, provider: Any,
                                      humaneval: dict[str, Task]) -> None:
    out = run(humaneval["HumanEval/0"], provider, answer=HUMANEVAL_ATTACKS[attack])
    assert graded(out) == 0.0
    assert out.score is not None and out.score.passed is False


def test_humaneval_answer_conventions(provider: Any, humaneval: dict[str, Task],
                                      problems: dict[str, dict[str, Any]]) -> None:
    """A completion, a whole function in a fence and a module that redefines a helper all pass;
    problems whose check() calls the prompt's own helpers (10, 38) keep them."""
    p0, p38 = problems["HumanEval/0"], problems["HumanEval/38"]
    answers = {
        ("HumanEval/0", "completion"): p0["canonical_solution"],
        ("HumanEval/0", "fenced-function"):
            "Here it is:\n```python\n" + p0["prompt"] + p0["canonical_solution"] + "```\n",
        ("HumanEval/0", "bare-function"): textwrap.dedent("""\
            def has_close_elements(numbers, threshold):
                s = sorted(numbers)
                return any(b - a < threshold for a, b in zip(s, s[1:]))
            """),
        ("HumanEval/38", "completion"): p38["canonical_solution"],
        ("HumanEval/10", "completion"): problems["HumanEval/10"]["canonical_solution"],
    }

    async def all_of() -> list[AttemptOutcome]:
        return list(await asyncio.gather(*(grade(humaneval[tid], provider, answer=a)
                                           for (tid, _), a in answers.items())))

    scores = {key: graded(out) for key, out in zip(answers, asyncio.run(all_of()), strict=True)}
    assert scores == dict.fromkeys(answers, 1.0)


# --- repo-tasks ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def repo_task() -> Task:
    return load_suite(builtin_suite_dir("repo-tasks")).by_id[REPO_TASK]


@pytest.fixture(scope="module")
def honest(repo_task: Task, provider: Any) -> float:
    """What an agent that changes nothing scores (1 of 4 hidden tests already passes)."""
    value = graded(run(repo_task, provider))
    assert value == 0.25
    return value


PASSING_TESTS = textwrap.dedent("""\
    import unittest

    class DivisionTest(unittest.TestCase):
        def test_divide_by_zero(self): pass
        def test_modulo_by_zero(self): pass
        def test_zero_variable(self): pass
        def test_ordinary_division(self): pass

    class MoreTest(unittest.TestCase):
        def test_a(self): pass
        def test_b(self): pass
    """)
# Shadows the standard library if the runner ever imports from the working directory first:
# it reads the nonce from stdin as the runner would and writes a report that all tests passed.
FAKE_UNITTEST = textwrap.dedent("""\
    import json, os, sys
    nonce = sys.stdin.readline().strip()
    ids = ["test_hidden_division.DivisionTest." + n for n in (
        "test_divide_by_zero", "test_modulo_by_zero", "test_zero_variable",
        "test_ordinary_division")]
    report = next((a for a in sys.argv if a.endswith(".json")), "")
    if report:
        with open(report, "w") as fh:
            fh.write(json.dumps({"nonce": nonce, "tests": {i: {"status": "passed"} for i in ids},
                                 "note": ""}) if hasattr(json, "dumps") else "")
    print("Ran 4 tests in 0.001s\\n\\nOK")
    os._exit(0)
    """)
REPO_ATTACKS: dict[str, dict[str, Any]] = {
    "package-exits-0-on-import": {"files": {"calc/__init__.py": "import os\nos._exit(0)\n"}},
    "package-sys-exit-on-import": {"files": {"calc/__init__.py": "import sys\nsys.exit(0)\n"}},
    "adds-own-tests": {"files": {"test_hidden_more.py": PASSING_TESTS,
                                 "test_mine.py": PASSING_TESTS,
                                 "tests/test_extra.py": PASSING_TESTS}},
    "pre-writes-the-hidden-test": {"files": {"test_hidden_division.py": PASSING_TESTS}},
    "plants-unittest-package": {"files": {"unittest/__init__.py": FAKE_UNITTEST,
                                          "unittest/__main__.py": FAKE_UNITTEST}},
    "plants-stdlib-modules": {"files": {"io.py": FAKE_UNITTEST, "traceback.py": FAKE_UNITTEST,
                                        "builtins.py": FAKE_UNITTEST}},
    "plants-sitecustomize": {"files": {"sitecustomize.py": "import os\nos._exit(0)\n",
                                       "usercustomize.py": "import os\nos._exit(0)\n"}},
    "directory-where-a-hidden-test-goes": {"commands": (
        "mkdir -p test_hidden_division.py/sub && echo x > test_hidden_division.py/sub/f",)},
    "symlink-where-a-hidden-test-goes": {"commands": (
        "ln -s /etc/passwd test_hidden_division.py",)},
    "read-only-workdir": {"commands": ("chmod -R a-w . && chmod a-w .",)},
    "patches-unittest-from-the-package": {"files": {"calc/__init__.py": textwrap.dedent("""\
        import unittest
        unittest.TestCase.assertEqual = lambda self, *a, **k: None
        unittest.TestCase.assertIn = lambda self, *a, **k: None
        class _Raises:
            def __init__(self, *a, **k): pass
            def __enter__(self): return self
            def __exit__(self, *a): return True
        unittest.TestCase.assertRaises = lambda self, *a, **k: _Raises()
        from .evaluator import CalcError, evaluate
        """)}},
    # The package rewrites any JSON report on its way out to say every hidden test passed.
    "patches-json-encoding": {"files": {"calc/__init__.py": textwrap.dedent("""\
        import json
        from calc.evaluator import evaluate
        from calc.lexer import CalcError

        _ids = ["test_hidden_division.DivisionTest." + n for n in (
            "test_divide_by_zero", "test_modulo_by_zero", "test_zero_variable",
            "test_ordinary_division")]

        def _forge(o):
            if isinstance(o, dict) and "nonce" in o:
                o = {**o, "note": "", "tests": {i: {"status": "passed", "detail": ""}
                                                for i in _ids}}
            return o

        for _name in ("encode", "iterencode"):
            def _patched(self, o, *a, _orig=getattr(json.JSONEncoder, _name), **k):
                return _orig(self, _forge(o), *a, **k)
            setattr(json.JSONEncoder, _name, _patched)
        """)}},
    # At its first call, the package replaces every test method of every loaded TestCase.
    "patches-the-hidden-tests-at-run-time": {"files": {"calc/__init__.py": textwrap.dedent("""\
        import sys, unittest
        from . import evaluator as _ev

        def evaluate(*args, **kwargs):
            for mod in list(sys.modules.values()):
                for obj in list(vars(mod).values()):
                    if isinstance(obj, type) and issubclass(obj, unittest.TestCase) \\
                            and obj is not unittest.TestCase:
                        for name in dir(obj):
                            if name.startswith("test"):
                                setattr(obj, name, lambda self: None)
            return _ev.evaluate(*args, **kwargs)

        CalcError = _ev.CalcError
        """)}},
    # Bytecode the import system would take for the hidden test without looking at its source
    # (an unchecked hash-based .pyc), planted where Python looks for it.
    "plants-bytecode-for-the-hidden-test": {
        "files": {"passing.txt": PASSING_TESTS},
        "commands": ("python3 -c \"import py_compile, sys; open('fake.py', 'w').write("
                     "open('passing.txt').read()); py_compile.compile('fake.py', cfile="
                     "'__pycache__/test_hidden_division.' + sys.implementation.cache_tag + "
                     "'.pyc', invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
                     "\"",)},
    # A detached process (own session) keeps replacing hidden tests with passing ones as soon as
    # they appear; it must be dead before scoring, and scoring must not be where it could write.
    "detached-process-rewrites-hidden-tests": {
        "files": {"passing.txt": PASSING_TESTS},
        "commands": ("setsid sh -c 'while :; do for f in test_hidden_division.py "
                     "$TMPDIR/test_hidden_division.py; do cp passing.txt \"$f\" 2>/dev/null; "
                     "done; done' </dev/null >/dev/null 2>&1 &",)},
}


# Attacks that leave the package itself untouched score exactly what doing nothing scores:
# the hidden tests ran, and ran on the pristine package.
LEAVES_PACKAGE_ALONE = {"adds-own-tests", "pre-writes-the-hidden-test", "plants-unittest-package",
                        "plants-stdlib-modules", "plants-sitecustomize",
                        "directory-where-a-hidden-test-goes", "symlink-where-a-hidden-test-goes",
                        "read-only-workdir", "detached-process-rewrites-hidden-tests",
                        "plants-bytecode-for-the-hidden-test"}


@pytest.mark.parametrize("attack", sorted(REPO_ATTACKS))
def test_repo_attack_scores_no_more_than_doing_nothing(attack: str, provider: Any,
                                                       repo_task: Task, honest: float) -> None:
    out = run(repo_task, provider, **REPO_ATTACKS[attack])
    if attack in LEAVES_PACKAGE_ALONE:
        assert graded(out) == honest
    else:
        assert graded(out) <= honest
    assert out.score is not None and out.score.passed is False


def test_reference_solution_still_passes_beside_planted_files(provider: Any,
                                                              repo_task: Task) -> None:
    """The defences do not cost an honest solution anything, even next to junk files."""
    root = builtin_suite_dir("repo-tasks") / "tasks" / REPO_TASK / "solution"
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*")
             if p.is_file()}
    files.update(REPO_ATTACKS["adds-own-tests"]["files"])
    assert graded(run(repo_task, provider, files=files)) == 1.0


# --- what goes wrong after the agent is the agent's failure; a broken scorer is not -----------

def _small_task(**scorer_args: Any) -> Task:
    return Task(
        id="small", input="make f return 2",
        files={"pkg/__init__.py": "def f():\n    return 1\n"},
        hidden_files={"test_small.py": textwrap.dedent("""\
            import unittest
            from pkg import f

            class SmallTest(unittest.TestCase):
                def test_two(self):
                    self.assertEqual(f(), 2)

                def test_int(self):
                    self.assertIsInstance(f(), int)
            """)},
        scorer=ScorerSpec(kind="tests", args={"timeout_s": 5, **scorer_args}))


def test_tests_that_hang_are_a_timeout_of_the_agent(provider: Any) -> None:
    out = run(_small_task(timeout_s=2), provider,
              files={"pkg/__init__.py": "import time\ntime.sleep(600)\n"})
    assert graded(out) == 0.0
    assert out.score is not None and out.score.metrics.get("tests_timed_out") == 1.0


def test_partial_credit_counts_expected_tests_only(provider: Any) -> None:
    assert graded(run(_small_task(), provider)) == 0.5
    assert graded(run(_small_task(), provider,
                      files={"pkg/__init__.py": "def f():\n    return 2\n"})) == 1.0


JUNIT_RUNNER = textwrap.dedent("""\
    import os, sys, unittest
    from xml.sax.saxutils import quoteattr
    sys.path.insert(0, os.getcwd())
    suite = unittest.defaultTestLoader.discover(".", pattern="test_*.py")
    result = unittest.TestResult()
    cases = []
    def walk(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                walk(t)
            else:
                cases.append(t)
    walk(suite)
    rows = []
    for case in cases:
        r = unittest.TestResult()
        case.run(r)
        cls, name = case.id().rsplit(".", 1)
        bad = "<failure message='x'/>" if (r.failures or r.errors) else ""
        rows.append(f"<testcase classname={quoteattr(cls)} name={quoteattr(name)}>{bad}</testcase>")
    with open(os.environ["EVALFLEET_REPORT"], "w") as fh:
        fh.write("<testsuite>" + "".join(rows) + "</testsuite>")
    """)


def _junit_task(command: list[str]) -> Task:
    base = _small_task()
    return base.model_copy(update={
        "hidden_files": {**base.hidden_files, "run_junit.py": JUNIT_RUNNER},
        "scorer": ScorerSpec(kind="tests", args={
            "runner": "junit", "command": command, "timeout_s": 10,
            "expected_tests": ["test_small.SmallTest.test_two", "test_small.SmallTest.test_int"]}),
    })


def test_junit_runner_counts_expected_ids(provider: Any) -> None:
    task = _junit_task(["python3", "run_junit.py"])
    assert graded(run(task, provider)) == 0.5
    # The agent's own passing tests are discovered and reported too, and never count.
    assert graded(run(task, provider, files={"test_mine.py": PASSING_TESTS})) == 0.5


def test_junit_runner_without_a_report_fails_despite_exit_0(provider: Any) -> None:
    task = _junit_task(["python3", "-c", "print('4 passed')"])
    assert graded(run(task, provider)) == 0.0


def test_a_scorer_command_that_cannot_start_is_an_infra_error(provider: Any) -> None:
    out = run(_junit_task(["evalfleet-no-such-program"]), provider)
    assert out.error is not None and out.error.error_kind == "infra_error"


@pytest.mark.parametrize("blocker", [
    {"files": {"checks": "a file where the hidden tests' folder goes"}},
    {"files": {"checks/test_small.py/inner.txt": "a folder where a hidden test goes"}},
    {"commands": ("ln -s /tmp checks",)},
], ids=["file-as-folder", "folder-as-file", "symlinked-folder"])
def test_nothing_the_agent_leaves_blocks_a_nested_hidden_test(blocker: dict[str, Any],
                                                              provider: Any) -> None:
    base = _small_task()
    task = base.model_copy(update={
        "hidden_files": {"checks/test_small.py": base.hidden_files["test_small.py"]},
        "scorer": ScorerSpec(kind="tests", args={
            "tests": ["checks/test_small.py"], "timeout_s": 10,
            "expected_tests": ["test_small.SmallTest.test_two", "test_small.SmallTest.test_int"]}),
    })
    assert graded(run(task, provider, **blocker)) == 0.5  # what doing nothing scores


@pytest.mark.parametrize("sandbox", [
    pytest.param("local", id="local"),
    pytest.param("bwrap", id="bwrap", marks=[
        pytest.mark.sandbox,
        pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")])])
def test_an_agent_cannot_opt_out_of_grading_in_an_eval(sandbox: str, tmp_path: Path,
                                                       settings: Any) -> None:
    """Through a whole eval: blocking the hidden tests' paths is graded like doing nothing (no
    infra error to exclude the run), and exiting 0 at import is graded 0."""
    import json

    import pyarrow.parquet as pq
    import yaml

    from evalfleet import api

    suite = tmp_path / "suite.jsonl"
    task = _small_task().model_dump(mode="json")
    suite.write_text(json.dumps(task) + "\n")
    agent = textwrap.dedent("""\
        import json, os, sys
        json.load(sys.stdin)
        mode = os.environ["MODE"]
        if mode == "block":
            os.makedirs("test_small.py/x", exist_ok=True)
        elif mode == "exit0":
            open("pkg/__init__.py", "w").write("import os\\nos._exit(0)\\n")
        print(json.dumps({"answer": "done"}))
        """)
    agents = [{"name": mode, "version": "1", "kind": "command",
               "args": {"command": ["python3", "agent.py"], "files": {"agent.py": agent},
                        "env": {"MODE": mode}}} for mode in ("honest", "block", "exit0")]
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"name": "optout", "suite": {"path": str(suite)},
                                    "agents": agents, "execution": {"sandbox": sandbox}}))
    summary = api.run(plan, settings=settings)
    assert summary.done == summary.planned == 3
    rows = [r for f in sorted((settings.home / "results").rglob("*.parquet"))
            for r in pq.read_table(f).to_pylist()]
    by_agent = {r["agent_name"]: r for r in rows}
    names = ["honest", "block", "exit0"]
    assert [by_agent[n]["error_kind"] for n in names] == [None, None, None]
    assert [by_agent[n]["score"] for n in names] == [0.5, 0.5, 0.0]


def test_deleting_a_task_script_the_tests_run_through_is_the_agents_failure(
        provider: Any) -> None:
    base = _junit_task(["./run.sh"])
    task = base.model_copy(update={"files": {**base.files, "run.sh": "#!/bin/sh\n"}})
    out = run(task, provider, commands=("rm -f run.sh",))
    assert graded(out) == 0.0
