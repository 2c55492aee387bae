"""2-D / 3-D maps of high-dimensional points (activations, embeddings): PCA and t-SNE, stable across snapshots.

Pure numpy / scipy / scikit-learn / openTSNE, off the training loop (the dashboard imports it; it
never imports torch or the store). This module makes maps; comparing them (alignment, displacement,
neighbourhoods kept) is :mod:`backend.analysis.projection.compare`, and the input checks behind its
error messages are :mod:`backend.analysis.projection.checks`.

* :func:`sample_indices` picks the rows to draw, the same rows at every snapshot of a source
  (deterministic in ``(n_total, n_points, seed)``; ``keep`` adds rows such as a queried word).
* :func:`pca` is deterministic in sign: each component's largest-|loading| is positive, so a map
  does not mirror between snapshots.
* :func:`tsne_fit` is openTSNE with FFT-interpolated gradients (Barnes-Hut in 3-D, where openTSNE
  has no FFT), PCA initialisation (rescaled to std 1e-4, as openTSNE's own initialisations are),
  perplexity-based kNN affinities (exact kNN under 1,000 points, Annoy above) and a fixed
  ``random_state``. Schedule: ``n_iter`` iterations in all, the first ``min(250, n_iter // 2)``
  with early exaggeration 12, the rest with none; learning rate N / exaggeration (Belkina et al.
  2019), momentum 0.8 throughout (openTSNE's defaults). With ``n_jobs=1`` the same inputs give a
  bit-identical layout.
* :func:`tsne_continue` is the next snapshot's layout: same rows, new data, affinities recomputed,
  the previous coordinates as the start **at their own scale** (openTSNE asks for std ~1e-4 only
  for a start followed by early exaggeration, which must grow the map; a converged map needs
  none), 50 plain iterations, then a Procrustes alignment onto the previous coordinates, so a
  point moves only as far as its data did. ``bench/tsne.py`` (10,000 points, 20 clusters, every
  point moved by 0.05 sd of noise): the warm map moves ~10x less than an independent fit, keeps
  neighbourhoods as well, and takes less than half the time (the kNN affinities are most of it).
  The price: a real change of structure shows up over several snapshots, not at once (a cluster
  split in two is ~6 cluster radii apart in a fresh fit, 0.4 after one warm start, 1.3 after 100
  iterations instead of 50).
* :func:`add_points` places rows that are new to a snapshot into an existing t-SNE map with
  openTSNE's ``transform`` (each new point against the map's points, not against each other).

A :class:`TSNEResult` keeps openTSNE's live embedding object for :func:`add_points` in the same
process; it is never pickled. Between processes, save :meth:`TSNEResult.to_arrays` (plain arrays,
``np.savez`` without pickle) and warm-start the next snapshot from them
(:meth:`TSNEResult.from_arrays`, or the coordinates alone).

Errors a page can show are ``ValueError`` with the numbers in them, e.g. "t-SNE with perplexity 30
needs at least 91 points; this source has 40: lower the perplexity to at most 13".

Re-exported here so that imports written before the modules were split keep working (new code
imports them from their own module): ``procrustes_align``, ``mean_displacement``,
``neighbourhood_overlap``, ``knn_agreement`` (:mod:`~backend.analysis.projection.compare`) and
``check_perplexity``, ``METRICS`` (:mod:`~backend.analysis.projection.checks`).

Example::

    from backend.analysis.projection.compare import mean_displacement

    rows = sample_indices(len(acts), 10_000, seed=0, keep=np.array([query_row]))
    first = tsne_fit(acts[rows], perplexity=30, metric="cosine")        # ~13 s for 10k on 2 cores
    np.savez(path, rows=rows, **first.to_arrays())
    ...                                                                  # next snapshot, maybe another process
    saved = np.load(path, allow_pickle=False)
    nxt = tsne_continue(acts_next[saved["rows"]], TSNEResult.from_arrays(saved))
    moved = mean_displacement(nxt.coords, saved["coords"])               # ~0.01-0.02 for a small step
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.analysis.projection.checks import (DEFAULT_METRIC, as_matrix, check_dims, check_directions, check_metric,
                                                check_perplexity)
from backend.analysis.projection.compare import apply_frame, similarity_frame
# re-exports for code written before the split (see the module docstring and __all__)
from backend.analysis.projection.checks import METRICS
from backend.analysis.projection.compare import (knn_agreement, mean_displacement, neighbourhood_overlap,
                                                 procrustes_align)

__all__ = ["EARLY_ITER", "EARLY_EXAGGERATION", "RESTRUCTURE_STD", "RESTRUCTURE_EXAGGERATION", "WARM_ITER", "MOMENTUM", "DEFAULT_METRIC", "TSNEResult",
           "sample_indices", "pca", "tsne_fit", "tsne_continue", "add_points",
           # re-exported (see the module docstring)
           "METRICS", "check_perplexity", "procrustes_align", "mean_displacement", "neighbourhood_overlap",
           "knn_agreement"]

EARLY_ITER = 250           # early-exaggeration iterations of a fresh fit (at most n_iter // 2)
EARLY_EXAGGERATION = 12.0
# A restructured warm start (see tsne_continue): the previous map shrunk to std 1 (not openTSNE's 1e-4, from
# which early exaggeration re-forms the whole map, as a fresh fit does) and a milder exaggeration
RESTRUCTURE_STD = 1.0
RESTRUCTURE_EXAGGERATION = 4.0
WARM_ITER = 50             # iterations of a warm start (see tsne_continue)
MOMENTUM = 0.8


# --------------------------------------------------------------------------------------------- sampling

def sample_indices(n_total: int, n_points: int, seed: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Sorted row indices: a random ``n_points`` of ``range(n_total)``, plus every index in ``keep``.

    Deterministic in ``(n_total, n_points, seed)``, so every snapshot of a source draws the same
    rows. Row ``i``'s priority is the ``i``-th draw of ``default_rng(seed).random``, and the
    ``n_points`` smallest win: a source that grows keeps most of its sample (a row leaves only
    when a new row outranks it). ``keep`` is added on top (the base sample does not change, so the
    result can have up to ``len(keep)`` more than ``n_points`` rows); all rows when
    ``n_points >= n_total``.
    """
    n_total, n_points = int(n_total), int(n_points)
    if n_total < 0 or n_points < 0:
        raise ValueError(f"n_total and n_points must be >= 0, got {n_total} and {n_points}")
    if n_points >= n_total:
        base = np.arange(n_total, dtype=np.int64)
    else:
        priority = np.random.default_rng(seed).random(n_total)
        base = np.argpartition(priority, n_points)[:n_points].astype(np.int64) if n_points else np.zeros(0, np.int64)
    if keep is not None:
        keep = np.asarray(keep).ravel()
        if keep.size and (not np.issubdtype(keep.dtype, np.integer) or keep.min() < 0 or keep.max() >= n_total):
            raise ValueError(f"keep must hold row indices in [0, {n_total}), got {keep[:5].tolist()}...")
        base = np.concatenate([base, keep.astype(np.int64)])
    return np.unique(base)


