"""Comparing maps of the same rows: alignment, how far a map moved, which neighbourhoods it keeps.

Pure numpy / scipy / scikit-learn (no openTSNE, no torch, no store); the maps themselves are made by
:mod:`backend.analysis.projection.core`.

* :func:`procrustes_align` (rotation/reflection, uniform scale, translation) and
  :func:`mean_displacement` (mean distance after alignment / the reference's RMS radius).
* :func:`similarity_frame` / :func:`apply_frame`: the same least-squares fit as a frame
  ``(scale, rotation, mean of coords, mean of reference)`` that can be applied to other points; the
  t-SNE warm start uses it with scale 1 (rigid) and keeps it for points placed later.
* :func:`knn_agreement` is the share of each point's k nearest neighbours that the map keeps
  (scikit-learn's ``load_digits``, standardised, 10 neighbours: t-SNE 0.59, PCA 0.12;
  ``tests/unit/test_projection.py``).
* :func:`neighbourhood_overlap` is the same share between two snapshots of the data: near 1 for a
  small training step, about ``k / n`` when the vectors were replaced (then a warm start should
  restructure, see :func:`~backend.analysis.projection.core.tsne_continue`).

Errors are ``ValueError`` with the shapes in them (:mod:`backend.analysis.projection.checks`).

Example::

    moved = mean_displacement(nxt.coords, first.coords)   # ~0.01-0.02 for a small step, ~0.9 unrelated
    kept = knn_agreement(acts[rows], first.coords, k=10)   # 1 keeps every neighbourhood, ~k/n random
    if neighbourhood_overlap(acts[rows], acts_next[rows]) < 0.7:
        nxt = tsne_continue(acts_next[rows], first, restructure=True)
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes

from backend.analysis.projection.checks import DEFAULT_METRIC, as_matrix, check_metric


# --------------------------------------------------------------------------------------------- alignment

def similarity_frame(coords, reference) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(scale, rotation, mean of coords, mean of reference) of the best map ``s (a - mu_a) R + mu_b``.

    Least squares over all rows, which must correspond (``scipy.linalg.orthogonal_procrustes`` on
    the centred point sets; the scale is the sum of singular values over ``|coords - mean|^2``).
    """
    a = np.asarray(coords, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"coords and reference must have the same 2-D shape, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ac, bc = a - mu_a, b - mu_b
    norm = float((ac ** 2).sum())
    if norm == 0:
        return 0.0, np.eye(a.shape[1]), mu_a, mu_b
    rotation, singular_sum = orthogonal_procrustes(ac, bc)
    return float(singular_sum) / norm, rotation, mu_a, mu_b


def apply_frame(frame: tuple, points) -> np.ndarray:
    """``points`` (float64) moved by a frame from :func:`similarity_frame`."""
    scale, rotation, mu_a, mu_b = frame
    return scale * (np.asarray(points, dtype=np.float64) - mu_a) @ rotation + mu_b


def procrustes_align(coords, reference) -> np.ndarray:
    """``coords`` moved onto ``reference`` by the best rotation/reflection, uniform scale and translation.

    Least squares over all rows (``scipy.linalg.orthogonal_procrustes`` on the centred point sets;
    the scale is the sum of singular values over ``|coords - mean|^2``). Rows must correspond.
    """
    return apply_frame(similarity_frame(coords, reference), coords)


def mean_displacement(a, b) -> float:
    """Mean Euclidean distance of ``a`` (aligned onto ``b`` by :func:`procrustes_align`) to ``b``, over ``b``'s RMS radius.

    The RMS radius is ``sqrt(mean |b - mean(b)|^2)``, so the figure does not depend on the map's
    scale: 0 for the same map up to a similarity; for a small data step (noise of 0.05 sd), ~0.006
    (digits) to ~0.015 (10,000 points) warm-started and 0.08 to 0.19 for an independent fit (PCA
    start, another seed); ~0.9 for unrelated random layouts.
    """
    b = np.asarray(b, dtype=np.float64)
    aligned = procrustes_align(a, b)
    radius = float(np.sqrt(((b - b.mean(axis=0)) ** 2).sum(axis=1).mean()))
    if radius == 0:
        return 0.0
    return float(np.linalg.norm(aligned - b, axis=1).mean() / radius)


# --------------------------------------------------------------------------------------------- neighbourhoods

def neighbourhood_overlap(x_old, x_new, k: int = 10, metric: str = DEFAULT_METRIC) -> float:
    """How much the same rows' neighbourhoods survive from ``x_old`` to ``x_new``: the mean share of
    each row's ``k`` nearest neighbours (by ``metric``) in ``x_new`` that were among them in ``x_old``.
    1 for a small step of training; about ``k / n`` when the vectors were replaced (e.g. left their
    random initialisation): then a warm start should restructure
    (:func:`~backend.analysis.projection.core.tsne_continue`)."""
    old = as_matrix(x_old, "x_old")
    if check_metric(metric) == "cosine":  # cosine neighbours are Euclidean ones of unit vectors
        norms = np.linalg.norm(old, axis=1, keepdims=True)
        old = old / np.where(norms > 0, norms, 1.0)
    return knn_agreement(x_new, old, k=min(k, len(old) - 1), metric=metric)


def knn_agreement(x, coords, k: int = 10, metric: str = "euclidean") -> float:
    """Mean share of each point's ``k`` nearest neighbours in ``x`` (by ``metric``) that are among its ``k`` nearest in ``coords``.

    Exact neighbours (scikit-learn), the point itself excluded; Euclidean in the map. 1 for a map
    that keeps every neighbourhood, about ``k / n`` for a random one.
    """
    from sklearn.neighbors import NearestNeighbors

    metric = check_metric(metric)
    x = as_matrix(x)
    coords = as_matrix(coords, "coords")
    if len(x) != len(coords):
        raise ValueError(f"x has {len(x)} rows, coords {len(coords)}")
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and {len(x) - 1}, got {k}")

    def neighbours(data, how):
        idx = NearestNeighbors(n_neighbors=k + 1, metric=how).fit(data).kneighbors(data, return_distance=False)
        own = idx == np.arange(len(data))[:, None]
        # drop the point itself (or, among exact duplicates where it is not listed, the farthest)
        own[~own.any(axis=1), -1] = True
        return idx[~own].reshape(len(data), k)

    a, b = neighbours(x, metric), neighbours(coords, "euclidean")
    a.sort(axis=1)
    b.sort(axis=1)
    hits = sum((b == a[:, [j]]).any(axis=1).astype(np.int64) for j in range(k))  # a's rows are distinct
    return float(np.mean(hits) / k)
