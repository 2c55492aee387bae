"""Text from a recurrent language model: sampling with a temperature, and teacher-forced prediction.

Both read a :class:`~backend.models.build.RecurrentLM` (``embedding`` -> ``rnn`` -> ``head``) in
eval mode and leave its training flag as it was.

- :func:`generate` continues a prompt one token at a time, feeding the model its own samples
  (free running: "teacher forcing off"). ``temperature`` divides the logits before the softmax:
  0 takes the most likely token every time (greedy), 1 samples the model's distribution, above 1
  flattens it (more surprising, more mistakes).
- :func:`teacher_forced` feeds the true text and returns the model's guess for every next token
  ("teacher forcing on", as in training): how good the model is when it never has to live with its
  own mistakes.

Example::

    ids = generate(model, prompt_ids=[5, 9, 2], length=80, temperature=0.8, seed=0)   # list of ids
    rows = generate_many(model, [5, 9, 2], 80, temperatures=[0, 0.5, 1.0])  # one batch, a row each
    guess, p_true = teacher_forced(model, text_ids)    # (T-1,) ids and P(true next token)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


def require_forward_lm(model: nn.Module, what: str = "text generation") -> nn.RNNBase:
    """The fused recurrent module of a one-directional recurrent language model (``embedding`` ->
    ``rnn`` -> ``head``); ValueError naming ``what`` needs it otherwise (probes turn themselves off)."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, nn.RNNBase) or not hasattr(model, "embedding") or not hasattr(model, "head"):
        raise ValueError(f"{what} needs a recurrent language model (embedding, rnn, head)")
    if rnn.bidirectional:
        raise ValueError(f"{what} needs a one-directional model: a bidirectional one reads the future")
    return rnn


def generate(model: nn.Module, prompt_ids: Sequence[int], length: int, temperature: float = 1.0,
             seed: int | None = 0, exclude: Sequence[int] = (0,)) -> list[int]:
    """``length`` token ids continuing ``prompt_ids`` (not included), sampled at ``temperature``
    (0 = greedy). ``exclude``: ids never produced (default: 0, the unknown character). ``seed``
    fixes the samples (None: torch's global generator). One row of :func:`generate_many`."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    return generate_many(model, prompt_ids, length, [temperature], seed=seed, exclude=exclude)[0]


@torch.no_grad()
def generate_many(model: nn.Module, prompt_ids: Sequence[int], length: int, temperatures: Sequence[float],
                  seed: int | None = 0, exclude: Sequence[int] = (0,)) -> list[list[int]]:
    """One continuation of ``prompt_ids`` per temperature, sampled together as one batch (a row per
    temperature; 0 = greedy): the cost of about one :func:`generate` call, most of which is per-token
    overhead. A greedy row equals ``generate(..., temperature=0)``; sampled rows draw from one seeded
    generator, so they are reproducible but not equal to separate :func:`generate` calls."""
    require_forward_lm(model)
    temps = [float(t) for t in temperatures]
    if not temps or min(temps) < 0:
        raise ValueError(f"temperatures must be >= 0 (at least one), got {list(temperatures)}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    device = next(model.parameters()).device
    gen = None
    if seed is not None:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        rows = len(temps)
        prompt = torch.as_tensor(list(prompt_ids) or [1], dtype=torch.long, device=device)[None].expand(rows, -1)
        out, state = model.rnn(model.embedding(prompt))
        logits = model.head(out[:, -1]).float()
        mask = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        mask[[i for i in exclude if 0 <= i < logits.shape[-1]]] = True
        greedy = torch.tensor([t == 0 for t in temps])
        scale = torch.tensor([t if t > 0 else 1.0 for t in temps])[:, None]
        ids = torch.empty(rows, int(length), dtype=torch.long)
        for step in range(int(length)):
            logits = logits.masked_fill(mask, float("-inf")).cpu()
            nxt = torch.multinomial(torch.softmax(logits / scale, dim=-1), 1, generator=gen)[:, 0]
            nxt = torch.where(greedy, logits.argmax(-1), nxt)
            ids[:, step] = nxt
            out, state = model.rnn(model.embedding(nxt.to(device)[:, None]), state)
            logits = model.head(out[:, -1]).float()
    finally:
        model.train(was_training)
    return ids.tolist()


@torch.no_grad()
def teacher_forced(model: nn.Module, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The model's most likely next token after each prefix of the true ``ids`` and the probability
    it gave the true next token: two arrays of ``len(ids) - 1`` (int64, float32)."""
    require_forward_lm(model)
    if len(ids) < 2:
        raise ValueError("teacher forcing needs at least two tokens")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = torch.as_tensor(list(ids), dtype=torch.long, device=device)[None]
        logits = model(x[:, :-1]).float()[0]
        probs = torch.softmax(logits, dim=-1)
        guess = probs.argmax(-1)
        p_true = probs.gather(1, x[0, 1:, None])[:, 0]
    finally:
        model.train(was_training)
    return guess.cpu().numpy().astype(np.int64), p_true.cpu().numpy().astype(np.float32)
