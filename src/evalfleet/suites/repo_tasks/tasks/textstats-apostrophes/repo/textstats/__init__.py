"""Small text statistics."""

from textstats.counts import average_word_length, top_words, word_frequencies
from textstats.readability import flesch_reading_ease, syllables
from textstats.tokenize import sentences, words

__all__ = [
    "average_word_length",
    "flesch_reading_ease",
    "sentences",
    "syllables",
    "top_words",
    "word_frequencies",
    "words",
]
