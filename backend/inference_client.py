"""Try it on a run of a user's own script: its newest model file, run as a graph.

``run.watch`` saves a character language model as ``checkpoints/model-step-<step>.pt``
(:mod:`backend.client.model_export`); :mod:`backend.models.graph_file` reads it without unpickling and
:class:`~backend.models.graph.GraphModel` runs it. :mod:`backend.inference` calls the functions here for
runs whose ``source`` is ``client``; the page is the same as for built-in runs.

- Typed text is encoded with the run's own vocabulary (``watch(vocab=...)``). It has no "unknown" id, so
  a character outside it is refused with its name, not guessed.
- Hidden states and gates: every recurrent layer the graph runs (``nn.LSTM``/``GRU``/``RNN``), replayed
  from its own weights and input as for built-in runs. A model without one has none (:data:`NO_STATES`).
- Generation feeds each new character alone, carrying the recurrent state, when that is checked to give
  the same predictions as reading the whole text (:func:`can_step`); otherwise it reads the last
  :data:`WINDOW` characters again for every new one.

Example::

    file = read_model_file(path)
    ids, unknown = encode_exact("def f", file.vocab)
    guess, p_true = graph_teacher_forced(file.model, ids)
    graph_generate(file.model, ids.tolist(), 80, temperature=0.5, seed=1, step=can_step(file.model, len(file.vocab)))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .models.graph import GraphModel

WINDOW = 256  # characters a model that cannot carry its state reads again for every generated one
NO_STATES = ("This model has no nn.LSTM, nn.GRU or nn.RNN layer that Try it can replay, so there are no hidden "
             "states per character to show here.")


def encode_exact(text: str, vocab: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Ids of ``text``'s characters in ``vocab``, and the distinct characters not in it (in order)."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = list(dict.fromkeys(c for c in text if c not in index))
    return np.array([index.get(c, -1) for c in text], dtype=np.int64), unknown


def refuse_unknown(unknown: list[str], vocab_size: int) -> None:
    """ValueError naming the characters a client run's vocabulary lacks."""
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:12]) + (" ..." if len(unknown) > 12 else "")
        raise ValueError(f"The model's vocabulary (the {vocab_size} characters given to run.watch as vocab=) has no "
                         f"{shown}. It never saw them in training; remove them from the text.")


@torch.no_grad()
def can_step(model: GraphModel, vocab_size: int, n: int = 11) -> bool:
    """Whether feeding a text in pieces, carrying each recurrent layer's state, predicts what reading it whole
    does (false for a model without recurrent layers, or one whose other layers look across time)."""
    ids = (torch.arange(n) * 7 + 3) % vocab_size
    try:
        whole = model.logits(ids)
        carry: dict = {}
        model.run(ids[:n // 2], carry=carry)
        if not carry:
            return False
        rest = torch.stack([model.run(ids[t:t + 1], carry=carry)[-1].float() for t in range(n // 2, n)])
    except ValueError:
        return False
    return bool(torch.allclose(rest, whole[n // 2:], rtol=1e-3, atol=1e-4 * max(1.0, float(whole.abs().max()))))


@torch.no_grad()
def graph_generate(model: GraphModel, prompt_ids: Sequence[int], length: int, temperature: float,
                   seed: int | None = 0, step: bool = False) -> list[int]:
    """``length`` ids continuing ``prompt_ids`` (at least one), sampled at ``temperature`` (0: greedy)."""
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    ids = [int(i) for i in prompt_ids]
    carry: dict | None = {} if step else None

    def next_logits(new: list[int]) -> torch.Tensor:
        if step:
            return model.run(torch.as_tensor(new, dtype=torch.long), carry=carry)[-1].float()
        return model.logits(ids[-WINDOW:])[-1]

    logits, out = next_logits(ids), []
    for i in range(int(length)):
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=gen))
        out.append(nxt)
        ids.append(nxt)
        if i + 1 < length:
            logits = next_logits([nxt])
    return out


@torch.no_grad()
def graph_teacher_forced(model: GraphModel, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The likeliest next id after each prefix of the true ``ids`` and the probability of the true one."""
    x = torch.as_tensor(list(ids), dtype=torch.long)
    probs = torch.softmax(model.logits(x[:-1]), dim=-1)
    p_true = probs.gather(1, x[1:, None])[:, 0]
    return probs.argmax(-1).numpy().astype(np.int64), p_true.numpy().astype(np.float32)


def start_ids(vocab: Sequence[str]) -> list[int]:
    """What an empty prompt starts from: a new line when the vocabulary has one."""
    return [list(vocab).index("\n")] if "\n" in vocab else [0]
