"""Figures and small views of the hidden-states page. Pure: arrays in, figures or components out.

Example::

    fig = traces_figure(window, x0=500, tokens=list("def f(x):"), selected=[3, 7], threshold=0.3,
                        brushed=(502, 505))
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
from dash import html

from dashboard.images import VISIBLE, heat_img, heat_png, visible  # noqa: F401 - shared with Kernels and Try it

SELECTED_COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                   "#bcbd22", "#7f7f7f"]
MAX_COLORED = 30
GATE_COLORS = {"i": "#1f77b4", "f": "#d62728", "o": "#2ca02c", "g": "#9467bd", "r": "#ff7f0e", "z": "#17becf",
               "n": "#9467bd"}


def traces_figure(window: np.ndarray, x0: int, tokens: list[str], selected: list[int], threshold: float,
                  brushed: tuple[int, int] | None, title: str = "") -> go.Figure:
    """One line per cell over a window of tokens; selected cells coloured, the rest grey.

    Shape 0 is the threshold (drag it up or down), shape 1 the brushed range.
    """
    n, cells = window.shape
    x = np.arange(x0, x0 + n)
    fig = go.Figure(cell_traces(window, x, selected))
    shapes = [threshold_shape(threshold, "paper", "y")]
    if brushed:
        shapes.append(brushed_shape(brushed, "x", "paper"))
    fig.update_layout(
        title={"text": title, "font": {"size": 13}}, shapes=shapes, dragmode="select", selectdirection="h",
        margin={"l": 50, "r": 10, "t": 36 if title else 10, "b": 40}, height=330, showlegend=False,
        uirevision="traces", hovermode="closest", plot_bgcolor="white",
        editrevision=f"thr-{threshold}",  # a typed threshold moves the line even after it was dragged
        xaxis={**token_ticks(x.tolist(), tokens, 11), "range": [x0 - 0.5, x0 + n - 0.5], "showgrid": False,
               "fixedrange": True},
        yaxis={"title": "value", "zeroline": True, "zerolinecolor": "#ddd", "gridcolor": "#eee", "fixedrange": True},
    )
    return fig


def cell_traces(window: np.ndarray, x: np.ndarray, selected: list[int], prefix: str = "") -> list[go.Scatter]:
    """The traces of :func:`traces_figure`: unselected cells as one grey trace, then each selected cell
    (named ``f"{prefix}cell {c}"``)."""
    sel = set(selected)
    rest = [c for c in range(window.shape[1]) if c not in sel]
    traces = []
    if rest:  # all unselected cells in one trace, separated by gaps: 512 cells stay one trace
        xs = np.concatenate([np.append(x, np.nan) for _ in rest])
        ys = np.concatenate([np.append(window[:, c], np.nan) for c in rest])
        traces.append(go.Scatter(x=xs.tolist(), y=_round(ys), mode="lines", name=f"{prefix}other cells",
                                 line={"color": "rgba(120,120,120,0.25)", "width": 1}, hoverinfo="skip"))
    for i, c in enumerate(selected[:MAX_COLORED]):
        traces.append(go.Scatter(x=x.tolist(), y=_round(window[:, c]), mode="lines", name=f"{prefix}cell {c}",
                                 line={"color": SELECTED_COLORS[i % len(SELECTED_COLORS)], "width": 2},
                                 hovertemplate=f"{prefix}cell {c}<br>token %{{x}}: %{{y:.3f}}<extra></extra>"))
    return traces


def threshold_shape(threshold: float, xref: str, yref: str) -> dict:
    """The dashed threshold line across a plot (``xref`` "paper" or "x2 domain"), draggable up and down."""
    return dict(type="line", xref=xref, x0=0, x1=1, yref=yref, y0=threshold, y1=threshold,
                line={"color": "#333", "dash": "dash", "width": 2}, editable=True, name="threshold")


def brushed_shape(brushed: tuple[int, int], xref: str, yref: str) -> dict:
    """The brushed tokens as a pale band (tokens are centred on whole numbers)."""
    return dict(type="rect", xref=xref, yref=yref, x0=brushed[0] - 0.5, x1=brushed[1] - 0.5, y0=0, y1=1,
                fillcolor="rgba(255,200,0,0.18)", line={"width": 0}, layer="below", editable=False)


def token_strip(tokens: list[str], x0: int, on_count: np.ndarray, n_selected: int,
                brushed: tuple[int, int] | None) -> html.Div:
    """The window's text, each token shaded by how many selected cells are on there."""
    spans = []
    for i, tok in enumerate(tokens):
        frac = float(on_count[i]) / n_selected if n_selected else 0.0
        pos = x0 + i
        cls = "tok" + (" tok-brushed" if brushed and brushed[0] <= pos < brushed[1] else "")
        spans.append(html.Span(visible(tok), className=cls, title=f"token {pos}: {int(on_count[i]) if n_selected else 0}"
                               f" of {n_selected} selected cells on",
                               style={"backgroundColor": f"rgba(214,39,40,{0.85 * frac:.2f})"}))
    return html.Div(spans, className="token-strip")


