"""The dashboard's reads of kernel snapshots: weights, feature maps, and Gabor fits (cached).

Gabor fits are derived here, off the training loop, and cached per snapshot and
layer; the Gabor-like fraction over training reuses them.

Example::

    kd = KernelData(store)
    snap, note = kd.open(run_id)                 # newest readable snapshot
    fit = kd.fits(run_id, snap, "features.0")    # dict of per-kernel lists, or {"too_small": ...}
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from backend.analysis.gabor import MIN_SIZE, fit_gabors, gabor_like, kernel_images
from backend.store import RunStore
from backend.store.hidden import SnapshotUnavailable
from backend.store.kernels import KIND, KernelSnapshot

from dashboard.snapshots import ViewError, open_newest

SNAPSHOTS_TTL = 1
FIT_TTL = 3600


class KernelData:
    """Cached access to the kernel snapshots of the runs in one store."""

    def __init__(self, store: RunStore, cached: Callable[[str, int, Callable[[], Any]], Any] | None = None):
        self.store = store
        self._cached = cached or (lambda _key, _ttl, compute: compute())

    def snapshots(self, run_id: str) -> list[dict]:
        return self._cached(f"kernels:snaps:{run_id}", SNAPSHOTS_TTL, lambda: self.store.list_snapshots(run_id, KIND))

    def open(self, run_id: str, step: int | None = None) -> tuple[KernelSnapshot, str | None]:
        """The snapshot at ``step`` (newest at or before it), skipping one still being written."""
        return open_newest(self.snapshots(run_id), step, lambda row: KernelSnapshot(self.store, row), "no-snapshot",
                           "The kernel snapshots of this run are still being written; try again in a moment.")

    def fits(self, run_id: str, snap: KernelSnapshot, layer: str) -> dict:
        """Gabor fits of a 2-D conv layer's kernels as lists, or ``{"too_small": size}``."""
        def compute() -> dict:
            weight = snap.weights(layer)
            if weight.ndim != 4:
                return {"too_small": 0, "reason": "1-D kernels have no 2-D Gabor fit"}
            size = min(weight.shape[2:])
            if size < MIN_SIZE:
                return {"too_small": int(size)}
            fit = fit_gabors(kernel_images(weight))
            like = gabor_like(fit)
            out = {name: np.asarray(getattr(fit, name), dtype=float).round(4).tolist()
                   for name in ("amplitude", "x0", "y0", "theta", "frequency", "phase", "sigma_x", "sigma_y",
                                "offset", "r2", "selectivity")}
            out["gabor_like"] = np.asarray(like, dtype=bool).tolist()
            out["localized"] = np.asarray(fit.localized, dtype=bool).tolist()
            return out
        return self._cached(f"kernels:fit:{run_id}:{snap.row['id']}:{layer}", FIT_TTL, compute)

    def gabor_curve(self, run_id: str, layer: str) -> tuple[list[int], list[float]] | None:
        """Fraction of Gabor-like kernels of ``layer`` at every readable snapshot (None: kernels too small)."""
        steps, fractions = [], []
        for row in self.snapshots(run_id):
            try:
                snap = KernelSnapshot(self.store, row)
            except SnapshotUnavailable:
                continue
            if layer not in snap.conv_layers:
                continue
            fit = self.fits(run_id, snap, layer)
            if "too_small" in fit:
                return None
            steps.append(snap.step)
            fractions.append(float(np.mean(fit["gabor_like"])) if fit["gabor_like"] else 0.0)
        return steps, fractions
