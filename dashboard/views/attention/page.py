"""Attention page (``/attention``): where a model looks, and how that changes while it trains.

An encoder-decoder on dates-seq2seq: for each of 8 fixed probe dates, the matrix of output characters
(rows) x input characters (columns), the input span that determines each output character outlined, and
the model's output beside the target. A transformer language model: every layer and head over the start of
the probe text as small multiples, one head large with its tokens (hover a query to mark its row in every
head). Both: a step slider that follows the newest snapshot, Play, and a chart of the mean attention
entropy (and, for dates, the alignment share) over the snapshots. The address bar holds the view:
``?run=ID&item=N&layer=L&head=H&step=S``.

Example::

    layout(run="a1b2", item="3")   # the page for run a1b2, probe date 3, following the newest snapshot
"""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, clientside_callback, dcc, html, no_update

from backend.store import StoreError
from dashboard import ids
from dashboard.views.attention.data import (SEQ2SEQ, TRANSFORMER, View, attention_data, attention_runs, has_attention,
                                      parse_view, run_kind)
from dashboard.views.attention.figures import (GAP, HOVER_JS, SUMMARY_TEXT, heads_grid, output_line, self_attention_map,
                                         seq2seq_matrix, summary_chart)
from dashboard.views.attention.layout import (HIDDEN, no_attention_message, no_attention_runs, run_options,
                                        snapshot_choices, toolbar)
from dashboard.components import alert, blank_figure, no_runs_state
from dashboard.context import current
from dashboard.snapshots import ViewError, view_error_message
from dashboard.inputs import (MAX_INDEX, MAX_STEPS, Query, as_dict, as_flags, as_int, as_run_id, as_steps,
                              option_values, trigger_id)
from dashboard.snapshot_slider import (URL_SYNC_JS, keeps_following, register_play, slider_marks, slider_value,
                                       step_at)

dash.register_page(__name__, path="/attention", name="Attention", order=1.5, title="Attention · deepscope")

WHAT = ("Attention shows where a model looks while it trains: which input characters a date translator's "
        "decoder reads to write each output character, and which earlier tokens each head of a transformer "
        "reads at every token of a text.")
CONFIG = {"displaylogo": False, "displayModeBar": False}
PLAY_MS = 500
MATRIX_TITLE = "Which input characters the decoder read to write each output character"


