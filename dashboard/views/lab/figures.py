"""Figures of the Lab page. Pure: arrays in, figures out (no torch).

:func:`gradflow_figure` draws, per run, ``||dL/dh_t||`` against the distance from the loss
(0 = the last step) on a log axis: backpropagation through time as the lecture draws it; a
curve may carry its run's first snapshot (``init_norms``), drawn faint and dotted beside it.
:func:`grad_norm_figure` draws the per-layer gradient norms (``grad_norm/<layer>``) over
training: one panel per layer, one colour per run, log y; :func:`step_marker_shapes` marks a
step in every panel (the gradient-flow view's slider).

Example::

    fig = gradflow_figure([{"name": "rnn", "step": 3000, "norms_by_distance": [1.0, 0.3, 0.01],
                            "init_step": 0, "init_norms": [1.0, 0.2, 0.005]},
                           {"name": "lstm", "note": "no snapshot yet"}])
    fig = grad_norm_figure([{"name": "rnn", "family": "rnn",
                             "layers": {"rnn.l0": {"x": [10, 20], "y": [0.5, 0.2]}, "global": {...}}}])
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FAMILY_COLORS = {"rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c"}
OTHER_COLORS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
RATIO_NEAR, RATIO_FAR = 1, 20


def ratio_text(norms_by_distance: np.ndarray, near: int = RATIO_NEAR, far: int = RATIO_FAR) -> str:
    """``"1e+04x"``-style text of ``||dL/dh||`` at distance ``near`` over ``far``; "" when too short."""
    v = np.asarray(norms_by_distance, dtype=np.float64)
    if len(v) <= far or not np.isfinite(v[near]) or not np.isfinite(v[far]):
        return ""
    return f"{v[near] / max(v[far], 1e-300):.3g}x"


def _ratio_label(y: np.ndarray) -> str:
    """``": d1/d20 = 12x"``; when the far norm underflowed to 0, a lower bound from the last
    non-zero one: ``": d1/d20 > 7e+17x (0 past distance 10)"``; "" when there is nothing to say."""
    ratio = ratio_text(y)
    if ratio:
        return f": d{RATIO_NEAR}/d{RATIO_FAR} = {ratio}"
    if len(y) <= RATIO_FAR or not np.isfinite(y[RATIO_NEAR]):
        return ""
    finite = np.flatnonzero(np.isfinite(y[:RATIO_FAR + 1]))
    last = int(finite[-1])
    if last <= RATIO_NEAR:
        return ""
    return f": d{RATIO_NEAR}/d{RATIO_FAR} > {y[RATIO_NEAR] / y[last]:.3g}x (0 past distance {last})"


def _log_safe(values) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    return np.where(y > 0, y, np.nan)


def _plot_list(y: np.ndarray) -> list:
    return [None if math.isnan(v) else v for v in y.tolist()]


def gradflow_figure(curves: list[dict], height: int = 420, title_step: int | None = None) -> go.Figure:
    """One line per run: ``norms_by_distance`` (distance 0, 1, 2, ...) on a log y axis.

    Each curve: ``name``, ``norms_by_distance``, optional ``step`` and ``family`` (colour), and
    optionally ``init_norms`` / ``init_step`` (the run's first snapshot: a faint dotted line of
    the same colour, one legend entry for all of them); a curve with a ``note`` instead of norms
    is listed in the legend title only (no data yet). Zeros (a gradient that underflowed) are
    left out: the log axis cannot show them. ``title_step``: the step the view was asked for.
    """
    fig = go.Figure()
    waiting = []
    others = iter(OTHER_COLORS * 10)
    for c in curves:
        if c.get("norms_by_distance") is None:
            waiting.append(f"{c['name']}: {c.get('note', 'no data')}")
            continue
        y = _log_safe(c["norms_by_distance"])
        label = c["name"] + (f" (step {c['step']:,})" if c.get("step") is not None else "") + _ratio_label(y)
        color = FAMILY_COLORS.get(c.get("family", "")) or next(others)
        if c.get("init_norms") is not None:
            init = _log_safe(c["init_norms"])
            at = f" at step {c['init_step']:,}" if c.get("init_step") is not None else " at initialisation"
            fig.add_trace(go.Scatter(
                x=np.arange(len(init)).tolist(), y=_plot_list(init), mode="lines", name=c["name"] + at,
                line={"color": color, "width": 1.5, "dash": "dot"}, opacity=0.45, showlegend=False,
                legendgroup=c["name"],
                hovertemplate="distance %{x}<br>||dL/dh|| %{y:.3g}<extra>" + c["name"] + at + "</extra>"))
        fig.add_trace(go.Scatter(
            x=np.arange(len(y)).tolist(), y=_plot_list(y), mode="lines+markers", legendgroup=c["name"],
            name=label, line={"color": color, "width": 2}, marker={"size": 4},
            hovertemplate="distance %{x}<br>||dL/dh|| %{y:.3g}<extra>" + c["name"] + "</extra>"))
    if any(c.get("init_norms") is not None and c.get("norms_by_distance") is not None for c in curves):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="dotted: the same run at initialisation",
                                 line={"color": "#888", "width": 1.5, "dash": "dot"}, hoverinfo="skip"))
    title = "Gradient flow through time: ||dL/dh_t|| against distance from the loss"
    if title_step is not None:
        title += f", at step {title_step:,}"
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=height, plot_bgcolor="white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, uirevision="gradflow",
        legend={"orientation": "h", "y": -0.2, "title": {"text": "; ".join(waiting)} if waiting else None},
        xaxis={"title": "distance from the loss (steps back in time)", "gridcolor": "#eee", "zeroline": False},
        yaxis={"title": "||dL/dh_t|| (log)", "type": "log", "gridcolor": "#eee", "exponentformat": "power"},
    )
    longest = max((len(c["norms_by_distance"]) for c in curves if c.get("norms_by_distance") is not None), default=0)
    if RATIO_FAR < longest:
        fig.add_vline(x=RATIO_FAR, line={"color": "#999", "dash": "dot", "width": 1})
    return fig


GLOBAL, HEAD = "global", "head"
MAX_PANELS = 8
PANEL_COLS = 4
SMOOTH_PARTS = 25  # the running median spans 1/25 of a run's logged points


def layer_order(names) -> list[str]:
    """Layer names in the order given (first seen first), then the output layer ``head``, then ``global``."""
    names = list(names)
    seen = list(dict.fromkeys(n for n in names if n not in (GLOBAL, HEAD)))
    return seen + [n for n in (HEAD, GLOBAL) if n in names]


def running_median(y, window: int) -> np.ndarray:
    """Centred running median over ``window`` points (fewer at the ends), NaNs ignored."""
    y = np.asarray(y, dtype=np.float64)
    if window <= 1 or len(y) < 3:
        return y.copy()
    half = window // 2
    padded = np.concatenate([np.full(half, np.nan), y, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        return np.nanmedian(windows, axis=1)


def grad_norm_figure(series: list[dict], marker_step: int | None = None, height_per_row: int = 260) -> go.Figure:
    """Per-layer gradient norms over training: one panel per layer (``global`` last, at most
    :data:`MAX_PANELS`), one colour per run (its ``family``'s, as in :func:`gradflow_figure`),
    log y shared by all panels so that layers compare too. Each series is drawn faint as logged
    (noisy from batch to batch) with its running median over it (the trend).

    Each series: ``name``, optional ``family``, ``layers`` ``{layer: {"x": steps, "y": norms}}``;
    a series with a ``note`` instead of layers is named in the legend title. Non-positive norms
    are left out (log axis). ``marker_step``: a dotted vertical line at that step in every panel.
    """
    layers = layer_order([name for s in series for name in (s.get("layers") or {})])[:MAX_PANELS]
    waiting = [f"{s['name']}: {s.get('note', 'no data')}" for s in series if not s.get("layers")]
    n = max(1, len(layers))
    cols = min(PANEL_COLS, n)
    rows = math.ceil(n / cols)
    titles = [("all layers together (global)" if name == GLOBAL else name) for name in layers] or [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes="all",
                        horizontal_spacing=0.03, vertical_spacing=0.16 if rows > 1 else 0.1)
    others = iter(OTHER_COLORS * 10)
    for s in series:
        if not s.get("layers"):
            continue
        color = FAMILY_COLORS.get(s.get("family", "")) or next(others)
        shown = False
        for i, name in enumerate(layers):
            data = s["layers"].get(name)
            if not data:
                continue
            y = _log_safe(data["y"])
            where = {"row": i // cols + 1, "col": i % cols + 1}
            fig.add_trace(go.Scatter(
                x=list(data["x"]), y=_plot_list(y), mode="lines", name=s["name"], legendgroup=s["name"],
                showlegend=False, line={"color": color, "width": 1}, opacity=0.25,
                hovertemplate="step %{x:,}<br>||grad|| %{y:.3g}<extra>" + f"{s['name']} · {name}</extra>"), **where)
            fig.add_trace(go.Scatter(
                x=list(data["x"]), y=_plot_list(running_median(y, max(1, len(y) // SMOOTH_PARTS))), mode="lines",
                name=s["name"], legendgroup=s["name"], showlegend=not shown, line={"color": color, "width": 2},
                hovertemplate="step %{x:,}<br>running median %{y:.3g}<extra>" + f"{s['name']} · {name}</extra>"),
                **where)
            shown = True
    fig.update_yaxes(type="log", gridcolor="#eee", exponentformat="power")
    fig.update_yaxes(title_text="gradient norm (log)", col=1)
    fig.update_xaxes(gridcolor="#eee", zeroline=False)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="training step", row=rows, col=c)
    fig.update_layout(
        title={"text": "Gradient norm of each layer over training (before clipping): faint as logged, "
                      "bold its running median", "font": {"size": 14}},
        height=90 + rows * height_per_row, plot_bgcolor="white", uirevision="gradnorms",
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "h", "y": -0.3 / rows, "title": {"text": "; ".join(waiting)} if waiting else None},
        shapes=step_marker_shapes(n, marker_step))
    for a in fig.layout.annotations:
        a.font.size = 12.5
    return fig


def step_marker_shapes(n_panels: int, step: int | None) -> list[dict]:
    """A dotted vertical line at ``step`` in each of the first ``n_panels`` panels of
    :func:`grad_norm_figure` (none when ``step`` is None): its ``layout.shapes``."""
    if step is None:
        return []
    out = []
    for i in range(max(1, n_panels)):
        suffix = "" if i == 0 else str(i + 1)
        out.append({"type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain", "x0": step, "x1": step,
                    "y0": 0, "y1": 1, "line": {"color": "#555", "width": 1, "dash": "dot"}})
    return out
