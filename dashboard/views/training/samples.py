"""The Training page's "Generated text" card: what a language model writes as it trains.

For runs of a language-model task, the card shows the newest text sample of the chosen run
(recorded by :class:`backend.probes.samples.SamplesProbe`: the same prompt and seed at every probe
step) beside the sample of an earlier step (default: the first, before training), at the chosen
temperature. The prompt is highlighted; the continuation is what the model wrote. Several overlaid
runs get a run choice; runs of other tasks get no card.

It has no callback of its own: the Training page's one live callback (:mod:`dashboard.views.training.tick`)
calls :func:`update` when the run heads say the chosen run's sample snapshots changed (the texts live in
the snapshot index's meta, :mod:`backend.store.samples`, listed once for every viewer) or the viewer
picked something in the card; nothing is sent to the browser unless what the card shows changed.

Example (in a page layout and its live callback)::

    html.Div([..., samples_card.layout(), ...])
    callback(*live_outputs, *samples_card.outputs(), ..., *samples_card.inputs(), ...)
"""
from __future__ import annotations

from typing import Any

from dash import Input, Output, dcc, html, no_update
from dash.exceptions import PreventUpdate

from backend.store import ACTIVE_STATUSES, StoreError
from backend.store.samples import Samples, samples_history
from backend.tasks.registry import TASKS
from dashboard.blank_runs import with_blank_runs
from dashboard.inputs import as_dict, as_float, as_int, as_run_id

CARD = "train-samples-card"
RUN = "train-samples-run"
RUN_FIELD = "train-samples-run-field"
TEMPERATURE = "train-samples-temperature"
COMPARE = "train-samples-compare"
BODY = "train-samples-body"
STATE = "train-samples-state"
DEFAULT_TEMPERATURE = 0.5
HIDDEN = {"display": "none"}
TEMPERATURE_HELP = ("Temperature: 0 always takes the likeliest next character (greedy); 1 samples the model's own "
                    "probabilities; above 1 flattens them (wilder text, more mistakes).")


def layout() -> html.Div:
    """The card, hidden until a language-model run is chosen."""
    return html.Div([
        html.Div([
            html.H3("Generated text"),
            html.Span("The model continues the same prompt from held-out text at every snapshot, with the same "
                      "random seed: the text changes only because the model learnt.", className="muted"),
        ], className="samples-head"),
        html.Div([
            html.Div([html.Label("Run", htmlFor=RUN),
                      dcc.RadioItems(id=RUN, options=[], inline=True, className="pj-radio")],
                     id=RUN_FIELD, className="samples-field", style=HIDDEN),
            html.Div([html.Label("Temperature", htmlFor=TEMPERATURE, title=TEMPERATURE_HELP),
                      dcc.RadioItems(id=TEMPERATURE, options=[], inline=True, className="pj-radio")],
                     className="samples-field", title=TEMPERATURE_HELP),
            html.Div([html.Label("Compare with step", htmlFor=COMPARE),
                      dcc.Dropdown(id=COMPARE, options=[], clearable=False, searchable=False,
                                   placeholder="(one snapshot so far)", className="samples-compare")],
                     className="samples-field"),
        ], className="samples-controls"),
        html.Div(id=BODY, className="samples-body"),
        dcc.Store(id=STATE),
    ], id=CARD, className="card samples-card", style=HIDDEN)


def language_runs(runs: list[dict]) -> list[dict]:
    """The runs of a language-model task, in the given order."""
    return [r for r in runs if getattr(TASKS.get(r.get("task", "")), "kind", None) == "lm"]


def temperature_label(t: float) -> str:
    return "0 (greedy)" if t == 0 else f"{t:g}"


def sample_box(rec: Samples, temperature: float, title: str, role: str) -> html.Div:
    """One sample: a heading, then the prompt (highlighted) followed by the continuation."""
    text = rec.text(temperature)
    blank = text.strip() == ""
    return html.Div([
        html.Div([html.Strong(f"Step {rec.step:,}"), html.Span(f" · {title}", className="muted")],
                 className="sample-title"),
        html.Pre([html.Span(rec.prompt, className="sample-prompt", title="the prompt (held-out text)"),
                  html.Span(with_blank_runs(text), className="sample-cont")], className="sample-text"),
        html.Div("(only spaces and line breaks)", className="sample-blank muted") if blank else None,
    ], className=f"sample-box sample-{role}", **{"data-step": str(rec.step), "data-temperature": f"{temperature:g}"})


def body(history: list[Samples], temperature: float, compare: int | None, run: dict) -> list:
    """The two samples side by side (earlier, newest) and a one-line legend."""
    newest = history[-1]
    earlier = next((r for r in history[:-1] if r.step == compare), None)
    boxes = []
    if earlier is not None:
        boxes.append(sample_box(earlier, temperature, "before training" if earlier.step == 0 else "earlier",
                                "earlier"))
    else:
        boxes.append(html.Div("Earlier samples appear here for comparison once the next snapshot is written.",
                              className="sample-box sample-wait muted"))
    live = run.get("status") in ACTIVE_STATUSES
    boxes.append(sample_box(newest, temperature, "newest, updates as the run trains" if live else "newest", "newest"))
    every = newest.meta.get("every")
    legend = [html.Span("prompt", className="sample-prompt"), f": {newest.meta.get('source', 'held-out text')}; "
              f"after it, what the model wrote: {len(newest.text(temperature))} characters at temperature "
              f"{temperature_label(temperature)}.", f" A new sample every {every:,} steps." if every else ""]
    return [html.Div(boxes, className="samples-grid"), html.P(legend, className="samples-legend muted")]


