"""Sentiment of short English reviews: the public face of the sentiment tasks' data.

Every name the tasks, probes, tests and dashboard use is importable from here; the code
lives in four modules with one job each (import from them directly where that reads better):

- :mod:`backend.tasks.sentiment.rule`: the lexicon, word classes (negators, intensifiers,
  contrasts, concessions) and the composition rule as per-token tracks (:func:`sentiment_tracks`,
  :func:`rule_label`). Negation flips a word ("not bad" is positive); in a contrast the clause
  after "but"/"yet" decides while a concession ("although"/"though" ...) never does.
- :mod:`backend.tasks.sentiment.corpus`: the generated compositional corpus
  (:func:`generate_sentiment`, :class:`Example`, :func:`make_example`, :func:`track_matrix`).
  A bag of words scores only ~57% on it.
- :mod:`backend.tasks.words`: tokenisation, vocabularies, ids and word counts.
- :mod:`backend.tasks.sentiment.csv_file`: users' own CSV files (:func:`load_sentiment_csv`).

This module itself holds the built-in tasks' constants: labels, corpus seeds, and the
vocabulary and text length of the models trained on the generated corpus. Pure numpy +
standard library (no torch).

Example::

    train = generate_sentiment(20_000, SENTIMENT_SEEDS["train"])
    ex = train[0]     # e.g. ex.text "the plot wasn't bad , but the ending was dull", ex.label 0
    ex.tokens         # ("the", "plot", "was", "n't", "bad", ",", "but", ...)
    ex.tracks["negated"]                 # (0, 0, 0, 1, 1, 0, 0, ...)
    vocab = build_vocab(ex.tokens for ex in train)
    ids, lengths = encode([ex.tokens for ex in train], vocab, max_len=32)
    tracks = sentiment_tracks(tokenize("although slow , it was wonderful"))
    tracks["sentiment"][-1]              # 1.0: the main clause decides
    texts, labels, names = load_sentiment_csv("reviews.csv")   # names e.g. ("neg", "pos")
"""
from __future__ import annotations

from .corpus import P_NEGATED, SENTIMENT_KINDS, Example, generate_sentiment, make_example, track_matrix
from .csv_file import SentimentFileError, load_sentiment_csv
from .rule import (CLAUSE_BREAKS, CONCESSIVES, CONTRASTS, DOWNTONERS, INTENSIFIERS, LEXICON, NEGATORS,
                             SENTIMENT_DOMAINS, SENTIMENT_TRACKS, rule_label, sentiment_tracks)
from .rule import _DOMAINS, _entry  # noqa: F401 - the lexicon's tests read them here
from ..words import PAD, UNK, build_vocab, decode, encode, tokenize, word_counts

__all__ = [
    "SENTIMENT_LABELS", "SENTIMENT_SEEDS", "SENTIMENT_VOCAB", "SENTIMENT_MAX_LEN",
    # sentiment_rule
    "SENTIMENT_DOMAINS", "SENTIMENT_TRACKS", "LEXICON", "NEGATORS", "INTENSIFIERS", "DOWNTONERS", "CONTRASTS",
    "CONCESSIVES", "CLAUSE_BREAKS", "sentiment_tracks", "rule_label",
    # sentiment_corpus
    "SENTIMENT_KINDS", "P_NEGATED", "Example", "make_example", "generate_sentiment", "track_matrix",
    # words
    "PAD", "UNK", "tokenize", "build_vocab", "encode", "decode", "word_counts",
    # sentiment_csv
    "SentimentFileError", "load_sentiment_csv",
]

SENTIMENT_LABELS = ("negative", "positive")
# Seeds of the three generated corpora of sentiment-cnn / sentiment-lstm: all differ.
SENTIMENT_SEEDS = {"train": 101, "val": 102, "probe": 103}


def _builtin_vocab() -> tuple[str, ...]:
    """The generator's closed vocabulary, by frequency in a 3,000-example training corpus (60 ms);
    a test checks that no generated corpus has a word outside it."""
    return build_vocab(ex.tokens for ex in generate_sentiment(3000, SENTIMENT_SEEDS["train"]))


# The built-in sentiment tasks' vocabulary and text length (the longest generated text is 24 tokens).
SENTIMENT_VOCAB: tuple[str, ...] = _builtin_vocab()
SENTIMENT_MAX_LEN = 32
