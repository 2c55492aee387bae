"""Try it's answers for the sequence tasks (issue 16): an encoder-decoder's output and attention matrix, a
tagger's tags. Pure: inference results in, Dash components and figures out (no torch).

Example::

    children = translation_view(result.translation, target=None)    # output, then the attention heatmap
    children = tagging_view(result.tagging)                        # a chip per word: tag, probability, flag
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import dcc, html

from dashboard.views.try_it.ids import TRY_ATTENTION

PLAIN = {"displaylogo": False, "displayModeBar": False}


def _label(ch: str) -> str:
    """A character as an axis label: a space shown as ␣, the end token as "end" (plotly reads "</s>" as markup)."""
    return {" ": "␣", "</s>": "end"}.get(ch, ch)


def attention_figure(keys: list[str], queries: list[str], weights: np.ndarray) -> go.Figure:
    """Heatmap of ``weights`` (output characters down, input characters across); hover names both."""
    x = [f"{i}:{_label(k)}" for i, k in enumerate(keys)]
    y = [f"{i}:{_label(q)}" for i, q in enumerate(queries)]
    fig = go.Figure(go.Heatmap(
        z=np.round(weights, 3).tolist(), x=x, y=y, colorscale="Blues", zmin=0, zmax=1,
        colorbar={"title": {"text": "weight"}, "thickness": 12},
        hovertemplate="writing %{y}<br>looks at %{x}<br>weight %{z:.2f}<extra></extra>"))
    fig.update_layout(
        height=140 + 26 * len(queries), margin={"l": 70, "r": 20, "t": 30, "b": 60},
        xaxis={"title": {"text": "input character (what the encoder read)"}, "tickmode": "array", "tickvals": x,
               "ticktext": [_label(k) for k in keys], "tickangle": 0, "side": "top"},
        yaxis={"title": {"text": "output character"}, "tickmode": "array", "tickvals": y,
               "ticktext": [_label(q) for q in queries], "autorange": "reversed"},
        plot_bgcolor="white", uirevision="try-attention")
    return fig


def translation_view(t) -> html.Div:
    """The written output, and where the decoder looked while writing each character."""
    head = html.Div([html.Span("Output: ", className="muted"),
                     html.Strong(t.output or "(nothing: it wrote the end token first)", className="try-seq-output"),
                     html.Span(f"  ({len(t.output)} characters, decoded greedily from its own previous "
                               "characters, as in validation)", className="muted")], className="try-info")
    if t.weights is None:
        return html.Div([head, html.P("This model has no attention (attention 'none'): the decoder sees only the "
                                      "encoder's final state, so there is no matrix to show.", className="muted")])
    note = html.P("Attention: each row is one output character (the end token, 'end', last), each column one input "
                  "character; a dark square is where the decoder looked while writing that row. A good model "
                  "looks at the characters that decide the one it writes (the year's digits for the year).",
                  className="muted try-legend")
    return html.Div([head, dcc.Graph(id=TRY_ATTENTION, config=PLAIN,
                                     figure=attention_figure(t.keys, t.queries, t.weights)), note])


def tagging_view(t) -> html.Div:
    """One chip per word: the word, its tag, the tag's probability; ambiguous words flagged."""
    chips = []
    for word, tag, p, amb in zip(t.words, t.tags, t.probs, t.ambiguous):
        chips.append(html.Span([
            html.Span(word, className="try-tag-word"), html.Br(),
            html.Strong(tag, className="try-tag-name"), html.Span(f" {100 * p:.0f}%", className="muted"),
            html.Span(" ambiguous", className="try-tag-flag") if amb else None,
        ], className="try-tag" + (" try-tag-ambiguous" if amb else ""),
            title=("ambiguous: this word can take two tags and only the word after it decides" if amb
                   else "this word's tag follows from the word itself")))
    n_amb = sum(t.ambiguous)
    note = (f"{n_amb} ambiguous word{'s' if n_amb != 1 else ''} (outlined): only the next word decides their tag "
            "('the cold wind': ADJ, 'the cold spreads': NOUN). A tagger that reads left to right must guess "
            "there (look at its probability); a bidirectional one has read the next word.")
    return html.Div([html.Div(chips, className="try-tags"), html.P(note, className="muted try-legend")])
