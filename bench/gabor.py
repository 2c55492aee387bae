"""Gabor fit time (64 kernels of 7x7 and 11x11), and how Gabor-like the natural-patches task's kernels become.

Kernels are synthetic and mixed, as a first conv layer is: half Gabors with random parameters
(orientation, frequency 0.4-1 cycles per envelope width, phase, centre within a pixel of the
middle, noise at 5% of their sd), half Gaussian-smoothed white noise (sigma 1 pixel, cut from
a larger field), the slower half to fit (its least-squares surface is flat and ragged). Each
size is fitted once untimed, then ``--repeats`` times (default settings of ``fit_gabors``:
8 starts, at most 60 Levenberg-Marquardt steps); the figure is the median wall time, the
spread is min-max. Also printed, as a check that the timed fits are real ones: the share of
each half called Gabor-like and its median R^2.

``gabor_fraction_init`` / ``gabor_fraction_trained``: the share of Gabor-like first-layer
kernels of a real ``natural-patches`` run (sparse autoencoder, default spec and budget, one
torch thread, all default hooks) at its first and last kernel snapshot; also the trained
kernels pixel-shuffled (``gabor_fraction_shuffled``), a few points of the curve, and, without
``--quick``, the ``patches-cnn`` classifier's first layer after its default budget
(``cnn_gabor_fraction_*``), the comparison the Kernels page draws.

    .venv/bin/python bench/gabor.py            # ~1.5 min on 2 cores (the CNN run is most of it)
    .venv/bin/python bench/gabor.py --quick    # smoke run, ~15 s

Targets on this machine (2 cores, shared): ``fit_64x7_s`` under 1 s; natural-patches at least
70 % Gabor-like after its default budget, which must take at most 2 minutes
(``natural_patches_run_s``). The last line of output is one JSON object (``fit_64x7_s``,
``fit_64x11_s``, ``ms_per_kernel_7``, ``ms_per_kernel_11``, ``gabor_fraction_init``,
``gabor_fraction_trained``, ``gabor_fraction_shuffled``, ``natural_patches_run_s``, ``pass``,
...). ``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from backend.analysis.gabor import fit_gabors, gabor  # noqa: E402

TARGET_FIT_64X7_S = 1.0
TARGET_TRAINED, TARGET_RUN_S = 0.70, 120  # natural-patches: share of Gabor-like kernels, default budget time
N_KERNELS = 64
SIZES = (7, 11)


def mixed_kernels(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` kernels, the first half Gabors and the rest smoothed noise; and which are Gabors."""
    half = n // 2
    p = np.zeros((half, 9))
    p[:, 0] = rng.uniform(0.5, 2, half)
    p[:, 1:3] = (size - 1) / 2 + rng.uniform(-1, 1, (half, 2))
    p[:, 3] = rng.uniform(0, np.pi, half)
    p[:, 5] = rng.uniform(-np.pi, np.pi, half)
    p[:, 6] = rng.uniform(1.2, size / 4, half)
    p[:, 7] = rng.uniform(1.2, size / 3, half)
    p[:, 4] = (rng.uniform(0.4, 1.0, half) / p[:, 6]).clip(0.1, 0.35)
    g = gabor(p, size)
    g += 0.05 * g.std(axis=(1, 2), keepdims=True) * rng.normal(size=g.shape)
    m = 12
    field = rng.normal(size=(n - half, size + 2 * m, size + 2 * m))
    noise = ndimage.gaussian_filter(field, (0, 1.0, 1.0))[:, m:m + size, m:m + size]
    return np.concatenate([g, noise]).astype(np.float32), np.arange(n) < half


def time_fits(kernels: np.ndarray, repeats: int) -> tuple[list[float], object]:
    fit = fit_gabors(kernels)  # untimed: first-call costs
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_gabors(kernels)
        times.append(time.perf_counter() - t0)
    return times, fit