# --------------------------------------------------------------------------------------------- PCA

def pca(x, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates on the top ``dims`` principal components (float32) and their explained-variance ratios.

    By SVD of the centred data, in float64. Each component's sign is fixed so that its largest
    absolute loading is positive: the same data in any row order gives the same map (rows
    permuted alike), and a slightly changed snapshot does not come out mirrored.
    """
    dims = check_dims(dims)
    x = as_matrix(x, min_rows=2).astype(np.float64)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:dims]
    if len(comps) < dims:  # fewer features (or rows) than dims: pad with zero components
        comps = np.vstack([comps, np.zeros((dims - len(comps), x.shape[1]))])
    top = np.abs(comps).argmax(axis=1)
    sign = np.where(comps[np.arange(dims), top] < 0, -1.0, 1.0)
    comps = comps * sign[:, None]
    var = s ** 2
    total = var.sum()
    ratio = np.zeros(dims)
    k = min(dims, len(var))
    if total > 0:
        ratio[:k] = var[:k] / total
    return (xc @ comps.T).astype(np.float32), ratio


# --------------------------------------------------------------------------------------------- t-SNE

@dataclass(frozen=True, eq=False)
class TSNEResult:
    """A t-SNE layout: ``coords`` (n x dims, float32) and how it was made.

    ``params`` holds ``dims``, ``perplexity``, ``metric``, ``seed``, ``n_jobs``, ``n_iter``,
    ``early_exaggeration_iter``, ``negative_gradient_method`` and ``warm_start``. The openTSNE
    embedding object behind the layout (needed by :func:`add_points`) lives only in this process;
    :meth:`to_arrays` / :meth:`from_arrays` carry everything a later process needs to warm-start.
    """

    coords: np.ndarray
    params: dict[str, Any]
    kl_divergence: float
    seconds: float
    _embedding: Any = field(default=None, repr=False)   # openTSNE.TSNEEmbedding, in its own frame
    _frame: Any = field(default=None, repr=False)       # embedding frame -> coords: (scale, R, mu_a, mu_b)

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def live(self) -> bool:
        """Whether openTSNE's embedding object is here (same process), so :func:`add_points` needs no rebuild."""
        return self._embedding is not None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects; ``np.savez`` / ``np.load`` without pickle) from which :meth:`from_arrays` rebuilds it."""
        return {"coords": np.asarray(self.coords, dtype=np.float32),
                "kl_divergence": np.float64(self.kl_divergence),
                "seconds": np.float64(self.seconds),
                "params_json": np.array(json.dumps(self.params, sort_keys=True))}

    @classmethod
    def from_arrays(cls, arrays) -> "TSNEResult":
        """The result saved by :meth:`to_arrays` (a dict or an ``np.load`` archive), without the live embedding."""
        return cls(coords=np.asarray(arrays["coords"], dtype=np.float32),
                   params=json.loads(str(np.asarray(arrays["params_json"])[()])),
                   kl_divergence=float(arrays["kl_divergence"]), seconds=float(arrays["seconds"]))


def _gradient_method(dims: int) -> str:
    return "fft" if dims == 2 else "bh"   # openTSNE's FFT interpolation is 1-D/2-D only


def _affinities(x: np.ndarray, perplexity: float, metric: str, seed: int, n_jobs: int):
    from openTSNE import affinity

    return affinity.PerplexityBasedNN(x, perplexity=perplexity, metric=metric, n_jobs=n_jobs,
                                      random_state=seed, verbose=False)


def _embedding(init: np.ndarray, affinities, dims: int, seed: int, n_jobs: int):
    from openTSNE import TSNEEmbedding

    return TSNEEmbedding(np.ascontiguousarray(init, dtype=np.float64), affinities,
                         negative_gradient_method=_gradient_method(dims), n_jobs=n_jobs, random_state=seed)


def _prepare(x, dims: int, perplexity: float, metric: str) -> tuple[np.ndarray, int, str]:
    dims = check_dims(dims)
    metric = check_metric(metric)
    x = as_matrix(x)
    check_perplexity(len(x), perplexity)
    check_directions(x, metric)
    return x, dims, metric


def _pca_start(x: np.ndarray, dims: int, metric: str, seed: int) -> np.ndarray:
    """openTSNE's PCA start from :func:`pca` (sign-fixed): std 1e-4 on the first axis, 1% jitter with ``seed``."""
    from openTSNE import initialization

    if metric == "cosine":  # the directions the metric sees
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    start = pca(x, dims)[0].astype(np.float64)
    if not np.std(start[:, 0]) > 0:  # all points equal: nothing to start from but noise
        return initialization.random(len(x), dims, random_state=seed)
    start = initialization.rescale(start, target_std=1e-4)
    return initialization.jitter(start, scale=0.01, random_state=seed)


