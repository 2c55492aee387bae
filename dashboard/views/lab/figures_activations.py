"""Figures of the Lab's activations and gradient-clipping view. Pure: lists in, figures out (no torch).

- :func:`hidden_time_figure`: at one snapshot per run, the mean hidden-state norm ``||h_t||``
  against the time step ``t`` of the probe sequences (left) and ``||dL/dh_t||`` (right), log y,
  with the most a tanh layer can reach, ``sqrt(hidden_size)``, drawn dashed.
- :func:`hidden_training_figure`: the hidden norm over training, per run (mean at the last time
  step, solid; the largest of any sequence and step, dotted), with the same bound.
- :func:`clip_figure`: the global gradient norm before clipping (solid) and after (dotted) over
  training, the clipping threshold dashed, and the training loss below; a run whose loss turned
  NaN/inf says at which step.

Colours (:func:`run_colors`): ReLU runs red, tanh blue; runs of one activation, clipped and not,
green and red.
Non-finite and non-positive values are gaps (a log axis cannot show them).

Example::

    fig = hidden_time_figure([{"name": "relu", "step": 300, "activation": "relu", "hidden_size": 32,
                               "hidden_norms": [2.0, 9.0, 12.0], "grad_norms": [1e-6, 1e-3, 2e-2]}])
    fig = clip_figure([{"name": "clip 1", "clip_norm": 1.0, "before": {"x": [1, 2], "y": [0.7, 2e10]},
                        "after": {"x": [1, 2], "y": [0.7, 1.0]}, "loss": {"x": [1, 2], "y": [4.6, 4e8]}}])
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

ACT_COLORS = {"relu": "#d62728", "tanh": "#1f77b4"}
CLIP_COLORS = {True: "#2ca02c", False: "#d62728"}
OTHER_COLORS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
BOUND_COLOR = "#555"
LAYOUT = {"plot_bgcolor": "white", "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}
AXIS = {"gridcolor": "#eee", "zeroline": False}
LOG_AXIS = {**AXIS, "type": "log", "exponentformat": "power"}


def tanh_bound(hidden_size: int | None) -> float | None:
    """The longest a tanh hidden state can be: every unit at +-1, ``sqrt(hidden_size)``."""
    return math.sqrt(hidden_size) if hidden_size else None


def plot_values(values) -> list:
    """Floats for a log axis: NaN, inf and values <= 0 become None (a gap)."""
    y = np.asarray(values if values is not None else [], dtype=np.float64)
    return [v if math.isfinite(v) and v > 0 else None for v in y.tolist()]


def first_nonfinite(x, y) -> int | None:
    """The first ``x`` whose ``y`` is NaN or infinite (where a run diverged), else None."""
    bad = [int(s) for s, v in zip(x or [], y or []) if v is None or not math.isfinite(float(v))]
    return bad[0] if bad else None


def run_colors(items: list[dict]) -> list[str]:
    """One colour per run, the same in all three figures for the same list: by ``activation`` (ReLU red,
    tanh blue) unless all share one and they differ in clipping (``clip_norm``: clipped green,
    unclipped red); a colour already taken (or none) gives way to the next of OTHER_COLORS."""
    by_clip = len({i.get("activation") for i in items}) == 1 and len({bool(i.get("clip_norm")) for i in items}) > 1
    others, used, out = iter(OTHER_COLORS * 10), set(), []
    for i in items:
        color = CLIP_COLORS[bool(i.get("clip_norm"))] if by_clip else ACT_COLORS.get(i.get("activation") or "")
        color = next(others) if not color or color in used else color
        used.add(color)
        out.append(color)
    return out


def _waiting_title(items: list[dict], key: str) -> str | None:
    waiting = [f"{c['name']}: {c.get('note', 'no data yet')}" for c in items if c.get(key) is None]
    return "; ".join(waiting) or None


def log_hline(fig: go.Figure, y: float, text: str, yref: str = "y", xref: str = "x", right: bool = False,
              **rc) -> None:
    """A dashed horizontal line at ``y`` across a log-y panel, labelled above it. (``add_hline``'s own
    label takes ``y`` as log10 on a log axis, which stretches the axis to 10^y.)"""
    fig.add_hline(y=y, line={"color": BOUND_COLOR, "dash": "dash", "width": 1}, **rc)
    fig.add_annotation(x=1 if right else 0, xref=f"{xref} domain", y=math.log10(y), yref=yref, text=text,
                       showarrow=False, xanchor="right" if right else "left", yanchor="bottom",
                       font={"size": 11, "color": BOUND_COLOR})


def _bounds(fig: go.Figure, sizes: set[int], **rc) -> None:
    """A dashed line at sqrt(H) for each hidden size H: the longest a tanh state can be."""
    for h in sorted(sizes):
        log_hline(fig, tanh_bound(h), f"tanh bound sqrt({h}) = {tanh_bound(h):.2f}", **rc)


def hidden_time_figure(curves: list[dict], height: int = 420) -> go.Figure:
    """Left: mean ``||h_t||`` against the time step; right: ``||dL/dh_t||`` against it; log y both.

    Each curve: ``name``, ``hidden_norms`` (T,), optional ``grad_norms`` (T,), ``step``,
    ``activation``, ``hidden_size`` (draws the tanh bound ``sqrt(hidden_size)``). A curve with a
    ``note`` instead of ``hidden_norms`` is named in the legend title (no snapshot yet).
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09, subplot_titles=(
        "hidden-state norm ||h_t|| (mean over the probe sequences)",
        "gradient ||dL/dh_t|| for a loss at the last step"))
    sizes: set[int] = set()
    for c, color in zip(curves, run_colors(curves)):
        if c.get("hidden_norms") is None:
            continue
        label = c["name"] + (f" (step {c['step']:,})" if c.get("step") is not None else "")
        h = np.asarray(c["hidden_norms"], dtype=np.float64)
        if c.get("hidden_size"):
            sizes.add(int(c["hidden_size"]))
        if not np.isfinite(h).all():
            label += ": not finite (diverged)"
        fig.add_trace(go.Scatter(x=list(range(len(h))), y=plot_values(h), mode="lines+markers", name=label,
                                 legendgroup=c["name"], line={"color": color, "width": 2}, marker={"size": 4},
                                 hovertemplate="t = %{x}<br>||h|| %{y:.3g}<extra>" + c["name"] + "</extra>"),
                      row=1, col=1)
        if c.get("grad_norms") is not None:
            g = c["grad_norms"]
            fig.add_trace(go.Scatter(x=list(range(len(g))), y=plot_values(g), mode="lines", name=label,
                                     legendgroup=c["name"], showlegend=False, line={"color": color, "width": 2},
                                     hovertemplate="t = %{x}<br>||dL/dh|| %{y:.3g}<extra>" + c["name"]
                                     + "</extra>"), row=1, col=2)
    fig.update_annotations(font_size=12)  # the subplot titles (before the bound's label exists)
    _bounds(fig, sizes, row=1, col=1)
    fig.update_layout(height=height, uirevision="lab-act-time", **LAYOUT,
                      legend={"orientation": "h", "y": -0.22,
                              "title": {"text": _waiting_title(curves, "hidden_norms")}})
    fig.update_xaxes(title="time step t of the probe sequence", **AXIS)
    fig.update_yaxes(title="||h_t|| (log)", row=1, col=1, **LOG_AXIS)
    fig.update_yaxes(title="||dL/dh_t|| (log)", row=1, col=2, **LOG_AXIS)
    return fig


