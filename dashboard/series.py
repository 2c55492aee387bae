"""Pure helpers on scalar series (numpy in, numpy or lists out): downsampling for display.

Example::

    idx = downsample_indices(steps, values, n_out=2000)
    x, y = steps[idx], values[idx]
"""
from __future__ import annotations

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler, NaNMinMaxLTTBDownsampler

# MinMaxLTTB needs a few points per bucket to beat plain LTTB; below this size we keep everything.
MIN_POINTS_TO_DOWNSAMPLE = 8


def downsample_indices(x: np.ndarray, y: np.ndarray, n_out: int = 2000) -> np.ndarray:
    """Indices of at most ~``n_out`` points that keep the series' shape (spikes included).

    Uses MinMax-LTTB (tsdownsample). The first and the last point are always kept, so the
    newest value a run logged is never hidden by downsampling. ``x`` must be sorted.

    >>> downsample_indices(np.arange(10), np.arange(10.0), n_out=100).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    n = len(y)
    if n <= max(n_out, MIN_POINTS_TO_DOWNSAMPLE):
        return np.arange(n)
    y = np.asarray(y, dtype=np.float64)
    # A diverging loss logs inf/NaN; the NaN-aware variant keeps such points visible as gaps.
    finite = np.isfinite(y)
    if finite.all():
        idx = MinMaxLTTBDownsampler().downsample(np.asarray(x, dtype=np.float64), y, n_out=n_out)
    else:
        y = np.where(finite, y, np.nan)
        idx = NaNMinMaxLTTBDownsampler().downsample(np.asarray(x, dtype=np.float64), y, n_out=n_out)
    return np.union1d(np.asarray(idx, dtype=np.int64), [0, n - 1])


SIGNIFICANT_DIGITS = 6  # a chart cannot show more; full doubles double the JSON size


def to_plot_list(values: np.ndarray | list) -> list:
    """Python floats rounded to 6 significant digits for JSON; non-finite values as ``None`` (a gap).

    Streamed traces must be lists: Dash 4 sends numpy arrays as base64 that Patch cannot extend.

    >>> to_plot_list([0.123456789, float("nan"), 12345678.9])
    [0.123457, None, 12345700.0]
    """
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    mags = np.floor(np.log10(np.abs(np.where(finite & (arr != 0), arr, 1.0))))
    scale = 10.0 ** (SIGNIFICANT_DIGITS - 1 - mags)
    rounded = np.round(arr * scale) / scale
    return [float(v) if ok else None for v, ok in zip(rounded.tolist(), finite.tolist())]



def thin_indices(x: list, y: list, spacing: float) -> list[int]:
    """Indices of the points of a short chunk to draw at one point pair per ``spacing`` steps: the smallest
    and the largest value in each ``spacing``-wide slice of x, every gap (None), and the last point.

    A live page adds new points at the resolution its history was first drawn with (MinMax-LTTB keeps a
    pair per slice too), so a long run's tail is not drawn ten times denser than its past, and the updates of
    a run that logs many points between two draws stay small. Every point stays in the store (export).

    >>> thin_indices([10, 20, 30, 40, 50, 60], [0, 5, 1, 4, 2, 3], 40)
    [0, 1, 3, 4, 5]
    """
    n = len(y)
    if n <= 2 or spacing <= 0:
        return list(range(n))
    buckets = [v // spacing for v in x]
    if all(a != c for a, c in zip(buckets, buckets[2:])):  # at most 2 points a slice (a live tick): all kept
        return list(range(n))
    keep = {n - 1}
    lo = 0
    while lo < n:
        hi = lo + 1
        while hi < n and buckets[hi] == buckets[lo]:
            hi += 1
        finite = [i for i in range(lo, hi) if y[i] is not None]
        keep.update(i for i in range(lo, hi) if y[i] is None)
        if finite:
            keep.add(min(finite, key=y.__getitem__))
            keep.add(max(finite, key=y.__getitem__))
        lo = hi
    return sorted(keep)
