"""The dashboard's kernel reads: Gabor fits of recorded kernels, the curve over training, small kernels."""
from __future__ import annotations

import numpy as np

from backend.analysis.gabor import gabor
from backend.store.kernels import write_kernel_snapshot
from dashboard.views.kernels.data import KernelData


def _gabors(n: int, size: int, rng) -> np.ndarray:
    params = np.stack([np.ones(n), np.full(n, size / 2 - 0.5), np.full(n, size / 2 - 0.5),
                       rng.uniform(0, np.pi, n), np.full(n, 0.25), rng.uniform(-np.pi, np.pi, n),
                       np.full(n, 1.6), np.full(n, 2.2), np.zeros(n)], axis=1)
    return gabor(params, size)


def test_fits_and_curve_follow_kernels_becoming_gabors(store):
    rng = np.random.default_rng(0)
    run_id = store.create_run("k", "digits-cnn", {})
    noise = rng.normal(size=(16, 1, 7, 7))
    for step, frac in ((0, 0.0), (10, 0.5), (20, 1.0)):
        w = noise.copy()
        k = int(16 * frac)
        w[:k, 0] = _gabors(k, 7, rng)
        write_kernel_snapshot(store, run_id, step, {"conv": w}, {}, None, {"layers": []})
    kd = KernelData(store)
    snap, note = kd.open(run_id)
    fit = kd.fits(run_id, snap, "conv")
    assert note is None and len(fit["r2"]) == 16 and all(fit["gabor_like"])
    steps, fractions = kd.gabor_curve(run_id, "conv")
    assert steps == [0, 10, 20]
    assert fractions[0] <= 0.1 and 0.45 <= fractions[1] <= 0.6 and fractions[2] == 1.0


def test_small_and_1d_kernels_get_no_score(store):
    run_id = store.create_run("k", "digits-cnn", {})
    write_kernel_snapshot(store, run_id, 0, {"c3": np.zeros((4, 1, 3, 3)), "c1d": np.zeros((4, 2, 5))}, {}, None, {})
    kd = KernelData(store)
    snap, _ = kd.open(run_id)
    assert kd.fits(run_id, snap, "c3") == {"too_small": 3}
    assert "1-D" in kd.fits(run_id, snap, "c1d")["reason"]
    assert kd.gabor_curve(run_id, "c3") is None
