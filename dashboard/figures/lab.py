"""Figures of the Lab page. Pure: arrays in, figures out (no torch).

:func:`gradflow_figure` draws, per run, ``||dL/dh_t||`` against the distance from the loss
(0 = the last step) on a log axis: backpropagation through time as the lecture draws it.

Example::

    fig = gradflow_figure([{"name": "rnn", "step": 3000, "norms_by_distance": [1.0, 0.3, 0.01]},
                           {"name": "lstm", "note": "no snapshot yet"}])
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

FAMILY_COLORS = {"rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c"}
OTHER_COLORS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
RATIO_NEAR, RATIO_FAR = 1, 20


def ratio_text(norms_by_distance: np.ndarray, near: int = RATIO_NEAR, far: int = RATIO_FAR) -> str:
    """``"1e+04x"``-style text of ``||dL/dh||`` at distance ``near`` over ``far``; "" when too short."""
    v = np.asarray(norms_by_distance, dtype=np.float64)
    if len(v) <= far or not np.isfinite(v[near]) or not np.isfinite(v[far]):
        return ""
    return f"{v[near] / max(v[far], 1e-300):.3g}x"


def gradflow_figure(curves: list[dict], height: int = 420) -> go.Figure:
    """One line per run: ``norms_by_distance`` (distance 0, 1, 2, ...) on a log y axis.

    Each curve: ``name``, ``norms_by_distance``, optional ``step`` and ``family`` (colour);
    a curve with a ``note`` instead of norms is listed in the legend title only (no data yet).
    Zeros (a gradient that underflowed) are left out: the log axis cannot show them.
    """
    fig = go.Figure()
    waiting = []
    others = iter(OTHER_COLORS * 10)
    for c in curves:
        if c.get("norms_by_distance") is None:
            waiting.append(f"{c['name']}: {c.get('note', 'no data')}")
            continue
        y = np.asarray(c["norms_by_distance"], dtype=np.float64)
        y = np.where(y > 0, y, np.nan)
        ratio = ratio_text(y)
        label = c["name"] + (f" (step {c['step']:,})" if c.get("step") is not None else "")
        if ratio:
            label += f": d{RATIO_NEAR}/d{RATIO_FAR} = {ratio}"
        color = FAMILY_COLORS.get(c.get("family", "")) or next(others)
        fig.add_trace(go.Scatter(
            x=np.arange(len(y)).tolist(), y=[None if math.isnan(v) else v for v in y.tolist()], mode="lines+markers",
            name=label, line={"color": color, "width": 2}, marker={"size": 4},
            hovertemplate="distance %{x}<br>||dL/dh|| %{y:.3g}<extra>" + c["name"] + "</extra>"))
    title = "Gradient flow through time: ||dL/dh_t|| against distance from the loss"
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
