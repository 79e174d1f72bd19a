"""AST mutation operators: how the SIMULATED model makes working code subtly wrong.

A mutation site is an (operator, node index) pair, the index counting nodes in ``ast.walk``
order, so a site found on one parse applies to any other parse of the same source. Sites can be
restricted to a region of lines (the canonical solution below a HumanEval prompt, or the lines a
repository task changes), so helpers the tests never reach are left alone.

The operators and their weights come from measuring, over all 164 HumanEval problems, how often
a mutant fails the problem's own tests (see ``WEIGHTS``); with those weights, 94% of the answers
the simulator gives on a failed HumanEval run fail the tests (1,640 mutants, ten per problem),
and 97% of its failed repo-task answers fail the hidden tests. ``tests/testing/test_mutants.py``
re-checks a sample.
"""

from __future__ import annotations

import ast
import difflib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

_COMPARE_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}
_NAME_SWAP = {"min": "max", "max": "min", "any": "all", "all": "any", "sorted": "reversed"}
_METHOD_SWAP = {
    "lower": "upper", "upper": "lower", "swapcase": "lower", "startswith": "endswith",
    "endswith": "startswith", "isupper": "islower", "islower": "isupper", "isdigit": "isalpha",
    "isalpha": "isdigit", "index": "rindex", "find": "rfind", "split": "rsplit",
}


@dataclass(frozen=True, slots=True)
class Site:
    """One place a mutation operator applies."""

    operator: str
    """Operator name (a key of ``OPERATORS``)."""
    index: int
    """Position of the node in ``ast.walk`` order."""


def _is_int(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, int)
            and not isinstance(node.value, bool))


def _is_not(node: object) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)


def _flip_compare(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.Compare) or type(node.ops[0]) not in _COMPARE_FLIP:
        return False
    if apply:
        node.ops[0] = _COMPARE_FLIP[type(node.ops[0])]()
    return True


def _off_by_one(node: ast.AST, apply: bool) -> bool:
    if not _is_int(node):
        return False
    if apply:
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        node.value = node.value + 1
    return True


def _swap_boolop(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.BoolOp):
        return False
    if apply:
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    return True


def _negate_condition(node: ast.AST, apply: bool) -> bool:
    # Loops are left alone: a negated loop condition tends to hang the tests, not fail them.
    if not isinstance(node, ast.If | ast.IfExp):
        return False
    if apply:
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    return True


def _swap_binop(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.BinOp | ast.AugAssign) or type(node.op) not in _BINOP_SWAP:
        return False
    if apply:
        node.op = _BINOP_SWAP[type(node.op)]()
    return True


def _drop_return_element(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.Return):
        return False
    value = node.value
    if isinstance(value, ast.Tuple | ast.List) and len(value.elts) >= 2:
        if apply:
            value.elts = value.elts[:-1]
        return True
    if isinstance(value, ast.Constant) and isinstance(value.value, bool):
        if apply:
            value.value = not value.value
        return True
    return False


def _swap_builtin(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.Name) or node.id not in _NAME_SWAP \
            or not isinstance(node.ctx, ast.Load):
        return False
    if apply:
        node.id = _NAME_SWAP[node.id]
    return True


def _swap_method(node: ast.AST, apply: bool) -> bool:
    if not isinstance(node, ast.Attribute) or node.attr not in _METHOD_SWAP:
        return False
    if apply:
        node.attr = _METHOD_SWAP[node.attr]
    return True


def _drop_not(node: ast.AST, apply: bool) -> bool:
    # Applies to the parent of a `not x`, which is replaced by `x`.
    for field, value in ast.iter_fields(node):
        if _is_not(value):
            if apply:
                setattr(node, field, value.operand)
            return True
        if isinstance(value, list):
            for i, item in enumerate(value):
                if _is_not(item):
                    if apply:
                        value[i] = item.operand
                    return True
    return False


Mutator = Callable[[ast.AST, bool], bool]

OPERATORS: dict[str, Mutator] = {
    "flip_compare": _flip_compare,
    "off_by_one": _off_by_one,
    "swap_boolop": _swap_boolop,
    "negate_condition": _negate_condition,
    "swap_binop": _swap_binop,
    "drop_return_element": _drop_return_element,
    "swap_builtin": _swap_builtin,
    "swap_method": _swap_method,
    "drop_not": _drop_not,
}
"""Every operator by name: ``op(node, apply)`` says whether it applies and, if ``apply``,
mutates the node in place."""

