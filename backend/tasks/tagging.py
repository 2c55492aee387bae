"""Generated sentences with part-of-speech-like tags, where only the words *after* a word decide its tag.

A small grammar: ``NP VERB [NP] [PREP NP] [ADV] .``, a noun phrase being a determiner, up to two
modifiers and a head. About a quarter of the words are **ambiguous**: their word alone allows two tags,
and the left context does not tell which:

- ``cold``, ``light``, ``green``, ... are ADJ when a modifier (another modifier or the head follows:
  ``the cold wind``) and NOUN when the head of the phrase (a verb, a preposition, an adverb or ``.``
  follows: ``the cold spreads``). Both come after the same determiners and adjectives.
- ``that`` and ``this`` are DET when a noun phrase follows (``that dog sleeps``) and PRON when a verb
  follows (``that sleeps``).

So a tagger that reads left to right must guess at an ambiguous word (about as well as the tags'
frequencies allow) while one that also reads right to left sees the next word and knows. The
``ambiguous`` flag of a token is a property of its word (one of the words above), whatever the context.

Pure Python and numpy (the registry imports the vocabulary; data.py makes tensors).

Example::

    s = generate_sentences(1, seed=0)[0]
    list(zip(s.words, s.tags, s.ambiguous))[:3]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

TAGS = ("DET", "ADJ", "NOUN", "VERB", "PREP", "ADV", "PRON", "PUNCT")
TAG_ID = {t: i for i, t in enumerate(TAGS)}
IGNORE = -100  # label of padding (torch's cross_entropy skips it)

DETS = ("the", "a", "every", "some", "my", "his", "her", "one")
DEMONSTRATIVES = ("that", "this")  # DET before a noun phrase, PRON before a verb
ADJS = ("big", "small", "old", "happy", "quiet", "red", "tall", "young", "strange", "angry")
NOUNS = ("dog", "cat", "man", "woman", "bird", "house", "river", "child", "teacher", "car", "tree", "song")
AMBIGUOUS_NOMINALS = ("cold", "light", "green", "square", "fancy", "bitter", "plain", "dark", "gold", "chill",
                      "blue", "sweet", "silver", "stable", "dry", "fine")  # ADJ as modifier, NOUN as head
TRANSITIVE = ("sees", "likes", "follows", "finds", "holds", "watches", "moves", "paints")
INTRANSITIVE = ("sleeps", "runs", "falls", "shines", "waits", "sings", "spreads", "fades")
PREPS = ("near", "under", "behind", "with", "beside")
ADVS = ("slowly", "often", "quietly", "today", "again")
AMBIGUOUS_WORDS = frozenset(AMBIGUOUS_NOMINALS + DEMONSTRATIVES)

TAG_VOCAB: tuple[str, ...] = ("<pad>", "<unk>") + tuple(dict.fromkeys(
    DETS + DEMONSTRATIVES + ADJS + NOUNS + AMBIGUOUS_NOMINALS + TRANSITIVE + INTRANSITIVE + PREPS + ADVS + (".",)))
TAG_MAX_LEN = 16  # subject (4) + verb + object (4) + preposition and phrase (5) + adverb + "."
TAG_SEEDS = {"train": 11, "val": 22, "probe": 33}
TAG_SIZES = {"train": 20_000, "val": 2_000}
TAG_PROBE_TOKENS = 4096
# how often a slot takes an ambiguous word: a modifier (as ADJ) and a head (as NOUN) about equally often
P_AMBIGUOUS_MODIFIER, P_AMBIGUOUS_HEAD, P_PRONOUN_SUBJECT = 0.5, 0.45, 0.12
_WORD_ID = {w: i for i, w in enumerate(TAG_VOCAB)}


@dataclass(frozen=True)
class Sentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    ambiguous: tuple[bool, ...]


def _noun_phrase(rng: np.random.Generator, subject: bool) -> list[tuple[str, str]]:
    """A determiner (or a demonstrative), 0-2 modifiers and a head, as (word, tag)."""
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    det = pick(DEMONSTRATIVES) if subject and rng.random() < 0.3 else pick(DETS)
    out = [(det, "DET")]
    for _ in range(int(rng.choice(3, p=[0.35, 0.4, 0.25]))):
        out.append((pick(AMBIGUOUS_NOMINALS) if rng.random() < P_AMBIGUOUS_MODIFIER else pick(ADJS), "ADJ"))
    out.append((pick(AMBIGUOUS_NOMINALS) if rng.random() < P_AMBIGUOUS_HEAD else pick(NOUNS), "NOUN"))
    return out


def sentence(rng: np.random.Generator) -> Sentence:
    """One sentence of the grammar, with its tags."""
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    if rng.random() < P_PRONOUN_SUBJECT:
        pairs = [(pick(DEMONSTRATIVES), "PRON")]
    else:
        pairs = _noun_phrase(rng, subject=True)
    if rng.random() < 0.6:
        pairs += [(pick(TRANSITIVE), "VERB")] + _noun_phrase(rng, subject=False)
    else:
        pairs.append((pick(INTRANSITIVE), "VERB"))
    if rng.random() < 0.4:
        pairs += [(pick(PREPS), "PREP")] + _noun_phrase(rng, subject=False)
    if rng.random() < 0.3:
        pairs.append((pick(ADVS), "ADV"))
    pairs.append((".", "PUNCT"))
    words, tags = zip(*pairs)
    return Sentence(words=words, tags=tags, ambiguous=tuple(w in AMBIGUOUS_WORDS for w in words))


def generate_sentences(n: int, seed: int) -> list[Sentence]:
    """``n`` sentences drawn with ``seed`` (the same every call).

    >>> s = generate_sentences(200, seed=1)
    >>> 0.15 < sum(sum(x.ambiguous) for x in s) / sum(len(x.words) for x in s) < 0.35
    True
    """
    rng = np.random.default_rng(seed)
    return [sentence(rng) for _ in range(n)]


def encode_sentences(sentences: Sequence[Sentence]) -> dict[str, np.ndarray]:
    """``x`` int64 ``(n, TAG_MAX_LEN)`` word ids (0 = padding), ``y`` int64 tag ids (``IGNORE`` on
    padding) and ``ambiguous`` bool, both the shape of ``x``."""
    n = len(sentences)
    x = np.zeros((n, TAG_MAX_LEN), np.int64)
    y = np.full((n, TAG_MAX_LEN), IGNORE, np.int64)
    amb = np.zeros((n, TAG_MAX_LEN), bool)
    for i, s in enumerate(sentences):
        k = len(s.words)
        x[i, :k] = [_WORD_ID.get(w, 1) for w in s.words]
        y[i, :k] = [TAG_ID[t] for t in s.tags]
        amb[i, :k] = s.ambiguous
    return {"x": x, "y": y, "ambiguous": amb}


def probe_stream(n_tokens: int = TAG_PROBE_TOKENS, seed: int = TAG_SEEDS["probe"]) -> dict[str, np.ndarray]:
    """Sentences one after another, cut to ``n_tokens``: ``ids``, ``tags`` (tag ids) and ``ambiguous``
    per token: the hidden-state probe's text and its annotation tracks."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    tags: list[str] = []
    amb: list[bool] = []
    while len(words) < n_tokens:
        s = sentence(rng)
        words += s.words
        tags += s.tags
        amb += s.ambiguous
    return {"ids": np.array([_WORD_ID[w] for w in words[:n_tokens]], np.int64),
            "tags": np.array([TAG_ID[t] for t in tags[:n_tokens]], np.int64),
            "ambiguous": np.array(amb[:n_tokens], bool)}


# The word embeddings' labels on Projections: the tag a word takes, or the two an ambiguous word can take.
WORD_CLASSES = ("DET", "ADJ", "NOUN", "VERB", "PREP", "ADV", "PUNCT", "ADJ or NOUN", "DET or PRON", "other")
_CLASS_OF = {**{w: 0 for w in DETS}, **{w: 1 for w in ADJS}, **{w: 2 for w in NOUNS},
             **{w: 3 for w in TRANSITIVE + INTRANSITIVE}, **{w: 4 for w in PREPS}, **{w: 5 for w in ADVS}, ".": 6,
             **{w: 7 for w in AMBIGUOUS_NOMINALS}, **{w: 8 for w in DEMONSTRATIVES}}


def word_class(word: str) -> int:
    """The index in :data:`WORD_CLASSES` of a vocabulary word.

    >>> [WORD_CLASSES[word_class(w)] for w in ("the", "cold", "that", "sleeps", "<pad>")]
    ['DET', 'ADJ or NOUN', 'DET or PRON', 'VERB', 'other']
    """
    return _CLASS_OF.get(word, len(WORD_CLASSES) - 1)
