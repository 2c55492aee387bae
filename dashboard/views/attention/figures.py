"""Figures of the Attention page, pure: arrays and token lists in, plotly figures (or Dash elements) out.

* :func:`seq2seq_matrix`: an encoder-decoder's attention, output characters (rows, top to bottom) x input
  characters (columns), 0-1, with the input span that determines each output character outlined;
* :func:`self_attention_map`: one transformer head, query x key (causal: the empty triangle is the future);
* :func:`heads_grid`: every layer and head as one PNG mosaic (small multiples), with the hovered query's
  row marked by :data:`HOVER_JS`;
* :func:`summary_chart`: mean attention entropy (per layer) and the alignment share over the snapshots;
* :func:`output_line`: the model's output beside the target, wrong characters marked.

Example::

    fig = seq2seq_matrix(w, list("2021-05-03"), list("5/3/21"), spans=[[4, 6], ...])
    grid = heads_grid(all_w, ["l0", "l1"], ["h0", "h1", "h2", "h3"])   # one image trace
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import html

from dashboard.images import rgb_png

SCALE = "Blues"
CBAR = {"title": {"text": "share of<br>attention", "side": "top"}, "thickness": 12, "len": 0.8, "tickformat": ".0%"}
GAP = 4          # pixels between the tiles of the heads grid
SPAN_COLOUR = "#e4572e"
FUTURE = (0.955, 0.96, 0.97)   # the causal triangle a query cannot read: light grey, not "no attention"
FUTURE_CSS = "rgb(244, 245, 247)"


VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "": "∅", "</s>": "⏎", "<eos>": "⏎", "<pad>": "·"}


def shown(token: str) -> str:
    """A token as a tick label: whitespace made visible.

    >>> shown(" "), shown("\\n"), shown("a")
    ('␣', '↵', 'a')
    """
    return VISIBLE.get(token, token)


def _ticks(tokens: list[str], axis: dict) -> dict:
    return dict(axis, tickmode="array", tickvals=list(range(len(tokens))), ticktext=[shown(t) for t in tokens],
                tickangle=0, showgrid=False, zeroline=False)


def seq2seq_matrix(weights: np.ndarray, queries: list[str], keys: list[str], spans: list | None,
                   uirevision: str = "") -> go.Figure:
    """Heatmap of a ``(len(queries), len(keys))`` map; ``spans[q] = [start, end)`` outlines the input
    characters that determine output ``q`` (``-1``: none)."""
    w = np.asarray(weights, dtype=np.float32)
    n_q, n_k = w.shape
    outs = [f"“{shown(queries[q])}” (output {q})" for q in range(n_q)]
    ins = [f"“{shown(keys[k])}” (input {k})" for k in range(n_k)]
    fig = go.Figure(go.Heatmap(
        z=w.round(3), zmin=0, zmax=1, colorscale=SCALE, colorbar=CBAR, xgap=1, ygap=1,
        customdata=[[o] * n_k for o in outs], text=[ins] * n_q,
        hovertemplate="wrote %{customdata}<br>read %{text}: %{z:.0%}<extra></extra>"))
    shapes = []
    for q, span in enumerate(list(spans or [])[:n_q]):
        if isinstance(span, (list, tuple)) and len(span) == 2 and int(span[0]) >= 0:
            shapes.append({"type": "rect", "x0": int(span[0]) - 0.5, "x1": int(span[1]) - 0.5, "y0": q - 0.5,
                           "y1": q + 0.5, "line": {"color": SPAN_COLOUR, "width": 2}, "fillcolor": "rgba(0,0,0,0)"})
    cell = 26 if n_k <= 24 else 18
    fig.update_layout(
        shapes=shapes, uirevision=uirevision, height=max(260, 90 + cell * n_q), plot_bgcolor="white",
        margin={"l": 60, "r": 20, "t": 70, "b": 10},
        xaxis=_ticks(keys, {"title": {"text": "input characters"}, "side": "top",
                            "constrain": "domain", "constraintoward": "left"}),
        yaxis=_ticks(queries, {"title": {"text": "output characters ↓"}, "autorange": "reversed",
                               "scaleanchor": "x", "constrain": "domain", "constraintoward": "top"}),
        font={"family": "ui-monospace, Menlo, Consolas, monospace"})
    fig.update_xaxes(tickfont={"size": 14})
    fig.update_yaxes(tickfont={"size": 14})
    return fig


def self_attention_map(weights: np.ndarray, tokens: list[str], uirevision: str = "") -> go.Figure:
    """One head's ``(T, T)`` causal map: row ``i`` is how query token ``i`` spreads its attention over the
    tokens up to it (the empty upper triangle: tokens it cannot see yet)."""
    w = np.asarray(weights, dtype=np.float32).copy()
    t = len(w)
    w[np.triu_indices(t, 1)] = np.nan  # the future: no cell, not a zero
    # hover names tokens by the axes' tick labels: no per-cell text (it tripled the response, 280 kB)
    fig = go.Figure(go.Heatmap(
        z=w, zmin=0, zmax=1, colorscale=SCALE, colorbar=CBAR, hoverongaps=False,
        hovertemplate="query “%{y}” reads “%{x}”: %{z:.0%}<extra></extra>"))
    fig.update_layout(
        uirevision=uirevision, height=min(760, max(420, 110 + 9 * t)), plot_bgcolor=FUTURE_CSS,
        margin={"l": 56, "r": 20, "t": 50, "b": 10},
        xaxis=_ticks(tokens, {"title": {"text": "key: the token read"}, "side": "top", "constrain": "domain",
                              "constraintoward": "left", "tickfont": {"size": 10}}),
        yaxis=_ticks(tokens, {"title": {"text": "query: the token reading"}, "autorange": "reversed",
                              "scaleanchor": "x", "constrain": "domain", "constraintoward": "top",
                              "tickfont": {"size": 10}}),
        font={"family": "ui-monospace, Menlo, Consolas, monospace"})
    return fig


def _blues(t: np.ndarray) -> np.ndarray:
    """``t`` in [0, 1] -> RGB in [0, 1], white to dark blue (plotly's Blues, its two ends)."""
    lo, hi = np.array([0.97, 0.98, 1.0]), np.array([0.03, 0.19, 0.42])
    t = np.clip(np.nan_to_num(t, nan=0.0), 0, 1) ** 0.6  # most weights are small: lift them so patterns show
    return lo + (hi - lo) * t[..., None]


def grid_image(all_weights: np.ndarray) -> np.ndarray:
    """``(layers, heads, T, T)`` -> one RGB mosaic ``(layers*T + gaps, heads*T + gaps, 3)``: a row of tiles
    per layer, a column per head, white gaps, the causal triangle light grey."""
    n_l, n_h, t, _ = all_weights.shape
    img = np.ones((n_l * t + (n_l - 1) * GAP, n_h * t + (n_h - 1) * GAP, 3))
    future = np.triu(np.ones((t, t), bool), 1)
    for li in range(n_l):
        for hi in range(n_h):
            tile = _blues(all_weights[li, hi])
            tile[future] = FUTURE
            y, x = li * (t + GAP), hi * (t + GAP)
            img[y:y + t, x:x + t] = tile
    return img


def heads_grid(all_weights: np.ndarray, layers: list[str], heads: list[str], chosen: tuple[int, int] = (0, 0),
               uirevision: str = "") -> go.Figure:
    """Small multiples of every layer (rows) and head (columns) as one PNG image; the chosen head is framed.
    Click a tile to choose it. The hovered query is marked by :data:`HOVER_JS` (``meta`` holds the geometry)."""
    n_l, n_h, t, _ = all_weights.shape
    fig = go.Figure(go.Image(source=rgb_png(grid_image(all_weights)), hoverinfo="none"))
    step = t + GAP
    li, hi = chosen
    frame = {"type": "rect", "x0": hi * step - 1.5, "x1": hi * step + t + 0.5, "y0": li * step - 1.5,
             "y1": li * step + t + 0.5, "line": {"color": SPAN_COLOUR, "width": 2}, "name": "chosen"}
    tile_px = max(60, min(150, 440 // max(n_h, 1)))  # the card is ~450 px wide beside the large map
    fig.update_layout(
        meta={"tile": t, "gap": GAP, "layers": n_l, "heads": n_h}, shapes=[frame], uirevision=uirevision,
        height=40 + n_l * tile_px, margin={"l": 60, "r": 10, "t": 30, "b": 10}, plot_bgcolor="white",
        xaxis={"tickmode": "array", "tickvals": [h * step + t / 2 for h in range(n_h)],
               "ticktext": [_name("head", h, name) for h, name in enumerate(heads)], "side": "top",
               "showgrid": False, "zeroline": False},
        yaxis={"tickmode": "array", "tickvals": [l_ * step + t / 2 for l_ in range(n_l)],
               "ticktext": [_name("layer", i, name) for i, name in enumerate(layers)], "showgrid": False,
               "zeroline": False})
    return fig


def _name(what: str, i: int, name: str) -> str:
    return f"{what} {i}" if name in (f"l{i}", f"h{i}") else f"{what} {i} ({name})"


# The hovered query of the large map marks its row in every tile of the grid, in the browser (no request):
# inputs: the large map's hoverData, the grid's id. Shapes after the first ("chosen") are the marks.
HOVER_JS = """
function (hover, gridId) {
    const gd = document.querySelector('#' + gridId + ' .js-plotly-plot');
    if (!gd || !gd.layout || !gd.layout.meta || !window.Plotly) { return window.dash_clientside.no_update; }
    const m = gd.layout.meta, keep = (gd.layout.shapes || []).filter(s => s.name === 'chosen');
    const p = hover && hover.points && hover.points[0];
    const shapes = keep.slice();
    if (p && Number.isInteger(p.y) && p.y >= 0 && p.y < m.tile) {
        for (let l = 0; l < m.layers; l++) {
            for (let h = 0; h < m.heads; h++) {
                const x0 = h * (m.tile + m.gap), y = l * (m.tile + m.gap) + p.y;
                shapes.push({type: 'rect', x0: x0 - 0.5, x1: x0 + p.y + 0.5, y0: y - 0.5, y1: y + 0.5,
                             line: {color: '#e4572e', width: 1.5}, name: 'hover'});
            }
        }
    }
    window.Plotly.relayout(gd, {shapes: shapes});
    return p ? p.y : null;
}
"""


SUMMARY_TEXT = {
    "seq2seq": "Attention entropy: 0 when each output character reads a single input character, 1 when it reads "
               "all of them evenly. Alignment share: the output characters (of the 8 probe dates) whose strongest "
               "attention falls inside their outlined span. The dotted line is the step shown.",
    "transformer": "Mean entropy of each token's attention over the tokens it can see, per layer: 0 when it reads a "
                   "single token, 1 when it reads all of them evenly. The dotted line is the step shown."}


def summary_chart(series: dict, current_step: int | None, kind: str) -> go.Figure:
    """Mean attention entropy (0: focused on one key, 1: spread evenly; one line per layer of a transformer)
    and, for an encoder-decoder, the alignment share, over the run's snapshots."""
    fig = go.Figure()
    steps = series.get("steps") or []
    for name, values in (series.get("entropy") or {}).items():
        label = "attention entropy" if kind == "seq2seq" else f"entropy, {_name('layer', len(fig.data), name)}"
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=label,
                                 hovertemplate="step %{x:,}: %{y:.2f}<extra>" + label + "</extra>"))
    if series.get("alignment") is not None:
        fig.add_trace(go.Scatter(x=steps, y=series["alignment"], mode="lines+markers", name="alignment share",
                                 line={"color": SPAN_COLOUR},
                                 hovertemplate="step %{x:,}: %{y:.0%} of output characters<extra>alignment</extra>"))
    shapes = [] if current_step is None else [
        {"type": "line", "x0": current_step, "x1": current_step, "yref": "paper", "y0": 0, "y1": 1,
         "line": {"color": "#98a2b3", "dash": "dot", "width": 1}}]
    fig.update_layout(height=300, margin={"l": 50, "r": 10, "t": 10, "b": 40}, plot_bgcolor="white", shapes=shapes,
                      yaxis={"range": [0, 1.02], "gridcolor": "#eef0f4", "title": {"text": "0 to 1"}},
                      xaxis={"title": {"text": "training step"}, "gridcolor": "#eef0f4"},
                      legend={"orientation": "h", "y": -0.25}, uirevision=kind)
    return fig


def output_line(output: str, target: str) -> html.Div:
    """The model's output and the target one above the other, wrong characters marked.

    >>> output_line("2021-05-04", "2021-05-03").children[0].children[1].children[-1].className
    'tok-wrong'
    """
    out = [html.Span(c, className="tok-ok" if i < len(target) and c == target[i] else "tok-wrong")
           for i, c in enumerate(output)]
    right = output == target
    verdict = html.Span("right" if right else "wrong", className="badge badge-completed" if right else
                        "badge badge-failed")
    return html.Div([html.Div([html.Span("model wrote", className="att-out-label"), html.Span(out, className="mono")]),
                     html.Div([html.Span("target", className="att-out-label"), html.Span(target, className="mono"),
                               verdict])], className="att-output")