def card_update(store: Any, runs: list[dict], run_choice: str | None, temperature: float | None,
                compare: int | None, state: dict | None) -> dict:
    """Every output of the card's callback as a dict, and ``"state"``, the signature of what it shows.

    Raises PreventUpdate when the signature equals ``state`` (nothing new to draw).
    """
    lm = language_runs(runs)
    if not lm:
        out = {"card_style": HIDDEN, "run_field_style": HIDDEN, "run_options": [], "run": None,
               "temp_options": [], "temperature": None, "compare_options": [], "compare": None, "body": []}
        return _unless_same(out, {"runs": []}, state)
    run = next((r for r in lm if r["id"] == run_choice), lm[0])
    try:
        history = samples_history(store, run["id"])
    except StoreError as exc:
        history, problem = [], f"The samples of this run cannot be read: {exc}"
    else:
        problem = None
    temps = list(history[-1].temperatures) if history else []
    if temperature not in temps:
        temperature = DEFAULT_TEMPERATURE if DEFAULT_TEMPERATURE in temps else (temps[0] if temps else None)
    steps = [r.step for r in history]
    if compare not in steps[:-1]:
        compare = steps[0] if len(steps) > 1 else None
    signature = {"runs": [r["id"] for r in lm], "run": run["id"], "steps": steps, "temperature": temperature,
                 "compare": compare, "status": run.get("status"), "problem": problem}
    out = {"card_style": {}, "run_field_style": {} if len(lm) > 1 else HIDDEN,
           "run_options": [{"label": r.get("name") or r["id"], "value": r["id"]} for r in lm], "run": run["id"],
           "temp_options": [{"label": temperature_label(t), "value": t} for t in temps], "temperature": temperature,
           "compare_options": [{"label": f"step {s:,}", "value": s} for s in steps[:-1]], "compare": compare,
           "body": body(history, temperature, compare, run) if history else [empty_note(run, problem)]}
    return _unless_same(out, signature, state)


def empty_note(run: dict, problem: str | None) -> html.P:
    """Why a language-model run shows no samples."""
    if problem:
        return html.P(problem, className="alert alert-warning")
    if (run.get("spec") or {}).get("model", {}).get("bidirectional"):
        text = "This run's model is bidirectional: it reads the future, so it cannot write text left to right."
    elif run.get("status") in ACTIVE_STATUSES:
        text = "Waiting for the first samples: the model writes them when training starts and at every snapshot."
    else:
        text = "This run recorded no text samples (it was trained before deepscope recorded them)."
    return html.P(text, className="muted samples-empty")


def _unless_same(out: dict, signature: dict, state: dict | None) -> dict:
    if state == signature:
        raise PreventUpdate
    return dict(out, state=signature)


OUTPUTS = ("card_style", "run_field_style", "run_options", "run", "temp_options", "temperature",
           "compare_options", "compare", "body", "state")


def update(runs: list[dict], run_choice: Any, temperature: Any, compare: Any, state: Any, store: Any) -> list:
    """The card's outputs in :data:`OUTPUTS` order for the chosen ``runs`` (rows); PreventUpdate when
    nothing it shows changed. ``store`` lists the sample snapshots (the Training page passes one that
    reads them from the run heads' cache, :class:`dashboard.views.training.tick.SnapshotsFromHeads`)."""
    run_choice, temperature, compare = as_run_id(run_choice), as_float(temperature), as_int(compare)
    state = as_dict(state)
    out = card_update(store, runs, run_choice, temperature, compare, state)
    if state and all(state.get(k) == out["state"].get(k) for k in ("runs", "run", "steps")):
        for key in ("run_options", "temp_options", "compare_options"):  # the browser has these lists already
            out[key] = no_update
    return [out[k] for k in OUTPUTS]


def outputs() -> list[Output]:
    """The card's outputs, in :data:`OUTPUTS` order."""
    return [Output(CARD, "style"), Output(RUN_FIELD, "style"), Output(RUN, "options"), Output(RUN, "value"),
            Output(TEMPERATURE, "options"), Output(TEMPERATURE, "value"), Output(COMPARE, "options"),
            Output(COMPARE, "value"), Output(BODY, "children"), Output(STATE, "data")]


def inputs() -> list[Input]:
    """What the viewer picks in the card (the Training page's one live callback takes them as inputs)."""
    return [Input(RUN, "value"), Input(TEMPERATURE, "value"), Input(COMPARE, "value")]


NO_UPDATE = [no_update] * len(OUTPUTS)
CHOICES = (RUN, TEMPERATURE, COMPARE)  # component ids of the viewer's choices in the card
