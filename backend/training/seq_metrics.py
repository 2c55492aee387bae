"""Validation metrics of the sequence tasks: sequence-to-sequence (``seq2seq``) and tagging (``tag``).

Sequence to sequence (every name under ``val/``, as the trainer logs them):

- ``loss``: cross-entropy with the true previous token fed (teacher forcing 1, as a fair reference);
- ``acc``: share of output tokens (with the end token) right in **free-running greedy decoding** (the model
  is fed its own previous prediction and never sees the target);
- ``seq_acc``: share of outputs right as a whole; ``seq_acc_short``, ``seq_acc_middle``, ``seq_acc_long``:
  the same for the inputs in each third of the validation inputs' lengths (cut at the 33rd and 67th
  percentiles of the lengths: inputs of at most 10, 11-15 and over 15 characters for dates-seq2seq);
- ``attention_entropy``: entropy of each output step's attention weights divided by the log of its input's
  length, so 0 is all weight on one character and 1 is uniform (mean over output steps and inputs);
- ``alignment_share``: share of output tokens with a determining input span whose strongest attention
  falls inside that span (:mod:`backend.tasks.dates` defines the spans: the written field of the year,
  month or day an output digit belongs to).

Models without attention log neither of the last two. ``teacher_forcing``: the ratio used at that step.

Tagging: ``loss``, ``acc`` (tokens), ``acc_ambiguous`` and ``acc_unambiguous`` (tokens whose word can take
two tags, :mod:`backend.tasks.tagging`, and the others), ``seq_acc`` (sentences tagged right throughout).

Example::

    metrics = evaluate_sequences(trainer)    # {"val/loss": ..., "val/seq_acc": ..., ...}
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..tasks.tagging import IGNORE

CHUNK = 500  # validation inputs per forward pass


@torch.no_grad()
def evaluate_sequences(trainer) -> dict[str, float]:
    """The validation metrics of a seq2seq or tag trainer (model already in eval mode)."""
    if trainer.info.kind == "tag":
        return tagging_metrics(trainer.model, trainer.data.x_val, trainer.data.y_val,
                               trainer.data.val_extra["ambiguous"])
    out = seq2seq_metrics(trainer.model, trainer.data.x_val, trainer.data.y_val, trainer.data.val_extra["spans"],
                          trainer.data.val_extra["lengths"])
    from ..models.seq2seq import teacher_forcing_at

    out["teacher_forcing"] = teacher_forcing_at(trainer.spec, max(trainer.step, 1), trainer.total_steps)
    return out


def length_thirds(lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """Masks of the short, middle and long third of ``lengths`` (cut at its 33rd and 67th percentiles).

    >>> {k: v.tolist() for k, v in length_thirds(torch.tensor([6, 8, 12, 20, 30, 9])).items()}["long"]
    [False, False, False, True, True, False]
    """
    lo, hi = torch.quantile(lengths.float(), torch.tensor([1 / 3, 2 / 3], device=lengths.device))
    return {"short": lengths <= lo, "middle": (lengths > lo) & (lengths <= hi), "long": lengths > hi}


def seq2seq_metrics(model, x: torch.Tensor, y: torch.Tensor, spans: torch.Tensor,
                    lengths: torch.Tensor) -> dict[str, float]:
    """The seq2seq metrics of the module docstring over inputs ``x`` and targets ``y``."""
    loss_sum, right_tokens, right_seqs, ent_sum, ent_n, hits, hit_n = 0.0, [], [], 0.0, 0, 0, 0
    for sl in _chunks(len(x)):
        xb, yb = x[sl], y[sl]
        logits = model(xb, yb, teacher_forcing=1.0).float()
        loss_sum += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum").item()
        ids, attn = model.greedy(xb, steps=yb.shape[1])
        right = ids == yb
        right_tokens.append(right)
        right_seqs.append(right.all(1))
        if attn is not None:
            e, n = attention_entropy(attn, lengths[sl])
            ent_sum, ent_n = ent_sum + e, ent_n + n
            h, n = alignment_hits(attn, spans[sl])
            hits, hit_n = hits + h, hit_n + n
    seq = torch.cat(right_seqs).float()
    out = {"val/loss": loss_sum / y.numel(), "val/acc": float(torch.cat(right_tokens).float().mean()),
           "val/seq_acc": float(seq.mean())}
    for name, mask in length_thirds(lengths).items():
        out[f"val/seq_acc_{name}"] = float(seq[mask].mean()) if mask.any() else math.nan
    if ent_n:
        out["val/attention_entropy"] = ent_sum / ent_n
        out["val/alignment_share"] = hits / max(hit_n, 1)
    return out


def attention_entropy(attn: torch.Tensor, lengths: torch.Tensor) -> tuple[float, int]:
    """Sum over inputs and output steps of each step's attention entropy over log(input length), and the
    number of steps. ``attn``: ``(B, T_out, T_in)`` weights (0 on padding)."""
    p = attn.float().clamp_min(1e-12)
    ent = -(attn.float() * p.log()).sum(-1)  # nats, (B, T_out)
    norm = lengths.float().clamp_min(2).log()[:, None]
    return float((ent / norm).sum()), ent.numel()


def alignment_hits(attn: torch.Tensor, spans: torch.Tensor) -> tuple[int, int]:
    """Output steps whose strongest attention lies in their determining span ``[start, end)``, and the
    number of steps with such a span. ``spans``: ``(B, T_out, 2)``, -1 where no input determines it."""
    where = attn.argmax(-1)
    has = spans[..., 0] >= 0
    hit = (where >= spans[..., 0]) & (where < spans[..., 1]) & has
    return int(hit.sum()), int(has.sum())


def tagging_metrics(model, x: torch.Tensor, y: torch.Tensor, ambiguous: torch.Tensor) -> dict[str, float]:
    """The tagging metrics of the module docstring."""
    logits = torch.cat([model(x[sl]) for sl in _chunks(len(x))]).float()
    real = y != IGNORE
    right = (logits.argmax(-1) == y) & real
    amb, plain = ambiguous & real, ~ambiguous & real
    return {"val/loss": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item(),
            "val/acc": float(right.sum() / real.sum()),
            "val/acc_ambiguous": float((right & amb).sum() / amb.sum().clamp_min(1)),
            "val/acc_unambiguous": float((right & plain).sum() / plain.sum().clamp_min(1)),
            "val/seq_acc": float((right | ~real).all(1).float().mean())}


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]
