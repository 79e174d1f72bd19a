"""The ``command`` adapter: any program; JSON task on stdin, JSON answer on stdout; sandboxed."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from evalfleet._util.parsing import value_error_text
from evalfleet.agents.base import AgentContext, AgentOutput
from evalfleet.errors import AgentError, TaskTimeoutError


class CommandAgentArgs(BaseModel):
    """Arguments of the command adapter."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1, description="argv; run in the sandbox's directory.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    files: dict[str, str] = Field(default_factory=dict,
                                  description="Files (e.g. the agent's script) written first.")


class CommandAgent:
    """Runs a program in the sandbox; it reads the task as JSON and prints ``{"answer": ...}``."""

    def __init__(self, args: CommandAgentArgs) -> None:
        self.args = args

    async def run(self, ctx: AgentContext) -> AgentOutput:
        sandbox = await ctx.sandbox.get()
        if self.args.files:
            await sandbox.write_files(self.args.files)
        payload = {**ctx.task_payload(), "workdir": sandbox.workdir}
        argv = [a.format(**ctx.variables) if ctx.variables else a for a in self.args.command]
        res = await sandbox.exec(argv, stdin=json.dumps(payload).encode(),
                                 timeout_s=ctx.task.limits.timeout_s, env=self.args.env)
        ctx.trajectory.add("command", argv=argv, exit_code=res.exit_code, stdout=res.stdout,
                           stderr=res.stderr, duration_s=round(res.duration_s, 4),
                           truncated=res.truncated, timed_out=res.timed_out)
        if res.timed_out:
            raise TaskTimeoutError(f"agent command exceeded {ctx.task.limits.timeout_s}s")
        if res.exit_code != 0:
            raise AgentError(f"agent command exited with {res.exit_code}"
                             + (f" (signal {res.signal})" if res.signal else "")
                             + f": {res.stderr[-500:]}")
        if res.truncated:
            raise AgentError("agent output exceeded the output limit and was truncated")
        try:
            data = json.loads(res.stdout)
        except ValueError as exc:  # bad syntax, or an integer of more than 4,300 digits
            raise AgentError(f"agent output is not JSON: {value_error_text(exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
            raise AgentError('agent output must be a JSON object with a string "answer"')
        ctx.trajectory.add("answer", answer=data["answer"])
        return AgentOutput(answer=data["answer"],
                           extra={k: v for k, v in data.items() if k != "answer"})
