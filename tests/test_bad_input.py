"""Malformed plans and suites stop with exit code 2 and one message naming file, line, field."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evalfleet.cli import main

CORPUS = Path(__file__).parent / "corpus" / "bad_plans"

# file -> (words the message must contain, "file:line" it must name, or a line of the plan)
EXPECTED: dict[str, tuple[tuple[str, ...], int | str | None]] = {
    "01-yaml-syntax.yaml": (("invalid YAML",), 5),
    "02-not-a-mapping.yaml": (("must be a YAML mapping",), 1),
    "03-unknown-field.yaml": (("agnets", "unknown field"), 5),
    "04-missing-agents.yaml": (("agents", "required field is missing"), 1),
    "05-missing-suite.yaml": (("suite", "required field is missing"), 1),
    "06-negative-runs.yaml": (("runs_per_task", "greater than or equal to 1"), 5),
    "07-wrong-type.yaml": (("runs_per_task", "valid integer", "three"), 5),
    "08-absurd-budget.yaml": (("budget_usd", "less than or equal"), 5),
    "09-unknown-agent-kind.yaml": (("agents.0", "unknown agent kind 'telepathy'"), None),
    "10-missing-callable.yaml": (("agents.0.args.callable", "required"), None),
    "11-unknown-agent-arg.yaml": (("agents.0.args.colour", "unknown field"), None),
    "12-duplicate-agent.yaml": (("agent a@0 is listed twice",), None),
    "13-duplicate-key.yaml": (("duplicate key 'name'",), 2),
    "14-suite-missing.yaml": (("nope.jsonl", "suite does not exist"), None),
    "15-unknown-builtin.yaml": (("unknown built-in suite 'imagenet'",), None),
    "16-two-suite-sources.yaml": (("suite", "exactly one of 'builtin' or 'path'"), 2),
    "17-zero-in-flight.yaml": (("execution.max_in_flight", "greater than or equal to 1"), 6),
    "18-heartbeat-too-long.yaml": (("heartbeat_seconds must be shorter",), 5),
    "19-task-path-escape.yaml": (("t1.yaml", "files", "escapes"), None),
    "20-duplicate-task-ids.yaml": (("duplicate task id 'a'",), "suites/dup_ids.jsonl:3"),
    "21-suite-bad-json.yaml": (("invalid JSON",), "suites/bad_json.jsonl:3"),
    "22-task-difficulty.yaml": (("difficulty", "less than or equal to 5"),
                                "suites/bad_difficulty.jsonl:2"),
    "23-unknown-scorer.yaml": (("unknown scorer kind 'telepathy'",), None),
    "24-absolute-task-path.yaml": (("t1.yaml", "files", "escapes"), None),
    "25-openai-without-model.yaml": (("agents.0", "needs 'model'"), None),
    "26-negative-rate.yaml": (("rate_limits.m.requests_per_minute", "greater than 0"), 6),
    "27-resource-unavailable.yaml": (("needs 1 gpu but the plan provides 0",), None),
    "28-empty.yaml": (("must be a YAML mapping",), None),
    "29-bad-name.yaml": (("name", "should match pattern"), 1),
    "30-unknown-sandbox.yaml": (("execution.sandbox", "'local' or 'bwrap'"), 6),
    "31-yaml-bomb.yaml": (("expands to more than 200,000 values",), 11),
    "32-deeply-nested.yaml": (("32-deeply-nested.yaml: the YAML nests deeper than 64 levels",),
                              None),
    "33-too-deep.yaml": (("nests deeper than 64 levels",), 6),
    "34-recursive-alias.yaml": (("refers to itself",), 5),
    "35-agent-import-raises.yaml": (("35-agent-import-raises.yaml:", "agents.1.args.callable",
                                     "cannot import",
                                     "RuntimeError: the model client needs OPENAI_BASE_URL"),
                                    None),
    "36-scorer-import-raises.yaml": (("task s1", "python scorer",
                                      "RuntimeError: the model client needs OPENAI_BASE_URL"),
                                     None),
    # YAML decodes a lone "\ud800" escape, which no text, file or task hash can hold
    "37-surrogate-in-task.yaml": (("unpaired surrogate",), "suites/surrogate/tasks/t1.yaml:2"),
    "38-surrogate-in-plan.yaml": (("unpaired surrogate",), 6),
    # values YAML and JSON parse but Python cannot hold: a ValueError, not a traceback
    "39-impossible-date.yaml": (("cannot read this value", "month must be in 1..12"), 6),
    "40-huge-number-in-suite.yaml": (("invalid JSON", "4300 digits"),
                                     "suites/huge_number.jsonl:2"),
}


def test_corpus_is_complete() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_plan(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    words, line = EXPECTED[name]
    path = CORPUS / name
    monkeypatch.syspath_prepend(str(CORPUS))  # the python agents some plans import
    monkeypatch.setattr(sys, "argv", ["evalfleet", "run", str(path), "--home",
                                      str(tmp_path / "h"), "--quiet"])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    captured = capsys.readouterr()
    message = " ".join(captured.err.split())
    assert "Traceback" not in captured.err
    for w in words:
        assert w in message, (w, message)
    if isinstance(line, int):
        assert f"{name}:{line}:" in message, message
    elif isinstance(line, str):
        assert f"corpus/{line}:" in message, message
    assert captured.out == ""
    assert not (tmp_path / "h" / "results").exists()


def test_missing_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["evalfleet", "run", str(tmp_path / "none.yaml")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "none.yaml: file does not exist" in " ".join(capsys.readouterr().err.split())


def test_unknown_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["evalfleet", "report", "nope", "--home", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no eval" in err and "Traceback" not in err


def test_agent_factory_that_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin adapter whose factory fails is a plan error naming the agent, not a traceback."""
    from evalfleet.agents import registry

    def explode(spec: object) -> object:
        raise OSError("libfoo.so: cannot open shared object file\nsecond line")

    monkeypatch.setitem(registry.BUILTIN, "exploding", explode)
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nsuite: {path: %s}\nagents:\n  - {name: x, kind: exploding}\n"
                    % (CORPUS.parent / "suites" / "good.jsonl"))
    monkeypatch.setattr(sys, "argv", ["evalfleet", "run", str(plan), "--home",
                                      str(tmp_path / "h")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "p.yaml: field 'agents.0' cannot create agent x@0: OSError: libfoo.so" in err, err
    assert "second line" not in err and "Traceback" not in err


def test_huge_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """A plan larger than any real one is refused before it is parsed."""
    plan = tmp_path / "huge.yaml"
    plan.write_text("name: p\ndescription: '" + "x" * (9 * 1024 * 1024) + "'\n")
    monkeypatch.setattr(sys, "argv", ["evalfleet", "plan", "check", str(plan)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "huge.yaml: file is larger than 8 MiB" in capsys.readouterr().err


@pytest.mark.parametrize(("lines", "line", "message"), [
    # the first mistake in line order is the one reported, whatever its kind
    (["A", "A", "BAD"], 2, "duplicate task id 'a'"),
    (["A", "BAD", "A"], 2, "input"),
    (["A", "BAD", "{not json"], 2, "input"),
    (["A", "{not json", "BAD"], 2, "invalid JSON"),
    (["A", "[1]", "BAD"], 2, "each line must be a JSON object"),
    # json.loads takes a lone surrogate escape; no text (nor a task's hash) can hold it
    (["A", '{"id": "s", "input": "\\ud800", "target": "y", "scorer": {"kind": "exact"}}', "BAD"],
     2, "unpaired surrogate"),
    # far into the file
    ([f"T{i}" for i in range(2500)] + ["BAD"] + ["T7"], 2501, "input"),
    ([f"T{i}" for i in range(2500)] + ["T7"] + ["BAD"], 2501, "duplicate task id 't7'"),
])
def test_a_jsonl_suites_first_mistake_is_named_by_its_line(
        tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    from evalfleet.errors import SpecError
    from evalfleet.spec.loaders import _load_jsonl

    scorer = {"scorer": {"kind": "exact"}}

    def render(spec: str) -> str:
        if spec == "A":
            return json.dumps({"id": "a", "input": "x", "target": "y", **scorer})
        if spec == "BAD":
            return json.dumps({"id": "bad", "target": "y", **scorer})  # no input
        if spec.startswith("T"):
            return json.dumps({"id": f"t{spec[1:]}", "input": "x", "target": "y", **scorer})
        return spec

    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(render(s) for s in lines) + "\n")
    with pytest.raises(SpecError, match=message) as err:
        _load_jsonl(path)
    assert err.value.line == line, str(err.value)


JSONL_LINES = [
    # plain, defaults filled
    {"id": "a", "input": "x", "target": "ok", "scorer": {"kind": "includes"}},
    # every field, lax conversions (strings and floats for integers and booleans)
    {"id": "b", "input": "é\u00e9 \\n", "category": "c", "difficulty": "4", "domain": "d",
     "tags": ["t1", "t2"], "metadata": {"repository": "r", "n": 123456789012345678901234567890,
                                         "f": 1e400, "nested": {"k": [1, 2.5, None, True]}},
     "files": {"a.py": "print(1)"}, "setup": ["true"], "target": ["ok", "yes"],
     "scorer": {"kind": "regex", "args": {"pattern": "o."}},
     "limits": {"timeout_s": 30.0}, "resources": {"gpu": 1.0}, "network": "true"},
    # a tests scorer whose expected test ids are derived before validation
    {"id": "c", "input": "x", "hidden_files": {
        "test_x.py": "import unittest\nclass T(unittest.TestCase):\n    def test_a(self): pass\n"},
     "scorer": {"kind": "tests"}},
    # the last of a repeated key wins, as with json.loads
    {"id": "d", "input": "x", "scorer": {"kind": "exact"}, "target": "first"},
]


def test_a_jsonl_suite_loads_the_tasks_that_json_and_validation_give(tmp_path: Path) -> None:
    """The loader's one-call parse and validation of a line gives the very task that json.loads
    and then validation give, for lax conversions, derived fields, big and infinite numbers
    and repeated keys."""
    from evalfleet.spec.loaders import _load_jsonl
    from evalfleet.spec.task import Task

    lines = [json.dumps(d) for d in JSONL_LINES]
    lines[3] = lines[3][:-1] + ', "target": "second"}'
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = _load_jsonl(path).tasks
    expected = [Task.model_validate(json.loads(line)) for line in lines]
    assert [t.model_dump() for t in loaded] == [t.model_dump() for t in expected]
    assert [t.task_hash for t in loaded] == [t.task_hash for t in expected]
    assert loaded[3].target == "second"
    assert loaded[1].difficulty == 4 and loaded[1].network is True
    assert loaded[2].scorer.args["expected_tests"] == ["test_x.T.test_a"]
