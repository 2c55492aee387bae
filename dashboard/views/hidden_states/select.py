"""The Select view of the hidden-states page for one view of a snapshot, one direction or both.

Builds the traces chart, the token strip, the selection summary and the Match view's
query from a :class:`~dashboard.views.hidden_states.view.View`; the page's callback only parses
its inputs and opens the snapshot.

Side by side (a bidirectional layer, ``view.dir == "both"``): one brushed token range
selects cells in *both* directions, each with its own rule, and one threshold applies
to both. A direction's "off before" margin is checked before the range *in its reading
order*: to the left for forward, to the right for backward (which reads right to left),
so a backward cell that switches on where the phrase starts (its right end) is selected.
The Match view searches the cells of the direction(s) ``view.match`` names.

A new brush gets a suggested threshold (:func:`suggest_for`) unless the person has set one;
when a selection is empty, :func:`advice` says what would select cells, computed for the range.

Example::

    thr = suggest_for(hidden, snap, view)          # e.g. 0.21, or None
    fig, strip, parts, payload = render_select(hidden, snap, view, thr=0.3, x0=500)
"""
from __future__ import annotations

import numpy as np
from dash import html

from dashboard.components import alert
from dashboard.views.hidden_states.figures import token_strip, traces_figure, visible
from dashboard.views.hidden_states.figures_pair import PANEL_TITLES, pair_traces_figure
from dashboard.views.hidden_states.data import HiddenStates, Selection, ViewError
from dashboard.views.hidden_states.view import BOTH, DIR_NAMES, View, layer_name, no_state_note, state_label
from dashboard.inputs import MAX_INDEX, as_dict, as_float, as_int, as_list, as_list_of, as_run_id, as_str

SIDE_NOTE = ("Side by side: the range you brush (in either panel) selects cells in both directions at the one "
             "threshold. Backward reads right to left, so its “off before” margin is checked to the right of the "
             "range and “off after” to the left. Match (below) searches the cells chosen there.")
MATCH_LABELS = {"both": "forward and backward cells together", "fwd": "forward cells only",
                "bwd": "backward cells only"}


def margins(direction: str, off_before: int, off_after: int) -> tuple[int, int]:
    """Tokens required off (left of, right of) the range: mirrored for backward, which reads right to left.

    >>> margins("fwd", 2, 0), margins("bwd", 2, 0)
    ((2, 0), (0, 2))
    """
    return (off_after, off_before) if direction == "bwd" else (off_before, off_after)


def _margins_of(view: View, state: str | None = None, ob: int | None = None) -> dict[str, tuple[int, int]]:
    ob = view.ob if ob is None else ob
    return {f"l{view.layer}.{d}.{state or view.state}": margins(d, ob, view.oa) for d in view.directions}


def suggest_for(hidden: HiddenStates, snap, view: View) -> float | None:
    """The threshold suggested for the view's brushed range (one for all directions shown), or None."""
    if view.sel is None or not all(snap.has(k) for k in view.keys):
        return None
    hint = hidden.suggest(snap, _margins_of(view), *view.sel)
    return None if hint is None else hint.threshold


def advice(hidden: HiddenStates, snap, view: View, thr: float) -> str:
    """What would select cells for the brushed range, computed: the suggested threshold, then off before 0,
    then the other of h and c (each at its own suggested threshold)."""
    other = {"h": "c", "c": "h"}.get(view.state)
    tries = [(view.state, view.ob, "")]
    if view.ob:
        tries.append((view.state, 0, "with “off before” 0, "))
    if other and all(snap.has(k.replace(f".{view.state}", f".{other}")) for k in view.keys):
        tries.append((other, view.ob, f"in the {state_label(other)} state (State: {other}), "))
    for state, ob, how in tries:
        hint = hidden.suggest(snap, _margins_of(view, state, ob), *view.sel)
        if hint is not None and not (state == view.state and ob == view.ob and hint.threshold == thr):
            n = f"{hint.cells} cell{'s' if hint.cells != 1 else ''}"
            return (f"Try {how}threshold {hint.threshold:g}: {n} {'are' if hint.cells != 1 else 'is'} on over the "
                    f"whole range there and off around it ({hint.contrast:.0%} of the 40 tokens each side).")
    return ("No cell stays above 0 over the whole range in h or c: brush a shorter range, e.g. the first few "
            "tokens of it.")


def render_select(hidden: HiddenStates, snap, view: View, thr: float, x0: int, suggested: bool = False):
    """(figure, token strip, summary parts, match payload or None) of the Select view."""
    dirs = view.directions
    key = {d: f"l{view.layer}.{d}.{view.state}" for d in dirs}
    stop = x0 + view.win
    windows = {d: snap.window(key[d], x0, stop) for d in dirs}
    tokens = snap.tokens(x0, stop)
    n = len(tokens)
    parts: list = []
    selections: dict[str, Selection] = {}
    if view.sel is None:
        parts.append(html.P("No range brushed yet: drag across the chart over the tokens you are curious about "
                            "(or type a range) to select the cells that are on there.", className="hint"))
    elif 0 <= view.sel[0] < view.sel[1] <= snap.n_tokens and np.isnan(snap.window(key[dirs[0]], *view.sel)).all():
        parts.append(alert(no_state_note(snap.meta, view.layer, view.sel), "info"))  # the other part's tokens
    else:
        text = "".join(snap.tokens(*view.sel))
        for d in dirs:
            try:
                selections[d] = hidden.select(snap, key[d], *view.sel, thr, *margins(d, view.ob, view.oa),
                                              window=(x0, x0 + n))
            except ViewError as exc:  # the range itself is wrong: the same for every direction, said once
                parts.append(alert(str(exc), "warning"))
                break
            parts.append(_summary_line(d, selections[d], text, view, thr, side=len(dirs) > 1, suggested=suggested))
        if parts and not any(s.cells for s in selections.values()) and len(selections) == len(dirs):
            parts.append(html.P(advice(hidden, snap, view, thr), className="hint hs-advice"))
    if len(dirs) > 1:
        parts.append(html.P(SIDE_NOTE, className="muted side-note"))
    cells = {d: s.cells for d, s in selections.items()}
    if len(dirs) == 1:
        d = dirs[0]
        name = layer_name(snap.meta, view.layer)
        title = f"{state_label(view.state)} · {name} {d} · {len(cells.get(d, []))} selected"
        fig = traces_figure(windows[d], x0, tokens, cells.get(d, []), float(thr), view.sel, title=title)
        strip = _strip(tokens, x0, selections.get(d), n, view.sel)
    else:
        name = layer_name(snap.meta, view.layer)
        title = f"{state_label(view.state)} · {name} · both directions over the same tokens"
        fig = pair_traces_figure(windows, x0, tokens, cells, float(thr), view.sel, title=title)
        strip = html.Div([html.Div([html.Div(f"{PANEL_TITLES[d]}: shaded by the selected cells on",
                                             className="strip-label"),
                                    _strip(tokens, x0, selections.get(d), n, view.sel)], className="strip-panel")
                          for d in dirs], className="pair-strips")
    return fig, strip, parts, _payload(snap, view, key, cells, thr)


