"""Figures and small views of the Try it page. Pure: arrays and strings in, figures or components out.

Example::

    fig = states_heatmap(h, tokens=list("def f(x):"), label="layer 1 · hidden state h", state="h")
    fig = evolution_figure(["not", "bad"], np.array([[0.7, 0.3], [0.2, 0.8]]), ("negative", "positive"))
    strip = teacher_forcing_strip(list("abc"), ["b", "d"], np.array([0.9, 0.1]))
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import html

from dashboard.blank_runs import with_blank_runs

from dashboard.images import visible

CLASS_COLORS = ["#d62728", "#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
GATE_STATES = frozenset("ifozr")   # sigmoid gates: 0 (closed) to 1 (open)
TANH_STATES = frozenset("hgn")     # tanh outputs: -1 to 1 (h of a ReLU RNN is not bounded)
MAX_HOVER_VALUES = 30_000          # heatmap cells beyond which hover names no token (it would double the JSON)


def state_range(state: str, values: np.ndarray, relu: bool = False) -> tuple[float, float, bool]:
    """``(lo, hi, diverging)`` colour range of a state: gates 0..1, tanh outputs -1..1, the cell state
    (unbounded) and a ReLU RNN's ``h`` symmetric about 0 at their largest magnitude."""
    if state in GATE_STATES:
        return 0.0, 1.0, False
    if state in TANH_STATES and not relu:
        return -1.0, 1.0, True
    top = float(np.nanmax(np.abs(values))) if np.size(values) else 1.0
    top = top if np.isfinite(top) and top > 0 else 1.0
    return (0.0, top, False) if relu and state == "h" else (-top, top, True)


def _token_axis(tokens: list[str], words: bool, most: int = 120) -> dict:
    """Each token under its column while they fit; positions beyond ``most`` tokens."""
    x = list(range(len(tokens)))
    if len(tokens) > most:
        return {"title": "token (position in your text)", "showgrid": False}
    return {"tickmode": "array", "tickvals": x, "ticktext": [visible(t) for t in tokens],
            "tickangle": -45 if words else 0, "showgrid": False,
            "tickfont": {"family": "monospace", "size": 12 if words or len(tokens) <= 60 else 10}}


def states_heatmap(values: np.ndarray, tokens: list[str], label: str, state: str, words: bool = False,
                   relu: bool = False) -> go.Figure:
    """A state or gate at every token: cells down, tokens across, one column per token of the text.

    ``values`` is ``(tokens, cells)``; the colour range follows :func:`state_range`."""
    values = np.asarray(values, dtype=np.float64)
    t_len, cells = values.shape
    lo, hi, diverging = state_range(state, values, relu)
    z = np.round(values.T, 3)
    trace = dict(z=z.tolist(), x=list(range(t_len)), y=list(range(cells)), zmin=lo, zmax=hi,
                 colorscale="RdBu_r" if diverging else "Greens", colorbar={"thickness": 10, "len": 0.9})
    if t_len * cells <= MAX_HOVER_VALUES:
        trace["customdata"] = [[visible(t) for t in tokens]] * cells
        trace["hovertemplate"] = "after “%{customdata}” (token %{x}), cell %{y}: %{z}<extra></extra>"
    else:
        trace["hovertemplate"] = "token %{x}, cell %{y}: %{z}<extra></extra>"
    fig = go.Figure(go.Heatmap(**trace))
    fig.update_layout(
        title={"text": label, "font": {"size": 13}}, height=int(np.clip(120 + 5 * cells, 280, 640)),
        margin={"l": 50, "r": 10, "t": 36, "b": 70 if words else 40}, plot_bgcolor="white", uirevision="try-states",
        xaxis=_token_axis(tokens, words), yaxis={"title": "cell", "autorange": "reversed", "showgrid": False},
    )
    return fig


def evolution_figure(tokens: list[str], evolution: np.ndarray, class_names: tuple[str, ...] | list[str]) -> go.Figure:
    """Probability of each class after reading tokens 1..t, one line per class, tokens along the bottom."""
    evolution = np.asarray(evolution, dtype=np.float64)
    x = list(range(len(tokens)))
    labels = [visible(t) for t in tokens]
    fig = go.Figure()
    for c, name in enumerate(class_names):
        fig.add_trace(go.Scatter(
            x=x, y=np.round(evolution[:, c], 4).tolist(), mode="lines+markers", name=name, customdata=labels,
            line={"color": CLASS_COLORS[c % len(CLASS_COLORS)], "width": 2, "shape": "hv"}, marker={"size": 6},
            hovertemplate=f"after “%{{customdata}}”: P({name}) = %{{y:.1%}}<extra></extra>"))
    if len(class_names) == 2:
        fig.add_hline(y=0.5, line={"color": "#98a2b3", "dash": "dot", "width": 1})
    fig.update_layout(
        title={"text": "The prediction after each word: what the model would say if the text stopped there",
               "font": {"size": 13}},
        height=320, margin={"l": 55, "r": 10, "t": 36, "b": 70}, plot_bgcolor="white", uirevision="try-evolution",
        hovermode="x unified", legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        xaxis=_token_axis(tokens, True),
        yaxis={"title": "probability", "range": [-0.02, 1.02], "tickformat": ".0%", "gridcolor": "#eee"},
    )
    return fig


