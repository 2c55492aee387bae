"""Embedding probe: the points a model makes, for the Projections page (t-SNE / PCA maps).

Sources (see ``backend/store/projections.py``):

- ``tokens``: the weight of the model's token embedding (its first ``nn.Embedding``), one row per
  vocabulary entry (but the padding entry, always zero), with the token strings and their corpus
  frequencies; for character language models and encoder-decoders (their input embedding) the characters,
  blanks shown as ``⏎ ␣ ⇥``, labelled by kind (:data:`~backend.tasks.text.CHAR_CLASSES`: letters, digits,
  brackets, quotes, blanks...); for the tagger its words, labelled by the tag they take;
- ``penultimate``: what the output layer reads (the input of the model's last ``nn.Linear``, caught
  by a forward pre-hook) for up to ``MAX_INPUTS`` validation inputs, with labels and predictions;
  for recurrent classifiers that is the final hidden state, and the source is named
  ``final_hidden``.

Same cadence rule as the other probes (:class:`~backend.probes.hooks.SnapshotProbe`). Capture is
one forward pass in eval mode over the inputs, in the training thread; files are written in the
background thread.

Example::

    sources = capture_sources(model, data, vocab=data.vocab)   # {"tokens": {...}, "penultimate": {...}}
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..spec import RECURRENT
from ..store.projections import SOURCE_KIND, write_source_snapshot
from ..tasks.text import CHAR_CLASSES, char_class
from .hooks import PROBE_BUDGET, SnapshotProbe

MAX_INPUTS = 2000


def token_embedding(model: nn.Module) -> nn.Embedding | None:
    """The model's token embedding: its first ``nn.Embedding``, or None."""
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The model's output layer: its last ``nn.Linear`` in registration order, or None."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def penultimate(model: nn.Module, inputs: torch.Tensor, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``(features, predictions)``: the input of the last ``nn.Linear`` and the argmax of the output."""
    head = last_linear(model)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear output layer to read features from")
    feats: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: feats.append(args[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    preds = []
    try:
        for chunk in inputs.split(batch):
            out = model(chunk)
            preds.append(out.argmax(-1).cpu())
    finally:
        model.train(was_training)
        handle.remove()
    x = torch.cat(feats).flatten(1) if feats[0].dim() > 2 else torch.cat(feats)
    return x.numpy(), torch.cat(preds).numpy().astype(np.int32)


def input_texts(data, n: int) -> list[str]:
    """A readable name of each of the first ``n`` validation inputs: the text of a text task's input,
    else the class name and index of an image."""
    info = data.info
    if info.kind == "text" and getattr(data, "vocab", None):
        vocab = data.vocab
        return [" ".join(vocab[i] for i in row if i != 0) for row in data.x_val[:n].tolist()]
    names = info.class_names or tuple(str(i) for i in range(info.n_classes))
    return [f"{names[int(y)]} #{i}" for i, y in enumerate(data.y_val[:n].tolist())]


SHOWN = str.maketrans({"\n": "⏎", " ": "␣", "\t": "⇥"})  # a character LM's blank tokens, as labels


def capture_sources(model: nn.Module, data, family: str | None = None) -> dict[str, dict]:
    """Every source this model and task have (see the module docstring)."""
    out: dict[str, dict] = {}
    emb = token_embedding(model)
    vocab = getattr(data, "vocab", None)
    if emb is not None and vocab is not None and len(vocab) == emb.num_embeddings:
        counts = getattr(data, "token_counts", None)
        keep = np.ones(len(vocab), dtype=bool)
        if emb.padding_idx is not None:  # the padding row is all zeros: no direction to compare by cosine
            keep[emb.padding_idx] = False
        kept = [t for t, k in zip(vocab, keep) if k]
        tokens = {"x": emb.weight.detach().float().cpu().numpy()[keep],
                  "text": [t.translate(SHOWN) for t in kept],  # "⏎" and "␣", not an empty label
                  "freq": None if counts is None else np.asarray(counts, dtype=np.int64)[keep],
                  "what": "token embeddings"}
        if data.info.kind in ("lm", "seq2seq"):  # characters, labelled by kind (letters, digits, ...) to colour by
            tokens.update(what="character embeddings", classes=list(CHAR_CLASSES),
                          label=np.array([char_class(t) for t in kept], dtype=np.int32))
        elif data.info.kind == "tag":  # words, labelled by the tag they take (or the two an ambiguous one can)
            from ..tasks.tagging import WORD_CLASSES, word_class
            tokens.update(what="word embeddings", classes=list(WORD_CLASSES),
                          label=np.array([word_class(t) for t in kept], dtype=np.int32))
        out["tokens"] = tokens
    x_val, y_val = getattr(data, "x_val", None), getattr(data, "y_val", None)
    if x_val is not None and y_val is not None and data.info.kind in ("image", "text") and last_linear(model):
        n = min(MAX_INPUTS, len(x_val))
        feats, preds = penultimate(model, x_val[:n])
        name = "final_hidden" if family in RECURRENT else "penultimate"
        out[name] = {"x": feats, "text": input_texts(data, n), "label": y_val[:n].cpu().numpy().astype(np.int32),
                     "pred": preds, "classes": list(data.info.class_names) or None,
                     "what": "final hidden state of each input" if name == "final_hidden"
                     else "features the output layer reads, per input"}
    return out


class EmbeddingProbe(SnapshotProbe):
    """Records the run's projection sources at the start, every K steps and at the end."""

    kind = SOURCE_KIND
    weight = 0.5  # a table copy, or one forward pass over at most MAX_INPUTS inputs: cheap beside the others

    def __init__(self, store, run_id: str, every: int | None = None, budget: float = PROBE_BUDGET,
                 adaptive: bool = True, family: str | None = None):
        super().__init__(store, run_id, every, budget, adaptive)
        self.family = family

    def setup(self, trainer) -> bool:
        self._data = trainer.data
        if not capture_sources(trainer.model, trainer.data, self.family):
            raise ValueError("this model and task have no token embedding and no classifier features to project")
        return True

    def take(self, trainer):
        return capture_sources(trainer.model, self._data, self.family), {}

    def write(self, step: int, payload, meta) -> None:
        write_source_snapshot(self.store, self.run_id, step, payload)
