"""Lab page (``/lab``): preset experiments that show a classic phenomenon, one click each.

Every preset (``backend.lab.presets``) has a card: what it runs, one line on what to look for,
and Launch, which starts its runs with the app's job manager and opens its view: the Training
page overlaying the runs, or, for gradient flow through time, the view on this page
(``/lab?preset=gradient-flow&run=a,b,c``): ``||dL/dh_t||`` against distance per run, at each
run's newest gradient-flow snapshot, live while they train.
"""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from backend.lab.presets import PRESETS, Preset, start_preset
from backend.lab.records import latest_gradflow
from backend.spec import RECURRENT
from backend.tasks import TASKS
from dashboard import ids
from dashboard.components import alert, blank_figure
from dashboard.context import current
from dashboard.figures.lab import gradflow_figure

dash.register_page(__name__, path="/lab", name="Lab", order=30, title="Lab · deepscope")

GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": "hover"}
def _card(p: Preset) -> html.Div:
    where = "its view below" if p.page == "/lab" else "the Training page, its runs overlaid"
    return html.Div([
        html.Div([html.H3(p.title), html.Button("Launch", id={"type": ids.LAB_LAUNCH, "preset": p.id},
                                                className="btn btn-primary")], className="lab-card-head"),
        html.P(p.explanation, className="lab-explanation"),
        html.Div([f"{len(p.runs)} runs: ", ", ".join(name.rsplit(" · ", 1)[-1] for name, _ in p.runs),
                  f". Opens {where}."], className="muted lab-runs"),
        *[html.Div(n, className="muted lab-note") for n in p.notes],
    ], id={"type": ids.LAB_PRESET, "preset": p.id}, className="card lab-card")


