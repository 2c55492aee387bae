"""Optimizers by name, with the spec's learning rate, momentum and weight decay."""
from __future__ import annotations

from typing import Iterable

import torch

from ..spec import RunSpec


def make_optimizer(spec: RunSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer ``spec.optimizer`` names (sgd, momentum, adam, adagrad, rmsprop, adadelta)."""
    lr, wd = spec.lr, spec.weight_decay
    match spec.optimizer:
        case "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=wd)
        case "momentum":
            return torch.optim.SGD(params, lr=lr, momentum=spec.momentum, weight_decay=wd)
        case "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        case "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=spec.momentum, weight_decay=wd)
        case "adadelta":
            return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {spec.optimizer!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def get_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
