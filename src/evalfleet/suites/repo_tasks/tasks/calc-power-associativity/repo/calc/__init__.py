"""A small, safe arithmetic expression evaluator."""

from calc.evaluator import evaluate
from calc.lexer import CalcError, tokenize
from calc.parser import parse

__all__ = ["CalcError", "evaluate", "parse", "tokenize"]
