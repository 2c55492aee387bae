"""The Lab page's view of the activations and gradient-clipping presets: hidden-state and gradient norms.

For recurrent language-model runs (the presets' ReLU and tanh RNNs, with and without clipping):

1. at one snapshot per run (a step slider over their gradient-flow snapshots; the newest while it
   is at its right end), the mean hidden-state norm ``||h_t||`` against the time step of the probe
   sequences, with the tanh bound ``sqrt(hidden_size)``, and ``||dL/dh_t||`` beside it;
2. the hidden norm over training (:func:`backend.lab.records.hidden_norm_history`);
3. the global gradient norm before and after clipping over training (metrics ``grad_norm/global``
   and ``grad_norm/after_clip``), the clipping threshold, and the training loss; a run that
   diverged says where, and why it stopped.

Everything updates by itself while the runs train (a ``dcc.Interval``); polls that find nothing new
draw nothing. Component ids are this module's (prefix ``lab-act-``).

Example::

    section(runs, asked=["a1", "b2"])     # the view's card (the Lab page places it)
    clip_series(store, ["a1"])            # what figure 3 draws, read from the store
"""
from __future__ import annotations

import bisect
import re

from dash import Input, Output, State, callback, dcc, html, no_update

from backend.lab.records import AFTER_CLIP, BEFORE_CLIP, gradflow_steps, hidden_norm_history, latest_gradflow
from dashboard.components import alert, blank_figure
from dashboard.context import current
from dashboard.data import downsampled
from dashboard.views.lab.figures_activations import clip_figure, hidden_time_figure, hidden_training_figure
from dashboard.inputs import MAX_INDEX, as_int, as_run_ids, trigger_id
from dashboard.views.lab.runs import newest_launch, pick_step, read_steps_store, recurrent_lm_options, refresh_run_options
from dashboard.snapshot_slider import slider_marks, step_at

PRESET_IDS = ("activations", "clipping")
ACT_RUNS = "lab-act-runs"              # dropdown: the runs drawn
ACT_STEP = "lab-act-step"              # slider: index into the union of the runs' snapshot steps
ACT_STEPS = "lab-act-steps"            # dcc.Store: {"steps": union, "runs": [[run id, steps, status], ...]}
ACT_INFO = "lab-act-info"
ACT_NOTE = "lab-act-note"
ACT_TIME = "lab-act-time"              # graph: ||h_t|| and ||dL/dh_t|| against the time step
ACT_TIME_SHOWN = "lab-act-time-shown"
ACT_TRAINING = "lab-act-training"      # graph: hidden norm over training
ACT_CLIP = "lab-act-clip"              # graph: gradient norm before / after clipping, loss
ACT_TRAIN_SHOWN = "lab-act-train-shown"
ACT_INTERVAL = "lab-act-interval"
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": "hover"}
MAX_POINTS = 1000  # per series in the clipping figure

TIME_WHAT = ("What to look for: a tanh state can never be longer than sqrt(hidden units), the dashed line, and the "
             "tanh run stays just under it (its units saturate); the ReLU run climbs past it over the first steps "
             "of a sequence and stays far above. Right: how much of the last step's loss reaches each earlier state. "
             "(Clipping preset: both runs use ReLU; the unclipped one broke within a few steps, so its only curve "
             "is from before training.)")
TRAINING_WHAT = ("What to look for: as training goes on, the ReLU run's hidden norm keeps rising past the tanh bound "
                 "(its largest, dotted, much further), while the tanh run's creeps up to the bound and flattens.")
CLIP_WHAT = ("What to look for: solid is the gradient's length as backpropagation computed it, dotted what the "
             "optimizer used after clipping. Without clipping one gradient billions of times too long wrecks the "
             "weights and the loss is NaN a step later (the run stops); with clipping the same spike is cut to the "
             "threshold (dashed) and training goes on.")


def default_runs(runs: list[dict], known: set[str]) -> list[str]:
    """The newest launch of the activations or clipping preset (whichever is newer), in its order."""
    return newest_launch(runs, known, PRESET_IDS)


def _spec(run: dict) -> dict:
    return run.get("spec") or {}


def _model(run: dict) -> dict:
    return _spec(run).get("model") or {}


def _activation(run: dict) -> str | None:
    m = _model(run)
    return (m.get("activation") or "tanh") if m.get("family") == "rnn" else None


def stop_reason(run: dict) -> str | None:
    """The last line of a failed run's error without the exception's name (e.g. "training diverged at ...")."""
    if run.get("status") != "failed" or not run.get("error"):
        return None
    last = run["error"].strip().splitlines()[-1]
    return re.sub(r"^[A-Za-z_][\w.]*: ", "", last)


def _run_base(run: dict) -> dict:
    """What every curve of a run carries: its name, activation, hidden size and clipping threshold."""
    return {"name": run["name"], "activation": _activation(run), "hidden_size": _model(run).get("hidden_size"),
            "clip_norm": _spec(run).get("clip_norm")}