WEIGHTS: dict[str, float] = {
    # Share of each operator's mutants failing the HumanEval tests, over every site in the
    # canonical solutions of all 164 problems (1,479 mutants):
    "negate_condition": 3.0,  # 0.99
    "drop_not": 2.0,  # 1.00
    "swap_builtin": 2.0,  # 0.96
    "drop_return_element": 2.0,  # 0.94
    "swap_binop": 2.0,  # 0.93
    "swap_boolop": 1.5,  # 0.90
    "off_by_one": 1.0,  # 0.84
    "flip_compare": 1.0,  # 0.85
    "swap_method": 0.5,  # 0.61
}
"""Relative chance of picking each operator (among those with a site), from the measurement."""


def _in_region(node: ast.AST, region: Sequence[tuple[int, int]] | None,
               loops: Sequence[tuple[int, int]]) -> bool:
    line = getattr(node, "lineno", None)
    if line is None or any(lo <= line <= hi for lo, hi in loops):
        return False
    return region is None or any(lo <= line <= hi for lo, hi in region)


def find_sites(source: str, region: Sequence[tuple[int, int]] | None = None,
               operators: Iterable[str] | None = None) -> list[Site]:
    """Every place an operator applies, optionally only on lines inside ``region``.

    Indices count the nodes of a fresh parse in ``ast.walk`` order. Nothing inside a ``while``
    loop is mutated: such mutants mostly loop forever, which costs a whole test timeout.
    """
    names = list(operators) if operators is not None else list(OPERATORS)
    nodes = list(ast.walk(ast.parse(source)))
    loops = [(n.lineno, n.end_lineno or n.lineno) for n in nodes if isinstance(n, ast.While)]
    return [Site(name, index) for name in names for index, node in enumerate(nodes)
            if _in_region(node, region, loops) and OPERATORS[name](node, False)]


def apply_site(source: str, site: Site) -> str:
    """The source with one mutation applied, re-generated with ``ast.unparse``."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    if site.index >= len(nodes) or not OPERATORS[site.operator](nodes[site.index], True):
        raise ValueError(f"{site} does not apply to this source")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def choose_site(sites: Sequence[Site], rng: random.Random) -> Site | None:
    """Pick an operator by ``WEIGHTS`` (among those with a site), then one of its sites."""
    by_operator: dict[str, list[Site]] = {}
    for site in sites:
        by_operator.setdefault(site.operator, []).append(site)
    if not by_operator:
        return None
    names = sorted(by_operator)
    weights = [WEIGHTS.get(name, 1.0) for name in names]
    name = rng.choices(names, weights=weights)[0]
    return rng.choice(by_operator[name])


def mutate(source: str, rng: random.Random,
           region: Sequence[tuple[int, int]] | None = None) -> str | None:
    """A mutant of ``source`` chosen with ``rng``, or None when no operator applies."""
    site = choose_site(find_sites(source, region), rng)
    return apply_site(source, site) if site is not None else None


def changed_lines(original: str | None, solution: str) -> list[tuple[int, int]]:
    """Line ranges (1-based, inclusive) of the solution that differ from the original."""
    new = solution.splitlines()
    if original is None:
        return [(1, max(len(new), 1))]
    matcher = difflib.SequenceMatcher(a=original.splitlines(), b=new, autojunk=False)
    return [(j1 + 1, max(j2, j1 + 1)) for tag, _, _, j1, j2 in matcher.get_opcodes()
            if tag != "equal"]


def changed_functions(original: str | None, solution: str) -> list[tuple[int, int]]:
    """Line ranges of the solution's functions that are new or differ from the original.

    Methods are compared by qualified name; a file that did not exist counts as all changed.
    """
    if original is None:
        return [(1, max(len(solution.splitlines()), 1))]
    new_funcs = _functions(solution)
    try:
        old_funcs = _functions(original)
    except SyntaxError:
        return [span for span, _ in new_funcs.values()]
    return [span for name, (span, dump) in new_funcs.items()
            if name not in old_funcs or old_funcs[name][1] != dump]


def partial_reverts(original: str, solution: str) -> list[str]:
    """The solution with one changed hunk put back as it was: an incomplete fix.

    Only variants whose code (docstrings aside) differs from the solution are returned.
    """
    old, new = original.splitlines(keepends=True), solution.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    hunks = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    if len(hunks) < 2:
        return []
    target = _code_dump(solution)
    variants = []
    for _, i1, i2, j1, j2 in hunks:
        text = "".join(new[:j1] + old[i1:i2] + new[j2:])
        try:
            if _code_dump(text) != target:
                variants.append(text)
        except SyntaxError:
            continue
    return variants


def _code_dump(source: str) -> str:
    """The AST of ``source`` without docstrings, as text."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _functions(source: str) -> dict[str, tuple[tuple[int, int], str]]:
    found: dict[str, tuple[tuple[int, int], str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = (node.lineno, node.end_lineno or node.lineno)
                found[prefix + node.name] = (span, ast.dump(node))
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return found
