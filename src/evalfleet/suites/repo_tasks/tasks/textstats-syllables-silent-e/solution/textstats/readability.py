"""Readability measures."""

import math
import re

from textstats.tokenize import sentences, words

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables(word):
    """A rough syllable count: vowel groups, minus a silent final 'e'; at least 1."""
    word = word.lower()
    count = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith("le") and count > 1:
        count -= 1
    return max(count, 1)


def flesch_reading_ease(text):
    """The Flesch reading-ease score, rounded to 2 decimals (0.0 for empty text)."""
    found = words(text)
    sentence_count = len(sentences(text))
    if not found or not sentence_count:
        return 0.0
    syllable_count = sum(syllables(word) for word in found)
    score = (
        206.835
        - 1.015 * (len(found) / sentence_count)
        - 84.6 * (syllable_count / len(found))
    )
    return round(score, 2)


def reading_time_seconds(text, wpm=200):
    """Seconds needed to read the text at `wpm` words per minute, rounded up."""
    if wpm <= 0:
        raise ValueError("wpm must be positive")
    return math.ceil(len(words(text)) * 60 / wpm)