def gradflow_run_options(runs: list[dict]) -> list[dict]:
    """Runs that can have gradient-flow snapshots: recurrent language models (newest first)."""
    out = []
    for r in runs:
        family = ((r.get("spec") or {}).get("model") or {}).get("family")
        info = TASKS.get(r.get("task"))
        if family in RECURRENT and info is not None and info.kind == "lm":
            out.append({"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]})
    return out


def layout(preset: str | None = None, run: str | None = None, **_query) -> html.Div:
    """The presets, and the gradient-flow view of ``?run=`` (default: the newest gradient-flow preset's runs)."""
    context = current()
    runs = context.data.list_runs()
    asked_ids = [r for r in (run or "").split(",") if r]
    # the run list is cached for a second: runs launched just now are read fresh
    listed = {r["id"] for r in runs}
    runs = [r for r in (context.data.get_run(rid) for rid in asked_ids if rid not in listed) if r] + runs
    options = gradflow_run_options(runs)
    known = {o["value"] for o in options}
    asked = [r for r in asked_ids if r in known]
    if not asked:  # the newest launch of the gradient-flow preset, if any
        names = {name for name, _ in PRESETS["gradient-flow"].runs}
        newest: dict[str, str] = {}
        for r in runs:
            if r["name"] in names and r["name"] not in newest and r["id"] in known:
                newest[r["name"]] = r["id"]
        asked = [newest[name] for name, _ in PRESETS["gradient-flow"].runs if name in newest]
    landed = PRESETS.get(preset or "")
    return html.Div([
        html.Div(html.H2("Lab"), className="page-head"),
        html.P("Preset experiments for what lecture slides show: one click launches small runs (under 3 minutes "
               "on two cores) and opens the view where the effect appears.", className="muted"),
        html.Div(id=ids.LAB_ALERT, role="status",
                 children=alert(f"{landed.title}: {landed.explanation}", "info") if landed else None),
        dcc.Location(id=ids.LAB_LOCATION, refresh="callback-nav"),
        html.Div([_card(p) for p in PRESETS.values()], className="lab-grid"),
        html.Div([
            html.H3("Gradient flow through time"),
            html.P("For recurrent language models: the norm of the gradient of the loss at the last step with "
                   "respect to each earlier hidden state, for a fixed batch of probe sequences, against how far "
                   "back the state is. A line that falls steeply is a vanishing gradient: the loss cannot teach "
                   "the model anything about what happened that far back.", className="muted"),
            html.Label("Runs", htmlFor=ids.LAB_GF_RUNS),
            dcc.Dropdown(id=ids.LAB_GF_RUNS, options=options, value=asked, multi=True,
                         placeholder="Choose recurrent language-model runs..."),
            html.Div(id=ids.LAB_GF_NOTE, className="lab-gf-note"),
            dcc.Graph(id=ids.LAB_GF_GRAPH, config=GRAPH_CONFIG, figure=blank_figure("Choose runs to draw.")),
            dcc.Store(id=ids.LAB_GF_SHOWN),
            dcc.Interval(id=ids.LAB_GF_INTERVAL, interval=max(1000, context.poll_ms)),
        ], id="lab-gradflow", className="card lab-gradflow"),
    ], className="lab-page")


@callback(Output(ids.LAB_ALERT, "children"), Output(ids.LAB_LOCATION, "href"),
          Input({"type": ids.LAB_LAUNCH, "preset": ALL}, "n_clicks"), prevent_initial_call=True)
def _launch(clicks):
    """Start the clicked preset's runs and open its view; a refusal says why."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(clicks or []):
        return no_update, no_update
    ok, text, run_ids = start_preset(current().jobs, trigger["preset"])
    if not ok:
        return alert(text, "danger"), no_update
    preset = PRESETS[trigger["preset"]]
    return alert([f"Started {len(run_ids)} runs of {preset.title}; opening ",
                  dcc.Link("its view", href=text), "..."], "success"), text


def _curves(store, run_ids: list[str]) -> tuple[list[dict], list]:
    curves, notes = [], []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is None:
            continue
        family = ((run.get("spec") or {}).get("model") or {}).get("family")
        rec = latest_gradflow(store, rid)
        if rec is None:
            note = f"no snapshot yet ({run['status']})"
            curves.append({"name": run["name"], "note": note, "family": family})
            notes.append(f"{run['name']}: {note}.")
            continue
        curves.append({"name": run["name"], "step": rec.step, "family": rec.meta.get("family", family),
                       "norms_by_distance": rec.norms_by_distance.tolist()})
    return curves, notes


@callback(Output(ids.LAB_GF_RUNS, "options"), Input(ids.LAB_GF_INTERVAL, "n_intervals"),
          State(ids.LAB_GF_RUNS, "options"), State(ids.LAB_GF_RUNS, "value"), prevent_initial_call=True)
def _options(_n, options, value):
    """Keep the run choices current (new runs, statuses); chosen runs always stay listed."""
    fresh = gradflow_run_options(current().data.list_runs())
    have = {o["value"] for o in fresh}
    fresh += [o for o in (options or []) if o["value"] in (value or []) and o["value"] not in have]
    return fresh if fresh != options else no_update


@callback(Output(ids.LAB_GF_GRAPH, "figure"), Output(ids.LAB_GF_NOTE, "children"), Output(ids.LAB_GF_SHOWN, "data"),
          Input(ids.LAB_GF_RUNS, "value"), Input(ids.LAB_GF_INTERVAL, "n_intervals"), State(ids.LAB_GF_SHOWN, "data"))
def _gradflow(run_value, _n, shown):
    """Draw the chosen runs' newest gradient-flow snapshots; a poll that finds nothing new draws nothing."""
    run_ids = [r for r in (run_value or []) if r]
    if not run_ids:
        return blank_figure("Choose runs to draw (launch the gradient-flow preset above)."), None, None
    store = current().data.store
    curves, notes = _curves(store, run_ids)
    key = [[c["name"], c.get("step")] for c in curves]
    if shown is not None and key == shown and ctx.triggered_id == ids.LAB_GF_INTERVAL:
        return no_update, no_update, no_update
    if not any(c.get("norms_by_distance") is not None for c in curves):
        msg = "No gradient-flow snapshot yet: the probe records one when training starts; this view updates by itself."
        return blank_figure(msg), alert(msg, "info"), key
    note = [html.Div(n, className="muted") for n in notes] or None
    return gradflow_figure(curves), note, key
