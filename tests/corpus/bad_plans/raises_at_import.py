"""A python agent whose module fails at import (loaded by 35-agent-import-raises.yaml)."""

raise RuntimeError("the model client needs OPENAI_BASE_URL")


def solve(task: dict[str, object]) -> str:
    return ""