def tsne_fit(x, dims: int = 2, perplexity: float = 30, metric: str = DEFAULT_METRIC, seed: int = 0,
             n_jobs: int = 1, n_iter: int = 500) -> TSNEResult:
    """A fresh t-SNE layout of the rows of ``x`` (see the module docstring for the schedule).

    ``n_iter`` counts all iterations: ``min(250, n_iter // 2)`` with early exaggeration 12, the
    rest without. Raises ``ValueError`` for too few points for ``perplexity``, NaN/inf rows,
    all-zero rows under the cosine metric, ``dims`` other than 2 or 3 and metrics other than
    ``"cosine"`` / ``"euclidean"``.

    ``n_jobs`` threads for the kNN search and the gradients. On the shared 2-core machine, with
    other work on the second core, 10,000 points took 13.8 s with ``n_jobs=1`` and 21.1 s with
    2 (OpenMP threads wait on the busy core); 100,000 points 116 s with 1 (``bench/tsne.py``).
    """
    t0 = time.perf_counter()
    x, dims, metric = _prepare(x, dims, perplexity, metric)
    n_iter = int(n_iter)
    if n_iter < 2:
        raise ValueError(f"n_iter must be at least 2, got {n_iter}")
    early = min(EARLY_ITER, n_iter // 2)
    emb = _embedding(_pca_start(x, dims, metric, seed), _affinities(x, perplexity, metric, seed, n_jobs),
                     dims, seed, n_jobs)
    emb.optimize(n_iter=early, exaggeration=EARLY_EXAGGERATION, momentum=MOMENTUM, inplace=True)
    emb.optimize(n_iter=n_iter - early, exaggeration=1, momentum=MOMENTUM, inplace=True)
    params = {"dims": dims, "perplexity": float(perplexity), "metric": metric, "seed": int(seed),
              "n_jobs": int(n_jobs), "n_iter": n_iter, "early_exaggeration_iter": early,
              "negative_gradient_method": _gradient_method(dims), "warm_start": False}
    coords = np.asarray(emb, dtype=np.float64)
    frame = (1.0, np.eye(dims), np.zeros(dims), np.zeros(dims))
    return TSNEResult(coords.astype(np.float32), params, float(emb.kl_divergence), time.perf_counter() - t0,
                      emb, frame)


def tsne_continue(x_new, prev, *, perplexity: float | None = None, metric: str | None = None,
                  seed: int | None = None, n_jobs: int | None = None, n_iter: int = WARM_ITER,
                  restructure: bool = False) -> TSNEResult:
    """The layout of the next snapshot ``x_new`` (the same rows, in the same order), warm-started from ``prev``.

    ``prev`` is a :class:`TSNEResult` (live or :meth:`~TSNEResult.from_arrays`) or its coordinates;
    ``perplexity``, ``metric``, ``seed`` and ``n_jobs`` default to ``prev``'s (or 30, cosine, 0, 1
    for bare coordinates). Affinities are recomputed on ``x_new``; the optimisation starts from
    the previous coordinates as they are (no rescaling: they are a converged map, not a seed that
    early exaggeration must grow) and runs ``n_iter`` iterations without exaggeration (learning
    rate N, momentum 0.8); the result is rotated (or reflected) and shifted onto the previous
    coordinates (orthogonal Procrustes, no scaling: a t-SNE map keeps its own size), so unchanged
    structure stays where it was drawn.

    ``n_iter`` 50: more iterations do not improve the map for a small step (kNN agreement equal to
    a fresh fit's) but let it drift (a t-SNE map keeps slowly rearranging: 100 iterations move it
    1.2-2x as far) and cost time (at the scale of a converged 10k map an FFT iteration takes
    30-50 ms, against 3.5 s for the affinities). Large changes of structure need several warm
    starts (or a fresh fit) to show in full.

    ``restructure``: for data whose neighbourhoods changed a lot (early in training, when a
    model's vectors leave their random start; see
    :func:`~backend.analysis.projection.compare.neighbourhood_overlap`), run a full schedule
    instead (``EARLY_ITER`` iterations of exaggeration ``RESTRUCTURE_EXAGGERATION`` = 4, then as
    many plain ones) from the previous coordinates shrunk to std ``RESTRUCTURE_STD`` = 1: the new
    structure forms in full, and the previous arrangement is kept where the data allow; then
    aligned as above. Shrunk to openTSNE's 1e-4 with exaggeration 12 (until 2026-12-06), the
    arrangement re-formed as in a fresh fit: on ``bench/projection_quality.py`` (word2vec, five
    restructured maps) the median word moved 0.35, 0.24, 0.25, 0.22, 0.25 map widths; now 0.39,
    0.22, 0.15, 0.10, 0.09, with the last map as faithful (kNN agreement 0.365 against 0.358) and
    its word groups closer (spread 0.39 against 0.45). Without exaggeration, from the previous
    map at its own scale, the moves were smaller still (0.34 to 0.05) but the map never formed
    its groups (spread 0.82).
    """
    t0 = time.perf_counter()
    if isinstance(prev, TSNEResult):
        prev_coords, old = np.asarray(prev.coords, dtype=np.float64), prev.params
    else:
        prev_coords, old = as_matrix(prev, "prev_coords").astype(np.float64), {}
    perplexity = old.get("perplexity", 30.0) if perplexity is None else perplexity
    metric = old.get("metric", DEFAULT_METRIC) if metric is None else metric
    seed = old.get("seed", 0) if seed is None else seed
    n_jobs = old.get("n_jobs", 1) if n_jobs is None else n_jobs
    dims = prev_coords.shape[1] if prev_coords.ndim == 2 else -1
    x, dims, metric = _prepare(x_new, dims, perplexity, metric)
    if len(x) != len(prev_coords):
        raise ValueError(f"a warm start needs the same rows: x_new has {len(x)}, the previous layout "
                         f"{len(prev_coords)} (place new rows with add_points)")
    n_iter = int(n_iter)
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1, got {n_iter}")
    if restructure:
        from openTSNE import initialization

        start = initialization.rescale(prev_coords - prev_coords.mean(axis=0), target_std=RESTRUCTURE_STD)
        emb = _embedding(start, _affinities(x, perplexity, metric, seed, n_jobs), dims, seed, n_jobs)
        emb.optimize(n_iter=EARLY_ITER, exaggeration=RESTRUCTURE_EXAGGERATION, momentum=MOMENTUM, inplace=True)
        n_iter = max(n_iter, EARLY_ITER)
    else:
        emb = _embedding(prev_coords, _affinities(x, perplexity, metric, seed, n_jobs), dims, seed, n_jobs)
    emb.optimize(n_iter=n_iter, exaggeration=1, momentum=MOMENTUM, inplace=True)
    native = np.asarray(emb, dtype=np.float64)
    # rigid: rotation/reflection and translation only. The least-squares scale shrinks a map towards
    # its centre when it corresponds poorly to the previous one (a restructured map collapsed to a dot)
    _, rotation, mu_a, mu_b = similarity_frame(native, prev_coords)
    frame = (1.0, rotation, mu_a, mu_b)
    params = {"dims": dims, "perplexity": float(perplexity), "metric": metric, "seed": int(seed),
              "n_jobs": int(n_jobs), "n_iter": n_iter + (EARLY_ITER if restructure else 0),
              "early_exaggeration_iter": EARLY_ITER if restructure else 0,
              "negative_gradient_method": _gradient_method(dims), "warm_start": True, "restructure": bool(restructure)}
    return TSNEResult(apply_frame(frame, native).astype(np.float32), params, float(emb.kl_divergence),
                      time.perf_counter() - t0, emb, frame)


def add_points(result: TSNEResult, x_old_sample, x_extra) -> np.ndarray:
    """Coordinates (float32, len(x_extra) x dims) for rows new to a snapshot, placed into ``result``'s map.

    openTSNE's ``transform``: each new point starts at the median of its 25 nearest map points and
    is optimised against the fixed map (perplexity 5, 250 iterations), not against the other new
    points. ``x_old_sample`` is the data the map was fitted on (the same rows). With a live
    result (same process) its openTSNE object is reused (a copy: ``transform`` re-centres the map
    it is given) and ``x_old_sample`` only checks the shapes; a result from
    :meth:`TSNEResult.from_arrays` rebuilds the kNN index from ``x_old_sample`` around the saved
    coordinates, which costs an index build.
    """
    from openTSNE import TSNEEmbedding

    x_old = as_matrix(x_old_sample, "x_old_sample")
    extra = np.asarray(x_extra)
    dims = result.coords.shape[1]
    if extra.ndim == 2 and len(extra) == 0:
        return np.zeros((0, dims), dtype=np.float32)
    extra = as_matrix(extra, "x_extra")
    if len(x_old) != len(result.coords):
        raise ValueError(f"x_old_sample has {len(x_old)} rows but the map has {len(result.coords)}")
    if extra.shape[1] != x_old.shape[1]:
        raise ValueError(f"x_extra has {extra.shape[1]} features, the map's data {x_old.shape[1]}")
    p = result.params
    check_directions(extra, p["metric"], "x_extra")
    if result.live:
        live = result._embedding
        emb = TSNEEmbedding(np.array(live, dtype=np.float64), live.affinities, random_state=live.random_state,
                            **live.gradient_descent_params)
        frame = result._frame
    else:
        aff = _affinities(x_old, p["perplexity"], p["metric"], p["seed"], p["n_jobs"])
        emb = _embedding(np.asarray(result.coords, dtype=np.float64), aff, dims, p["seed"], p["n_jobs"])
        frame = (1.0, np.eye(dims), np.zeros(dims), np.zeros(dims))
    shift = (np.asarray(emb).max(axis=0) + np.asarray(emb).min(axis=0)) / 2  # transform centres the map first
    placed = np.asarray(emb.transform(extra), dtype=np.float64) + shift
    return apply_frame(frame, placed).astype(np.float32)
