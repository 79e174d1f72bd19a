"""Evaluate expressions."""

import math

from calc.lexer import CalcError
from calc.parser import parse

CONSTANTS = {"pi": math.pi, "e": math.e}
FUNCTIONS = {"abs": abs, "max": max, "min": min, "round": round, "sqrt": math.sqrt}


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
    if kind == "call":
        return _call(node[1], [_evaluate(arg, env) for arg in node[2]])
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


def _call(name, args):
    if name not in FUNCTIONS:
        raise CalcError(f"unknown function {name!r}")
    try:
        return FUNCTIONS[name](*args)
    except (TypeError, ValueError) as exc:
        raise CalcError(f"bad arguments to {name}(): {exc}") from None
