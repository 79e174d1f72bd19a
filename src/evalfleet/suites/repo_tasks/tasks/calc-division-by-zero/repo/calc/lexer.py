"""Split expression text into tokens."""

import re

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_]\w*)|(\*\*|[-+*/%^(),]))")


class CalcError(Exception):
    """The expression cannot be parsed or evaluated."""


def tokenize(text):
    """Tokens as (kind, value) pairs, ending with ('end', None).

    Kinds are 'num' (an int or float value), 'name' and 'op'.
    """
    tokens = []
    text = text.rstrip()
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise CalcError(f"unexpected character {text[pos]!r} at position {pos}")
        number, name, op = match.groups()
        if number is not None:
            tokens.append(("num", float(number) if "." in number else int(number)))
        elif name is not None:
            tokens.append(("name", name))
        else:
            tokens.append(("op", op))
        pos = match.end()
    tokens.append(("end", None))
    return tokens
