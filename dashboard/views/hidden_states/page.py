"""Hidden states page (``/hidden``): LSTMVis-style Select, Match, Gate and cell-summary views, live.

Select: drag across the chart to brush a range of tokens; the cells on (above the
threshold) at every token of it and off just before it are selected. Match: the
50 places in the probe text where those cells are on together. Gate view: a
gate's activations over the window and how saturated each gate is. Cell summary:
which cells track which annotation. A step slider moves through the snapshots
(following the newest by default); the address bar holds the whole view.

A bidirectional run is shown with both directions side by side by default (the
direction choice "both, side by side"; rules in ``dashboard.views.hidden_states.select``); the side
cards' callbacks live in ``dashboard.views.hidden_states.panels``.
"""
from __future__ import annotations

import dash
import numpy as np
from dash import (ALL, ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html,
                  no_update)

from backend.spec import RECURRENT
from backend.store import StoreError
from dashboard import ids
from dashboard.components import alert, blank_figure, no_runs_state
from dashboard.context import current
from dashboard.views.hidden_states.figures import match_table
from dashboard.views.hidden_states.data import CONTEXT, ViewError, no_states_message, view_error_message
from dashboard.inputs import (MAX_INDEX, Query, as_choice, as_dict, as_flags, as_float, as_int, as_list, as_list_of,
                              as_run_id, as_steps, as_str, option_values, trigger_id, trigger_prop)
from dashboard.views.hidden_states import panels as hidden_panels
from dashboard.views.hidden_states.layout import choices_of, match_on, navigation, toolbar, upload
from dashboard.views.hidden_states.panels import HS_MATCH_ON
from dashboard.views.hidden_states.select import read_payload, render_select, suggest_for
from dashboard.snapshot_slider import URL_SYNC_JS, keeps_following, slider_marks, slider_value, step_at
from dashboard.views.hidden_states.view import BOTH, DIRECTIONS, MATCH_ON, MAX_LAYER, NAME_LEN, STATE_LEN, WINDOWS, View, \
    default_dir, for_layer, parse_view, resolve_dir, run_directions, state_label, window_start

dash.register_page(__name__, path="/hidden", name="Hidden states", order=1, title="Hidden states · deepscope")
hidden_panels.register()  # here: Dash runs this module once per app, so every app gets the cards' callbacks

WHAT = ("Hidden states shows what each unit of a recurrent network (LSTM, GRU, RNN) does at every token of a "
        "held-out text, while it trains: brush a range to select the cells that are on there, find where else "
        "they fire together, and see which cells track brackets, strings or indentation.")
HOW = "Drag across the chart to brush a range of tokens. Drag the dashed line, or type a value, to set the threshold."
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": False, "edits": {"shapePosition": True}}
PLAIN_CONFIG = {"displaylogo": False, "displayModeBar": False}
MAX_SEARCH = 200  # characters of a text search


def recurrent_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if (r.get("spec") or {}).get("model", {}).get("family") in RECURRENT]


