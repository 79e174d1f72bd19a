"""Parse errors worded for the user who wrote the file."""

from __future__ import annotations

import json


def value_error_text(exc: ValueError) -> str:
    """Why ``json.loads`` or YAML's constructor refused a value, for the person who wrote it.

    A :class:`json.JSONDecodeError` gives its message without the position (callers name the
    line). Other ``ValueError``\\ s come from values the syntax allows but Python cannot hold:
    an integer of more than 4,300 digits, a date such as 2021-13-45; Python's advice to the
    programmer (raise ``sys.set_int_max_str_digits``) is left out.
    """
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return str(exc).split("; use sys.set_int_max_str_digits", 1)[0]
