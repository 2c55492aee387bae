"""Training page (``/``): live curves of one or several runs, their status and controls, and for
language models the text they write as they train (:mod:`dashboard.views.training.samples`).

``/?run=ID[,ID2]`` selects runs; with none chosen the newest run is shown. A clientside callback
(``assets/training_live.js``) takes the new rows from the live stream (server-sent events,
:mod:`dashboard.views.training.live_stream`), or while none can be had, polls the plain JSON route of
:mod:`dashboard.views.training.live_route` on the page's one timer; it extends the curves in the browser, and
pokes the page's Python callback only when the status, samples or run list changed, or whole figures are needed. The callbacks
are thin: the work is in :mod:`dashboard.views.training.tick`, :mod:`dashboard.views.training.live` and
:mod:`dashboard.views.training.controls`.
"""
from __future__ import annotations

import dash
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import ids

from dashboard.views.training import samples as samples_card
from dashboard.components import no_runs_state
from dashboard.context import current
from dashboard.views.training.controls import apply_control
from dashboard.views.training.figures import PANELS
from dashboard.inputs import Query, trigger_id
from dashboard.views.training.live import selected_runs
from dashboard.views.training.tick import run_options, tick

dash.register_page(__name__, path="/", name="Training", order=0, title="Training · deepscope")

WHAT = ("Training shows live loss, accuracy, learning rate, gradient norms and throughput "
        "of the runs you choose, and lets you pause, resume, stop or change the learning rate.")
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": "hover"}


def layout(**query) -> html.Div:
    """The page for the runs named in ``?run=`` (default: the newest run)."""
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    asked = q.run_ids("run")
    listed = {r["id"] for r in runs}  # the list is cached for a second: runs started just now are read fresh
    runs = [r for r in (context.data.get_run(rid) for rid in asked if rid not in listed) if r] + runs
    if not runs:
        return html.Div([q.notice(), no_runs_state(WHAT)])
    known = {r["id"] for r in runs}
    chosen = [r for r in asked if r in known] or [runs[0]["id"]]
    missing = [r for r in asked if r not in known]
    note = html.Div(f"No run with id {', '.join(missing)}; showing {chosen[0]}.", className="alert alert-warning") \
        if missing else None
    graphs = [dcc.Graph(id=ids.graph_id(p), config=GRAPH_CONFIG, className=f"panel panel-{p}") for p in PANELS]
    return html.Div([
        html.Div([
            html.Div([html.Label("Runs (choose several to overlay)", htmlFor=ids.TRAIN_RUNS),
                      dcc.Dropdown(id=ids.TRAIN_RUNS, options=run_options(runs), value=chosen, multi=True,
                                   clearable=True, placeholder="Choose runs...")], className="toolbar-runs"),
            html.Div([html.Label("Smoothing", htmlFor=ids.TRAIN_SMOOTHING),
                      dcc.Slider(id=ids.TRAIN_SMOOTHING, min=0, max=0.99, step=0.01, value=0.6,
                                 marks={0: "0", 0.5: "0.5", 0.99: "0.99"},
                                 tooltip={"placement": "bottom"})], className="toolbar-smoothing"),
        ], className="toolbar"),
        q.notice(),
        note,
        html.Div(id=ids.TRAIN_STATUS, className="status-area"),
        _controls(),
        html.Div(id=ids.TRAIN_ALERT, role="status"),
        # language-model runs: the text the model writes, under the loss and accuracy curves
        html.Div(graphs[:2] + [samples_card.layout()] + graphs[2:], className="graph-grid"),
        dcc.Store(id=ids.TRAIN_STATE),
        dcc.Store(id=ids.TRAIN_SEEN),
        dcc.Store(id=ids.TRAIN_POKE),
        dcc.Store(id=ids.TRAIN_PUSH),
        dcc.Store(id=ids.TRAIN_URL_SYNC),
        # The page's one timer. Off until the first figures arrive: a slow first build must not be
        # re-requested every tick.
        dcc.Interval(id=ids.TRAIN_INTERVAL, interval=context.training_poll_ms, disabled=True),
    ])


