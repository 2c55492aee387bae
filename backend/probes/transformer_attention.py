"""Attention maps of a transformer language model over a probe text: a record for a snapshot writer.

Pure capture (no store): :func:`attention_record` runs the model's explicit attention
(:meth:`~backend.models.transformer.TransformerLM.attention_maps`) over a text's token ids and returns
what an attention snapshot holds: the query and key tokens, the weights of every layer and head as
float16 ``(layers, heads, T, T)`` (row ``i``: how much position ``i`` reads each position ``<= i``;
the rows sum to 1, zero above the diagonal), and per layer and head the mean entropy of a row in nats
(0: every query reads one key; ``log(i + 1)`` at most for row ``i``: spread evenly over the past).
The writer (``backend/store/attention.py``) stores it; this module does not touch disk.

The probe text is the start of the task's held-out probe corpus (the hidden-state probe's text,
:func:`backend.tasks.probe.probe_corpus`), cut to the model's context (:func:`probe_ids`).

Example::

    ids = probe_ids(get_task("brackets-lstm"), model.context)
    rec = attention_record(model, ids, VOCABS["brackets-lstm"])
    rec["weights"].shape, rec["extra"]["entropy"]   # (layers, heads, T, T); [[nats per head] per layer]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..tasks.probe import probe_corpus
from ..tasks.registry import TaskInfo

PROBE_TOKENS = 64  # tokens of the default probe text: a 64 x 64 map per head stays readable


def probe_ids(info: TaskInfo, context: int, n_tokens: int = PROBE_TOKENS) -> np.ndarray:
    """The first ``min(n_tokens, context)`` token ids of the task's held-out probe text (int64).

    >>> from backend.tasks import get_task
    >>> probe_ids(get_task("brackets-lstm"), context=128).shape
    (64,)
    """
    n = max(1, min(int(n_tokens), int(context)))
    return np.asarray(probe_corpus(info, n_tokens=n).ids[:n], dtype=np.int64)


def mean_entropy(weights: torch.Tensor) -> torch.Tensor:
    """``(layers, heads)``: the entropy (nats) of each attention row, averaged over the rows.

    >>> float(mean_entropy(torch.full((1, 1, 1, 4), 0.25)))  # one row spread over 4 keys: log 4
    1.3862943649291992
    """
    p = weights.float()
    row = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)  # 0 * log 0 counts as 0
    return row.mean(-1)


@torch.no_grad()
def attention_record(model: nn.Module, ids: Sequence[int] | np.ndarray | torch.Tensor, vocab: Sequence[str],
                     name: str = "probe text") -> dict:
    """The attention snapshot of ``model`` over token ids ``ids`` (1-D), ready for a snapshot writer:
    ``{"name", "queries", "keys", "weights", "extra": {"entropy"}}`` (see the module docstring).
    A text longer than the model's context is cut to it."""
    maps_of = getattr(model, "attention_maps", None)
    if maps_of is None:
        raise ValueError(f"{type(model).__name__} has no attention maps: they exist for transformer models only")
    device = next(model.parameters()).device
    tokens = torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(-1)
    tokens = tokens[:getattr(model, "context", len(tokens))]
    if len(tokens) == 0:
        raise ValueError("the probe text has no tokens")
    weights = maps_of(tokens[None].to(device)).float().cpu()  # (layers, heads, T, T)
    text = [vocab[i] if 0 <= i < len(vocab) else "\ufffd" for i in tokens.tolist()]
    return {"name": name, "queries": list(text), "keys": list(text),
            "weights": weights.numpy().astype(np.float16),
            "extra": {"entropy": mean_entropy(weights).tolist()}}