def _strip(tokens, x0, sel: Selection | None, n: int, brushed):
    on = sel.on_count if sel is not None else np.zeros(n, int)
    return token_strip(tokens, x0, on, len(sel.cells) if sel is not None else 0, brushed)


def _summary_line(d: str, sel: Selection, text: str, view: View, thr: float, side: bool, suggested: bool = False):
    """One direction's selection in words (the single-direction wording is unchanged from before)."""
    lead = [html.Strong(f"{DIR_NAMES[d].capitalize()}: ")] if side else []
    if d == "bwd":
        outside = (f" and below it {view.ob} after / {view.oa} before (it reads right to left, so “before” is to "
                   "the right): ")
    else:
        outside = f" and below it {view.ob} before / {view.oa} after: "
    thr_text = f"{thr:g} (suggested for this range: type a threshold to use your own)" if suggested else f"{thr:g}"
    if not sel.cells:
        who = "no" if side else "No"
        return alert(lead + [f"{who} cell is above {thr_text} at every token of “{visible(text)}” and below it "
                             "just outside."], "warning")
    shown = ", ".join(map(str, sel.cells[:40])) + (" …" if len(sel.cells) > 40 else "")
    return html.P(lead + [html.Strong(f"{len(sel.cells)} cells"), f" are above {thr_text} at every token of ",
                          html.Code(visible(text)), f" (tokens {view.sel[0]:,}–{view.sel[1] - 1:,})" + outside,
                          html.Span(shown, className="mono")], className=f"sel-line sel-{d}")


MAX_CELLS = 4096  # cells one selection can hold (a layer's width is far smaller)


def read_payload(value) -> dict | None:
    """The Match view's query as the page's store sends it back (:func:`_payload` wrote it), checked:
    every group a state key and distinct cell numbers, the rest finite numbers; None when it is not one."""
    p = as_dict(value)
    if p is None:
        return None
    if "empty" in p:
        empty = as_str(p["empty"], 500)
        return {"empty": empty} if empty else None
    raw = p.get("groups") if "groups" in p else [[p.get("key"), p.get("cells")]]
    groups = []
    for group in as_list(raw, 2, []):
        cells = as_list_of(group[1], lambda c: as_int(c, None, 0, MAX_CELLS), MAX_CELLS) \
            if isinstance(group, list) and len(group) == 2 else []
        key = as_str(group[0], 64) if isinstance(group, list) and group else None
        if key is None or len(cells) != len(as_list(group[1], MAX_CELLS, [None])):
            return None
        groups.append([key, list(dict.fromkeys(cells))])
    out = {"run": as_run_id(p.get("run")), "step": as_int(p.get("step"), None, 0, MAX_INDEX),
           "thr": as_float(p.get("thr")), "qlen": as_int(p.get("qlen"), None, 1, MAX_INDEX), "groups": groups,
           "what": as_str(p.get("what"), 200), "note": as_str(p.get("note"), 500)}
    return out if groups and None not in (out["run"], out["step"], out["thr"], out["qlen"]) else None


def _payload(snap, view: View, key: dict, cells: dict, thr: float) -> dict | None:
    """The Match view's query: the selected cells of the direction(s) matched on, or why there are none."""
    if not any(cells.values()):
        return None
    base = {"run": view.run, "step": snap.step, "thr": float(thr), "qlen": view.sel[1] - view.sel[0]}
    if view.dir != BOTH:
        d = view.directions[0]
        return {**base, "key": key[d], "cells": cells[d]}
    wanted = ["fwd", "bwd"] if view.match == "both" else [view.match]
    groups = [[key[d], cells[d]] for d in wanted if cells.get(d)]
    if not groups:
        other = "backward" if view.match == "fwd" else "forward"
        return {"empty": f"No {DIR_NAMES[view.match]} cell is selected at this range, so there is nothing to match "
                         f"on: choose {other} cells or both directions above, or change the selection."}
    if len(groups) < len(wanted):
        missing = next(d for d in wanted if not cells.get(d))
        note = f"no {DIR_NAMES[missing]} cell is selected, so these are the {DIR_NAMES[groups[0][0].split('.')[1]]} " \
               "cells' matches"
    else:
        note = None
    names = [f"{len(c)} {DIR_NAMES[k.split('.')[1]]}" for k, c in groups]
    return {**base, "groups": groups, "what": " and ".join(names) + " cells", "note": note}