# Keep ``?run=`` in the address bar equal to the selection, so the view can be shared or reloaded.
# replaceState fires no navigation event, so Dash pages does not re-render the page for it.
clientside_callback(
    """function (value) {
        const runs = Array.isArray(value) ? value : (value ? [value] : []);
        const url = new URL(window.location.href);
        if (runs.length) { url.searchParams.set('run', runs.join(',')); } else { url.searchParams.delete('run'); }
        if (url.href !== window.location.href) { window.history.replaceState(window.history.state, '', url.href); }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.TRAIN_URL_SYNC, "data"), Input(ids.TRAIN_RUNS, "value"))


def _controls() -> html.Div:
    return html.Div([
        html.Span(id=ids.TRAIN_CONTROL_TARGET, className="control-target"),
        html.Button("Pause", id=ids.TRAIN_PAUSE, className="btn"),
        html.Button("Resume", id=ids.TRAIN_RESUME, className="btn"),
        html.Button("Stop", id=ids.TRAIN_STOP, className="btn btn-danger"),
        html.Label("Learning rate", htmlFor=ids.TRAIN_LR, className="lr-label"),
        dcc.Input(id=ids.TRAIN_LR, type="number", min=0, step="any", placeholder="rate", className="lr-input"),
        html.Button("Apply", id=ids.TRAIN_LR_APPLY, className="btn"),
    ], className="controls")


# The page's live curves, in the browser: updates pushed by the live stream (server-sent events; ids.TRAIN_PUSH
# is set when one arrives), or while no stream can be had, a poll of the live route on the page's one timer
# (one plain GET per tick, no Dash dispatch). It writes ids.TRAIN_POKE when the Python callback below has
# something to draw.
clientside_callback(
    ClientsideFunction(namespace="deepscope_training", function_name="poll"),
    [Output(ids.graph_id(p), "figure", allow_duplicate=True) for p in PANELS]
    + [Output(ids.TRAIN_STATE, "data", allow_duplicate=True), Output(ids.TRAIN_POKE, "data")],
    [Input(ids.TRAIN_INTERVAL, "n_intervals"), Input(ids.TRAIN_PUSH, "data")],
    [State(ids.TRAIN_STATE, "data"), State(ids.TRAIN_SEEN, "data"), State(ids.TRAIN_RUNS, "value"),
     State(ids.TRAIN_SMOOTHING, "value")],
    prevent_initial_call=True)


# Whole figures, run status and the samples card: on a new selection, a choice in the samples card, or a poke
# (dashboard/views/training/tick.py).
@callback([Output(ids.graph_id(p), "figure") for p in PANELS]
          + [Output(ids.TRAIN_STATE, "data"), Output(ids.TRAIN_INTERVAL, "disabled")]
          + [Output(ids.TRAIN_STATUS, "children"), Output(ids.TRAIN_CONTROL_TARGET, "children"),
             Output(ids.TRAIN_PAUSE, "disabled"), Output(ids.TRAIN_RESUME, "disabled"),
             Output(ids.TRAIN_STOP, "disabled"), Output(ids.TRAIN_LR_APPLY, "disabled"),
             Output(ids.TRAIN_RUNS, "options")]
          + samples_card.outputs() + [Output(ids.TRAIN_SEEN, "data")],
          [Input(ids.TRAIN_POKE, "data"), Input(ids.TRAIN_RUNS, "value"),
           Input(ids.TRAIN_SMOOTHING, "value"), *samples_card.inputs()],
          [State(ids.TRAIN_STATE, "data"), State(samples_card.STATE, "data"), State(ids.TRAIN_SEEN, "data")])
def _live(poke, run_value, smoothing, card_run, card_temperature, card_compare, state, card_state, seen):
    return tick(current().data, trigger_id(), run_value, smoothing, (card_run, card_temperature, card_compare),
                state, card_state, seen, poke)


@callback(Output(ids.TRAIN_ALERT, "children"),
          Input(ids.TRAIN_PAUSE, "n_clicks"), Input(ids.TRAIN_RESUME, "n_clicks"),
          Input(ids.TRAIN_STOP, "n_clicks"), Input(ids.TRAIN_LR_APPLY, "n_clicks"),
          State(ids.TRAIN_RUNS, "value"), State(ids.TRAIN_LR, "value"), prevent_initial_call=True)
def _control(_p, _r, _s, _a, run_value, lr):
    trig = trigger_id()
    action = {ids.TRAIN_PAUSE: "pause", ids.TRAIN_RESUME: "resume", ids.TRAIN_STOP: "stop",
              ids.TRAIN_LR_APPLY: "set_lr"}.get(trig) if isinstance(trig, str) else None
    if action is None:  # no button fired (a request naming none)
        raise PreventUpdate
    context = current()
    runs = selected_runs(run_value)
    ok, message = apply_control(context.jobs, context.data.store, runs[0] if runs else None, action, lr)
    return html.Div(message, className=f"alert {'alert-success' if ok else 'alert-danger'}")