def gabor_fractions(args: argparse.Namespace) -> dict:
    """Share of Gabor-like first-layer kernels at init and after training on natural image patches.

    A real ``natural-patches`` run at its default budget (``deepscope`` store in a temporary
    folder, all default hooks, one torch thread as the demo gives each trainer), its first and
    last kernel snapshots fitted; also the trained kernels pixel-shuffled, and (without
    ``--quick``) the ``patches-cnn`` classifier's first layer after its default budget.
    """
    import os
    import tempfile

    os.environ.setdefault("DEEPSCOPE_TORCH_THREADS", "1")
    from backend.analysis.gabor import kernel_images
    from backend.spec import RunSpec
    from backend.store import RunStore
    from backend.store.kernels import KIND, KernelSnapshot
    from backend.training.device import configure_threads
    from backend.training.worker import run_training

    configure_threads()

    def share(w: np.ndarray) -> float:
        return round(float(fit_gabors(kernel_images(w)).gabor_like.mean()), 3)

    def run(task: str) -> tuple[float, list[KernelSnapshot], str]:
        spec = RunSpec.for_task(task, seed=args.seed)
        run_id = store.create_run(task, task, spec.model_dump())
        t0 = time.perf_counter()
        status = run_training(store, run_id, device="cpu")
        wall = time.perf_counter() - t0
        assert status == "completed", store.get_run(run_id)
        snaps = [KernelSnapshot(store, row) for row in store.list_snapshots(run_id, KIND)]
        return wall, snaps, snaps[-1].conv_layers[0]

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "data")
        wall, snaps, layer = run("natural-patches")
        trained = snaps[-1].weights(layer)
        rng = np.random.default_rng(args.seed)
        shuffled = trained.reshape(len(trained), -1).copy()
        for row in shuffled:
            rng.shuffle(row)
        out.update(gabor_fraction_init=share(snaps[0].weights(layer)), gabor_fraction_trained=share(trained),
                   gabor_fraction_shuffled=share(shuffled.reshape(trained.shape)),
                   natural_patches_steps=snaps[-1].step, natural_patches_run_s=round(wall, 1),
                   gabor_fraction_curve=[[s.step, share(s.weights(layer))] for s in snaps[::4]])
        print(f"  natural-patches (sparse autoencoder, 32 filters 9x9), default budget {snaps[-1].step} steps: "
              f"{wall:.1f} s including data loading and probes; Gabor-like {out['gabor_fraction_init']:.0%} at "
              f"init -> {out['gabor_fraction_trained']:.0%} trained ({out['gabor_fraction_shuffled']:.0%} for the "
              f"trained kernels pixel-shuffled)", flush=True)
        if not args.quick:
            wall, snaps, layer = run("patches-cnn")
            out.update(cnn_gabor_fraction_init=share(snaps[0].weights(layer)),
                       cnn_gabor_fraction_trained=share(snaps[-1].weights(layer)), patches_cnn_run_s=round(wall, 1),
                       patches_cnn_steps=snaps[-1].step)
            print(f"  patches-cnn (classifier, 9x9 RGB first layer), default budget {snaps[-1].step} steps: "
                  f"{wall:.1f} s; Gabor-like {out['cnn_gabor_fraction_init']:.0%} at init -> "
                  f"{out['cnn_gabor_fraction_trained']:.0%} trained", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 repeats per size (smoke run, < 10 s)")
    p.add_argument("--repeats", type=int, default=None, help="timed fits per size (default 9, quick 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 9)
    rng = np.random.default_rng(args.seed)

    result: dict = {}
    print(f"fit_gabors on {N_KERNELS} kernels (half noisy Gabors, half smoothed noise), "
          f"median of {repeats} fits after one untimed", flush=True)
    for size in SIZES:
        kernels, is_gabor = mixed_kernels(N_KERNELS, size, rng)
        times, fit = time_fits(kernels, repeats)
        med = statistics.median(times)
        result[f"fit_64x{size}_s"] = round(med, 4)
        result[f"ms_per_kernel_{size}"] = round(1000 * med / N_KERNELS, 2)
        result[f"spread_64x{size}_s"] = [round(min(times), 4), round(max(times), 4)]
        result[f"gabor_like_gabors_{size}"] = round(float(fit.gabor_like[is_gabor].mean()), 3)
        result[f"gabor_like_noise_{size}"] = round(float(fit.gabor_like[~is_gabor].mean()), 3)
        print(f"  {size}x{size}: {med:.3f} s ({1000 * med / N_KERNELS:.1f} ms a kernel; {min(times):.3f}-"
              f"{max(times):.3f} s)   Gabor-like: Gabors {fit.gabor_like[is_gabor].mean():.0%} "
              f"(median R^2 {np.median(fit.r2[is_gabor]):.3f}), smoothed noise "
              f"{fit.gabor_like[~is_gabor].mean():.0%} (median R^2 {np.median(fit.r2[~is_gabor]):.3f})", flush=True)

    fractions = gabor_fractions(args)
    fit_ok = result["fit_64x7_s"] < TARGET_FIT_64X7_S
    gabor_ok = (fractions["gabor_fraction_trained"] >= TARGET_TRAINED and fractions["natural_patches_run_s"]
                <= TARGET_RUN_S)
    print(f"  target: 64 7x7 kernels under {TARGET_FIT_64X7_S:.0f} s: {'ok' if fit_ok else 'MISSED'}; "
          f"natural-patches >= {TARGET_TRAINED:.0%} Gabor-like within {TARGET_RUN_S} s: "
          f"{'ok' if gabor_ok else 'MISSED'}")
    ok = fit_ok and gabor_ok
    result.update(fractions)
    result.update({"kernels": N_KERNELS, "repeats": repeats, "quick": bool(args.quick),
                   "target_fit_64x7_s": TARGET_FIT_64X7_S, "target_gabor_trained": TARGET_TRAINED,
                   "target_run_s": TARGET_RUN_S, "pass": ok})
    print(json.dumps(result))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
