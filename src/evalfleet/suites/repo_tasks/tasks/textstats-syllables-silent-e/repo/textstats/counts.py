"""Word counts."""

from collections import Counter

from textstats.tokenize import words

STOPWORDS = frozenset({"a", "an", "and", "in", "is", "it", "of", "the", "to"})


def word_frequencies(text, ignore_stopwords=False):
    """A dict of word -> number of occurrences."""
    counts = Counter(words(text))
    if ignore_stopwords:
        for stopword in STOPWORDS:
            counts.pop(stopword, None)
    return dict(counts)


def top_words(text, n=3, ignore_stopwords=False):
    """The n most frequent words as (word, count) pairs, most frequent first.

    Words with the same count are ordered alphabetically.
    """
    frequencies = word_frequencies(text, ignore_stopwords)
    ranked = sorted(frequencies.items(), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:n]


def average_word_length(text):
    """Mean number of characters per word, 0.0 for text without words."""
    found = words(text)
    if not found:
        return 0.0
    return sum(len(word) for word in found) / len(found)
