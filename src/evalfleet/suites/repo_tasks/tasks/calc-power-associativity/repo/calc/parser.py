"""Recursive-descent parser producing a small tuple-based syntax tree.

Grammar, loosest binding first:

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/' | '%') unary)*
    unary  := ('-' | '+') unary | power
    power  := atom (('**' | '^') unary)?
    atom   := number | name | name '(' [expr (',' expr)*] ')' | '(' expr ')'

Nodes: ('num', value), ('var', name), ('neg', node), ('bin', op, left, right) and
('call', name, [arguments]).
"""

from calc.lexer import CalcError, tokenize


def parse(text):
    """The syntax tree of an expression."""
    parser = _Parser(tokenize(text))
    node = parser.expr()
    kind, value = parser.peek()
    if kind != "end":
        raise CalcError(f"unexpected token {value!r}")
    return node


class _Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos]

    def next(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def accept(self, *ops):
        kind, value = self.peek()
        if kind == "op" and value in ops:
            self.pos += 1
            return value
        return None

    def expect(self, op):
        if self.accept(op) is None:
            kind, value = self.peek()
            found = "end of input" if kind == "end" else repr(value)
            raise CalcError(f"expected {op!r}, found {found}")

    def expr(self):
        node = self.term()
        while (op := self.accept("+", "-")) is not None:
            node = ("bin", op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while (op := self.accept("*", "/", "%")) is not None:
            node = ("bin", op, node, self.unary())
        return node

    def unary(self):
        if self.accept("-") is not None:
            return ("neg", self.unary())
        if self.accept("+") is not None:
            return self.unary()
        return self.power()

    def power(self):
        node = self.atom()
        while self.accept("**") is not None:
            node = ("bin", "**", node, self.atom())
        return node

    def atom(self):
        kind, value = self.next()
        if kind == "num":
            return ("num", value)
        if kind == "name":
            if self.accept("(") is not None:
                return ("call", value, self.arguments())
            return ("var", value)
        if kind == "op" and value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if kind == "end":
            raise CalcError("unexpected end of input")
        raise CalcError(f"unexpected token {value!r}")

    def arguments(self):
        args = []
        if self.accept(")") is not None:
            return args
        args.append(self.expr())
        while self.accept(",") is not None:
            args.append(self.expr())
        self.expect(")")
        return args
