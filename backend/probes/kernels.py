"""Kernel probe: copies of every conv layer's weights, and feature maps of fixed probe inputs.

Every K steps (the same cadence rule as the hidden-state probe) the probe copies the
weights of each ``nn.Conv1d``/``nn.Conv2d`` and runs a few fixed probe inputs through
the model, keeping the output of each conv and pooling layer (forward hooks). The
record is ``backend.store.kernels``; Gabor fits are derived from it by readers.

Example::

    weights = capture_kernels(model)                    # {"features.0": (16, 1, 3, 3) float32}
    maps = capture_feature_maps(model, images[:8])      # {"features.0": (8, 16, 8, 8) float16, ...}
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..store import RunStore
from ..store.kernels import KIND, write_kernel_snapshot
from .hooks import BUDGET, SnapshotProbe

CONV = (nn.Conv1d, nn.Conv2d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
N_PROBE_INPUTS = 8


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Named conv layers of ``model``, in order; ValueError when there is none."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, CONV)}
    if not layers:
        raise ValueError(f"{type(model).__name__} has no conv layer (nn.Conv1d or nn.Conv2d); kernels exist "
                         "for convolutional models only")
    return layers


@torch.no_grad()
def capture_kernels(model: nn.Module) -> dict[str, np.ndarray]:
    """A float32 copy of each conv layer's weight: ``(out, in, k)`` or ``(out, in, kh, kw)``."""
    return {name: m.weight.detach().float().cpu().numpy().copy() for name, m in conv_layers(model).items()}


@torch.no_grad()
def capture_feature_maps(model: nn.Module, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """Outputs of every conv and pooling layer for ``inputs``, float16, in eval mode."""
    maps: dict[str, np.ndarray] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, CONV + POOL):
            handles.append(m.register_forward_hook(
                lambda _m, _i, out, name=name: maps.__setitem__(name, out.detach().float().cpu().numpy()
                                                                .astype(np.float16))))
    was_training = model.training
    model.eval()
    try:
        model(inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return maps


def layer_info(model: nn.Module) -> list[dict]:
    """What each recorded layer is: name, kind (conv1d, conv2d, pool), kernel size, channels."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, CONV):
            out.append({"name": name, "kind": "conv2d" if isinstance(m, nn.Conv2d) else "conv1d",
                        "kernel_size": list(m.kernel_size), "in": m.in_channels, "out": m.out_channels})
        elif isinstance(m, POOL):
            out.append({"name": name, "kind": "pool", "pool": type(m).__name__})
    return out


class KernelProbe(SnapshotProbe):
    """Records conv weights and the feature maps of ``N_PROBE_INPUTS`` fixed inputs."""

    kind = KIND

    def __init__(self, store: RunStore, run_id: str, inputs: torch.Tensor | None = None, every: int | None = None,
                 budget: float = BUDGET, adaptive: bool = True):
        super().__init__(store, run_id, every, budget, adaptive)
        self.inputs = inputs

    def setup(self, trainer) -> bool:
        conv_layers(trainer.model)  # ValueError: no conv layer
        if self.inputs is None:  # the task's own probe inputs, else the first validation inputs
            probe, x_val = getattr(trainer.data, "probe_x", None), getattr(trainer.data, "x_val", None)
            self.inputs = probe if probe is not None else (x_val[:N_PROBE_INPUTS] if x_val is not None else None)
        if self.inputs is not None:
            self.inputs = self.inputs.to(trainer.device)
        self._layers = layer_info(trainer.model)
        return True

    def take(self, trainer):
        weights = capture_kernels(trainer.model)
        maps = capture_feature_maps(trainer.model, self.inputs) if self.inputs is not None else {}
        return (weights, maps), {"layers": self._layers}

    def write(self, step: int, payload, meta) -> None:
        weights, maps = payload
        inputs = self.inputs.float().cpu().numpy().astype(np.float16) if self.inputs is not None else None
        write_kernel_snapshot(self.store, self.run_id, step, weights, maps, inputs, meta)