def time_curves(store, runs: list, step: int | None) -> tuple[list[dict], list[str]]:
    """Figure 1's curves: each of ``runs`` (``[run id, steps, status]``) at its newest snapshot at or
    before ``step``, and notes on runs without one (or without hidden norms: an older snapshot)."""
    curves, notes = [], []
    for rid, steps, status in runs:
        run = store.get_run(rid)
        if run is None:
            continue
        base = _run_base(run)
        at = pick_step(steps, step)
        rec = latest_gradflow(store, rid, step=at) if at is not None else None
        if rec is None or rec.hidden_norms is None:
            note = (f"no snapshot yet ({status})" if rec is None and not steps else
                    f"no snapshot at or before this step ({status})" if rec is None else
                    "its snapshots predate hidden-state norms")
            curves.append({**base, "note": note})
            notes.append(f"{run['name']}: {note}.")
            continue
        curves.append({**base, "step": rec.step, "hidden_norms": rec.hidden_norms.tolist(),
                       "grad_norms": rec.norms.tolist(),
                       "hidden_size": rec.meta.get("hidden_size") or base["hidden_size"],
                       "activation": rec.meta.get("activation") or base["activation"]})
    return curves, notes


def training_series(store, run_ids: list[str]) -> list[dict]:
    """Figure 2's series: each run's hidden norm over training (last step mean, largest)."""
    out = []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is None:
            continue
        base = _run_base(run)
        hist = hidden_norm_history(store, rid)
        if not len(hist["step"]):
            out.append({**base, "note": f"no hidden-state norms yet ({run['status']})"})
            continue
        out.append({**base, "x": hist["step"].tolist(), "last": hist["last"].tolist(), "max": hist["max"].tolist()})
    return out


def clip_series(store, run_ids: list[str], max_points: int = MAX_POINTS) -> list[dict]:
    """Figure 3's series: gradient norm before (and, when clipped, after) clipping and the training
    loss of each run, downsampled (spikes kept), with its ``clip_norm``."""
    out = []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is None:
            continue
        raw, _ = store.scalar_series(rid, [BEFORE_CLIP, AFTER_CLIP, "train/loss"])
        item = {"name": run["name"], "clip_norm": _spec(run).get("clip_norm"), "activation": _activation(run)}
        for key, name in (("before", BEFORE_CLIP), ("after", AFTER_CLIP), ("loss", "train/loss")):
            if name in raw:
                item[key] = downsampled(raw[name]["step"], raw[name]["value"], max_points)
        if "before" not in item and "loss" not in item:
            item["note"] = f"nothing logged yet ({run['status']})"
        out.append(item)
    return out


