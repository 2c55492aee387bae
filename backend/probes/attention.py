"""The attention probe: an encoder-decoder's attention over a few fixed probe inputs, every K steps.

At each snapshot (the start, every K steps, the end; cadence and cost budget as every
:class:`~backend.probes.hooks.SnapshotProbe`) the model decodes each probe input greedily (free-running:
it never sees the target) and the record (:mod:`backend.store.attention`) keeps, per input, the input
characters (keys), the characters it wrote (queries, up to its end token) and the ``(out, in)`` attention
map as one layer (``dec-enc``) and one head (``h0``). ``extra`` holds the target, the input's format and
the span of the input that determines each output character (:mod:`backend.tasks.dates`,
:mod:`backend.tasks.number_words`), so a view can
mark where the attention should go. A model without attention turns the probe off.

Example::

    probe = AttentionProbe(store, run_id)
    Trainer(spec, data, hooks=[probe]).run()
"""
from __future__ import annotations

import numpy as np
import torch

from ..store.attention import KIND, write_attention_snapshot
from ..tasks.dates import DATE_OUT_LEN, DATE_VOCAB, EOS, encode_dates, probe_dates
from .hooks import SnapshotProbe

LAYERS, HEADS = ["dec-enc"], ["h0"]


def _probe_set(task: str):
    """The task's probe examples, their arrays, output length, vocabulary and the probe's source line."""
    if task == "numbers-seq2seq":  # numbers in words (backend.tasks.number_words): spans are digit words
        from ..tasks.number_words import NUMBER_OUT_LEN, NUMBER_VOCAB, encode_numbers, probe_numbers

        examples = probe_numbers()
        return examples, encode_numbers(examples), NUMBER_OUT_LEN, NUMBER_VOCAB, "8 fixed probe numbers, 1 to 7 digits"
    examples = probe_dates()
    return examples, encode_dates(examples), DATE_OUT_LEN, DATE_VOCAB, "8 fixed probe dates, short to long"


def attention_items(model: torch.nn.Module, device: torch.device | str = "cpu",
                    task: str = "dates-seq2seq") -> list[dict]:
    """The probe's items for ``model`` (a :class:`~backend.models.seq2seq.Seq2Seq` with attention):
    name, queries, keys, weights ``(1, 1, out, in)`` float32 and extra, per probe input of ``task``
    (dates-seq2seq's dates, numbers-seq2seq's numbers)."""
    examples, arrays, out_len, vocab, _ = _probe_set(task)
    was_training = model.training
    model.eval()
    try:
        ids, attn = model.greedy(torch.as_tensor(arrays["x"], device=device), steps=out_len)
    finally:
        model.train(was_training)
    if attn is None:
        raise ValueError("the model has no attention (attention 'none'): nothing to record")
    ids, attn = ids.cpu().numpy(), attn.float().cpu().numpy()
    items = []
    for ex, row, weights, spans in zip(examples, ids, attn, arrays["spans"]):
        n_out = int(np.argmax(row == EOS)) + 1 if (row == EOS).any() else len(row)  # up to its end token
        queries = [vocab[i] for i in row[:n_out].tolist()]
        keys = list(ex.text)
        items.append({"name": ex.text, "queries": queries, "keys": keys,
                      "weights": weights[:n_out, :len(keys)][None, None],
                      "extra": {"target": ex.target, "format": getattr(ex, "format", task),
                                "output": _decode(row.tolist(), vocab),
                                "spans": spans[:n_out].tolist()}})
    return items


def _decode(ids: list[int], vocab) -> str:
    """The text of output ids up to the end token (special ids write nothing)."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(vocab[i] if 3 < i < len(vocab) else "")
    return "".join(out)


class AttentionProbe(SnapshotProbe):
    """Records the attention maps of the task's probe inputs every ``every`` steps (module docstring)."""

    kind = KIND
    weight = 1.0

    def setup(self, trainer) -> bool:
        return getattr(trainer.model, "attention", None) is not None  # attention 'none': nothing to watch

    def take(self, trainer):
        task = trainer.info.name
        return attention_items(trainer.model, trainer.device, task), {"layers": LAYERS, "heads": HEADS,
                                                                      "source": _probe_set(task)[4]}

    def write(self, step: int, items, meta) -> None:
        write_attention_snapshot(self.store, self.run_id, step, items, meta)
