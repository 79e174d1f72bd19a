"""The test runner the ``tests`` scorer ships into the scoring sandbox (run with ``python3 -I -c``).

It is standalone (standard library only): the scorer passes this file's text with ``-c``, so
nothing of it lives in the working directory where the agent's files are. Usage::

    python3 -I -X pycache_prefix=DIR -c SOURCE REPORT_PATH WORKDIR TEST_FILE...

The first line of stdin is the attempt's nonce; it is read before any code under test is
imported and is written into the report, so a report the code under test forges without it is
rejected. Test folders and the working directory go on ``sys.path`` after the standard library,
so a planted ``unittest/`` or ``json.py`` cannot replace them. The report is rewritten after every
test (so a run cut by its time limit still shows which tests passed), always last, and the
process leaves with ``os._exit`` so no atexit handler of the code under test runs afterwards.
"""

import builtins
import io
import json
import os
import sys
import traceback
import unittest
import unittest.case
import unittest.loader
import unittest.result
import unittest.suite

# Bound before any code under test runs: later monkey-patching of os or json cannot reach them.
_write, _open, _close, _rename, _exit = os.write, os.open, os.close, os.replace, os._exit
_dumps = json.dumps
_OUT_LIMIT = 4000


_DESCRIPTORS = (staticmethod, classmethod, property)
_Guards = list[tuple[str, object, dict[str, object]]]


def _guard(guards: _Guards, name: str, obj: object) -> None:
    guards.append((name, obj, dict(vars(obj))))


def _machinery() -> _Guards:
    # What the verdict depends on: unittest's machinery, this runner and the builtins. Data
    # (TestCase.maxDiff, a fixture set up by setUpClass) may be set by honest tests, so only
    # code (functions, classes, descriptors) is compared.
    guards: _Guards = []
    for mod in (unittest.case, unittest.result, unittest.suite, unittest.loader, builtins,
                sys.modules[__name__]):
        _guard(guards, mod.__name__, mod)
    for cls in (unittest.TestCase, unittest.TestResult, unittest.TestSuite, unittest.TestLoader,
                getattr(unittest.case, "_Outcome", object), _Result):
        _guard(guards, cls.__qualname__, cls)
    return guards


def _test_code(guards: _Guards, module: str, suite: unittest.TestSuite) -> None:
    """Guard a loaded test module and its test classes too: code under test must not replace
    a test method or a name the tests use while the tests run."""
    mod = sys.modules.get(module)
    if mod is not None:
        _guard(guards, module, mod)
    stack: list[object] = [suite]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, unittest.TestSuite):
            stack.extend(item)
            continue
        for cls in type(item).__mro__:
            if cls in (unittest.TestCase, object) or id(cls) in seen:
                continue
            seen.add(id(cls))
            _guard(guards, cls.__qualname__, cls)


def _tampered(guards: _Guards) -> str:
    for name, obj, saved in guards:
        now = vars(obj)
        for key, value in saved.items():
            if not (callable(value) or isinstance(value, _DESCRIPTORS)):
                continue
            if now.get(key, _tampered) is not value:
                return f"{name}.{key} was replaced by the code under test"
    return ""


class _Result(unittest.TestResult):
    def __init__(self, report: dict[str, dict[str, str]], flush: object) -> None:
        super().__init__()
        self.buffer = True  # a test's output goes with its own verdict
        self._report = report
        self._flush = flush

    def _set(self, test: unittest.TestCase, status: str, detail: str = "") -> None:
        self._report[test.id()] = {"status": status, "detail": detail[-_OUT_LIMIT:]}

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._set(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: object) -> None:
        super().addFailure(test, err)  # type: ignore[arg-type]
        self._set(test, "failed", self.failures[-1][1])

    def addError(self, test: unittest.TestCase, err: object) -> None:
        super().addError(test, err)  # type: ignore[arg-type]
        self._set(test, "error", self.errors[-1][1])

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._set(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: object) -> None:
        super().addExpectedFailure(test, err)  # type: ignore[arg-type]
        self._set(test, "failed", "expected failure")  # only a real pass counts

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "failed", "unexpected success")

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        self._flush()  # type: ignore[operator]


def main() -> None:
    """Run the hidden test files and write the report; never returns."""
    nonce = sys.stdin.readline().strip()
    report_path, workdir, test_files = sys.argv[1], sys.argv[2], sys.argv[3:]
    # -I already leaves the script's folder and the cwd out; drop them anyway, then add the
    # test folders and the working directory after the standard library, before site-packages.
    paths = [p for p in sys.path if p and os.path.abspath(p) != os.path.abspath(workdir)]
    cut = next((i for i, p in enumerate(paths) if p.endswith(("site-packages", "dist-packages"))),
               len(paths))
    extra: list[str] = []
    for f in test_files:
        folder = os.path.dirname(os.path.join(workdir, f))
        if folder not in extra:
            extra.append(folder)
    if workdir not in extra:
        extra.append(workdir)
    sys.path[:] = paths[:cut] + extra + paths[cut:]
    guarded = _machinery()
    tests: dict[str, dict[str, str]] = {}
    state = {"note": ""}
    tampered, dumps = _tampered, _dumps  # local: replacing the module globals changes nothing

    def flush() -> None:
        note = state["note"] or tampered(guarded)
        state["note"] = note
        data = dumps({"nonce": nonce, "tests": {} if note else tests, "note": note})
        tmp = report_path + ".part"
        fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data.encode())
            while view:
                view = view[_write(fd, view):]
        finally:
            _close(fd)
        _rename(tmp, report_path)

    flush()
    result = _Result(tests, flush)
    loader = unittest.TestLoader()
    for f in test_files:
        module = os.path.splitext(os.path.basename(f))[0]
        try:
            suite = loader.loadTestsFromName(module)
        except BaseException:  # SystemExit at import is the answer failing
            tests["import:" + module] = {"status": "error",
                                         "detail": traceback.format_exc()[-_OUT_LIMIT:]}
            flush()
            continue
        _test_code(guarded, module, suite)
        try:
            suite.run(result)
        except BaseException:  # whatever escapes ends this module's tests
            tests["run:" + module] = {"status": "error",
                                      "detail": traceback.format_exc()[-_OUT_LIMIT:]}
        flush()
    sys.stdout = io.StringIO()  # output after the last test is nobody's business
    flush()
    _exit(0)


if __name__ == "__main__":
    main()