def guesses_figure(tokens: list[str], top_tokens: list[list[str]], top_probs: np.ndarray) -> go.Figure:
    """A language model's likeliest next tokens after each token: one column per token of the text, its
    guesses down the column (likeliest on top), shaded by probability."""
    probs = np.asarray(top_probs, dtype=np.float64)
    k = probs.shape[1] if probs.ndim == 2 else 0
    text = [[visible(top_tokens[t][r]) for t in range(len(tokens))] for r in range(k)]
    fig = go.Figure(go.Heatmap(
        z=np.round(probs.T, 4).tolist(), x=list(range(len(tokens))), y=[f"guess {r + 1}" for r in range(k)],
        text=text, texttemplate="%{text}" if len(tokens) <= 80 else None, textfont={"family": "monospace", "size": 12},
        zmin=0, zmax=1, colorscale="Blues", colorbar={"thickness": 10, "len": 0.9, "tickformat": ".0%"},
        customdata=[[visible(t) for t in tokens]] * k,
        hovertemplate="after “%{customdata}” (token %{x}): %{text} with %{z:.1%}<extra></extra>"))
    fig.update_layout(
        title={"text": "The model's likeliest next characters after each character (darker: surer)",
               "font": {"size": 13}},
        height=120 + 34 * k, margin={"l": 60, "r": 10, "t": 36, "b": 40}, plot_bgcolor="white",
        uirevision="try-guesses", xaxis=_token_axis(tokens, False), yaxis={"autorange": "reversed"},
    )
    return fig


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%" if p >= 0.01 else "<1%"


def class_prediction(class_names, probs: np.ndarray) -> html.Div:
    """The predicted class in words and a bar per class."""
    probs = np.asarray(probs, dtype=np.float64)
    best = int(np.argmax(probs))
    bars = [html.Div([
        html.Span(name, className="try-bar-label"),
        html.Span(html.Span(className="try-bar-fill", style={"width": f"{100 * p:.1f}%",
                                                             "background": CLASS_COLORS[c % len(CLASS_COLORS)]}),
                  className="try-bar"),
        html.Span(f"{100 * p:.1f}%", className="try-bar-value"),
    ], className="try-bar-row") for c, (name, p) in enumerate(zip(class_names, probs))]
    return html.Div([html.Div(["The model says ", html.Strong(class_names[best], className="try-class"),
                               f" ({100 * probs[best]:.1f}% sure)."], className="try-verdict"),
                     html.Div(bars, className="try-bars")])


def next_token_prediction(top_tokens: list[str], top_probs: np.ndarray, unit: str = "character") -> html.Div:
    """A language model's guesses for what comes right after the text."""
    chips = [html.Span([html.Span(visible(t), className="try-chip-token"), html.Span(_pct(p), className="muted")],
                       className="try-chip") for t, p in zip(top_tokens, np.asarray(top_probs, dtype=float))]
    head = html.Div(f"Next {unit}, the model's likeliest guesses after your text:", className="try-verdict")
    return html.Div([head, html.Div(chips, className="try-chips")])


def token_chips(tokens: list[str], unknown: list[str]) -> html.Div:
    """The text as the model reads it, one chip per token; tokens outside its vocabulary are marked."""
    unknown_set = set(unknown)
    return html.Div([html.Span(visible(t), className="try-token" + (" try-unknown" if t in unknown_set else ""),
                               title="not in the model's vocabulary: read as unknown" if t in unknown_set else None)
                     for t in tokens], className="try-tokens")


def _p_colour(p: float) -> str:
    """Red (the model gave the true character little chance) through yellow to green (it was sure)."""
    p = float(np.clip(p, 0, 1))
    hue = 120 * p
    return f"hsl({hue:.0f}, 70%, 82%)"


def teacher_forcing_strip(tokens: list[str], guesses: list[str], p_true: np.ndarray) -> html.Div:
    """The text with, under each character after the first, the model's guess for it (having read the true
    text before it), each column coloured by the probability the model gave the true character."""
    cols = [html.Div([html.Span(visible(tokens[0]), className="try-tf-true"),
                      html.Span("·", className="try-tf-guess muted", title="nothing to guess from yet")],
                     className="try-tf-col")]
    for t, (tok, guess, p) in enumerate(zip(tokens[1:], guesses, np.asarray(p_true, dtype=float)), start=1):
        right = guess == tok
        cols.append(html.Div([
            html.Span(visible(tok), className="try-tf-true"),
            html.Span(visible(guess), className="try-tf-guess" + ("" if right else " try-tf-wrong")),
        ], className="try-tf-col", style={"background": _p_colour(p)},
            title=f"character {t}: guessed {visible(guess)!r}, P(true {visible(tok)!r}) = {100 * p:.1f}%"))
    return html.Div(cols, className="try-tf-strip")


def generation_text(prompt: str, continuation: str) -> html.Pre:
    """The prompt (grey) followed by what the model wrote (bold)."""
    return html.Pre([html.Span(prompt, className="try-prompt"),
                     html.Span(with_blank_runs(continuation), className="try-generated")],
                    className="try-generation")
