"""Side-by-side figures of a bidirectional layer: forward and backward over the same tokens. Pure.

Both panels cover the same window with the same x range, width and tick labels, so
a token sits at the same place in each: the forward panel shows what the layer
has read from the left up to the token, the backward panel what it has read from
the right.

Example::

    fig = pair_traces_figure({"fwd": w_fwd, "bwd": w_bwd}, x0=500, tokens=list("(()(a)"),
                             selected={"fwd": [3], "bwd": [7, 9]}, threshold=0.3, brushed=(502, 504))
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.views.hidden_states.figures import token_ticks, brushed_shape, cell_traces, threshold_shape

PANEL_TITLES = {"fwd": "forward (reads left to right)", "bwd": "backward (reads right to left)"}
ORDER = ("fwd", "bwd")
SYMBOLS = {"fwd": "circle", "bwd": "x-thin-open"}
MOST_TICKS = 80  # tokens labelled under each half-width panel; token numbers beyond


def pair_traces_figure(windows: dict[str, np.ndarray], x0: int, tokens: list[str], selected: dict[str, list[int]],
                       threshold: float, brushed: tuple[int, int] | None, title: str = "") -> go.Figure:
    """Cell traces of both directions side by side (forward left), one y scale.

    Shapes 0 and 1 are the two panels' threshold lines (drag either; both follow), then the
    brushed range in each panel. Brushing either panel selects the same tokens (axes ``x``/``x2``).
    """
    n = len(windows["fwd"])
    x = np.arange(x0, x0 + n)
    titles = [f"{PANEL_TITLES[d]} · {len(selected.get(d, []))} selected" for d in ORDER]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=titles)
    for col, d in enumerate(ORDER, start=1):
        for trace in cell_traces(windows[d], x, selected.get(d, []), prefix=f"{PANEL_TITLES[d].split()[0]} "):
            fig.add_trace(trace, row=1, col=col)
    shapes = [threshold_shape(threshold, "x domain", "y"), threshold_shape(threshold, "x2 domain", "y2")]
    if brushed:
        shapes += [brushed_shape(brushed, "x", "paper"), brushed_shape(brushed, "x2", "paper")]
    ticks = token_ticks(x.tolist(), tokens, 10, most=MOST_TICKS)
    yrange = value_range([windows[d] for d in ORDER], threshold)
    axis = {**ticks, "range": [x0 - 0.5, x0 + n - 0.5], "showgrid": False, "fixedrange": True}
    fig.update_layout(
        title={"text": title, "font": {"size": 13}, "y": 0.98, "yanchor": "top"}, shapes=shapes,
        dragmode="select", selectdirection="h", height=360, showlegend=False, uirevision="traces-pair",
        margin={"l": 50, "r": 10, "t": 52 if title else 30, "b": 40}, hovermode="closest", plot_bgcolor="white",
        editrevision=f"thr-{threshold}", xaxis=axis, xaxis2={**axis, "matches": "x"},
        yaxis={"title": "value", "zeroline": True, "zerolinecolor": "#ddd", "gridcolor": "#eee", "fixedrange": True,
               "range": yrange},
        yaxis2={"zeroline": True, "zerolinecolor": "#ddd", "gridcolor": "#eee", "fixedrange": True, "range": yrange},
    )
    for ann in fig.layout.annotations:  # the panel titles: the same size as a chart title, not bigger
        ann.font = {"size": 12.5}
    return fig


def value_range(windows: list[np.ndarray], threshold: float) -> list[float]:
    """One y range for both panels: every value and the threshold line, padded 5%.

    >>> value_range([np.array([[-1.0, 0.5]]), np.array([[0.9]])], threshold=0.3)
    [-1.095, 0.995]
    """
    finite = [w[np.isfinite(w)] for w in windows if w.size]
    values = np.concatenate(finite + [np.array([threshold], dtype=np.float64)])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or 1.0)
    return [round(lo - pad, 4), round(hi + pad, 4)]


def pair_gate_heatmap(windows: dict[str, np.ndarray], x0: int, tokens: list[str], label: str, lo: float = 0.0,
                      hi: float = 1.0) -> go.Figure:
    """A gate of both directions, forward above backward (cells down, the same tokens across)."""
    n, cells = windows["fwd"].shape
    xs = list(range(x0, x0 + n))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[PANEL_TITLES[d] for d in ORDER])
    for row, d in enumerate(ORDER, start=1):
        z = np.round(windows[d].T.astype(np.float64), 3)
        fig.add_trace(go.Heatmap(z=z.tolist(), x=xs, y=list(range(cells)), zmin=lo, zmax=hi,
                                 colorscale="RdBu_r" if lo < 0 else "Greens", showscale=row == 1,
                                 colorbar={"thickness": 10, "len": 0.9},
                                 hovertemplate=f"{PANEL_TITLES[d].split()[0]} · token %{{x}}, cell %{{y}}: "
                                               "%{z}<extra></extra>"), row=row, col=1)
    fig.update_layout(
        title={"text": label, "font": {"size": 13}}, height=480, margin={"l": 50, "r": 10, "t": 56, "b": 40},
        uirevision="gate-pair", plot_bgcolor="white",
        xaxis={"showgrid": False, "showticklabels": False},
        xaxis2={**token_ticks(xs, tokens, 9), "showgrid": False},
        yaxis={"title": "cell", "autorange": "reversed", "showgrid": False},
        yaxis2={"title": "cell", "autorange": "reversed", "showgrid": False},
    )
    for ann in fig.layout.annotations:
        ann.font = {"size": 12}
    return fig
