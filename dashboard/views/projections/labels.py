"""Which points of a 2-D map get their text written beside them: a subset whose labels do not overlap.

A word map of 1,000 points with every word written is a grey smear; with none, a student must hover
over each dot. :func:`pick_labels` takes the points in order of importance (the searched word and
its neighbours are drawn by the figure itself and only reserve their room; then the most frequent
words) and keeps a label only when its box, estimated in data units from the axis ranges and the
plot's size in pixels, overlaps no label kept before it (greedy, with a grid of buckets so that
5,000 points take milliseconds). The rest are named on hover.

Boxes are approximate: a character is taken as ``CHAR_EM`` of the font size wide (a bit more than
Plotly's default sans-serif averages), the plot as at least ``PLOT_PX`` wide and tall (the map
card is wider on most screens, which only spreads the labels further apart); zooming in spreads
them further still.

Example::

    keep = pick_labels(coords, texts, priority=freq, ranges=[[-40, 40], [-35, 35]])
    # indices of the points to label, most important first; no two of their boxes overlap
    boxes = label_boxes(coords[keep], texts[keep], [[-40, 40], [-35, 35]])
    overlapping(boxes)   # False
"""
from __future__ import annotations

import numpy as np

FONT_PX = 11          # the labels' font size (dashboard.views.projections.figures writes point labels at 11 px)
CHAR_EM = 0.62        # width of a character in font sizes (Plotly's Open Sans averages ~0.55)
LINE_EM = 1.3         # height of a line of text in font sizes
PAD_PX = 2.0          # space kept around each label
PLOT_PX = (620, 560)  # the smallest plot area (width, height) the boxes are sized for
MARKER_PX = 6.0       # the label sits above its marker ("top center"): this much above the point's centre


def label_boxes(coords, texts, ranges, plot_px: tuple[float, float] = PLOT_PX, font_px: float = FONT_PX,
                marker_px: float = MARKER_PX) -> np.ndarray:
    """``(n, 4)`` boxes ``x0, y0, x1, y1`` in data units of labels drawn centred above ``coords``.

    ``ranges`` are the axis ranges ``[[x0, x1], [y0, y1]]``; ``plot_px`` the plot area's size in
    pixels. Each box is the text's estimated width and one line's height, plus :data:`PAD_PX` on
    every side, starting half a marker above the point.
    """
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    lengths = np.array([len(str(t)) for t in texts], dtype=np.float64)
    (xa, xb), (ya, yb) = ranges
    ux = plot_px[0] / max(abs(float(xb) - float(xa)), 1e-12)   # pixels per data unit
    uy = plot_px[1] / max(abs(float(yb) - float(ya)), 1e-12)
    half_w = (lengths * CHAR_EM * font_px / 2 + PAD_PX) / ux
    bottom = xy[:, 1] + (marker_px / 2 - PAD_PX) / uy
    top = xy[:, 1] + (marker_px / 2 + LINE_EM * font_px + PAD_PX) / uy
    return np.c_[xy[:, 0] - half_w, bottom, xy[:, 0] + half_w, top]


def overlapping(boxes) -> bool:
    """Whether any two of ``boxes`` (from :func:`label_boxes`) overlap (touching edges do not count)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) < 2:
        return False
    x = (b[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < b[:, None, 2])
    y = (b[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < b[:, None, 3])
    both = x & y
    np.fill_diagonal(both, False)
    return bool(both.any())


def pick_labels(coords, texts, priority=None, ranges=None, reserved=(), plot_px: tuple[float, float] = PLOT_PX,
                font_px: float = FONT_PX, most: int | None = None) -> np.ndarray:
    """Indices of the points to label (most important first) so that no two labels overlap.

    ``priority``: larger first (e.g. corpus frequency; ties and None keep the given order).
    ``reserved``: indices whose labels the figure draws anyway (a searched word, its neighbours):
    their boxes are placed first and they are not returned. ``ranges`` default to the points' own
    extent; points outside the ranges (zoomed away) and empty texts are never labelled. ``most``
    caps the number of labels.
    """
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    texts = np.asarray(texts).astype(str)
    if not n:
        return np.zeros(0, dtype=np.int64)
    if ranges is None:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        ranges = [[lo[0], hi[0] if hi[0] > lo[0] else lo[0] + 1], [lo[1], hi[1] if hi[1] > lo[1] else lo[1] + 1]]
    boxes = label_boxes(xy, texts, ranges, plot_px, font_px)
    inside = ((xy[:, 0] >= min(ranges[0])) & (xy[:, 0] <= max(ranges[0])) &
              (xy[:, 1] >= min(ranges[1])) & (xy[:, 1] <= max(ranges[1])) & (np.char.str_len(texts) > 0))
    reserved = [int(i) for i in reserved if 0 <= int(i) < n]
    rest = np.arange(n) if priority is None else np.argsort(-np.asarray(priority, dtype=np.float64), kind="stable")
    taken = set(reserved)
    # buckets of a grid one typical label wide and high: a box is compared only with boxes near it
    cell_w = max(float(np.median(boxes[:, 2] - boxes[:, 0])), 1e-12)
    cell_h = max(float(np.median(boxes[:, 3] - boxes[:, 1])), 1e-12)
    grid: dict[tuple[int, int], list[int]] = {}
    kept: list[int] = []

    def cells(b):
        return [(i, j) for i in range(int(np.floor(b[0] / cell_w)), int(np.floor(b[2] / cell_w)) + 1)
                for j in range(int(np.floor(b[1] / cell_h)), int(np.floor(b[3] / cell_h)) + 1)]

    def free(b):
        for c in cells(b):
            for k in grid.get(c, ()):
                o = boxes[k]
                if b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                    return False
        return True

    for i in reserved + [int(i) for i in rest if int(i) not in taken]:
        if i not in taken and (not inside[i] or (most is not None and len(kept) >= most)):
            continue
        b = boxes[i]
        if i in taken or free(b):  # a reserved label is drawn whether or not it fits
            for c in cells(b):
                grid.setdefault(c, []).append(i)
            if i not in taken:
                kept.append(i)
    return np.array(kept, dtype=np.int64)