def hidden_training_figure(series: list[dict], height: int = 380) -> go.Figure:
    """The hidden norm over training: per run ``x`` (steps), ``last`` (mean ``||h||`` at the last
    time step, solid) and optional ``max`` (largest ``||h_t||`` of any sequence and step, dotted);
    ``activation`` and ``hidden_size`` as in :func:`hidden_time_figure`. A series with a ``note``
    instead of ``x`` is named in the legend title."""
    fig = go.Figure()
    sizes: set[int] = set()
    for s, color in zip(series, run_colors(series)):
        if s.get("x") is None:
            continue
        if s.get("hidden_size"):
            sizes.add(int(s["hidden_size"]))
        fig.add_trace(go.Scatter(x=list(s["x"]), y=plot_values(s["last"]), mode="lines+markers",
                                 name=f"{s['name']}: mean at the last step", legendgroup=s["name"],
                                 line={"color": color, "width": 2}, marker={"size": 5},
                                 hovertemplate="step %{x:,}<br>mean ||h|| %{y:.3g}<extra>" + s["name"]
                                 + "</extra>"))
        if s.get("max") is not None:
            fig.add_trace(go.Scatter(x=list(s["x"]), y=plot_values(s["max"]), mode="lines",
                                     name=f"{s['name']}: largest", legendgroup=s["name"],
                                     line={"color": color, "width": 1.5, "dash": "dot"},
                                     hovertemplate="step %{x:,}<br>largest ||h|| %{y:.3g}<extra>" + s["name"]
                                     + "</extra>"))
    _bounds(fig, sizes)
    fig.update_layout(title={"text": "Hidden-state norm over training", "font": {"size": 14}}, height=height,
                      uirevision="lab-act-training", **LAYOUT,
                      legend={"orientation": "h", "y": -0.25, "title": {"text": _waiting_title(series, "x")}},
                      xaxis={"title": "training step", **AXIS}, yaxis={"title": "||h|| (log)", **LOG_AXIS})
    return fig


