"""Try it for the sequence tasks (issue 16) and the transformer language model: what :mod:`backend.inference`
calls for runs that are not a recurrent language model or a text classifier.

- :func:`translate`: an encoder-decoder (``dates-seq2seq``, ``numbers-seq2seq``) reads the typed text and
  writes its output greedily (free running, as in validation), with its attention matrix (output characters
  x input characters; None without attention).
- :func:`tag_words`: a tagger (``tags-bidir``) gives each word its likeliest tag, that tag's probability,
  and whether the word is one of the task's ambiguous words (only the next word decides its tag).
- :func:`transformer_generate` and :func:`transformer_teacher_forced`: text from a transformer language
  model, which reads at most ``context`` tokens at once (:func:`check_context` says so in a sentence).

Every problem the user can cause is a ``ValueError`` whose message the page shows as is.

Example::

    loaded = load_run(store, run_id)                       # backend.inference
    t = translate(loaded, "Tuesday 3rd of May 2021")
    t.output, t.weights.shape                              # '2021-05-03', (11, 23): with the end token
    tag_words(loaded_tagger, "the cold wind spreads .").tags   # ['DET', 'ADJ', 'NOUN', 'VERB', 'PUNCT']
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .tasks.dates import DATE_OUT_LEN, EOS, UNK
from .tasks.number_words import NUMBER_OUT_LEN
from .tasks.tagging import AMBIGUOUS_WORDS

OUT_LEN = {"dates-seq2seq": DATE_OUT_LEN, "numbers-seq2seq": NUMBER_OUT_LEN}  # output steps with the end token
LOWER_CASE = ("numbers-seq2seq",)  # tasks whose inputs are lower case: typed capitals are read as lower case
MAX_TAG_WORDS = 40  # the tagger learnt sentences of up to 16 words; longer ones still tag, but say little
UNKNOWN_WORD = 1    # the tagger's "<unk>"
_WORD = re.compile(r"[a-z]+|[.]")


@dataclass
class Translation:
    """What an encoder-decoder writes for one input."""

    keys: list[str]                 # the input, one character each (as read)
    queries: list[str]              # what it wrote, one character each, the end token last ("</s>")
    output: str                     # the written text, up to the end token
    weights: np.ndarray | None      # (len(queries), len(keys)) attention of each output step; None: no attention
    unknown: list[str]              # characters outside the vocabulary (read as unknown)
    ids: np.ndarray                 # input ids (T,)


@dataclass
class Tagging:
    """A tagger's answer for one sentence."""

    words: list[str]
    tags: list[str]                 # the likeliest tag of each word
    probs: np.ndarray               # (T,) the probability of that tag
    all_probs: np.ndarray           # (T, tags)
    ambiguous: list[bool]           # the word can take two tags and only the next word decides
    unknown: list[str]
    ids: np.ndarray


@torch.no_grad()
def translate(loaded, text: str | None) -> Translation:
    """Greedy, free-running decoding of ``text`` by the run's encoder-decoder (see the module docstring)."""
    text = (text or "").strip()
    task = loaded.spec.task
    if not text:
        raise ValueError("Type an input first: " + ("a date, e.g. 'Tuesday 3rd of May 2021'." if task == "dates-seq2seq"
                                                    else "a number in words, e.g. 'three hundred and five'."))
    if task in LOWER_CASE:
        text = text.lower()
    longest = loaded.info.input_shape[0]
    if len(text) > longest:
        raise ValueError(f"The input has {len(text)} characters; this model reads at most {longest} (the longest "
                         f"input of {task}). Shorten it.")
    index = {c: i for i, c in enumerate(loaded.vocab)}
    ids = np.array([index.get(c, UNK) for c in text], dtype=np.int64)  # one character: never a special token
    unknown = list(dict.fromkeys(c for c, i in zip(text, ids) if i == UNK))
    out, attn = loaded.model.greedy(torch.as_tensor(ids)[None], steps=OUT_LEN.get(task, DATE_OUT_LEN))
    row = out[0].tolist()
    n_out = row.index(EOS) + 1 if EOS in row else len(row)  # up to its end token
    queries = [loaded.vocab[i] if i > UNK else ("</s>" if i == EOS else "?") for i in row[:n_out]]
    written = "".join(q for q, i in zip(queries, row) if i > UNK)
    weights = attn[0, :n_out, :len(text)].float().numpy().copy() if attn is not None else None
    return Translation(keys=list(text), queries=queries, output=written, weights=weights, unknown=unknown, ids=ids)


def tag_tokens(text: str | None) -> list[str]:
    """The words (and full stops) of ``text`` as the tagger reads them, lower case.

    >>> tag_tokens("The cold wind spreads.")
    ['the', 'cold', 'wind', 'spreads', '.']
    """
    return _WORD.findall((text or "").lower())


@torch.no_grad()
def tag_words(loaded, text: str | None) -> Tagging:
    """Each word's likeliest tag and its probability (see the module docstring)."""
    words = tag_tokens(text)
    if not words:
        raise ValueError("Type a sentence first, e.g. 'the cold wind spreads .' (words of the task's grammar).")
    if len(words) > MAX_TAG_WORDS:
        raise ValueError(f"The sentence has {len(words)} words; Try it tags at most {MAX_TAG_WORDS} (the model "
                         "learnt sentences of up to 16). Shorten it.")
    index = {w: i for i, w in enumerate(loaded.vocab)}
    ids = np.array([index.get(w, UNKNOWN_WORD) for w in words], dtype=np.int64)
    probs = torch.softmax(loaded.model(torch.as_tensor(ids)[None])[0].float(), dim=-1).numpy()
    best = probs.argmax(-1)
    names = loaded.info.class_names
    return Tagging(words=words, tags=[names[i] for i in best], probs=probs[np.arange(len(words)), best],
                   all_probs=probs, ambiguous=[w in AMBIGUOUS_WORDS for w in words],
                   unknown=list(dict.fromkeys(w for w in words if w not in index)), ids=ids)


def check_context(loaded, n_tokens: int) -> None:
    """ValueError when a transformer run is asked to read more tokens than its context holds."""
    context = getattr(loaded.model, "context", None)
    if context is not None and n_tokens > context:
        raise ValueError(f"This transformer reads at most {context} characters at once (its context: the run's "
                         f"sequence length, seq_len {context}); your text has {n_tokens}. Shorten it to the last "
                         f"{context} characters, or train a run with a longer seq_len.")


@torch.no_grad()
def transformer_generate(model, prompt_ids: Sequence[int], length: int, temperature: float,
                         seed: int | None = 0, exclude: Sequence[int] = (0,)) -> list[int]:
    """``length`` ids continuing ``prompt_ids`` (an empty prompt starts from id 1, a new line), each
    predicted from at most the last ``model.context`` ids (the window slides); 0 temperature is greedy."""
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    ids = list(prompt_ids) or [1]
    out: list[int] = []
    for _ in range(int(length)):
        logits = model(torch.as_tensor(ids[-model.context:])[None])[0, -1].float()
        logits[[i for i in exclude if 0 <= i < logits.shape[-1]]] = float("-inf")
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
        ids.append(nxt)
        out.append(nxt)
    return out


@torch.no_grad()
def transformer_teacher_forced(model, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`backend.models.generate.teacher_forced`, for a transformer (one pass, causal attention)."""
    x = torch.as_tensor(list(ids), dtype=torch.long)[None]
    probs = torch.softmax(model(x[:, :-1])[0].float(), dim=-1)
    return probs.argmax(-1).numpy().astype(np.int64), probs.gather(1, x[0, 1:, None])[:, 0].numpy().astype(np.float32)
