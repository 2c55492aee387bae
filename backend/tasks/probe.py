"""Held-out probe texts of the language-model tasks, with per-token annotation tracks.

Hidden-state probes run a trained model over a fixed text and compare each unit's
trace with what is known about every token (bracket depth, inside a string, ...).
Numpy only (no torch); the same corpus on every call.

Example::

    corpus = probe_corpus(get_task("brackets-lstm"))
    corpus.ids[:10], corpus.tracks["depth"][:10], corpus.source
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .annotations import BRACKET_SEEDS, bracket_tracks, code_tracks, generate_brackets
from .registry import VOCABS, TaskInfo
from .text import encode_chars, is_code_val_file, iter_stdlib_sources

MIN_PROBE_TOKENS = 20_000
_MAX_LISTED_FILES = 6


@dataclass(frozen=True)
class ProbeCorpus:
    """A held-out text as token ids, what each id prints as, and per-token tracks."""

    ids: np.ndarray  # int64 token ids, len == n_tokens
    vocab: tuple[str, ...]  # id -> the token's text (what the page prints under the traces)
    tracks: dict[str, np.ndarray]  # track name -> float32 per-token values, each len == n_tokens
    source: str  # one line saying what the text is

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def text(self) -> str:
        return "".join(self.vocab[i] for i in self.ids)


def probe_corpus(info: TaskInfo, n_tokens: int | None = None) -> ProbeCorpus:
    """The probe text of language-model task ``info``: ``n_tokens`` tokens (default
    ``info.probe_tokens``) that training never sees.

    ``code-lstm``: whole validation files of the standard library (file ``i`` with
    ``i % 10 == 0``) in order, annotated file by file, then cut to ``n_tokens``.
    ``brackets-lstm``: text drawn with a seed that neither training nor validation uses.
    ``recall-lstm``: key-recall episodes drawn with a seed of their own.
    ``tags-bidir``: tagged sentences one after another (a seed of their own), with tracks of each token's
    tag and whether its word is ambiguous.
    """
    if info.kind == "tag":
        return _tag_corpus(info, info.probe_tokens if n_tokens is None else int(n_tokens))
    if info.kind != "lm":
        raise ValueError(f"{info.name} has no token corpus; hidden-state probes apply to text tasks")
    n = info.probe_tokens if n_tokens is None else int(n_tokens)
    if n < 1:
        raise ValueError(f"n_tokens must be positive, not {n}")
    if info.name == "code-lstm":
        return _code_corpus(n)
    if info.name == "brackets-lstm":
        return _bracket_corpus(n)
    if info.name == "recall-lstm":
        return _recall_corpus(n)
    raise ValueError(f"no probe corpus for task {info.name!r}")


def _code_corpus(n: int) -> ProbeCorpus:
    names, texts, total = [], [], 0
    for i, (name, text) in enumerate(iter_stdlib_sources()):
        if total >= n:
            break
        if is_code_val_file(i) and text:
            names.append(name)
            texts.append(text)
            total += len(text)
    if total < n:
        raise ValueError(f"the standard library's validation files hold {total:,} characters, fewer than {n:,}")
    per_file = [code_tracks(t) for t in texts]
    tracks = {k: np.concatenate([tr[k] for tr in per_file])[:n] for k in per_file[0]}
    ids = encode_chars("".join(texts)[:n])
    listed = ", ".join(names[:_MAX_LISTED_FILES]) + (f" and {len(names) - _MAX_LISTED_FILES} more"
                                                     if len(names) > _MAX_LISTED_FILES else "")
    source = f"held-out standard-library files (validation split), first {n:,} characters: {listed}"
    return ProbeCorpus(ids=ids, vocab=VOCABS["code-lstm"], tracks=tracks, source=source)


def _bracket_corpus(n: int) -> ProbeCorpus:
    seed = BRACKET_SEEDS["probe"]
    text = generate_brackets(n, seed)
    ids = encode_chars(text, VOCABS["brackets-lstm"])
    source = f"{n:,} characters of generated nested brackets (seed {seed}, unused by training and validation)"
    return ProbeCorpus(ids=ids, vocab=VOCABS["brackets-lstm"], tracks=bracket_tracks(text), source=source)


def _recall_corpus(n: int) -> ProbeCorpus:
    from .recall import RECALL_SEEDS, generate_recall, recall_tracks

    seed = RECALL_SEEDS["probe"]
    text = generate_recall(n, seed)
    ids = encode_chars(text, VOCABS["recall-lstm"])
    source = f"{n:,} characters of generated key-recall episodes (seed {seed}, unused by training and validation)"
    return ProbeCorpus(ids=ids, vocab=VOCABS["recall-lstm"], tracks=recall_tracks(text), source=source)


def _tag_corpus(info: TaskInfo, n: int) -> ProbeCorpus:
    """Tagged sentences, one after another: tracks ``ambiguous`` (1: the word can take two tags), ``tag``
    (the tag's id) and one 0/1 track per tag (``tag=NOUN``, ...). The tagger reads each sentence from a
    zero state in training; the probe replays them as one text, as for the language models."""
    from .tagging import TAG_SEEDS, TAGS, probe_stream

    if n < 1:
        raise ValueError(f"n_tokens must be positive, not {n}")
    stream = probe_stream(n)
    tracks = {"ambiguous": stream["ambiguous"].astype(np.float32), "tag": stream["tags"].astype(np.float32)}
    tracks.update({f"tag={t}": (stream["tags"] == i).astype(np.float32) for i, t in enumerate(TAGS)})
    source = f"{n:,} words of generated tagged sentences (seed {TAG_SEEDS['probe']}, unused by training and validation)"
    return ProbeCorpus(ids=stream["ids"], vocab=VOCABS[info.name], tracks=tracks, source=source)
