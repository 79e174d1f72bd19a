"""The test runner the ``tests`` scorer ships into the scoring sandbox (run with ``python3 -I -c``).

It is standalone (standard library only): the scorer passes this file's text with ``-c``, so
nothing of it lives in the working directory where the agent's files are. Usage::

    python3 -I -B -c SOURCE REPORT_PATH WORKDIR TEST_FILE...

The first line of stdin is the attempt's nonce; it is read before any code under test is
imported and is written into the report, so a report the code under test forges without it is
rejected. Test folders and the working directory go on ``sys.path`` after the standard library,
so a planted ``unittest/`` or ``json.py`` cannot replace them. The report is rewritten after every
test (so a run cut by its time limit still shows which tests passed), always last, and the
process leaves with ``os._exit`` so no atexit handler of the code under test runs afterwards.
"""

import builtins
import importlib.util
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
import unittest.util
from typing import Any

# Bound before any code under test runs: later monkey-patching of os or json cannot reach them.
_write, _open, _close, _rename, _exit = os.write, os.open, os.close, os.replace, os._exit


def _make_dump(quote: Any = json.encoder.encode_basestring_ascii, type_: Any = type,
               str_: Any = str, items: Any = dict.items) -> Any:
    # The report is nested dicts of strings; it is written with the C string quoting and
    # built-ins taken now, not with json.dumps, whose Python parts code under test could patch.
    def dump(obj: Any) -> str:
        if type_(obj) is str_:
            return quote(obj)  # type: ignore[no-any-return]
        return "{" + ",".join(quote(k) + ":" + dump(v) for k, v in items(obj)) + "}"
    return dump


_dump = _make_dump()
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
    machinery = (unittest.case, unittest.result, unittest.suite, unittest.loader, unittest.util)
    for mod in (*machinery, builtins, json.encoder, sys.modules[__name__]):
        _guard(guards, mod.__name__, mod)
    # Every class of unittest's machinery, not only TestCase: the verdict of assertRaises is
    # decided in _AssertRaisesContext.__exit__, of subTest in _Outcome, and so on.
    classes = [value for mod in machinery for value in vars(mod).values()
               if isinstance(value, type) and value.__module__ == mod.__name__]
    for cls in (*classes, _Result, json.JSONEncoder):
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


_BUILTIN_NAMES = frozenset(vars(builtins))


def _tampered(guards: _Guards, vars_: Any = vars, callable_: Any = callable,
              isinstance_: Any = isinstance, items: Any = dict.items, dict_: Any = dict,
              any_: Any = any, type_: Any = type, builtins_: Any = builtins,
              builtin_names: Any = _BUILTIN_NAMES) -> str:
    # Built-ins taken at import: replacing builtins.callable cannot blind this check.
    for name, obj, saved in guards:
        now = vars_(obj)
        for key, value in items(saved):
            if not (callable_(value) or isinstance_(value, _DESCRIPTORS)):
                continue
            if key not in now or now[key] is not value:
                return f"{name}.{key} was replaced by the code under test"
        is_class = isinstance_(obj, type_)
        if not is_class and obj is builtins_:
            continue  # a new built-in shadows nothing (gettext.install adds _)
        for key, value in items(dict_(now)):
            if key in saved:
                continue
            # A name added to a class shadows what it inherits (TestCase.run, assertRaises);
            # one added to a module shadows a built-in its functions use (str, isinstance).
            if (any_(key in vars_(base) for base in getattr(obj, "__mro__", ())[1:])
                    and (callable_(value) or isinstance_(value, _DESCRIPTORS))
                    if is_class else key in builtin_names):
                return f"{name}.{key} was added by the code under test"
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


def _load_file(module: str, path: str) -> Any:
    """The hidden test file itself, imported from its path under its module name: a package
    or an extension module the agent left under that name is never taken for it."""
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the test file {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(module, None)
        raise
    return mod


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
    # Locals: replacing this module's globals from code under test changes nothing here.
    tampered, dump, open_, write, close, rename, exit_ = (_tampered, _dump, _open, _write,
                                                         _close, _rename, _exit)
    view_of = memoryview
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC

    def flush() -> None:
        note = state["note"] or tampered(guarded)
        state["note"] = note
        data = dump({"nonce": nonce, "tests": {} if note else tests, "note": note})
        tmp = report_path + ".part"
        fd = open_(tmp, flags, 0o600)
        try:
            view = view_of(data.encode())
            while view:
                view = view[write(fd, view):]
        finally:
            close(fd)
        rename(tmp, report_path)

    flush()
    result = _Result(tests, flush)
    loader = unittest.TestLoader()
    for f in test_files:
        module = os.path.splitext(os.path.basename(f))[0]
        try:
            suite = loader.loadTestsFromModule(_load_file(module, os.path.join(workdir, f)))
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
    exit_(0)


if __name__ == "__main__":
    main()
