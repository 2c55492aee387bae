"""The Lab page's gradient-flow view: ``||dL/dh_t||`` against distance, through training.

For recurrent language-model runs (the gradient-flow preset's plain RNN, LSTM and GRU): a step
slider over the steps of the chosen runs' gradient-flow snapshots (their union), each run drawn
at its newest snapshot at or before the chosen step (its legend says which), following the
newest while the slider is at its right end (live) and staying put when moved back; Play steps
through (:mod:`dashboard.snapshot_slider`). Each run's first snapshot (initialisation) can be
overlaid faint and dotted. Below, each layer's gradient norm (``grad_norm/<layer>``) over
training, with the slider's step marked. Polls draw nothing when nothing changed.

Example::

    section(runs, asked=["a1", "b2"])           # the view's layout (the page wraps it in its section)
    pick_steps({"a1": [0, 300], "b2": [0]}, 200)   # {"a1": 0, "b2": 0}: newest at or before 200
"""
from __future__ import annotations

import bisect

from dash import Input, Output, Patch, State, callback, dcc, html, no_update

from backend.lab.records import gradflow_steps, latest_gradflow
from dashboard import ids
from dashboard.components import alert, blank_figure
from dashboard.context import current
from dashboard.data import downsampled
from dashboard.views.lab.figures import MAX_PANELS, grad_norm_figure, gradflow_figure, layer_order, step_marker_shapes
from dashboard.inputs import MAX_INDEX, as_dict, as_flags, as_int, as_run_ids, trigger_id
from dashboard.views.lab.runs import newest_launch, pick_step, read_steps_store, recurrent_lm_options, refresh_run_options
from dashboard.snapshot_slider import PLAY, keeps_following, register_play, slider_marks, step_at

PRESET = "gradient-flow"
GF_STEP = "lab-gf-step"                  # slider: index into the union of the chosen runs' snapshot steps
GF_STEPS = "lab-gf-steps"                # dcc.Store: {"steps": union, "runs": [[run id, steps, status], ...]}
GF_PLAY = "lab-gf-play"
GF_TICK = "lab-gf-play-tick"
GF_FOLLOW = "lab-gf-follow"              # checklist: follow the newest snapshot
GF_INIT = "lab-gf-init"                  # checklist: overlay each run's first snapshot
GF_INFO = "lab-gf-info"
GF_NORMS = "lab-gf-norms"                # graph: grad_norm/<layer> over training
GF_NORMS_SHOWN = "lab-gf-norms-shown"    # dcc.Store: what the norms graph shows (data key, panels, marker)
GF_NORMS_INTERVAL = "lab-gf-norms-interval"
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": "hover"}
PLAY_MS = 600
NORM_POINTS = 600  # per layer and run in the norms figure
NOT_LAYERS = {"grad_norm/after_clip"}  # the global norm after clipping (backend.lab.records.AFTER_CLIP): no layer
# measured on the preset's runs (3,000 steps): rnn.l0 / head medians 0.03-0.13 / 0.26-0.31 for the RNN,
# 0.24 -> 0.014 / 0.17 -> 0.10 for the LSTM, 0.36 (bursts to 1.2) -> 0.06 / 0.21 -> 0.14 for the GRU
NORMS_WHAT = ("What to look for: the plain RNN's recurrent layer (rnn.l0) gets gradients 5-10 times smaller than "
              "its output layer (head) all through training, so its memory barely learns, while the LSTM's and "
              "GRU's recurrent layers get as much as their heads or more, in bursts, while they learn to recall. "
              "Every panel has the same log scale; when the slider is moved back, a dotted line marks its step.")


def default_runs(runs: list[dict], known: set[str]) -> list[str]:
    """The newest launch of the gradient-flow preset: its runs in the preset's order."""
    return newest_launch(runs, known, (PRESET,))


def union_steps(steps_by_run: dict[str, list[int]]) -> list[int]:
    """Every step at which any of the runs has a snapshot, sorted."""
    return sorted({int(s) for steps in steps_by_run.values() for s in steps})


def pick_steps(steps_by_run: dict[str, list[int]], step: int | None) -> dict[str, int | None]:
    """Per run, its newest snapshot step at or before ``step`` (its newest when ``step`` is None);
    None for a run without one."""
    return {rid: pick_step(steps, step) for rid, steps in steps_by_run.items()}


