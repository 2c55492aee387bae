"""English prose that ships with Python: pydoc's help topics (``pydoc_data.topics``), as words.

The corpus of ``prose-word2vec``: about 64,000 words of reference text (the language reference's
help topics: "assignment", "class", "for", ...), no download. Words are lower-cased identifiers
(``[a-z_][a-z0-9_]*``, so ``__init__`` and ``int`` stay whole); the vocabulary is the
``W2V_VOCAB_SIZE - 1`` most frequent words (ties alphabetical; 1,000, each seen at least 7 times: rarer
words get too few contexts to find their place, and filled the map with noise) plus ``<unk>`` at id 0,
and unknown words are dropped from the streams (as word2vec's ``min_count`` drops them). Topics are
split into training and validation by their sorted position (every tenth topic is validation), so
validation text is unseen.

Frequent words are subsampled once (Mikolov et al. 2013: a word of frequency ``f`` is kept with
probability ``sqrt(t / f) + t / f``), with a fixed seed, and the negative-sampling distribution is the
unigram distribution to the 3/4 power. ``t = 1e-2`` (word2vec's own default is 1e-3, papers use 1e-5 on
billions of words): this corpus is small, and every discarded word is context lost. Measured at 1,000
words and 4,000 steps, with the word groups of ``bench/projection_quality.py`` (the share of a group's
words with another word of the group among their 10 nearest in the embedding space): ``t = 1e-4`` kept 18,000 of the 56,000 training words (0.69, validation loss 3.12), ``1e-3``
39,000 (0.84-0.87 over three seeds, 2.63-2.66), ``1e-2`` 53,000 ("the" still halved; 0.94-0.95, 2.46-2.48).

Example::

    corpus = prose_corpus()
    corpus.vocab[:4]          # ('<unk>', 'the', 'a', 'is')
    corpus.train_ids          # int64 word ids of the (subsampled) training stream
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .registry import W2V_VOCAB_SIZE

UNK = "<unk>"
WORD = re.compile(r"[a-z_][a-z0-9_]*")
SUBSAMPLE_T = 1e-2
NOISE_POWER = 0.75
SUBSAMPLE_SEED = 0


@dataclass(frozen=True)
class ProseCorpus:
    vocab: tuple[str, ...]
    counts: np.ndarray        # corpus frequency of each vocabulary entry (all topics, before subsampling)
    train_ids: np.ndarray     # subsampled training stream
    val_ids: np.ndarray       # validation stream (not subsampled)
    noise: np.ndarray         # negative-sampling probabilities, counts ** 0.75 normalised (0 for <unk>)


def topic_texts() -> list[tuple[str, str]]:
    """``[(topic, text), ...]`` of pydoc's help topics, sorted by topic name."""
    from pydoc_data.topics import topics

    return sorted(topics.items())


def words(text: str) -> list[str]:
    """Lower-cased identifier-like words of ``text``."""
    return WORD.findall(text.lower())


@lru_cache(maxsize=4)
def prose_corpus(vocab_size: int = W2V_VOCAB_SIZE, subsample_t: float = SUBSAMPLE_T) -> ProseCorpus:
    """The corpus, vocabulary and streams (cached: 0.2 s); ``subsample_t`` is Mikolov's ``t``."""
    topics = topic_texts()
    tokens = [words(text) for _, text in topics]
    counter = Counter(w for ws in tokens for w in ws)
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size - 1]
    vocab = (UNK,) + tuple(w for w, _ in ranked)
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.array([0] + [c for _, c in ranked], dtype=np.int64)
    train = [index[w] for i, ws in enumerate(tokens) if i % 10 != 9 for w in ws if w in index]
    val = [index[w] for i, ws in enumerate(tokens) if i % 10 == 9 for w in ws if w in index]
    train_ids = np.array(train, dtype=np.int64)
    freq = counts / counts.sum()
    ratio = subsample_t / np.maximum(freq, 1e-12)
    keep = np.minimum(1.0, np.sqrt(ratio) + ratio)
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    train_ids = train_ids[rng.random(len(train_ids)) < keep[train_ids]]
    noise = counts.astype(np.float64) ** NOISE_POWER
    noise[0] = 0.0
    return ProseCorpus(vocab, counts, train_ids, np.array(val, dtype=np.int64), noise / noise.sum())