def layout(**query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    view = parse_view(q)
    if not runs:
        return html.Div([q.notice(), no_runs_state(WHAT)])
    rec = recurrent_runs(runs)
    known = {r["id"]: r for r in runs}
    if view.run is None:
        view.run = rec[0]["id"] if rec else runs[0]["id"]
    snaps = context.data.hidden.snapshots(view.run)
    directions = run_directions(known.get(view.run), snaps)
    view.dir = resolve_dir(view.dir, directions)
    # the choices the run offers, from the start: a Dash 4 dropdown whose value is not among its options
    # (none yet) may clear it, and the URL's layer, direction, state, track or gate would be lost
    choices = choices_of(context, view.run, snaps[-1]["meta"] if snaps else {"directions": directions})
    options = [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in rec]
    if view.run in known and view.run not in {r["id"] for r in rec}:
        r = known[view.run]
        options.append({"label": f"{r['name']}  ({r['id']}, no recurrent layer)", "value": r["id"]})
    return html.Div([
        html.P(WHAT, className="page-intro"),
        toolbar(view, options, choices),
        q.notice(),
        html.Div(id=ids.HS_NOTE, role="status"),
        html.Div(id=ids.HS_MESSAGE, role="status"),
        html.Section([
            html.H3("Select"), html.P(HOW, className="muted"), navigation(view),
            dcc.Graph(id=ids.HS_TRACES, config=GRAPH_CONFIG, className="panel"),
            html.Div(id=ids.HS_STRIP),
            html.Div(id=ids.HS_SELECTION, className="selection-summary"),
        ], className="card"),
        html.Section([html.H3("Match"), html.P("Places in the probe text where the selected cells are on together, "
                                               "ranked by cells in common, then fewest extra cells, then length. "
                                               "Click one to show it above.", className="muted"),
                      match_on(view), dcc.Loading(html.Div(id=ids.HS_MATCHES), type="dot")], className="card"),
        html.Div([
            html.Section([html.H3("Cell summary"),
                          html.Div([html.Label("Annotation", htmlFor=ids.HS_TRACK),
                                    dcc.Dropdown(id=ids.HS_TRACK, value=view.track, options=choices["track"],
                                                 clearable=False)],
                                   className="field-inline"),
                          html.P(id=ids.HS_SUMMARY_TEXT, className="summary-sentence"),
                          dcc.Graph(id=ids.HS_TOP_TRACE, config=PLAIN_CONFIG),
                          dcc.Graph(id=ids.HS_SUMMARY, config=PLAIN_CONFIG),
                          upload()], className="card"),
            html.Section([html.H3("Gates"),
                          html.Div([html.Label("Gate", htmlFor=ids.HS_GATE),
                                    dcc.Dropdown(id=ids.HS_GATE, value=view.gate, options=choices["gate"],
                                                 clearable=False)],
                                   className="field-inline"),
                          dcc.Graph(id=ids.HS_GATE_MAP, config=PLAIN_CONFIG),
                          dcc.Graph(id=ids.HS_SATURATION, config=PLAIN_CONFIG)], className="card"),
        ], className="two-col"),
        dcc.Store(id=ids.HS_STEPS), dcc.Store(id=ids.HS_SELECTED), dcc.Store(id=ids.HS_MATCH_DATA),
        dcc.Store(id=ids.HS_VIEW), dcc.Store(id=ids.HS_URL_SYNC), dcc.Store(id=ids.HS_HOVER_SYNC),
        dcc.Store(id="hs-initial-step", data=view.step),
        # a threshold in the URL is the person's: a brush then keeps it instead of suggesting one
        dcc.Store(id=ids.HS_THR_USER, data="thr" in query), dcc.Store(id=ids.HS_THR_SUGGESTED),
        dcc.Interval(id=ids.HS_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
    ], className="hidden-page")


# -- snapshots: step slider and the options the snapshot offers --------------------------
@callback(Output(ids.HS_STEP, "max"), Output(ids.HS_STEP, "marks"), Output(ids.HS_STEP, "value"),
          Output(ids.HS_STEPS, "data"), Output(ids.HS_LAYER, "options"), Output(ids.HS_DIR, "options"),
          Output(ids.HS_STATE, "options"), Output(ids.HS_TRACK, "options"), Output(ids.HS_GATE, "options"),
          Output(ids.HS_NOTE, "children"), Output(ids.HS_DIR, "value"),
          Input(ids.HS_INTERVAL, "n_intervals"), Input(ids.HS_RUN, "value"), Input(ids.HS_FOLLOW, "value"),
          State(ids.HS_STEPS, "data"), State(ids.HS_STEP, "value"), State("hs-initial-step", "data"),
          State(ids.HS_DIR, "value"))
def _snapshots(_n, run_id, follow, known, index, initial_step, direction):
    run_id, follow, known = as_run_id(run_id), as_flags(follow), as_steps(known)
    index, initial_step = as_int(index, None, 0, MAX_INDEX), as_int(initial_step, None, 0, MAX_INDEX)
    direction = as_choice(direction, DIRECTIONS)
    out = _snapshot_choices(_n, run_id, follow, known, index, initial_step)
    if out[5] is no_update:  # nothing new: the direction stays
        return out + (no_update,)
    # another run: its default direction; the same run: the current one while the run has it
    offered = [o["value"] for o in out[5] if o["value"] != BOTH]
    dirs = offered or run_directions(current().data.get_run(run_id) if run_id else None)
    new = default_dir(dirs) if trigger_id() == ids.HS_RUN else resolve_dir(direction, dirs)
    return out + (no_update if new == direction else new,)


def _snapshot_choices(_n, run_id, follow, known, index, initial_step):
    context = current()
    run = context.data.get_run(run_id) if run_id else None
    if run is None:
        return (0, {}, 0, [], [], [], [], [], [], alert("Choose a run with a recurrent model.", "warning"))
    snaps = context.data.hidden.snapshots(run_id)
    if not snaps:
        msg, colour = no_states_message(run)
        return (0, {}, 0, [], [], [], [], [], [], alert(msg, colour))
    steps = [int(s["step"]) for s in snaps]
    if steps == known and not trigger_id() == ids.HS_FOLLOW:
        return (no_update,) * 10
    meta = snaps[-1]["meta"]
    value = slider_value(steps, known, index, follow, initial_step)
    marks = slider_marks(steps)
    c = choices_of(context, run_id, meta)
    return (len(steps) - 1, marks, value, steps, c["layer"], c["dir"], c["state"], c["track"], c["gate"], None)


@callback(Output(ids.HS_FOLLOW, "value"), Input(ids.HS_STEP, "value"), State(ids.HS_STEPS, "data"),
          State(ids.HS_FOLLOW, "value"), prevent_initial_call=True)
def _stop_following(index, steps, follow):
    """Moving the slider away from the newest snapshot stops following it."""
    index, steps, follow = as_int(index, None, 0, MAX_INDEX), as_steps(steps), as_flags(follow)
    return no_update if keeps_following(index, steps, follow) else []


@callback(Output(ids.HS_TRACK, "value"), Output(ids.HS_GATE, "value"),
          Input(ids.HS_TRACK, "options"), Input(ids.HS_GATE, "options"),
          State(ids.HS_TRACK, "value"), State(ids.HS_GATE, "value"))
def _default_choices(track_opts, gate_opts, track, gate):
    tvals, gvals = option_values(track_opts), option_values(gate_opts)
    return (track if track in tvals else (tvals[0] if tvals else None),
            gate if gate in gvals else (gvals[0] if gvals else None))


# -- brushing, threshold dragging and navigation ---------------------------------------------
@callback(Output(ids.HS_SEL_START, "value"), Output(ids.HS_SEL_STOP, "value"), Output(ids.HS_THRESHOLD, "value"),
          Output(ids.HS_THR_SUGGESTED, "data"), Output(ids.HS_THR_USER, "data"),
          Input(ids.HS_TRACES, "selectedData"), Input(ids.HS_TRACES, "relayoutData"), Input(ids.HS_CLEAR, "n_clicks"),
          State(ids.HS_DIR, "value"), State(ids.HS_THR_USER, "data"), State(ids.HS_RUN, "value"),
          State(ids.HS_STEP, "value"), State(ids.HS_STEPS, "data"), State(ids.HS_LAYER, "value"),
          State(ids.HS_STATE, "value"), State(ids.HS_OFF_BEFORE, "value"), State(ids.HS_OFF_AFTER, "value"),
          prevent_initial_call=True)
def _brush(selected, relayout, _clear, direction, user_thr, run_id, index, steps, layer, state, ob, oa):
    """A brush (in either panel when side by side: the same tokens) sets the range, and the suggested threshold
    unless the person has set one; a dragged line sets the threshold (theirs from then on)."""
    if trigger_id() == ids.HS_CLEAR:
        return None, None, no_update, no_update, no_update
    if trigger_prop().endswith("relayoutData"):
        relayout = as_dict(relayout, {}, 1000)
        lines = (0, 1) if direction == BOTH else (0,)  # the threshold lines come first (then the brushed bands)
        y = next((relayout[f"shapes[{i}].y0"] for i in lines if f"shapes[{i}].y0" in relayout), None)
        y = as_float(y)
        return (no_update, no_update, f"{y:.3g}", None, True) if y is not None else (no_update,) * 5
    ranges = as_dict(as_dict(selected, {}).get("range"), {})
    rng = next((v for k, v in ranges.items() if isinstance(k, str) and k.startswith("x")), None)
    rng = as_list_of(rng, lambda x: as_float(x, None, -1.0, float(MAX_INDEX)), 2)
    if len(rng) != 2:
        return (no_update,) * 5
    start, stop = int(np.ceil(min(rng))), int(np.floor(max(rng))) + 1  # tokens whose centre is inside
    if stop <= start:
        return (no_update,) * 5
    if user_thr is True:
        return start, stop, no_update, None, no_update
    view = View(run=as_run_id(run_id), layer=as_int(layer, 0, 0, MAX_LAYER), dir=as_choice(direction, DIRECTIONS, "fwd"),
                state=as_str(state, STATE_LEN) or "h", sel=(start, stop), ob=as_int(ob, 0, 0, 50),
                oa=as_int(oa, 0, 0, 50))
    try:
        snap, _ = current().data.hidden.open(view.run, step_at(as_steps(steps), as_int(index, 0, 0, MAX_INDEX)))
        view.dir = for_layer(view.dir, snap.meta, view.layer)
        thr = suggest_for(current().data.hidden, snap, view)
    except (ViewError, StoreError):  # the Select view says what is wrong
        thr = None
    if thr is None:
        return start, stop, no_update, None, no_update
    return start, stop, f"{thr:g}", {"thr": f"{thr:g}", "sel": [start, stop]}, no_update


@callback(Output(ids.HS_THR_USER, "data", allow_duplicate=True), Input(ids.HS_THRESHOLD, "n_submit"),
          Input(ids.HS_THRESHOLD, "n_blur"), prevent_initial_call=True)
def _threshold_typed(_submit, _blur):
    """A typed threshold is the person's: later brushes keep it instead of suggesting one."""
    return True


@callback(Output(ids.HS_POS, "value"), Output(ids.HS_SEL_START, "value", allow_duplicate=True),
          Output(ids.HS_SEL_STOP, "value", allow_duplicate=True), Output(ids.HS_MESSAGE, "children"),
          Input(ids.HS_PREV, "n_clicks"), Input(ids.HS_NEXT, "n_clicks"), Input(ids.HS_SEARCH_GO, "n_clicks"),
          Input(ids.HS_SEARCH, "n_submit"), Input({"type": ids.HS_MATCH, "index": ALL}, "n_clicks"),
          State(ids.HS_POS, "value"), State(ids.HS_SEARCH, "value"), State(ids.HS_MATCH_DATA, "data"),
          State(ids.HS_RUN, "value"), State(ids.HS_STEP, "value"), State(ids.HS_STEPS, "data"),
          State(ids.HS_WINDOW, "value"), prevent_initial_call=True)
def _navigate(_p, _n, _s, _sub, match_clicks, pos, text, matches, run_id, index, steps, win):
    trig = trigger_id()
    pos, window_len = as_int(pos, 0, 0, MAX_INDEX), as_choice(as_int(win), WINDOWS, 80)
    run_id, index, steps = as_run_id(run_id), as_int(index, None, 0, MAX_INDEX), as_steps(steps)
    if isinstance(trig, dict) and trig.get("type") == ids.HS_MATCH:
        matches = as_list_of(matches, _token_range)
        k = as_int(trig.get("index"), None, 0, MAX_INDEX)
        if not any(as_list(match_clicks)) or k is None or k >= len(matches):
            return (no_update,) * 4
        start, stop = matches[k]
        return max(0, start - window_len // 4), start, stop, None
    if trig == ids.HS_PREV:
        return max(0, pos - window_len), no_update, no_update, None
    if trig == ids.HS_NEXT:
        return min(pos + window_len, MAX_INDEX), no_update, no_update, None
    if isinstance(text, str) and len(text) > MAX_SEARCH:
        return no_update, no_update, no_update, alert(f"Type up to {MAX_SEARCH} characters to find.", "warning")
    text = as_str(text, MAX_SEARCH, "")
    if not text:
        return no_update, no_update, no_update, alert("Type some text to find, e.g. def.", "info")
    try:
        snap, _ = current().data.hidden.open(run_id, step_at(steps, index))
        hit = current().data.hidden.find_text(snap, text, after=pos + window_len // 4)
    except (ViewError, StoreError) as exc:  # StoreError: a snapshot this version cannot read
        return no_update, no_update, no_update, alert(view_error_message(exc), "warning")
    if hit is None:
        return no_update, no_update, no_update, alert(f"“{text}” does not occur in the probe text.", "warning")
    return max(0, hit - window_len // 4), hit, hit + len(text), None


def _token_range(value) -> list[int] | None:
    """A match's ``[start, stop]`` tokens from the Match view's store, or None."""
    pair = as_list_of(value, lambda x: as_int(x, None, 0, MAX_INDEX), 2)
    return pair if len(pair) == 2 and pair[0] < pair[1] else None


def parse_threshold(text) -> float | None:
    """The typed threshold as a finite number, or None."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


# -- Select view -------------------------------------------------------------------------
@callback(Output(ids.HS_TRACES, "figure"), Output(ids.HS_STRIP, "children"), Output(ids.HS_SELECTION, "children"),
          Output(ids.HS_SELECTED, "data"), Output(ids.HS_VIEW, "data"), Output(ids.HS_SNAPSHOT_INFO, "children"),
          Input(ids.HS_RUN, "value"), Input(ids.HS_STEP, "value"), Input(ids.HS_STEPS, "data"),
          Input(ids.HS_LAYER, "value"), Input(ids.HS_DIR, "value"), Input(ids.HS_STATE, "value"),
          Input(ids.HS_POS, "value"), Input(ids.HS_THRESHOLD, "value"), Input(ids.HS_SEL_START, "value"),
          Input(ids.HS_SEL_STOP, "value"), Input(ids.HS_OFF_BEFORE, "value"), Input(ids.HS_OFF_AFTER, "value"),
          Input(ids.HS_TRACK, "value"), Input(ids.HS_GATE, "value"), Input(ids.HS_WINDOW, "value"),
          Input(HS_MATCH_ON, "value"), State(ids.HS_FOLLOW, "value"), State(ids.HS_THR_SUGGESTED, "data"))
def _select_view(run_id, index, steps, layer, direction, state, pos, thr_text, s0, s1, ob, oa, track, gate, win,
                 match_on, follow, suggested):
    run_id, steps, index = as_run_id(run_id), as_steps(steps, []), as_int(index, 0, 0, MAX_INDEX)
    s0, s1 = as_int(s0, None, 0, MAX_INDEX), as_int(s1, None, 0, MAX_INDEX)
    step = step_at(steps, index)
    thr = parse_threshold(thr_text)
    view = View(run=run_id, step=None if "on" in as_flags(follow) else step, layer=as_int(layer, 0, 0, MAX_LAYER),
                dir=as_choice(direction, DIRECTIONS, "fwd"), state=as_str(state, STATE_LEN) or "h",
                pos=as_int(pos, 0, 0, MAX_INDEX), thr=thr if thr is not None else 0.3,
                sel=(s0, s1) if s0 is not None and s1 is not None else None,
                ob=as_int(ob, 0, 0, 50), oa=as_int(oa, 0, 0, 50), track=as_str(track, NAME_LEN),
                gate=as_str(gate, NAME_LEN), win=as_choice(as_int(win), WINDOWS, 80),
                match=as_choice(match_on, MATCH_ON, "both"))
    if not steps:
        return blank_figure("No hidden states to show yet."), None, None, None, view.to_query(), ""
    hidden = current().data.hidden
    try:
        snap, note = hidden.open(run_id, step)
    except (ViewError, StoreError) as exc:  # StoreError: a snapshot this version cannot read
        return blank_figure(view_error_message(exc)), None, alert(view_error_message(exc), "warning"), None, \
            view.to_query(), ""
    directions = snap.meta.get("directions", ["fwd"])
    if for_layer(BOTH, snap.meta, view.layer) != BOTH:  # a decoder layer: forward only
        directions = ["fwd"]
    view.dir = resolve_dir(view.dir, directions)  # a choice left over from another run falls back
    if len(directions) < 2:
        view.dir = None  # one direction: nothing to choose, nothing in the URL (as before)
    info = f"snapshot at step {snap.step:,} · {snap.n_tokens:,} tokens × {snap.n_cells} cells"
    missing = [k for k in view.keys if not snap.has(k)]
    if missing:
        where = missing[0].split(".")[1]
        msg = f"This snapshot has no {state_label(view.state)} for layer {view.layer} {where}."
        return blank_figure(msg), None, alert(msg, "warning"), None, view.to_query(), info
    if thr is None:
        typed = thr_text if isinstance(thr_text, str) and len(thr_text) <= 40 else "that"
        return no_update, no_update, alert(f"The threshold must be a number, e.g. 0.3, not “{typed}”.",
                                            "danger"), None, no_update, info
    n = snap.n_tokens
    x0 = window_start(view.pos, n, view.win)
    parts = [alert(note, "info")] if note else []
    if view.pos != x0:
        parts.append(alert(f"Token {view.pos:,} is past the end of the probe text ({n:,} tokens); "
                           f"showing its last {view.win} tokens.", "warning"))
    suggested = as_dict(suggested, {}, 4)
    is_suggested = suggested.get("thr") == thr_text and suggested.get("sel") == [s0, s1]
    fig, strip, selection, payload = render_select(hidden, snap, view, thr, x0, suggested=is_suggested)
    return fig, strip, parts + selection, payload, view.to_query(), info


# -- Match view ----------------------------------------------------------------------------
@callback(Output(ids.HS_MATCHES, "children"), Output(ids.HS_MATCH_DATA, "data"), Input(ids.HS_SELECTED, "data"))
def _matches(payload):
    payload = read_payload(payload)
    if not payload:
        return html.P("Select cells first: brush a range where some cells are on.", className="hint"), []
    if payload.get("empty"):
        return alert(payload["empty"], "warning"), []
    groups = payload.get("groups") or [[payload["key"], payload["cells"]]]
    n_cells = sum(len(cells) for _, cells in groups)
    hidden = current().data.hidden
    try:
        snap, _ = hidden.open(payload["run"], payload["step"])
        found = hidden.match_groups(payload["run"], snap, groups, payload["thr"], payload["qlen"])
    except (ViewError, StoreError) as exc:
        return alert(view_error_message(exc), "warning"), []
    what = payload.get("what") or f"{n_cells} cells"
    note = [alert(payload["note"][0].upper() + payload["note"][1:] + ".", "info")] if payload.get("note") else []
    if not found:
        return note + [html.P(f"These {what} are never on together anywhere else at this threshold.",
                              className="hint")], []
    contexts = [(snap.tokens(*m["context"]), snap.tracks(*m["context"])) for m in found]
    ranges = [snap.track_range(k) for k in range(len(snap.track_names))]
    rows = " then ".join(f"{k.split('.')[1]} cells {', '.join(map(str, c))}" for k, c in groups) \
        if len(groups) > 1 else "selected cells (rows)"
    if len(groups) > 1:  # a blank row between the directions' cells in each heatmap
        cut = len(groups[0][1])
        found = [{**m, "cells": m["cells"][:cut] + [[float("nan")] * len(m["cells"][0])] + m["cells"][cut:]}
                 for m in found]
    table = match_table(found, contexts, ranges, snap.track_names, n_cells, ids.HS_MATCH, cells_title=rows)
    summary = html.P(f"{len(found)} best matches of {what} (context: {CONTEXT} tokens each "
                     "side; highlighted: the matched tokens).", className="muted")
    return note + [summary, table], [[m["start"], m["stop"]] for m in found]


# Keep the address bar equal to the view.
clientside_callback(URL_SYNC_JS, Output(ids.HS_URL_SYNC, "data"), Input(ids.HS_VIEW, "data"))

# Side by side: the token under the pointer is marked in both panels (assets/pair_hover.js).
clientside_callback(ClientsideFunction("deepscope", "pairHover"), Output(ids.HS_HOVER_SYNC, "data"),
                    Input(ids.HS_TRACES, "figure"), State(ids.HS_TRACES, "id"))
