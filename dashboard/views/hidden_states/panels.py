"""Callbacks of the hidden-states page's side cards: cell summary, gates, users' tracks, Match-on choice.

Each card follows the page's direction choice: one direction as before, or for a
bidirectional run shown side by side, both (the summary ranks the cells of both
directions together, the gate view stacks forward over backward and the saturation
plot marks backward cells with a different symbol). ``dashboard.views.hidden_states.page`` lays
the cards out and calls :func:`register`.

Example (what the summary callback computes for "both")::

    r, labels = both_correlations({"fwd": r_fwd, "bwd": r_bwd})   # labels "fwd 0", ..., "bwd 0", ...
"""
from __future__ import annotations

import numpy as np
from dash import Input, Output, State, callback, html, no_update

from backend.store import StoreError
from dashboard import ids
from dashboard.components import alert, blank_figure
from dashboard.context import current
from dashboard.views.hidden_states.figures import cell_vs_track, gate_heatmap, saturation_figure, summary_figure
from dashboard.views.hidden_states.figures_pair import SYMBOLS, pair_gate_heatmap
from dashboard.views.hidden_states.data import ViewError, view_error_message
from dashboard.views.hidden_states.view import (BOTH, DIR_NAMES, DIRECTIONS, MAX_LAYER, NAME_LEN, STATE_LEN, WINDOWS,
                                   for_layer, layer_name, shown_directions, state_label, window_start)
from dashboard.inputs import MAX_INDEX, as_choice, as_int, as_run_id, as_steps, as_str, option_values
from dashboard.snapshot_slider import step_at

HS_MATCH_ON = "hs-match-on"          # radio: match forward, backward or both directions' cells (side by side)
HS_MATCH_ON_ROW = "hs-match-on-row"  # its row, shown only side by side
UPLOAD_CHARS = 64 * 2**20 * 4 // 3 + 1024  # a 64 MiB file as a data: URL (the dcc.Upload's max_size)