def section(runs: list[dict], asked: list[str]) -> html.Div:
    """The view's card: ``asked`` runs (ids) if they are recurrent language models, else the newest
    launch of the activations or clipping preset."""
    context = current()
    options = recurrent_lm_options(runs)  # the runs that record hidden-state norms
    known = {o["value"] for o in options}
    chosen = [r for r in asked if r in known] or default_runs(runs, known)
    return html.Div([
        html.H3("Activations and gradient clipping in recurrent nets"),
        html.P("Hidden-state and gradient norms of recurrent language models, from a fixed batch of probe "
               "sequences (every gradient-flow snapshot) and from the gradient norms logged while training: the "
               "views of the activations (ReLU vs tanh) and gradient-clipping presets.", className="muted"),
        html.Label("Runs", htmlFor=ACT_RUNS),
        dcc.Dropdown(id=ACT_RUNS, options=options, value=chosen, multi=True,
                     placeholder="Choose recurrent language-model runs..."),
        html.Div([html.Label("Snapshot step (right end: the newest)", htmlFor=ACT_STEP),
                  dcc.Slider(id=ACT_STEP, min=0, max=0, step=1, value=0, marks=None, included=False,
                             allow_direct_input=False),
                  html.Span(id=ACT_INFO, className="muted")], className="field field-step"),
        html.Div(id=ACT_NOTE, className="lab-act-note"),
        html.P(TIME_WHAT, className="muted lab-act-what"),
        dcc.Graph(id=ACT_TIME, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
        html.P(TRAINING_WHAT, className="muted lab-act-what"),
        dcc.Graph(id=ACT_TRAINING, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
        html.P(CLIP_WHAT, className="muted lab-act-what"),
        dcc.Graph(id=ACT_CLIP, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
        dcc.Store(id=ACT_STEPS), dcc.Store(id=ACT_TIME_SHOWN), dcc.Store(id=ACT_TRAIN_SHOWN),
        dcc.Interval(id=ACT_INTERVAL, interval=max(1500, 2 * context.poll_ms)),
    ], id="lab-activations", className="card lab-activations")


def slider_index(steps: list[int], known: list[int] | None, index: int | None) -> int:
    """Where the slider goes when the snapshot steps change from ``known`` to ``steps``: the newest
    if it was at the newest (or at first), else the newest step at or before the one it showed."""
    if not steps:
        return 0
    if not known or index is None or index >= len(known) - 1:
        return len(steps) - 1
    return max(bisect.bisect_right(steps, step_at(known, index)) - 1, 0)


def _steps(_n, run_value, known, index):
    return steps_view(run_value, known, index, polled=trigger_id() == ACT_INTERVAL)


def steps_view(run_value, known, index, polled: bool) -> tuple:
    """The chosen runs' snapshot steps (their union) and statuses as the slider's max, marks, value
    and store data; a poll that finds nothing new: no_update."""
    known, index = read_steps_store(known), as_int(index, None, 0, MAX_INDEX)
    store = current().data.store
    runs = []
    for rid in as_run_ids(run_value):
        run = store.get_run(rid)
        if run is not None:
            runs.append([rid, gradflow_steps(store, rid), run["status"]])
    steps = sorted({int(s) for _, ss, _ in runs for s in ss})
    data = {"steps": steps, "runs": runs}
    if data == known and polled:
        return no_update, no_update, no_update, no_update
    value = slider_index(steps, (known or {}).get("steps"), index)
    return max(len(steps) - 1, 0), slider_marks(steps) if steps else {}, value, data


def time_view(index, data, shown):
    """Figure 1 at the slider's step, and why a run stopped or has nothing to show; the same picture
    as ``shown``: nothing sent."""
    index, data = as_int(index, 0, 0, MAX_INDEX), read_steps_store(data)
    runs = (data or {}).get("runs") or []
    if not runs:
        return blank_figure("Choose runs to draw (launch the activations or clipping preset above)."), None, None, ""
    steps = data["steps"]
    chosen = step_at(steps, index)
    live = not steps or (index or 0) >= len(steps) - 1
    picks = [[rid, pick_step(s, None if live else chosen), status] for rid, s, status in runs]
    info = "" if chosen is None else f"step {chosen:,}" + (" (newest)" if live else "")
    if shown is not None and picks == shown:
        return no_update, no_update, no_update, info
    store = current().data.store
    curves, notes = time_curves(store, runs, None if live else chosen)
    stops = [f"{r['name']} stopped: {why}" for r in (store.get_run(rid) for rid, _, _ in runs)
             if r is not None and (why := stop_reason(r))]
    note = ([alert(s, "warning") for s in stops] + [html.Div(n, className="muted") for n in notes]) or None
    if not any(c.get("hidden_norms") is not None for c in curves):
        msg = ("No hidden-state norms yet: the gradient-flow probe records them when training starts (runs from "
               "before this view existed have none); this view updates by itself.")
        return blank_figure(msg), note or alert(msg, "info"), picks, info
    return hidden_time_figure(curves), note, picks, info


def training_view(_n, run_value, shown):
    """Figures 2 and 3; redrawn only when a run logged, snapshotted or changed status since ``shown``."""
    run_ids = as_run_ids(run_value)
    if not run_ids:
        blank = blank_figure("Choose runs to draw.")
        return blank, blank, None
    store = current().data.store
    key = []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is not None:
            key.append([rid, run["status"], int(run.get("step") or 0), len(gradflow_steps(store, rid))])
    if shown is not None and key == shown:
        return no_update, no_update, no_update
    series = training_series(store, run_ids)
    hidden = (hidden_training_figure(series) if any(s.get("x") for s in series) else
              blank_figure("No hidden-state norms yet: they come with each gradient-flow snapshot."))
    clips = clip_series(store, run_ids)
    grads = (clip_figure(clips) if any(c.get("before") or c.get("loss") for c in clips) else
             blank_figure("No gradient norms logged yet: trainers log them every few steps."))
    return hidden, grads, key


def register() -> None:
    """Register the view's callbacks; the Lab page calls this. Dash runs a page module once per app but
    imports this module once per process, and a module-level ``@callback`` reaches only the first app."""
    callback(Output(ACT_RUNS, "options"), Input(ACT_INTERVAL, "n_intervals"), State(ACT_RUNS, "options"),
             State(ACT_RUNS, "value"), prevent_initial_call=True)(refresh_run_options)
    callback(Output(ACT_STEP, "max"), Output(ACT_STEP, "marks"), Output(ACT_STEP, "value"), Output(ACT_STEPS, "data"),
             Input(ACT_INTERVAL, "n_intervals"), Input(ACT_RUNS, "value"), State(ACT_STEPS, "data"),
             State(ACT_STEP, "value"))(_steps)
    callback(Output(ACT_TIME, "figure"), Output(ACT_NOTE, "children"), Output(ACT_TIME_SHOWN, "data"),
             Output(ACT_INFO, "children"), Input(ACT_STEP, "value"), Input(ACT_STEPS, "data"),
             State(ACT_TIME_SHOWN, "data"))(time_view)
    callback(Output(ACT_TRAINING, "figure"), Output(ACT_CLIP, "figure"), Output(ACT_TRAIN_SHOWN, "data"),
             Input(ACT_INTERVAL, "n_intervals"), Input(ACT_RUNS, "value"), State(ACT_TRAIN_SHOWN, "data"))(training_view)
