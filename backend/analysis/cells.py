"""Cell selection and corpus-wide matching, LSTMVis-style; track correlations; gate saturation.

Pure numpy: arrays in, arrays or records out. A cell is *on* at a token when its
value is above the threshold.

Select: the cells on at every token of a brushed range and off at the
``off_before`` tokens before it and the ``off_after`` tokens after it.

Match: places in the corpus where the selected cells are on together. A candidate
is a maximal run of tokens where at least ``min_common`` selected cells are on; it
is ranked (as LSTMVis does) by the number of selected cells on throughout it, then
by the fewest extra cells (unselected cells also on throughout it), then by how close
its length is to the brushed range's, then by position.

Suggested threshold: the one at which the cells selected for a brushed range are most
off around it (:func:`suggest_threshold`), so a first brush selects cells without a
threshold chosen beforehand.

Example::

    cells = select_cells(window, start=10, stop=15, threshold=0.3)
    thr = suggest_threshold([Brushed(context_window, 40, 45, off_before=1)])
    found = candidate_ranges(columns_of_those_cells, threshold=0.3)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SelectionError(ValueError):
    """A selection or match request that cannot be answered; the message says why and what to do."""


def above(values: np.ndarray, threshold: float) -> np.ndarray:
    """``values > threshold`` as bool; for float16 and a threshold >= 0 on the int16 bit patterns.

    Non-negative float16 values order like their bit patterns, and negative ones (sign bit
    set) read as negative int16s, so the comparison is exact (NaN stays off) and ~6x faster
    than numpy's float16 ``>``, which converts every element.
    """
    if values.dtype == np.float16 and threshold >= 0:
        bits = values.view(np.int16)
        with np.errstate(over="ignore"):  # thresholds past float16's range become inf: still exact
            t = np.float16(threshold)
        lowest = int(t.view(np.int16)) - (1 if float(t) > threshold else 0)  # rounded up: x >= t counts
        return (bits > lowest) & (bits <= 0x7C00)  # 0x7C00 is +inf; above it, NaN (never on)
    return values > threshold


def select_cells(window: np.ndarray, start: int, stop: int, threshold: float,
                 off_before: int = 1, off_after: int = 0) -> np.ndarray:
    """Ids of cells on at every token of ``window[start:stop]`` and off just outside it.

    ``window`` is ``(tokens, cells)``; margins that fall outside the window are not required.

    >>> w = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=float)
    >>> select_cells(w, 1, 3, threshold=0.5).tolist()   # cell 0: off, on, on
    [0]
    """
    if not 0 <= start < stop <= len(window):
        raise SelectionError(f"the range {start}..{stop} is empty or outside the {len(window)} tokens shown")
    on = window > threshold
    keep = on[start:stop].all(axis=0)
    before = on[max(0, start - off_before):start]
    after = on[stop:stop + off_after]
    if len(before):
        keep &= ~before.any(axis=0)
    if len(after):
        keep &= ~after.any(axis=0)
    return np.flatnonzero(keep)


SUGGEST_STEPS = 40  # thresholds tried between 0 and the highest value a cell keeps over the range


@dataclass(frozen=True)
class Brushed:
    """One state's values around a brushed range: ``values`` is ``(tokens, cells)``, the range is
    ``values[start:stop]``, the rest is context; margins in this state's reading order."""

    values: np.ndarray
    start: int
    stop: int
    off_before: int = 1
    off_after: int = 0


@dataclass(frozen=True)
class Suggestion:
    threshold: float
    cells: int        # cells selected at it, all groups together
    contrast: float   # 1 - the share of context tokens at which those cells are on


