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
from .hooks import PROBE_BUDGET, SnapshotProbe

CONV = (nn.Conv1d, nn.Conv2d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
N_PROBE_INPUTS = 8
N_NGRAMS = 8  # text models: top n-grams kept per filter


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


@torch.no_grad()
def top_ngrams(model: nn.Module, tokens: torch.Tensor, n: int = N_NGRAMS, batch: int = 256
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each ``nn.Conv1d`` of a text model and each of its filters, the ``n`` windows of the
    probe texts ``tokens`` (``(texts, time)`` ids, 0 = padding) that excite it most, distinct as
    token sequences: ``{layer: (where (filters, n, 2) int32 [text, position], value (filters, n) float32)}``.

    The value is the filter's output (before the nonlinearity) at that window, which reads tokens
    ``position .. position + k - 1``; windows reaching into the padding are skipped. Missing
    entries (fewer distinct windows than ``n``) have text -1.
    """
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv1d)}
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in convs}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: outs[name].append(out.detach().float().cpu()))
               for name, m in convs.items()]
    was_training = model.training
    model.eval()
    try:
        for chunk in tokens.split(batch):
            model(chunk)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    ids = tokens.cpu()
    length = (ids != 0).sum(1, keepdim=True)
    result = {}
    for name, conv in convs.items():
        k = conv.kernel_size[0]
        act = torch.cat(outs[name])  # (texts, filters, positions)
        pos = torch.arange(act.shape[2])[None, :]
        valid = (pos + k <= length) | (pos == 0)
        act = act.masked_fill(~valid[:, None, :], float("-inf")).transpose(0, 1).flatten(1)  # (filters, texts*pos)
        cand_val, cand = act.topk(min(4 * n, act.shape[1]), dim=1)
        where = np.full((act.shape[0], n, 2), -1, dtype=np.int32)
        value = np.full((act.shape[0], n), np.nan, dtype=np.float32)
        for f in range(act.shape[0]):
            seen: set[tuple[int, ...]] = set()
            j = 0
            for v, flat in zip(cand_val[f].tolist(), cand[f].tolist()):
                if j == n or v == float("-inf"):
                    break
                text, p = divmod(flat, act.shape[1] // len(ids))
                gram = tuple(ids[text, p:p + k].tolist())
                if gram in seen:
                    continue
                seen.add(gram)
                where[f, j], value[f, j] = (text, p), v
                j += 1
        result[name] = (where, value)
    return result


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
                 budget: float = PROBE_BUDGET, adaptive: bool = True):
        super().__init__(store, run_id, every, budget, adaptive)
        self.inputs = inputs

    def setup(self, trainer) -> bool:
        conv_layers(trainer.model)  # ValueError: no conv layer
        self.texts = getattr(trainer.info, "kind", None) == "text"  # token-id inputs: top n-grams, no maps
        if self.inputs is None:  # the task's own probe inputs, else the first validation inputs
            probe, x_val = getattr(trainer.data, "probe_x", None), getattr(trainer.data, "x_val", None)
            self.inputs = probe if probe is not None else (x_val[:N_PROBE_INPUTS] if x_val is not None else None)
        if self.inputs is not None:
            self.inputs = self.inputs.to(trainer.device)
        self._layers = layer_info(trainer.model)
        self._vocab = list(getattr(trainer.data, "vocab", None) or [])
        return True

    def take(self, trainer):
        weights = capture_kernels(trainer.model)
        if self.texts:
            grams = top_ngrams(trainer.model, self.inputs) if self.inputs is not None else {}
            return (weights, {}, grams), {"layers": self._layers, "vocab": self._vocab}
        maps = capture_feature_maps(trainer.model, self.inputs) if self.inputs is not None else {}
        return (weights, maps, {}), {"layers": self._layers}

    def write(self, step: int, payload, meta) -> None:
        weights, maps, grams = payload
        if self.texts:
            extra = {"tokens": self.inputs.cpu().numpy().astype(np.int32)} if self.inputs is not None else {}
            for layer, (where, value) in grams.items():
                extra[f"ngram.{layer}"], extra[f"ngramval.{layer}"] = where, value
            write_kernel_snapshot(self.store, self.run_id, step, weights, {}, None, meta, extra=extra)
            return
        inputs = self.inputs.float().cpu().numpy().astype(np.float16) if self.inputs is not None else None
        write_kernel_snapshot(self.store, self.run_id, step, weights, maps, inputs, meta)
