"""A 2-D map figure made readable while it changes: points that glide, labels that do not overlap.

Applied by :mod:`dashboard.views.projections.map_view` to what :func:`dashboard.views.projections.figures.map_figure`
returns (pure: a figure in, the same figure changed out).

* :func:`glide`: 2-D maps of at most :data:`GLIDE_MAX` points are drawn as SVG ``scatter`` instead of
  WebGL ``scattergl``, because only SVG traces transition in plotly.js: with the graph's ``animate``
  on (the page turns it on while Play runs), each point slides from its place in one snapshot's map
  to its place in the next, instead of jumping (the rows of a map are the same at every snapshot of
  its settings, so trace ``i``'s point ``j`` is the same word throughout). Bigger maps stay WebGL
  (SVG is slow there) and jump.
* :func:`label_points`: writes the text of a non-overlapping subset of the points beside them
  (:func:`dashboard.views.projections.labels.pick_labels`: the searched word's neighbours first, then by
  corpus frequency), the rest on hover. Token maps get labels at any size; maps of other sources
  (reviews, images) only when small (``LABEL_MAX``), where the figure labelled every point before.

Example::

    fig = map_figure(coords, rows, texts, freq=freq, ranges=ranges)
    fig = label_points(glide(fig), coords, rows, texts, priority=freq, ranges=ranges)
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.views.projections.figures import point_labels
from dashboard.views.projections.labels import FONT_PX, pick_labels

GLIDE_MAX = 3000          # 2-D maps up to this many points are SVG, so they can transition
TRANSITION_MS = 450       # a glide between two snapshots' maps (Play moves every 600 ms)
ANIMATION = {"frame": {"redraw": True, "duration": TRANSITION_MS},  # redraw after: the title and labels
             "transition": {"duration": TRANSITION_MS, "easing": "cubic-in-out"}, "mode": "immediate"}
LABEL_COLOUR = "#334155"


def glide(fig: go.Figure) -> go.Figure:
    """``fig`` with its ``scattergl`` traces as SVG ``scatter`` when it has at most :data:`GLIDE_MAX` points."""
    gl = [t for t in fig.data if t.type == "scattergl"]
    n = sum(len(t.x) if t.x is not None else 0 for t in gl if t.meta == "points")
    if not gl or n > GLIDE_MAX:
        return fig
    traces = []
    for t in fig.data:
        if t.type == "scattergl":
            spec = t.to_plotly_json()
            spec.pop("type", None)
            t = go.Scatter(spec)
        traces.append(t)
    fig.data = []
    fig.add_traces(traces)
    return fig


def label_points(fig: go.Figure, coords, rows, texts, *, priority=None, ranges=None, first=(), reserved=(),
                 plot_px: tuple[float, float] | None = None) -> go.Figure:
    """``fig``'s point traces (``meta == "points"``) with the texts of :func:`pick_labels`' subset written above them.

    ``coords``, ``rows``, ``texts``, ``priority`` are aligned with the map's points; ``first`` are
    indices to label before any other (a searched word's neighbours), ``reserved`` indices whose
    labels the figure draws already (the searched word, an analogy's words). 2-D maps only.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not len(coords):
        return fig
    shown = point_labels(texts)
    prio = np.zeros(len(coords)) if priority is None else np.asarray(priority, dtype=np.float64).copy()
    first = [int(i) for i in first if 0 <= int(i) < len(coords)]
    if first:
        prio[first] = np.inf
    kw = {} if plot_px is None else {"plot_px": plot_px}
    keep = pick_labels(coords, shown, prio, ranges, reserved=reserved, **kw)
    chosen = np.zeros(len(coords), dtype=bool)
    chosen[keep] = True
    position = {int(r): i for i, r in enumerate(np.asarray(rows).tolist())}
    for t in fig.data:
        if t.meta != "points" or t.customdata is None:
            continue
        idx = np.array([position.get(int(r), -1) for r in t.customdata], dtype=np.int64)
        ok = idx >= 0
        text = np.where(ok & chosen[np.maximum(idx, 0)], shown[np.maximum(idx, 0)], "")
        t.update(mode="markers+text", text=text.tolist(), textposition="top center",
                 textfont={"size": FONT_PX, "color": LABEL_COLOUR})
    return fig
