"""Parse INI text into nested dictionaries."""

import re

_INLINE_COMMENT = re.compile(r"\s[;#]")


class ParseError(ValueError):
    """Malformed INI text; `line` is the 1-based line number."""

    def __init__(self, message, line):
        super().__init__(f"line {line}: {message}")
        self.line = line


def parse_ini(text):
    """Sections mapped to {key: value} dictionaries.

    Keys are lower-cased; keys before the first section header go to 'DEFAULT'. Lines
    starting with ';' or '#' are comments, and so is anything after ' ;' or ' #' in an
    unquoted value. Values wrapped in single or double quotes are taken verbatim without
    the quotes.
    """
    sections = {}
    current = "DEFAULT"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ParseError("unterminated section header", lineno)
            current = line[1:-1].strip()
            if not current:
                raise ParseError("empty section name", lineno)
            sections.setdefault(current, {})
            continue
        if "=" not in line:
            raise ParseError(f"expected 'key = value', got {line!r}", lineno)
        key, value = line.split("=", 1)
        key = key.strip().lower()
        if not key:
            raise ParseError("empty key", lineno)
        sections.setdefault(current, {})[key] = _clean_value(value)
    return sections


def _clean_value(value):
    value = value.strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end > 0:
            return value[1:end]
        return value
    match = _INLINE_COMMENT.search(value)
    if match:
        value = value[: match.start()]
    return value.strip()