def match_table(found: list[dict], contexts: list[tuple[list[str], np.ndarray]],
                track_ranges: list[tuple[float, float]], track_names: list[str], n_selected: int,
                button_type: str, cells_title: str = "selected cells (rows)") -> html.Table:
    """The Match view's table: per match its text (matched tokens highlighted), cells in common, extra
    cells, and heatmaps of the selected cells (``cells_title`` says which rows are which) and of each
    annotation track over its context."""
    rows = []
    for i, (m, (tokens, tracks)) in enumerate(zip(found, contexts)):
        a = m["context"][0]
        cut1, cut2 = m["start"] - a, m["stop"] - a
        text = [html.Span(visible("".join(tokens[:cut1])), className="tok-ctx"),
                html.Span(visible("".join(tokens[cut1:cut2])), className="tok-hit"),
                html.Span(visible("".join(tokens[cut2:])), className="tok-ctx")]
        track_imgs = [heat_img(tracks[k:k + 1], *track_ranges[k], diverging=False,
                               title=f"{track_names[k]}: {', '.join(f'{v:g}' for v in tracks[k])}")
                      for k in range(len(tracks))]
        rows.append(html.Tr([
            html.Td(html.Button(f"{m['start']:,}", id={"type": button_type, "index": i}, className="btn btn-link",
                                title="show this place in the Select view")),
            html.Td(html.Span(text, className="match-text")),
            html.Td(f"{m['common']}/{n_selected}", title="selected cells on throughout"),
            html.Td(str(m["extra"]), title="other cells also on throughout"),
            html.Td(heat_img(np.array(m["cells"]), -1, 1,
                             title=f"{cells_title} over the tokens (red: high, blue: low)")),
            html.Td(track_imgs, className="tracks-cell"),
        ]))
    head = html.Tr([html.Th("token"), html.Th("text"), html.Th("cells"), html.Th("extra"), html.Th("selected cells"),
                    html.Th("annotations: " + ", ".join(track_names))])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="match-table")


def gate_heatmap(window: np.ndarray, x0: int, tokens: list[str], label: str, lo: float = 0.0,
                 hi: float = 1.0) -> go.Figure:
    """A gate (or state) over the window: cells down, tokens across; hover names cell, token and value."""
    n, cells = window.shape
    z = np.round(window.T.astype(np.float64), 3)
    fig = go.Figure(go.Heatmap(z=z.tolist(), x=list(range(x0, x0 + n)), y=list(range(cells)), zmin=lo, zmax=hi,
                               colorscale="RdBu_r" if lo < 0 else "Greens", colorbar={"thickness": 10, "len": 0.9},
                               hovertemplate="token %{x}, cell %{y}: %{z}<extra></extra>"))
    fig.update_layout(
        title={"text": label, "font": {"size": 13}}, height=320, margin={"l": 50, "r": 10, "t": 36, "b": 40},
        uirevision="gate", plot_bgcolor="white",
        xaxis={**token_ticks(list(range(x0, x0 + n)), tokens, 9), "showgrid": False},
        yaxis={"title": "cell", "autorange": "reversed", "showgrid": False},
    )
    return fig