def follow_index(steps: list[int], known: list[int] | None, index: int | None, follow: list | None) -> int:
    """Slider index after the steps changed from ``known`` to ``steps``: the newest when following (or
    at first), else the step shown before (the newest at or before it), so that a snapshot arriving
    for another run does not move what the person chose."""
    if not steps:
        return 0
    if "on" in (follow or []) or not known:
        return len(steps) - 1
    before = step_at(known, index)
    return max(bisect.bisect_right(steps, before) - 1, 0)


def section(runs: list[dict], asked: list[str]) -> html.Div:
    """The view's layout: ``asked`` runs (ids) if they are recurrent language models, else the
    newest launch of the gradient-flow preset."""
    context = current()
    options = recurrent_lm_options(runs)  # the runs with gradient-flow snapshots
    known = {o["value"] for o in options}
    chosen = [r for r in asked if r in known] or default_runs(runs, known)
    return html.Div([
        html.H3("Gradient flow through time"),
        html.P("For recurrent language models: the norm of the gradient of the loss at the last step with "
               "respect to each earlier hidden state, for a fixed batch of probe sequences, against how far "
               "back the state is. A line that falls steeply is a vanishing gradient: the loss cannot teach "
               "the model anything about what happened that far back. At initialisation all three decay; "
               "move the slider to see the LSTM and GRU learn to keep the gradient while the plain RNN "
               "does not.", className="muted"),
        html.Label("Runs", htmlFor=ids.LAB_GF_RUNS),
        dcc.Dropdown(id=ids.LAB_GF_RUNS, options=options, value=chosen, multi=True,
                     placeholder="Choose recurrent language-model runs..."),
        html.Div([
            html.Label("Training step", htmlFor=GF_STEP),
            html.Div([html.Button(PLAY, id=GF_PLAY, className="btn kn-play", n_clicks=0,
                                  title="step through the snapshots from the first to the newest"),
                      html.Div(dcc.Slider(id=GF_STEP, min=0, max=0, step=1, value=0, marks=None, included=False,
                                          allow_direct_input=False), className="kn-slider")],
                     className="kn-step-row"),
            html.Div([dcc.Checklist(id=GF_FOLLOW, options=[{"label": " follow the newest", "value": "on"}],
                                    value=["on"], inline=True),
                      dcc.Checklist(id=GF_INIT, options=[{"label": " compare with initialisation (dotted)",
                                                          "value": "on"}], value=["on"], inline=True),
                      html.Span(id=GF_INFO, className="muted")], className="step-info"),
        ], className="field field-step lab-gf-step"),
        html.Div(id=ids.LAB_GF_NOTE, className="lab-gf-note"),
        dcc.Graph(id=ids.LAB_GF_GRAPH, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
        html.Div("Gradient norm of each layer over training", className="lab-gf-norms-head"),
        html.P(NORMS_WHAT, className="muted lab-gf-what"),
        dcc.Graph(id=GF_NORMS, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
        dcc.Store(id=ids.LAB_GF_SHOWN), dcc.Store(id=GF_STEPS), dcc.Store(id=GF_NORMS_SHOWN),
        dcc.Interval(id=ids.LAB_GF_INTERVAL, interval=max(1000, context.poll_ms)),
        dcc.Interval(id=GF_NORMS_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
        dcc.Interval(id=GF_TICK, interval=PLAY_MS, disabled=True),
    ], className="card lab-gradflow")


def _steps(_n, run_value, follow, known, index):
    if trigger_id() == GF_FOLLOW and "on" not in as_flags(follow):
        return no_update, no_update, no_update, no_update  # stopped following: the slider stays (and keeps focus)
    return steps_view(run_value, follow, known, index, polled=trigger_id() == ids.LAB_GF_INTERVAL)


def steps_view(run_value, follow, known, index, polled: bool) -> tuple:
    """The chosen runs' snapshot steps (and statuses) as the slider's max, marks, value and store
    data; the slider follows the newest or keeps its step. A poll that finds nothing new: no_update."""
    follow, known, index = as_flags(follow), read_steps_store(known), as_int(index, None, 0, MAX_INDEX)
    store = current().data.store
    runs = []
    for rid in as_run_ids(run_value):
        run = store.get_run(rid)
        if run is not None:
            runs.append([rid, gradflow_steps(store, rid), run["status"]])
    steps = union_steps({rid: s for rid, s, _ in runs})
    data = {"steps": steps, "runs": runs}
    if data == known and polled:
        return no_update, no_update, no_update, no_update
    value = follow_index(steps, (known or {}).get("steps"), index, follow)
    return max(len(steps) - 1, 0), slider_marks(steps) if steps else {}, value, data


def _follow(index, data, follow):
    """Moving the slider back stops following; bringing it to the right end follows again."""
    index, data, follow = as_int(index, None, 0, MAX_INDEX), read_steps_store(data), as_flags(follow)
    steps = (data or {}).get("steps") or []
    if steps and index is not None and index >= len(steps) - 1:
        return no_update if "on" in (follow or []) else ["on"]
    return no_update if keeps_following(index, steps, follow) else []


def _curves(store, runs: list, picks: dict, with_init: bool) -> tuple[list[dict], list[str]]:
    curves, notes = [], []
    for rid, steps, status in runs:
        run = store.get_run(rid)
        if run is None:
            continue
        family = ((run.get("spec") or {}).get("model") or {}).get("family")
        rec = latest_gradflow(store, rid, step=picks[rid]) if picks.get(rid) is not None else None
        if rec is None:
            note = f"no snapshot yet ({status})" if not steps else f"no snapshot at or before this step ({status})"
            curves.append({"name": run["name"], "note": note, "family": family})
            notes.append(f"{run['name']}: {note}.")
            continue
        curve = {"name": run["name"], "step": rec.step, "family": rec.meta.get("family", family),
                 "norms_by_distance": rec.norms_by_distance.tolist()}
        if with_init and min(steps) < rec.step:
            first = latest_gradflow(store, rid, step=min(steps))
            if first is not None:
                curve.update(init_step=first.step, init_norms=first.norms_by_distance.tolist())
        curves.append(curve)
    return curves, notes


def _gradflow(index, data, init, shown):
    """Draw each chosen run at its newest snapshot at or before the slider's step; nothing new, nothing drawn."""
    index, data, init = as_int(index, 0, 0, MAX_INDEX), read_steps_store(data), as_flags(init)
    runs = (data or {}).get("runs") or []
    if not runs:
        return blank_figure("Choose runs to draw (launch the gradient-flow preset above)."), None, None, ""
    steps = data["steps"]
    chosen = step_at(steps, index)
    live = not steps or (index or 0) >= len(steps) - 1
    picks = pick_steps({rid: s for rid, s, _ in runs}, chosen)
    with_init = "on" in (init or [])
    key = [[rid, picks[rid], status] for rid, _, status in runs] + [with_init]
    info = "" if chosen is None else (f"step {chosen:,}" + (" (newest)" if live else "")
                                      + f" · {len(steps)} snapshot step{'' if len(steps) == 1 else 's'}")
    if shown is not None and key == shown:
        return no_update, no_update, no_update, info
    curves, notes = _curves(current().data.store, runs, picks, with_init)
    if not any(c.get("norms_by_distance") is not None for c in curves):
        msg = "No gradient-flow snapshot yet: the probe records one when training starts; this view updates by itself."
        return blank_figure(msg), alert(msg, "info"), key, info
    note = [html.Div(n, className="muted") for n in notes] or None
    return gradflow_figure(curves, title_step=None if live else chosen), note, key, info


def grad_norm_series(store, run_id: str, max_points: int = NORM_POINTS) -> dict[str, dict[str, list]]:
    """A run's ``grad_norm/<layer>`` series (and ``global``) as ``{layer: {"x": steps, "y": norms}}``,
    downsampled; the norm after clipping is left out (it is no layer)."""
    names = [n for n in store.scalar_names(run_id) if n.startswith("grad_norm/") and n not in NOT_LAYERS]
    if not names:
        return {}
    raw, _cursor = store.scalar_series(run_id, names)
    return {name.split("/", 1)[1]: downsampled(s["step"], s["value"], max_points) for name, s in raw.items()}


def _norms(run_value, _n, index, data, shown):
    return norms_view(run_value, index, data, shown, moved=trigger_id() == GF_STEP)


def norms_view(run_value, index, data, shown, moved: bool) -> tuple:
    """Per-layer gradient norms of the chosen runs and what they show, the slider's step marked
    (not while it follows the newest); ``moved`` (only the slider changed) just moves the mark."""
    run_ids, index, data = as_run_ids(run_value), as_int(index, 0, 0, MAX_INDEX), read_steps_store(data)
    shown = as_dict(shown)
    if shown is not None:  # what this view stored; its key is only compared
        shown = {"runs": as_run_ids(shown.get("runs")), "key": shown.get("key"),
                 "marker": as_int(shown.get("marker"), None, 0),
                 "panels": as_int(shown.get("panels"), 0, 0, MAX_PANELS)}
    if not run_ids:
        return blank_figure("Choose runs to draw their gradient norms."), None
    steps = (data or {}).get("steps") or []
    live = not steps or (index or 0) >= len(steps) - 1
    marker = None if live else step_at(steps, index)
    if shown and moved and shown.get("runs") == run_ids:
        if shown.get("marker") == marker or not shown.get("panels"):
            return no_update, no_update
        patch = Patch()
        patch["layout"]["shapes"] = step_marker_shapes(shown["panels"], marker)
        return patch, {**shown, "marker": marker}
    store = current().data.store
    series, key = [], []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is None:
            continue
        layers = grad_norm_series(store, rid)
        family = ((run.get("spec") or {}).get("model") or {}).get("family")
        if layers:
            series.append({"name": run["name"], "family": family, "layers": layers})
        else:
            series.append({"name": run["name"], "note": f"no gradient norms logged yet ({run['status']})"})
        key.append([rid, {k: v["x"][-1] for k, v in layers.items()}, run["status"]])
    if shown and shown.get("key") == key and shown.get("marker") == marker:
        return no_update, no_update
    new = {"runs": run_ids, "key": key, "marker": marker,
           "panels": min(MAX_PANELS, len(layer_order([k for s in series for k in s.get("layers") or {}])))}
    if not any(s.get("layers") for s in series):
        return blank_figure("No gradient norms logged yet: trainers log them every few steps; this view updates "
                            "by itself."), new
    return grad_norm_figure(series, marker_step=marker), new


def register() -> None:
    """Register the view's callbacks with the app being built. The page module calls it: Dash runs
    a page module once per app, while a plain module's ``@callback`` would reach only the first
    app a process builds (tests build several)."""
    callback(Output(ids.LAB_GF_RUNS, "options"), Input(ids.LAB_GF_INTERVAL, "n_intervals"),
             State(ids.LAB_GF_RUNS, "options"), State(ids.LAB_GF_RUNS, "value"),
             prevent_initial_call=True)(refresh_run_options)
    callback(Output(GF_STEP, "max"), Output(GF_STEP, "marks"), Output(GF_STEP, "value"), Output(GF_STEPS, "data"),
             Input(ids.LAB_GF_INTERVAL, "n_intervals"), Input(ids.LAB_GF_RUNS, "value"), Input(GF_FOLLOW, "value"),
             State(GF_STEPS, "data"), State(GF_STEP, "value"))(_steps)
    callback(Output(GF_FOLLOW, "value"), Input(GF_STEP, "value"), State(GF_STEPS, "data"), State(GF_FOLLOW, "value"),
             prevent_initial_call=True)(_follow)
    callback(Output(ids.LAB_GF_GRAPH, "figure"), Output(ids.LAB_GF_NOTE, "children"), Output(ids.LAB_GF_SHOWN, "data"),
             Output(GF_INFO, "children"), Input(GF_STEP, "value"), Input(GF_STEPS, "data"), Input(GF_INIT, "value"),
             State(ids.LAB_GF_SHOWN, "data"))(_gradflow)
    callback(Output(GF_NORMS, "figure"), Output(GF_NORMS_SHOWN, "data"),
             Input(ids.LAB_GF_RUNS, "value"), Input(GF_NORMS_INTERVAL, "n_intervals"), Input(GF_STEP, "value"),
             State(GF_STEPS, "data"), State(GF_NORMS_SHOWN, "data"))(_norms)
    register_play(GF_PLAY, GF_TICK, GF_STEP, GF_FOLLOW, GF_STEPS, Input(ids.LAB_GF_RUNS, "value"))