def both_correlations(r_by_dir: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """The cells of several directions as one list: correlations concatenated, labels "fwd 3", "bwd 0".

    >>> both_correlations({"fwd": np.array([0.1, 0.9]), "bwd": np.array([-0.5])})[1]
    ['fwd 0', 'fwd 1', 'bwd 0']
    """
    r = np.concatenate([np.asarray(v, dtype=np.float64) for v in r_by_dir.values()])
    labels = [f"{d} {c}" for d, v in r_by_dir.items() for c in range(len(v))]
    return r, labels


def _match_on_row(direction):
    return {} if direction == BOTH else {"display": "none"}


def _view_args(run_id, index, steps, layer, direction, pos, win) -> tuple:
    """The inputs every card shares, as the page sends them, checked (junk: the defaults)."""
    return (as_run_id(run_id), as_int(index, 0, 0, MAX_INDEX), as_steps(steps, []), as_int(layer, 0, 0, MAX_LAYER),
            as_choice(direction, DIRECTIONS), as_int(pos, 0, 0, MAX_INDEX), as_choice(as_int(win), WINDOWS, 80))


def _summary(run_id, index, steps, layer, direction, state, track, pos, win):
    run_id, index, steps, layer, direction, pos, window_len = _view_args(run_id, index, steps, layer, direction,
                                                                         pos, win)
    state, track = as_str(state, STATE_LEN) or "h", as_str(track, NAME_LEN)
    if not steps or not track:
        return blank_figure("No annotation tracks yet."), None, blank_figure("")
    hidden = current().data.hidden
    try:
        snap, _ = hidden.open(run_id, step_at(steps, index))
        dirs = shown_directions(for_layer(direction, snap.meta, layer))
        keys = {d: f"l{layer}.{d}.{state}" for d in dirs}
        missing = [k for k in keys.values() if not snap.has(k)]
        if missing:  # a layer or state of another run (the choices follow the run a moment later)
            raise ViewError(f"This snapshot has no {state_label(state)} for layer {layer} {missing[0].split('.')[1]}.")
        summ = {d: hidden.summary(run_id, snap, k) for d, k in keys.items()}
    except (ViewError, StoreError) as exc:  # StoreError: a snapshot this version cannot read
        return blank_figure(view_error_message(exc)), None, blank_figure("")
    if any(track not in s["tracks"] for s in summ.values()):
        return blank_figure(f"No track “{track}” in this snapshot."), None, blank_figure("")
    r_by_dir = {d: np.asarray(s["r"][s["tracks"].index(track)]) for d, s in summ.items()}
    r, labels = both_correlations(r_by_dir)
    best = int(np.argmax(np.abs(r)))
    d_best, cell = dirs[best // snap.n_cells], best % snap.n_cells
    where = f"{state_label(state)} of {layer_name(snap.meta, layer)} at step {snap.step:,}"
    if len(dirs) == 1:
        name = f"cell {cell}"
        sentence = [html.Strong(f"Cell {cell}"),
                    f" tracks “{track}” most closely (r = {r[best]:+.2f}) in the {where}."]
    else:
        name = f"{DIR_NAMES[d_best]} cell {cell}"
        other = next(d for d in dirs if d != d_best)
        o = int(np.argmax(np.abs(r_by_dir[other])))
        sentence = [html.Strong(name[0].upper() + name[1:]), f" tracks “{track}” most closely (r = {r[best]:+.2f}) "
                    f"in the {where}; the closest {DIR_NAMES[other]} cell is {o} (r = {r_by_dir[other][o]:+.2f})."]
    if abs(r[best]) < 0.3:
        either = " of either direction" if len(dirs) > 1 else ""
        sentence = [f"No cell{either} tracks “{track}” yet: the strongest is {name} (r = {r[best]:+.2f})."]
    x0 = window_start(pos, snap.n_tokens, window_len)
    k = snap.track_names.index(track)
    trace = cell_vs_track(snap.window(keys[d_best], x0, x0 + window_len)[:, cell],
                          snap.tracks(x0, x0 + window_len)[k], x0, snap.tokens(x0, x0 + window_len), cell, track,
                          name=name)
    return summary_figure(r, track, labels=labels if len(dirs) > 1 else None), sentence, trace


def _upload_track(contents, filename, name, run_id, options):
    """Attach an uploaded per-token track; errors are shown here and nothing is stored."""
    import base64

    from backend.store.hidden import add_user_track
    from backend.tasks.user_tracks import TrackFileError, parse_track_file

    contents, run_id = as_str(contents, UPLOAD_CHARS), as_run_id(run_id)
    filename, name = as_str(filename, 255, "") or "", as_str(name, NAME_LEN, "")
    if not contents or not run_id:
        return no_update, no_update, no_update
    try:
        raw = base64.b64decode(contents.split(",", 1)[1])
        suggested, values = parse_track_file(raw, filename or "")
        track = (name or suggested).strip()
        if track in option_values(options):
            raise StoreError(f"this run already has a track called “{track}”; give another name")
        add_user_track(current().data.store, run_id, track, values)
    except (ValueError, IndexError, TrackFileError, StoreError) as exc:
        return alert(f"Could not add the track from {filename}: {exc}", "danger"), no_update, no_update
    current().data.hidden.forget_tracks()
    new_options = [o for o in (options if isinstance(options, list) else []) if isinstance(o, dict)] + \
        [{"label": f"{track} (yours)", "value": track}]
    return alert(f"Added “{track}” ({len(values):,} values).", "success"), new_options, track


def _gates(run_id, index, steps, layer, direction, pos, gate, win):
    run_id, index, steps, layer, direction, pos, window_len = _view_args(run_id, index, steps, layer, direction,
                                                                         pos, win)
    gate = as_str(gate, STATE_LEN)
    if not steps or not gate:
        msg = "This model has no gates (a plain RNN)." if steps else "No snapshot yet."
        return blank_figure(msg), blank_figure(msg)
    hidden = current().data.hidden
    try:
        snap, _ = hidden.open(run_id, step_at(steps, index))
    except (ViewError, StoreError) as exc:  # StoreError: a snapshot this version cannot read
        return blank_figure(view_error_message(exc)), blank_figure(view_error_message(exc))
    dirs = shown_directions(for_layer(direction, snap.meta, layer))
    keys = {d: f"l{layer}.{d}.{gate}" for d in dirs}
    if not all(snap.has(k) for k in keys.values()):
        return blank_figure(f"No {state_label(gate)} in this snapshot."), blank_figure("")
    x0 = window_start(pos, snap.n_tokens, window_len)
    lo = -1.0 if gate in ("g", "n") else 0.0
    windows = {d: snap.window(k, x0, x0 + window_len) for d, k in keys.items()}
    tokens = snap.tokens(x0, x0 + window_len)
    if len(dirs) == 1:
        heat = gate_heatmap(windows[dirs[0]], x0, tokens,
                            f"{state_label(gate)} over the window ({layer_name(snap.meta, layer)} {dirs[0]})", lo=lo)
    else:
        heat = pair_gate_heatmap(windows, x0, tokens, f"{state_label(gate)} over the window "
                                 f"({layer_name(snap.meta, layer)})", lo=lo)
    sat, names, symbols = {}, {}, {}
    for d in dirs:
        for g in ("i", "f", "o", "r", "z"):
            key = f"l{layer}.{d}.{g}"
            s = hidden.saturation(run_id, snap, key) if snap.has(key) else None
            if s is None:
                continue
            label = g if len(dirs) == 1 else f"{g}.{d}"
            sat[label] = s
            names[label] = state_label(g) + ("" if len(dirs) == 1 else f" · {DIR_NAMES[d]}")
            symbols[label] = SYMBOLS[d] if len(dirs) > 1 else "circle"
    return heat, saturation_figure(sat, names, symbols)


def register() -> None:
    """Register the cards' callbacks with the app being built. The page module calls it: Dash runs a
    page module once per app, while a plain module's ``@callback`` would reach only the first app a
    process builds (tests build several)."""
    callback(Output(HS_MATCH_ON_ROW, "style"), Input(ids.HS_DIR, "value"))(_match_on_row)
    callback(Output(ids.HS_SUMMARY, "figure"), Output(ids.HS_SUMMARY_TEXT, "children"),
             Output(ids.HS_TOP_TRACE, "figure"),
             Input(ids.HS_RUN, "value"), Input(ids.HS_STEP, "value"), Input(ids.HS_STEPS, "data"),
             Input(ids.HS_LAYER, "value"), Input(ids.HS_DIR, "value"), Input(ids.HS_STATE, "value"),
             Input(ids.HS_TRACK, "value"), Input(ids.HS_POS, "value"), Input(ids.HS_WINDOW, "value"))(_summary)
    callback(Output(ids.HS_UPLOAD_MSG, "children"), Output(ids.HS_TRACK, "options", allow_duplicate=True),
             Output(ids.HS_TRACK, "value", allow_duplicate=True),
             Input(ids.HS_UPLOAD, "contents"), State(ids.HS_UPLOAD, "filename"), State(ids.HS_UPLOAD_NAME, "value"),
             State(ids.HS_RUN, "value"), State(ids.HS_TRACK, "options"), prevent_initial_call=True)(_upload_track)
    callback(Output(ids.HS_GATE_MAP, "figure"), Output(ids.HS_SATURATION, "figure"),
             Input(ids.HS_RUN, "value"), Input(ids.HS_STEP, "value"), Input(ids.HS_STEPS, "data"),
             Input(ids.HS_LAYER, "value"), Input(ids.HS_DIR, "value"), Input(ids.HS_POS, "value"),
             Input(ids.HS_GATE, "value"), Input(ids.HS_WINDOW, "value"))(_gates)
