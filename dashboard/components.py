"""Small view pieces shared by pages: status badges, empty states, spec summaries."""
from __future__ import annotations

import time

from dash import dcc, html

from backend.spec import RECURRENT
from backend.tasks import TASKS

from dashboard.export_route import export_href

STATUS_CLASS = {"queued": "queued", "running": "running", "paused": "paused", "stopped": "stopped",
                "completed": "completed", "failed": "failed", "interrupted": "interrupted"}


def status_badge(status: str, **kwargs) -> html.Span:
    """A coloured pill naming a run status."""
    return html.Span(status, className=f"badge badge-{STATUS_CLASS.get(status, 'queued')}", **kwargs)


def empty_state(title: str, *body) -> html.Div:
    """A centred card saying what the page shows and what to do next."""
    return html.Div([html.H3(title), *body], className="empty-state")


def no_runs_state(what: str) -> html.Div:
    """Empty state for a store without runs: where to start one."""
    return empty_state(
        "No runs yet",
        html.P(what),
        html.P(["Start one on ", dcc.Link("New run", href="/new"), ", or from a shell: ",
                html.Code("deepscope train digits-cnn"), "."]),
    )


def format_time(ts: float | None) -> str:
    """Local date and time of a timestamp, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def format_params(n: int | None) -> str:
    """Parameter count with thousands separators, or a dash when unknown."""
    return f"{n:,}" if n is not None else "–"


def spec_line(summary: dict) -> html.Div:
    """One line of spec facts: task, family, sizes, optimizer, lr, params."""
    facts = [("task", summary.get("task")), ("model", summary.get("family")), ("sizes", summary.get("sizes")),
             ("optimizer", summary.get("optimizer")), ("lr", summary.get("lr")),
             ("batch", summary.get("batch_size")),
             ("params", None if summary.get("params") is None else format_params(summary.get("params")))]
    # an unknown fact is left out rather than shown as "?" or "-" (runs of users' own scripts)
    return html.Div([html.Span([html.Span(k, className="fact-key"), str(v)], className="fact")
                     for k, v in facts if v not in (None, "", "?")], className="facts")


def run_status_card(run: dict, summary: dict, step_id: dict | str | None = None) -> html.Div:
    """Status, progress and spec of one run; a failed run shows its error text. ``step_id``: an id for the
    progress text (the Training page keeps its step current from the browser)."""
    total = summary.get("steps")
    progress = f"step {run.get('step', 0):,}" + (f" / {total:,}" if isinstance(total, int) else "")
    step = html.Span(progress, className="muted", **({"id": step_id} if step_id is not None else {}))
    head = html.Div([html.Strong(run.get("name") or run["id"]), html.Span(run["id"], className="muted mono"),
                     status_badge(run["status"]), step], className="run-head")
    parts = [head, spec_line(summary)]
    links = view_links(run)
    if links:
        parts.append(html.Div(["Look inside: ", *links], className="run-links muted"))
    parts.append(download_links(run["id"]))
    if run["status"] == "failed" and run.get("error"):
        parts.append(html.Details([html.Summary("This run failed: show the error"),
                                   html.Pre(run["error"], className="error-text")], open=True, className="run-error"))
    elif run["status"] == "interrupted":
        parts.append(html.Div([html.Strong("Interrupted: "), run.get("error") or "its process ended without finishing",
                               ". Resume continues it from its last checkpoint."], className="run-interrupted"))
    return html.Div(parts, className="run-card")


def download_links(run_id: str) -> html.Div:
    """Every logged point of the run, at full resolution (``/_deepscope/export``; ``deepscope export`` in a terminal)."""
    return html.Div(["Download metrics: ",
                     html.A("CSV", href=export_href(run_id, "csv"), download=f"{run_id}-metrics.csv"), " · ",
                     html.A("JSON Lines", href=export_href(run_id, "jsonl"), download=f"{run_id}-metrics.jsonl")],
                    className="run-links muted", title="every logged point, not the downsampled curve")


def view_links(run: dict) -> list:
    """Links to the pages that can show this run, separated by " · ": Hidden states (recurrent language
    models, taggers and encoder-decoders), Attention (encoder-decoders with attention, transformer language
    models), Kernels (conv models), Projections (classifiers, word2vec, taggers, encoder-decoders), Try it (text
    runs), Lab (recurrent language models: gradient flow, activations)."""
    info = TASKS.get(run.get("task"))
    family = ((run.get("spec") or {}).get("model") or {}).get("family")
    if info is None or (run.get("source") or "builtin") != "builtin":
        return []
    pages = []
    if info.kind in ("lm", "tag", "seq2seq") and family in RECURRENT:
        pages.append(("Hidden states", "/hidden"))
    model = (run.get("spec") or {}).get("model") or {}
    if info.kind == "seq2seq" and model.get("attention", "additive") != "none" or \
            info.kind == "lm" and family == "transformer":
        pages.append(("Attention", "/attention"))
    if family in ("cnn", "sparse-ae", "textcnn"):
        pages.append(("Kernels", "/kernels"))
    if info.kind in ("image", "text", "w2v", "tag", "seq2seq"):
        pages.append(("Projections", "/projections"))
    if info.kind in ("lm", "text"):
        pages.append(("Try it", "/try"))
    if info.kind == "lm" and family in RECURRENT and not ((run.get("spec") or {}).get("model") or {}).get("bidirectional"):
        pages.append(("Lab", "/lab"))
    out: list = []
    for i, (label, path) in enumerate(pages):
        out += ([" · "] if i else []) + [dcc.Link(label, href=f"{path}?run={run['id']}")]
    return out


def alert(message, kind: str = "info") -> html.Div:
    """A coloured message box: info, success, warning or danger."""
    return html.Div(message, className=f"alert alert-{kind}")


def blank_figure(message: str):
    """An empty figure that says why it is empty (never a blank plot)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(height=200, xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
                      annotations=[{"text": message, "showarrow": False, "font": {"size": 13, "color": "#555"},
                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig
