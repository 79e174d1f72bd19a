"""Split text into words and sentences."""

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+")


def words(text):
    """Lower-cased words; an apostrophe inside a word keeps it whole (don't, john's)."""
    return [word.lower() for word in _WORD.findall(text)]


def sentences(text):
    """Sentences split on '.', '!' and '?', stripped, empty ones dropped."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
