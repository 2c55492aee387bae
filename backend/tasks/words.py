"""Word-level text as numpy ids: tokenisation, vocabularies, encoding and word counts.

Used by the sentiment tasks (the generated reviews of :mod:`backend.tasks.sentiment.corpus`
and users' CSV files), and by inference on typed text. Pure numpy + standard library (no torch).
A vocabulary is a tuple of words whose index 0 is :data:`PAD` and index 1 :data:`UNK`.

Example::

    tokenize("The plot didn't work!")          # ["the", "plot", "did", "n't", "work", "!"]
    vocab = build_vocab([["a", "b", "a"], ["c"]])   # ("<pad>", "<unk>", "a", "b", "c")
    ids, lengths = encode([["a", "c", "zzz"]], vocab, max_len=4)
    ids                                        # [[2, 4, 1, 0]] (unknown -> 1, padding -> 0)
    decode(ids[0], vocab)                      # ["a", "c", "<unk>"]
    word_counts([["a", "b", "a"]], vocab)      # [0, 0, 2, 1, 0]
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

PAD = "<pad>"
UNK = "<unk>"

# -- tokenisation -------------------------------------------------------------------

# Penn-Treebank style: "didn't" -> "did" "n't", "can't" -> "ca" "n't", "it's" -> "it" "'s";
# hyphenated words stay whole; every other non-space, non-word character is a token.
_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:-[^\W_]+)*|\S")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``; punctuation is separate and a negative
    contraction is split off as ``n't`` (``"didn't"`` -> ``["did", "n't"]``).
    Typographic apostrophes count as ``'``."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'").replace("\u2018", "'"))


# -- vocabulary and ids ---------------------------------------------------------------

def build_vocab(token_lists: Iterable[Sequence[str]], max_size: int | None = None,
                min_count: int = 1) -> tuple[str, ...]:
    """``(PAD, UNK, words...)``: words seen at least ``min_count`` times, by descending
    frequency, ties alphabetical; at most ``max_size`` entries in all (PAD and UNK included)."""
    if max_size is not None and max_size < 2:
        raise ValueError("max_size must be at least 2 (PAD and UNK)")
    counts = Counter(tok for toks in token_lists for tok in toks)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[:max_size - 2]
    return (PAD, UNK, *words)


def encode(token_lists: Iterable[Sequence[str]], vocab: Sequence[str],
           max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths): int64 (N, max_len) ids, unknown words -> 1 (UNK), right-padded with
    0 (PAD) and truncated at ``max_len``; int64 (N,) lengths after truncation."""
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    index = {w: i for i, w in enumerate(vocab)}
    rows = [[index.get(tok, 1) for tok in toks[:max_len]] for toks in token_lists]
    ids = np.zeros((len(rows), max_len), dtype=np.int64)
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids, lengths


def decode(ids: Sequence[int], vocab: Sequence[str]) -> list[str]:
    """Words of one row of ids, PAD dropped (the inverse of :func:`encode` for known words)."""
    return [vocab[i] for i in ids if i != 0]


def word_counts(token_lists: Iterable[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    """int64 count of each vocabulary id in the corpus; out-of-vocabulary words count as UNK."""
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.zeros(len(vocab), dtype=np.int64)
    for tok, c in Counter(tok for toks in token_lists for tok in toks).items():
        counts[index.get(tok, 1)] += c
    return counts