def saturation_figure(sat: dict[str, np.ndarray], names: dict[str, str],
                      symbols: dict[str, str] | None = None) -> go.Figure:
    """Per gate, each cell's fraction of time left-saturated (< 0.1) against right-saturated (> 0.9).

    ``sat`` keys are gates ("f") or gate and direction ("f.bwd"): the colour follows the gate, the
    marker ``symbols[key]`` (default a dot), the legend ``names[key]``.
    """
    fig = go.Figure()
    for key, arr in sat.items():
        name, gate = names.get(key, key), key.split(".")[0]
        fig.add_trace(go.Scatter(x=_round(arr[0]), y=_round(arr[1]), mode="markers", name=name,
                                 marker={"size": 6, "opacity": 0.7, "color": GATE_COLORS.get(gate),
                                         "symbol": (symbols or {}).get(key, "circle")},
                                 customdata=list(range(arr.shape[1])),
                                 hovertemplate=f"{name} · cell %{{customdata}}<br>"
                                               "below 0.1: %{x:.0%}<br>above 0.9: %{y:.0%}<extra></extra>"))
    fig.add_shape(type="line", x0=0, y0=1, x1=1, y1=0, line={"color": "#bbb", "dash": "dot"})
    fig.update_layout(
        title={"text": "Gate saturation per cell (Karpathy et al. 2015)", "font": {"size": 13}}, height=300,
        margin={"l": 50, "r": 10, "t": 36, "b": 40}, uirevision="sat", legend={"orientation": "h", "y": -0.25},
        xaxis={"title": "fraction of tokens below 0.1", "range": [-0.02, 1.02], "tickformat": ".0%"},
        yaxis={"title": "fraction above 0.9", "range": [-0.02, 1.02], "tickformat": ".0%"},
    )
    return fig


def summary_figure(r: np.ndarray, track: str, top: int = 20, labels: list[str] | None = None) -> go.Figure:
    """The ``top`` cells by |r| with ``track``, strongest first; ``labels`` name the cells (default "cell i")."""
    order = np.argsort(-np.abs(r))[:top]
    names = labels or [f"cell {c}" for c in range(len(r))]
    fig = go.Figure(go.Bar(x=[names[c] for c in order], y=_round(r[order]),
                           marker={"color": ["#d62728" if v > 0 else "#1f77b4" for v in r[order]]},
                           hovertemplate="%{x}: r = %{y:.3f}<extra></extra>"))
    fig.update_layout(title={"text": f"Cells most correlated with “{track}”", "font": {"size": 13}}, height=260,
                      margin={"l": 50, "r": 10, "t": 36, "b": 60}, uirevision="summary",
                      yaxis={"title": "Pearson r", "range": [-1, 1]}, xaxis={"tickangle": -45})
    return fig


def cell_vs_track(cell: np.ndarray, track: np.ndarray, x0: int, tokens: list[str], cell_id: int,
                  track_name: str, name: str | None = None) -> go.Figure:
    """One cell's trace over the window with an annotation track on a second axis (``name``: "cell 3")."""
    x = list(range(x0, x0 + len(cell)))
    name = name or f"cell {cell_id}"
    fig = go.Figure([
        go.Scatter(x=x, y=_round(track), name=track_name, mode="lines", line={"color": "#98a2b3", "shape": "hv"},
                   yaxis="y2", hovertemplate=f"{track_name}: %{{y}}<extra></extra>"),
        go.Scatter(x=x, y=_round(cell), name=name, mode="lines", line={"color": "#d62728", "width": 2},
                   hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"),
    ])
    fig.update_layout(
        title={"text": f"{name[0].upper() + name[1:]} (red) and “{track_name}” (grey) over the window",
               "font": {"size": 13}},
        height=230, margin={"l": 50, "r": 50, "t": 36, "b": 30}, uirevision="cell-track", showlegend=False,
        plot_bgcolor="white", hovermode="x unified",
        xaxis={**token_ticks(x, tokens, 9), "showgrid": False},
        yaxis={"title": name, "gridcolor": "#eee"},
        yaxis2={"title": track_name, "overlaying": "y", "side": "right", "showgrid": False},
    )
    return fig


def token_ticks(x: list[int], tokens: list[str], size: int, most: int = 160) -> dict:
    """Each token under its position while they fit; token numbers beyond ``most`` tokens."""
    if len(x) > most:
        return {"title": "token", "tickfont": {"size": size}}
    return {"tickmode": "array", "tickvals": x, "ticktext": [visible(t) for t in tokens], "tickangle": 0,
            "tickfont": {"family": "monospace", "size": size}}


def _round(values) -> list:
    arr = np.asarray(values, dtype=np.float64)
    return [None if not np.isfinite(v) else round(float(v), 4) for v in arr]