def suggest_threshold(groups: list[Brushed], steps: int = SUGGEST_STEPS) -> Suggestion | None:
    """The threshold that best separates the brushed range from its context, or None when no
    threshold >= 0 selects a cell (every cell dips to 0 or below somewhere in the range).

    Tries ``steps`` thresholds from 0 up to the highest minimum a cell keeps over the range
    (rounded to 2 significant digits). At each, the cells :func:`select_cells` picks (margins
    included) are on throughout the range; the score is how rarely they are on in the context
    (the tokens of ``values`` outside the range), i.e. the contrast inside vs outside. Ties go
    to more cells. Several groups (both directions of a layer) share the one threshold.

    >>> w = np.array([[0.0, 0.9], [0.6, 0.9], [0.7, 0.8], [0.0, 0.9]])   # cell 0 fires on tokens 1-2 only
    >>> s = suggest_threshold([Brushed(w, 1, 3, off_before=1)])         # cell 1 is on before: never selected
    >>> s.cells, s.contrast, s.threshold
    (1, 1.0, 0.0)
    """
    f = [np.asarray(g.values, dtype=np.float32) for g in groups]
    top = max((float(v[g.start:g.stop].min(axis=0).max()) for v, g in zip(f, groups) if g.stop > g.start),
              default=0.0)
    if not top > 0:
        return None
    grid = sorted({float(f"{t:.2g}") for t in np.linspace(0, top, steps, endpoint=False)})
    best: Suggestion | None = None
    for t in grid:
        on, n = 0, 0
        for v, g in zip(f, groups):
            cells = select_cells(v, g.start, g.stop, t, g.off_before, g.off_after)
            if len(cells):
                ctx = np.concatenate([v[:g.start, cells], v[g.stop:, cells]])
                counted = int((~np.isnan(ctx[:, 0])).sum())  # tokens where the layer has a state
                on += int((ctx > t).sum()) / max(counted, 1)
                n += len(cells)
        if n:
            s = Suggestion(t, n, round(1 - on / n, 4))
            if best is None or (s.contrast, s.cells) > (best.contrast, best.cells):
                best = s
    return best


@dataclass(frozen=True)
class Candidates:
    """Runs of tokens where enough selected cells are on: ``stop`` is exclusive."""

    start: np.ndarray
    stop: np.ndarray
    common: np.ndarray  # selected cells on at every token of the run

    def __len__(self) -> int:
        return len(self.start)


