"""Training-metric figures: which panel a metric goes to, traces, smoothing.

Pure: series in, plotly figure dicts out (no Dash, no store). Every figure sets
``uirevision`` so that a user's zoom survives live updates.

Example::

    trace = metric_trace("train/loss", [1, 2], [2.3, 2.1], color=PALETTE[0])
    fig = panel_figure("loss", [trace], uirevision="loss:abc")
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

# Order of the panels on the Training page; "other" catches metrics logged by users' own scripts.
PANELS = ("loss", "accuracy", "quality", "lr", "grad", "speed", "other")
TITLES = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "quality": "Validation: precision / recall / F1, or perplexity",
    "lr": "Learning rate",
    "grad": "Gradient norm (global and per layer)",
    "speed": "Throughput (samples/s) and step time (ms)",
    "other": "Other metrics",
}
EMPTY_TEXT = {
    "accuracy": "No accuracy logged (language models log loss only)",
    "quality": "Appears after the first validation pass<br>(classifiers: precision, recall, F1; "
               "language models: perplexity)",  # two lines: one was cut off in a half-width panel
    "other": "Metrics with other names, logged from your own scripts, show here",
}
# Panels whose curves are not smoothed: a learning-rate schedule is exact, not noisy.
UNSMOOTHED = frozenset({"lr"})
PANEL_HEIGHT = 300
EMPTY_OTHER_HEIGHT = 110  # the catch-all panel stays a slim note until something lands in it
# Colour-blind-safe qualitative palette (Okabe-Ito, black last).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_FIXED = {"train/loss": "loss", "val/loss": "loss", "train/acc": "accuracy", "val/acc": "accuracy",
          "val/precision": "quality", "val/recall": "quality", "val/f1": "quality", "val/perplexity": "quality",
          "lr": "lr",
          "throughput/samples_per_s": "speed", "time/step_ms": "speed"}


def panel_of(metric: str) -> str:
    """The panel a metric is drawn in, e.g. ``panel_of("grad_norm/conv1") == "grad"``."""
    if metric in _FIXED:
        return _FIXED[metric]
    if metric.startswith("grad_norm/"):
        return "grad"
    return "other"


def metric_order(names: Iterable[str]) -> list[str]:
    """Metric names in display order: train before val, global gradient norm first, then by name."""
    def key(n: str) -> tuple:
        return (PANELS.index(panel_of(n)), n != "grad_norm/global", not n.startswith("train/"), n)
    return sorted(names, key=key)


def ema(values: Sequence[float | None], weight: float,
        state: tuple[float, int] = (0.0, 0)) -> tuple[list[float | None], tuple[float, int]]:
    """TensorBoard's debiased exponential moving average, resumable for streaming.

    ``state`` is ``(last, count)`` from a previous call, so smoothing a series in chunks
    gives the same values as smoothing it at once. Non-finite values pass through and
    do not move the average (a NaN loss should show, not poison the curve).

    >>> ema([1.0, 1.0], 0.5)[0]
    [1.0, 1.0]
    """
    last, count = float(state[0]), int(state[1])
    out: list[float | None] = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        count += 1
        # Debias: the average starts at 0, so early values are divided by the weight mass seen.
        debias = 1.0 - weight ** count if weight < 1 else 1.0
        out.append(last / debias if debias > 0 else v)
    return out, (last, count)


def metric_style(metric: str, color: str) -> dict:
    """Line style of a metric: validation dashed, global gradient norm thicker."""
    dash = "dash" if metric.startswith("val/") else ("dot" if metric == "time/step_ms" else "solid")
    width = 2.6 if metric == "grad_norm/global" else 1.8
    return {"color": color, "dash": dash, "width": width}


def metric_trace(label: str, x: list, y: list, color: str, metric: str | None = None,
                 role: str = "plain", group: str | None = None) -> dict:
    """One scatter trace (lists, so it can be streamed).

    ``role`` is ``"plain"`` (no smoothing), ``"raw"`` (faint, under a smoothed curve) or
    ``"smooth"``. ``metric`` picks the line style and the y axis (step time on the right).
    """
    metric = metric or label
    trace = {"type": "scatter", "mode": "lines", "x": list(x), "y": list(y), "name": label,
             "legendgroup": group or label, "line": metric_style(metric, color),
             "hovertemplate": f"{label}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>"}
    if metric.startswith("val/"):  # sparse (one point per evaluation): a lone point needs a marker
        trace.update(mode="lines+markers", marker={"size": 5, "color": color})
    if role == "raw":
        trace.update(opacity=0.25, showlegend=False, hoverinfo="skip")
        trace.pop("hovertemplate")
    if metric == "time/step_ms":
        trace["yaxis"] = "y2"
    return trace


def panel_layout(panel: str, uirevision: str, empty_text: str | None = None) -> dict:
    """Layout of a panel: compact margins, legend below, step on x, ``uirevision`` kept."""
    layout = {
        "title": {"text": TITLES[panel], "x": 0.01, "font": {"size": 14}},
        "uirevision": uirevision,
        "margin": {"l": 56, "r": 56 if panel == "speed" else 16, "t": 36, "b": 24},
        "height": PANEL_HEIGHT if panel != "other" or not empty_text else EMPTY_OTHER_HEIGHT,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff" if empty_text else "#fbfcfd",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        # x is always the training step (said in the hover); no axis title keeps room for the legend.
        "xaxis": {"gridcolor": "#e8ebef", "zeroline": False, "visible": not empty_text},
        "yaxis": {"gridcolor": "#e8ebef", "zeroline": False, "automargin": True, "visible": not empty_text,
                  # learning rates span decades (warm-up, decay); log also frames a constant lr sensibly
                  "type": "log" if panel == "lr" else "linear",
                  # full numbers (0.002, 0.005, 0.01) instead of plotly's bare "2" and "5" between decades
                  # and few ticks: within one decade every minor tick got a label and they overlapped
                  **({"tickformat": "~g", "nticks": 4} if panel == "lr" else {})},
        "legend": {"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0, "font": {"size": 11}},
        "hovermode": "x unified",
        "showlegend": True,
        "annotations": [],
    }
    if panel == "speed":
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False, "title": {"text": "ms"}}
    if empty_text:
        layout["annotations"] = [empty_annotation(empty_text)]
    return layout


def empty_annotation(text: str) -> dict:
    """A centred grey note for a panel that has no data yet."""
    return {"text": text, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False,
            "font": {"color": "#6b7280", "size": 13}}


def panel_figure(panel: str, traces: list[dict], uirevision: str, empty_text: str | None = None) -> dict:
    """Figure dict of one panel; with no traces it says why it is empty."""
    if not traces and empty_text is None:
        empty_text = EMPTY_TEXT.get(panel, "Waiting for the first points...")
    layout = panel_layout(panel, uirevision, None if traces else empty_text)
    legend_rows = legend_rows_of(traces)
    if legend_rows > 1:  # compared runs x layers: the legend grows, the plot keeps its height
        layout["height"] += LEGEND_ROW_PX * (legend_rows - 1)
    return {"data": traces, "layout": layout}


LEGEND_ROW_PX = 22
LEGEND_PER_ROW = 3  # entries of a horizontal legend per row in a half-width panel (names like "a · conv1")


def legend_rows_of(traces: list[dict]) -> int:
    """Rows the horizontal legend below a panel takes (about :data:`LEGEND_PER_ROW` entries a row).

    >>> legend_rows_of([{"name": "a"}] * 7), legend_rows_of([{"name": "a", "showlegend": False}] * 7)
    (3, 0)
    """
    shown = sum(1 for t in traces if t.get("showlegend", True))
    return -(-shown // LEGEND_PER_ROW)


RESUME_COLOR = "#b54708"


def resume_marks(resumes: list[tuple[str, int]]) -> tuple[list[dict], list[dict]]:
    """Shapes and labels marking where runs resumed from a checkpoint: ``[(label, step), ...]``.

    What a run logged after that step before it died was superseded (deleted), so the curve goes on
    from the checkpoint; the dotted line says where the second attempt began.
    """
    shapes, notes = [], []
    for label, step in resumes:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": step, "x1": step, "y0": 0, "y1": 1,
                       "line": {"color": RESUME_COLOR, "width": 1, "dash": "dot"}, "layer": "below"})
        notes.append({"x": step, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom", "showarrow": False,
                      "text": label, "font": {"size": 10, "color": RESUME_COLOR}})
    return shapes, notes