def layout(**query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    view = parse_view(q)
    if not runs:
        return html.Div([q.notice(), no_runs_state(WHAT)])
    offered, known = attention_runs(runs), {r["id"]: r for r in runs}
    if view.run is None or view.run not in known:
        if view.run is not None:
            q.note("run", view.run, "no such run")
        view.run = offered[0]["id"] if offered else None
    if view.run is None:
        return html.Div([q.notice(), no_attention_runs(WHAT)])
    kind = run_kind(known[view.run])
    rows = attention_data(context.data).snapshots(view.run)
    choices = snapshot_choices(rows[-1]["meta"] if rows else None)
    view.clamp(len(choices["item"]), len(choices["layer"]), len(choices["head"]))
    return html.Div([
        html.P(WHAT, className="page-intro"),
        toolbar(view, run_options(offered, view.run, known), choices, kind),
        q.notice(),
        html.Div(id=ids.ATT_NOTE, role="status"),
        html.Div([
            html.Section([html.H3(id=ids.ATT_TITLE), html.P(id=ids.ATT_SUBTITLE, className="muted"),
                          dcc.Graph(id=ids.ATT_MATRIX, config=CONFIG, figure=blank_figure("Loading…")),
                          html.Div(id=ids.ATT_OUTPUT)], className="card"),
            html.Div([
                html.Section([html.H3("Every layer and head"),
                              html.P("Rows: layers, columns: heads; each tile is a query x key map like the large "
                                     "one (grey: tokens not yet seen). Click a tile to enlarge it; hover a token's "
                                     "row in the large map to mark that token in every head.", className="muted"),
                              dcc.Graph(id=ids.ATT_GRID, config=CONFIG, figure=blank_figure(""))],
                             id=ids.ATT_GRID_CARD, className="card", style=None if kind == TRANSFORMER else HIDDEN),
                html.Section([html.H3("Over training"), html.P(id=ids.ATT_SUMMARY_TEXT, className="muted"),
                              dcc.Graph(id=ids.ATT_SUMMARY, config=CONFIG, figure=blank_figure(""))],
                             className="card"),
            ]),
        ], className="att-layout"),
        dcc.Store(id=ids.ATT_STEPS), dcc.Store(id=ids.ATT_VIEW), dcc.Store(id=ids.ATT_URL_SYNC),
        dcc.Store(id=ids.ATT_HOVER_SYNC), dcc.Store(id=ids.ATT_INITIAL_STEP, data=view.step),
        dcc.Interval(id=ids.ATT_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
        dcc.Interval(id=ids.ATT_PLAY_TICK, interval=PLAY_MS, disabled=True),
    ], className="attention-page")


def _steps_of(store_data) -> tuple[str | None, list[int] | None]:
    data = as_dict(store_data, {}, 8)
    return as_run_id(data.get("run")), as_steps(data.get("steps"))


def _pick(value, options: list[dict]) -> str | None:
    values = option_values(options)
    return value if value in values else (values[0] if values else None)


@callback(Output(ids.ATT_STEP, "max"), Output(ids.ATT_STEP, "marks"), Output(ids.ATT_STEP, "value"),
          Output(ids.ATT_STEPS, "data"), Output(ids.ATT_ITEM, "options"), Output(ids.ATT_ITEM, "value"),
          Output(ids.ATT_LAYER, "options"), Output(ids.ATT_LAYER, "value"), Output(ids.ATT_HEAD, "options"),
          Output(ids.ATT_HEAD, "value"), Output(ids.ATT_ITEM_FIELD, "style"), Output(ids.ATT_HEAD_FIELDS, "style"),
          Output(ids.ATT_GRID_CARD, "style"), Output(ids.ATT_NOTE, "children"),
          Input(ids.ATT_INTERVAL, "n_intervals"), Input(ids.ATT_RUN, "value"), Input(ids.ATT_FOLLOW, "value"),
          State(ids.ATT_STEPS, "data"), State(ids.ATT_STEP, "value"), State(ids.ATT_INITIAL_STEP, "data"),
          State(ids.ATT_ITEM, "value"), State(ids.ATT_LAYER, "value"), State(ids.ATT_HEAD, "value"))
def _snapshots(_n, run_id, follow, known, index, initial_step, item, layer, head):
    run_id, follow = as_run_id(run_id), as_flags(follow)
    known_run, known_steps = _steps_of(known)
    index, initial_step = as_int(index, None, 0, MAX_INDEX), as_int(initial_step, None, 0, MAX_INDEX)
    context = current()
    run = context.data.get_run(run_id) if run_id else None
    kind = run_kind(run)
    styles = (None if kind == SEQ2SEQ else HIDDEN, None if kind == TRANSFORMER else HIDDEN,
              None if kind == TRANSFORMER else HIDDEN)
    empty = (0, {}, 0, {"run": run_id, "steps": []}, [], None, [], None, [], None)
    if run is None:
        return empty + (HIDDEN, HIDDEN, HIDDEN, alert("Choose a run with attention maps.", "warning"))
    rows = attention_data(context.data).snapshots(run_id)
    if not rows:
        if kind is None or kind == SEQ2SEQ and ((run.get("spec") or {}).get("model") or {}).get("attention") == "none":
            return empty + (HIDDEN, HIDDEN, HIDDEN, alert(no_attention_message(run, kind), "warning"))
        msg = ("No attention snapshot yet. The probe records the first one when training starts "
               f"(run status: {run['status']}); this page updates by itself.")
        return empty + styles + (alert(msg, "info"),)
    steps = [int(r["step"]) for r in rows][-MAX_STEPS:]
    if steps == known_steps and known_run == run_id and trigger_id() != ids.ATT_FOLLOW:
        return (no_update,) * 14
    first = known_run != run_id or known_steps is None  # another run (or the first load): the URL's step
    value = slider_value(steps, None if first else known_steps, index, follow,
                         initial_step if known_steps is None else None)
    c = snapshot_choices(rows[-1]["meta"])
    return (len(steps) - 1, slider_marks(steps), value, {"run": run_id, "steps": steps},
            c["item"], _pick(item, c["item"]), c["layer"], _pick(layer, c["layer"]), c["head"],
            _pick(head, c["head"])) + styles + (None,)


@callback(Output(ids.ATT_FOLLOW, "value"), Input(ids.ATT_STEP, "value"), State(ids.ATT_STEPS, "data"),
          State(ids.ATT_FOLLOW, "value"), prevent_initial_call=True)
def _stop_following(index, steps, follow):
    """Moving the slider away from the newest snapshot stops following it."""
    index, follow = as_int(index, None, 0, MAX_INDEX), as_flags(follow)
    return no_update if keeps_following(index, _steps_of(steps)[1], follow) else []


@callback(Output(ids.ATT_MATRIX, "figure"), Output(ids.ATT_OUTPUT, "children"), Output(ids.ATT_GRID, "figure"),
          Output(ids.ATT_INFO, "children"), Output(ids.ATT_VIEW, "data"), Output(ids.ATT_TITLE, "children"),
          Output(ids.ATT_SUBTITLE, "children"),
          Input(ids.ATT_RUN, "value"), Input(ids.ATT_STEP, "value"), Input(ids.ATT_STEPS, "data"),
          Input(ids.ATT_ITEM, "value"), Input(ids.ATT_LAYER, "value"), Input(ids.ATT_HEAD, "value"),
          State(ids.ATT_FOLLOW, "value"))
def _view(run_id, index, steps_data, item, layer, head, follow):
    run_id = as_run_id(run_id)
    steps_run, steps = _steps_of(steps_data)
    view = View(run=run_id, item=as_int(item, 0, 0, 63), layer=as_int(layer, 0, 0, 63), head=as_int(head, 0, 0, 63))
    if not run_id or not steps or steps_run != run_id:
        run = current().data.get_run(run_id) if run_id else None
        why = "No attention maps to show yet." if has_attention(run) else "This run has no attention to show."
        return blank_figure(why), None, no_update, "", no_update, None, None
    step = step_at(steps, as_int(index, 0, 0, MAX_INDEX))
    view.step = None if "on" in as_flags(follow) else step
    data = current().data
    kind = run_kind(data.get_run(run_id))
    try:
        snap, note = attention_data(data).open(run_id, step)
        view.clamp(len(snap.items()), len(snap.layers), len(snap.heads))
        weights = snap.all_weights(view.item)
    except (ViewError, StoreError) as exc:
        return blank_figure(view_error_message(exc)), None, blank_figure(""), "", view.to_query(kind), None, None
    info = f"snapshot at step {snap.step:,} of {len(steps)}" + (f" · {note}" if note else "")
    entry = snap.items()[view.item]
    rev = f"{run_id}:{view.item}:{view.layer}:{view.head}"
    if kind == TRANSFORMER or len(snap.layers) * len(snap.heads) > 1:
        title = f"Layer {view.layer}, head {view.head}: which earlier tokens each token reads (step {snap.step:,})"
        sub = ("Each row is one token of the probe text (the query); each column a token it can see (the key), "
               "itself and those before it. Dark: most of its attention. Hover a row to mark that token in every "
               "head of the grid.")
        big = self_attention_map(weights[view.layer, view.head], entry["queries"], uirevision=rev)
        grid = heads_grid(weights, snap.layers, snap.heads, (view.layer, view.head), uirevision=run_id)
        src = snap.meta.get("source")
        return (big, html.P(f"Shown: {src}.", className="muted") if src else None, grid, info,
                view.to_query(kind), title, sub)
    extra = entry["extra"]
    sub = (f"Probe date “{entry['name']}” at step {snap.step:,}. Each row is a character the decoder wrote, top "
           "to bottom; each column a character of the input; dark: where it looked. Outlined: the input "
           "characters that determine each output character (the year is written first, wherever it stands).")
    fig = seq2seq_matrix(weights[0, 0], entry["queries"], entry["keys"], extra.get("spans"), uirevision=rev)
    out = output_line(str(extra.get("output", "")), str(extra.get("target", ""))) if "target" in extra else None
    return fig, out, no_update, info, view.to_query(kind), MATRIX_TITLE, sub


@callback(Output(ids.ATT_SUMMARY, "figure"), Output(ids.ATT_SUMMARY_TEXT, "children"),
          Input(ids.ATT_STEPS, "data"), Input(ids.ATT_STEP, "value"))
def _summary(steps_data, index):
    run_id, steps = _steps_of(steps_data)
    if not run_id or not steps:
        return blank_figure(""), "The mean entropy of the attention over training will show here."
    data = current().data
    series = attention_data(data).summary_series(run_id)
    if not series["steps"]:
        return blank_figure("No readable attention snapshot yet."), None
    kind = run_kind(data.get_run(run_id)) or TRANSFORMER
    return summary_chart(series, step_at(steps, as_int(index, 0, 0, MAX_INDEX)), kind), SUMMARY_TEXT[kind]


@callback(Output(ids.ATT_LAYER, "value", allow_duplicate=True), Output(ids.ATT_HEAD, "value", allow_duplicate=True),
          Input(ids.ATT_GRID, "clickData"), State(ids.ATT_STEPS, "data"), prevent_initial_call=True)
def _grid_click(click, steps_data):
    """A click on a tile of the heads grid chooses that layer and head (the tiles' size: the newest
    snapshot's tokens; not the figure in State, which would upload the whole image)."""
    point = as_dict((as_dict(click, {}, 4).get("points") or [None])[0], {}, 32)
    x, y = as_int(point.get("x"), None, 0, MAX_INDEX), as_int(point.get("y"), None, 0, MAX_INDEX)
    run_id, _ = _steps_of(steps_data)
    rows = attention_data(current().data).snapshots(run_id) if run_id and x is not None and y is not None else []
    if not rows:
        return no_update, no_update
    meta = rows[-1]["meta"]
    items, layers, heads = meta.get("items") or [{}], meta.get("layers") or [], meta.get("heads") or []
    step = len(items[0].get("queries") or []) + GAP
    layer, head = y // step, x // step
    if layer >= len(layers) or head >= len(heads):
        return no_update, no_update
    return str(layer), str(head)


# Keep the address bar equal to the view.
clientside_callback(URL_SYNC_JS, Output(ids.ATT_URL_SYNC, "data"), Input(ids.ATT_VIEW, "data"))

# Hovering a query row of the large map marks that row in every head of the grid, in the browser.
clientside_callback(HOVER_JS, Output(ids.ATT_HOVER_SYNC, "data"), Input(ids.ATT_MATRIX, "hoverData"),
                    State(ids.ATT_GRID, "id"))

# Play through the snapshots (dashboard/snapshot_slider.py)
register_play(ids.ATT_PLAY, ids.ATT_PLAY_TICK, ids.ATT_STEP, ids.ATT_FOLLOW, ids.ATT_STEPS,
              Input(ids.ATT_RUN, "value"))