def candidate_ranges(columns: np.ndarray, threshold: float, min_common: int | None = None,
                     max_len: int | None = None) -> Candidates:
    """Maximal runs where at least ``min_common`` of the ``(k, tokens)`` selected columns are on.

    ``min_common`` defaults to half of the selected cells (at least one). Runs longer
    than ``max_len`` are dropped (they are whole regions, not patterns).

    >>> cols = np.array([[0, 1, 1, 0, 1], [0, 1, 1, 0, 0]], dtype=np.float16)
    >>> c = candidate_ranges(cols, 0.5, min_common=2)
    >>> c.start.tolist(), c.stop.tolist(), c.common.tolist()
    ([1], [3], [2])
    """
    k, n = columns.shape
    if k == 0:
        raise SelectionError("no cells are selected: brush a range where some cells are on")
    need = max(1, (k + 1) // 2) if min_common is None else int(min_common)
    on = above(columns, threshold)
    count = on.sum(axis=0, dtype=np.int16) if k < 32_000 else on.sum(axis=0)
    mask = np.concatenate(([False], count >= need, [False]))
    edges = np.flatnonzero(mask[1:] != mask[:-1])
    start, stop = edges[0::2], edges[1::2]
    if max_len is not None:
        short = (stop - start) <= max_len
        start, stop = start[short], stop[short]
    if not len(start):
        return Candidates(start, stop, np.zeros(0, dtype=np.int64))
    # cells on throughout [start, stop): AND-reduce each run (reduceat over start/stop pairs)
    padded = np.concatenate([on, np.zeros((k, 1), dtype=bool)], axis=1)
    bounds = np.stack([start, stop], axis=1).reshape(-1)
    spans = np.logical_and.reduceat(padded, bounds, axis=1)[:, 0::2]
    return Candidates(start, stop, spans.sum(axis=0))


def rank_candidates(c: Candidates, query_len: int, extra: np.ndarray | None = None) -> np.ndarray:
    """Order of candidates: most cells in common, fewest extra cells, length nearest the query, earliest."""
    extra = np.zeros(len(c), dtype=np.int64) if extra is None else extra
    closeness = np.abs((c.stop - c.start) - query_len)
    return np.lexsort((c.start, closeness, extra, -c.common))


def extra_cells(rows: np.ndarray, selected: np.ndarray, threshold: float) -> int:
    """Unselected cells on at every token of ``rows`` (``(tokens, cells)`` of one candidate)."""
    on = above(rows, threshold).all(axis=0)
    on[selected] = False
    return int(on.sum())


def correlations(values: np.ndarray, tracks: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Pearson r of each cell (``values``: tokens x cells) with each track (``tracks``: n x tokens).

    Constant cells or tracks give 0, not NaN. Tokens where a cell has no value (NaN: an encoder-decoder's
    encoder layer at the output positions, docs/hidden.md) are left out of that cell's r. Works on cell
    chunks, so a large memory-mapped array is never converted whole.

    >>> v = np.array([[0.1], [0.9], [np.nan], [0.2]])          # no state at token 2
    >>> round(float(correlations(v, np.array([[0.0, 1.0, 5.0, 0.0]]))[0, 0]), 3)
    0.993
    """
    t_all = np.asarray(tracks, dtype=np.float64)
    centred = {}  # which tokens are kept -> the tracks centred over them, and their norms

    def tracks_over(rows: np.ndarray | None):
        key = None if rows is None else rows.tobytes()
        if key not in centred:
            t = t_all if rows is None else t_all[:, rows]
            t = (t - t.mean(axis=1, keepdims=True)).astype(np.float32)  # float32: ~4x faster, r within 1e-6
            centred[key] = t, np.sqrt((t.astype(np.float64) ** 2).sum(axis=1))
        return centred[key]

    out = np.zeros((t_all.shape[0], values.shape[1]), dtype=np.float32)
    for j in range(0, values.shape[1], chunk):
        v = np.asarray(values[:, j:j + chunk], dtype=np.float32)
        rows = None
        if np.isnan(v).any():  # whole tokens without a state: r over the tokens that have one
            rows = ~np.isnan(v).any(axis=1)
            v = v[rows]
        t, t_norm = tracks_over(rows)
        if not len(v):
            continue
        v = v - v.mean(axis=0, dtype=np.float64).astype(np.float32)
        v_norm = np.sqrt((v.astype(np.float64) ** 2).sum(axis=0))
        denom = np.outer(t_norm, v_norm)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (t @ v).astype(np.float64) / denom
        out[:, j:j + chunk] = np.where(denom > 0, np.clip(r, -1, 1), 0.0)
    return out


def saturation(gate: np.ndarray, low: float = 0.1, high: float = 0.9, chunk: int = 64) -> np.ndarray:
    """Per cell, the fraction of tokens a gate spends below ``low`` and above ``high``: ``(2, cells)``.

    Karpathy, Johnson and Fei-Fei (2015) plot these two fractions per cell to show
    gates that act as switches (right- or left-saturated) rather than as dials.
    Tokens where the gate has no value (NaN) are not counted.
    """
    out = np.zeros((2, gate.shape[1]), dtype=np.float32)
    for j in range(0, gate.shape[1], chunk):
        g = np.asarray(gate[:, j:j + chunk], dtype=np.float32)  # float16 comparisons are ~4x slower
        n = np.maximum((~np.isnan(g)).sum(axis=0), 1)
        out[0, j:j + chunk] = (g < low).sum(axis=0) / n
        out[1, j:j + chunk] = (g > high).sum(axis=0) / n
    return out
