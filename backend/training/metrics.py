"""Classification metrics on tensors (no sklearn in the loop)."""
from __future__ import annotations

import torch


def classification_metrics(pred: torch.Tensor, target: torch.Tensor, n_classes: int,
                           prefix: str = "") -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 (classes never predicted nor present are skipped).

    >>> classification_metrics(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)["acc"]
    0.6666666865348816
    """
    conf = torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    conf = conf.double()
    tp = conf.diag()
    predicted, actual = conf.sum(0), conf.sum(1)
    present = (predicted + actual) > 0
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    return {
        f"{prefix}acc": float((tp.sum() / conf.sum().clamp(min=1)).float()),
        f"{prefix}precision": float(precision[present].mean()),
        f"{prefix}recall": float(recall[present].mean()),
        f"{prefix}f1": float(f1[present].mean()),
    }