def clip_figure(series: list[dict], height: int = 520) -> go.Figure:
    """Gradient norm before and after clipping over training (top, log y) and the training loss
    (bottom, log y), one colour per run.

    Each series: ``name``, ``clip_norm`` (None: no clipping), ``before`` / ``after`` / ``loss``
    ``{"x": steps, "y": values}`` (``after`` only for a clipped run; values may hold None/NaN);
    optional ``activation``. The threshold of each clipped run is a dashed line; a run whose
    loss turned non-finite gets "loss NaN from step N" in its legend and an x at that step.
    """
    clipped = any(s.get("clip_norm") for s in series)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.6, 0.4],
                        subplot_titles=("global gradient norm: before clipping (solid), after (dotted)" if clipped
                                        else "global gradient norm (no run clips it)", "training loss"))
    fig.update_annotations(font_size=12)
    thresholds: set[float] = set()
    for s, color in zip(series, run_colors(series)):
        if s.get("before") is None and s.get("loss") is None:
            continue
        clip = s.get("clip_norm")
        label = s["name"]
        if "clip" not in label.lower():
            label += f" (clip {clip:g})" if clip else " (no clipping)"
        if s.get("before") is None:
            label += ": no gradient norms logged"
        loss = s.get("loss") or {"x": [], "y": []}
        broke = first_nonfinite(loss["x"], loss["y"])
        if broke is not None:
            label += f": loss NaN from step {broke:,}"
        if clip:
            thresholds.add(float(clip))
        if s.get("before") is not None:
            fig.add_trace(go.Scatter(x=list(s["before"]["x"]), y=plot_values(s["before"]["y"]), mode="lines",
                                     name=label, legendgroup=s["name"], line={"color": color, "width": 1.6},
                                     hovertemplate="step %{x:,}<br>before %{y:.3g}<extra>" + s["name"]
                                     + "</extra>"), row=1, col=1)
        if s.get("after") is not None:
            fig.add_trace(go.Scatter(x=list(s["after"]["x"]), y=plot_values(s["after"]["y"]), mode="lines",
                                     name=f"{s['name']}: after clipping", legendgroup=s["name"],
                                     line={"color": color, "width": 2.2, "dash": "dot"},
                                     hovertemplate="step %{x:,}<br>after %{y:.3g}<extra>" + s["name"]
                                     + "</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=list(loss["x"]), y=plot_values(loss["y"]), mode="lines", name=label,
                                 legendgroup=s["name"], showlegend=s.get("before") is None,
                                 line={"color": color, "width": 1.6},
                                 hovertemplate="step %{x:,}<br>loss %{y:.3g}<extra>" + s["name"] + "</extra>"),
                      row=2, col=1)
        if broke is not None:
            fig.add_vline(x=broke, line={"color": color, "dash": "dot", "width": 1})
    for t in sorted(thresholds):
        log_hline(fig, t, f"clipping threshold {t:g}", right=True, row=1, col=1)
    fig.update_layout(height=height, uirevision="lab-act-clip", **LAYOUT,
                      legend={"orientation": "h", "y": -0.15,
                              "title": {"text": _waiting_title(series, "before")}})
    fig.update_xaxes(**AXIS)
    fig.update_xaxes(title="training step", row=2, col=1)
    fig.update_yaxes(title="||g|| (log)", row=1, col=1, **LOG_AXIS)
    fig.update_yaxes(title="loss (log)", row=2, col=1, **LOG_AXIS)
    return fig
