"""Input checks of the projection maths: the messages a page shows when a source cannot be mapped.

Pure numpy (no scipy, scikit-learn, openTSNE or torch). The fitting module
(:mod:`backend.analysis.projection.core`) and the comparing module
(:mod:`backend.analysis.projection.compare`) run them on their inputs; a page can call
:func:`check_perplexity` before it asks for a map. Each raises ``ValueError`` with the numbers in it,
e.g. "t-SNE with perplexity 30 needs at least 91 points; this source has 40: lower the perplexity to
at most 13".

Example::

    x = as_matrix(acts, "activations")     # finite 2-D float array, else names the first NaN/inf row
    check_perplexity(len(x), 30)            # raises when 30 needs more points than there are
    check_directions(x, check_metric("cosine"))   # no all-zero rows under the cosine metric
"""
from __future__ import annotations

import numpy as np

METRICS = ("cosine", "euclidean")
DEFAULT_METRIC = "cosine"


def check_dims(dims: int) -> int:
    """``dims`` as an int when it is 2 or 3 (a map's dimensions); ``ValueError`` otherwise."""
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims not in (2, 3):
        raise ValueError(f"a map has 2 or 3 dimensions, not {dims!r}")
    return int(dims)


def check_metric(metric: str) -> str:
    """``metric`` when it is one of :data:`METRICS`; ``ValueError`` naming them otherwise."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(repr(m) for m in METRICS)}")
    return metric


def as_matrix(x, name: str = "x", min_rows: int = 1) -> np.ndarray:
    """``x`` as a finite 2-D float array (float32 stays float32, other types become float64)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of points x features, got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {x.shape})")
    if len(x) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} points; this source has {len(x)}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} has {len(rows)} row(s) with NaN or inf values (first: row {rows[0]}): "
                         "drop or fill them before projecting")
    return x


def check_perplexity(n_points: int, perplexity: float) -> None:
    """Raise the page's message when ``n_points`` are too few for ``perplexity`` (openTSNE needs n > 3 x perplexity)."""
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}")
    need = int(3 * perplexity) + 1
    if n_points < need:
        most = (n_points - 1) // 3
        fix = f"lower the perplexity to at most {most}" if most >= 1 else "t-SNE needs at least 4 points"
        raise ValueError(f"t-SNE with perplexity {perplexity:g} needs at least {need} points; "
                         f"this source has {n_points}: {fix}")


def check_directions(x: np.ndarray, metric: str, name: str = "x") -> None:
    """All-zero rows under the cosine metric: openTSNE would divide by their norm and fail inside scikit-learn."""
    if metric == "cosine":
        zero = ~x.any(axis=1)
        if zero.any():
            rows = np.flatnonzero(zero)
            raise ValueError(f"{name} has {len(rows)} all-zero row(s) (first: row {rows[0]}), which have no "
                             "direction for the cosine metric: drop them or use metric='euclidean'")
