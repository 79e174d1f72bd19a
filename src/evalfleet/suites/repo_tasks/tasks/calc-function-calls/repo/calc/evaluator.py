"""Evaluate expressions."""

import math

from calc.lexer import CalcError
from calc.parser import parse

CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(text, variables=None, **names):
    """The value of an expression.

    Names are looked up in the keyword arguments, then in `variables`, then in the
    constants pi and e.
    """
    env = {**CONSTANTS, **(variables or {}), **names}
    return _evaluate(parse(text), env)


def _evaluate(node, env):
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        if node[1] not in env:
            raise CalcError(f"unknown name {node[1]!r}")
        return env[node[1]]
    if kind == "neg":
        return -_evaluate(node[1], env)
    _, op, left, right = node
    return _apply(op, _evaluate(left, env), _evaluate(right, env))


def _apply(op, left, right):
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op in ("/", "%") and right == 0:
        raise CalcError("division by zero")
    if op == "/":
        return left / right
    if op == "%":
        return left % right
    if op == "**":
        return left**right
    raise CalcError(f"unknown operator {op!r}")
