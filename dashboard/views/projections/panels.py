"""The Projections page's side cards: nearest neighbours, analogies and the lasso/box selection.

Computed in the original space of the points (not on the map, by
:class:`dashboard.views.projections.data.ProjectionData`), so they work while a map is still computing.
The focus (a clicked point, a typed word or a clicked neighbour) and the analogy asked for are
kept in stores the map reads too, to mark them. ``dashboard.views.projections.page`` lays the cards
out and calls :func:`register`.

Example (what a click on the map gives the focus store)::

    _clicked_row({"points": [{"customdata": [42]}]})      # 42: the source row of the clicked point
"""
from __future__ import annotations

from dash import ALL, Input, Output, State, callback, html, no_update

from dashboard import ids
from dashboard.components import alert
from dashboard.context import current
from dashboard.snapshots import ViewError, view_error_message
from dashboard.views.projections.data import positions
from dashboard.inputs import (MAX_INDEX, as_int, as_points, as_str, first_point_int, trigger_id,
                              trigger_value)
from dashboard.views.projections.controls import read_settings
from dashboard.views.projections.map_view import QUERY_LEN, focus_query, page_step, read_analogy, read_focus, read_steps
from dashboard.views.projections.search import a_noun

N_MEMBERS = 100
MAX_POINTS = 200_000  # the most points a map draws (ProjectionSettings.n_points)


# -- nearest neighbours -------------------------------------------------------------------------------------

def _focus(_sub, _go, click, _near, _clear, text, settings):
    trig = trigger_id()
    settings = read_settings(settings)
    if trig == ids.PJ_CLEAR:
        return None, ""
    if trig in (ids.PJ_QUERY, ids.PJ_QUERY_GO):
        text = (as_str(text, QUERY_LEN) or "").strip()
        return ({"query": text} if text else None), no_update
    row = None
    if isinstance(trig, dict) and trig.get("type") == ids.PJ_NEIGHBOUR:
        if not as_int(trigger_value(), 0):
            return no_update, no_update  # the buttons were (re)drawn, not clicked
        row = as_int(trig.get("index"), None, 0, MAX_INDEX)
    elif trig == ids.PJ_MAP:
        row = _clicked_row(click)
    if row is None or not settings.get("run") or not settings.get("source"):
        return no_update, no_update
    try:
        shown = current().data.projections.members(settings["run"], None, settings["source"], [row])
    except Exception:  # noqa: BLE001 - the list explains a failed lookup
        shown = []
    return {"row": row, "run": settings["run"], "source": settings["source"]}, (shown[0] if shown else no_update)


def _clicked_row(click: dict | None) -> int | None:
    """The source row of a clicked point (its customdata), or None."""
    return first_point_int(click, "customdata", None)


def _neighbours(focus, steps, index, settings):
    focus, steps, index, settings = read_focus(focus), read_steps(steps), as_int(index, 0, 0, MAX_INDEX), \
        read_settings(settings)
    run_id, source = settings.get("run"), settings.get("source")
    if not run_id or not source:
        return html.P("Choose a run with embeddings snapshots.", className="hint")
    query = focus_query(focus, run_id, source)
    if query is None:
        return html.P(f"Click a point on the map, or type {a_noun(source)} and press Enter, for its 10 nearest "
                      "neighbours by cosine similarity in the model's own space (not on the map).", className="hint")
    pd = current().data.projections
    step = page_step(steps, index)
    try:
        near = pd.neighbours(run_id, step, source, query)
        frame = _frame_or_none(pd, settings, steps, index)
    except ViewError as exc:
        return alert(view_error_message(exc), "warning")
    except Exception as exc:  # noqa: BLE001
        return alert(view_error_message(exc), "warning")
    drawn = positions(frame["rows"], [it["row"] for it in near["items"]]) >= 0 if frame else None
    parts = [html.P(["Nearest to ", html.Strong(near["text"]), f" at step {near['step']:,}:"], className="pj-head")]
    if frame is None:
        parts.append(alert("The map is not ready yet, so they are not drawn; the neighbours are computed from the "
                           "points themselves.", "info"))
    items = []
    for i, it in enumerate(near["items"]):
        off = drawn is not None and not drawn[i]
        items.append(html.Li([
            html.Button(it["text"], id={"type": ids.PJ_NEIGHBOUR, "index": it["row"]}, className="btn-link pj-word-btn",
                        title=f"show the neighbours of {it['text']}"),
            html.Span(f"{it['sim']:.3f}", className="pj-sim"),
            html.Span(className="pj-bar", style={"width": f"{max(0.0, it['sim']) * 100:.0f}%"}),
            html.Span(" not on the map (not among the drawn points)", className="muted") if off else None,
        ]))
    parts.append(html.Ol(items, className="pj-ranked"))
    return parts


def _frame_or_none(pd, settings: dict, steps, index) -> dict | None:
    key = settings.get("key")
    if not key or (steps or {}).get("key") != key or not steps.get("steps"):
        return None
    try:
        return pd.map_at(settings["run"], key, page_step(steps, index))
    except ViewError:
        return None


# -- analogies ------------------------------------------------------------------------------------------------

def _ask_analogy(_go, _a, _b, _c, _clear, a, b, c):
    if trigger_id() == ids.PJ_AN_CLEAR:
        return None, "", "", ""
    words = {k: (as_str(w, QUERY_LEN) or "").strip() for k, w in zip("abc", (a, b, c))}
    return words, no_update, no_update, no_update


def _analogy(asked, steps, index, settings):
    asked, steps, index, settings = read_analogy(asked), read_steps(steps), as_int(index, 0, 0, MAX_INDEX), \
        read_settings(settings)
    run_id, source = settings.get("run"), settings.get("source")
    if not asked:
        return html.P("a − b + c: the points nearest to it by cosine in the model's space, a, b and c excluded "
                      "(king − man + woman ≈ queen). On a 2D map, arrows go from b to a and from c to the answer.",
                      className="hint")
    if not run_id or not source:
        return alert("Choose a run with embeddings snapshots.", "warning")
    pd = current().data.projections
    try:
        found = pd.analogy(run_id, page_step(steps, index), source, asked.get("a"), asked.get("b"), asked.get("c"))
        frame = _frame_or_none(pd, settings, steps, index)
    except ViewError as exc:
        return alert(view_error_message(exc), "warning")
    except Exception as exc:  # noqa: BLE001
        return alert(view_error_message(exc), "warning")
    t = found["texts"]
    parts = [html.P([html.Strong(t["a"]), " − ", html.Strong(t["b"]), " + ", html.Strong(t["c"]), " ≈ ",
                     html.Strong(found["items"][0]["text"] if found["items"] else "?"),
                     f" (step {found['step']:,})"], className="pj-head")]
    parts.append(html.Ol([html.Li([html.Span(it["text"], className="pj-word-text"),
                                   html.Span(f"{it['sim']:.3f}", className="pj-sim"),
                                   html.Span(className="pj-bar", style={"width": f"{max(0.0, it['sim']) * 100:.0f}%"})])
                          for it in found["items"]], className="pj-ranked"))
    if frame is None:
        parts.append(html.P("The map is not ready yet, so the arrows are not drawn.", className="hint"))
    elif found["items"]:
        rows = [found["rows"][k] for k in "abc"] + [found["items"][0]["row"]]
        names = [t["a"], t["b"], t["c"], found["items"][0]["text"]]
        off = [n for n, p in zip(names, positions(frame["rows"], rows)) if p < 0]
        if off:
            parts.append(html.P(f"Not drawn on the map (not among its points): {', '.join(off)}.", className="hint"))
        elif settings.get("settings", {}).get("dims") == 3:
            parts.append(html.P("In 3D the arrows are drawn as lines (b to a, c to the answer).", className="hint"))
    return parts


# -- lasso / box selection --------------------------------------------------------------------------------------

def _selection(selected, settings, steps, index):
    settings, steps, index = read_settings(settings), read_steps(steps), as_int(index, 0, 0, MAX_INDEX)
    rows = []
    for p in as_points(selected, MAX_POINTS):  # a lasso over the largest map: every point
        custom = p.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        row = as_int(custom, None, 0, MAX_INDEX) if not isinstance(custom, str) else None
        if row is not None:
            rows.append(row)
    rows = list(dict.fromkeys(rows))  # highlight rings repeat points: once each, in order
    if not rows:
        return html.P("Pick the lasso or box-select tool at the top right of the map and draw around points to list "
                      "them here.", className="hint")
    try:
        texts = current().data.projections.members(settings.get("run"), page_step(steps, index),
                                                   settings.get("source"), rows[:N_MEMBERS])
    except Exception as exc:  # noqa: BLE001
        return alert(view_error_message(exc), "warning")
    head = f"{len(rows):,} points selected" + (f"; the first {N_MEMBERS}:" if len(rows) > N_MEMBERS else ":")
    return [html.P(head, className="pj-head"), html.Div([html.Span(t, className="pj-member") for t in texts],
                                                        className="pj-member-list")]


def register() -> None:
    """Register the side cards' callbacks with the app being built. The page module calls it: Dash
    runs a page module once per app, while a plain module's ``@callback`` would reach only the
    first app a process builds (tests build several)."""
    callback(Output(ids.PJ_FOCUS, "data"), Output(ids.PJ_QUERY, "value"),
             Input(ids.PJ_QUERY, "n_submit"), Input(ids.PJ_QUERY_GO, "n_clicks"), Input(ids.PJ_MAP, "clickData"),
             Input({"type": ids.PJ_NEIGHBOUR, "index": ALL}, "n_clicks"), Input(ids.PJ_CLEAR, "n_clicks"),
             State(ids.PJ_QUERY, "value"), State(ids.PJ_SETTINGS, "data"), prevent_initial_call=True)(_focus)
    callback(Output(ids.PJ_NEIGHBOURS, "children"), Input(ids.PJ_FOCUS, "data"), Input(ids.PJ_STEPS, "data"),
             Input(ids.PJ_STEP, "value"), State(ids.PJ_SETTINGS, "data"))(_neighbours)
    callback(Output(ids.PJ_ANALOGY, "data"), Output(ids.PJ_AN_A, "value"), Output(ids.PJ_AN_B, "value"),
             Output(ids.PJ_AN_C, "value"),
             Input(ids.PJ_AN_GO, "n_clicks"), Input(ids.PJ_AN_A, "n_submit"), Input(ids.PJ_AN_B, "n_submit"),
             Input(ids.PJ_AN_C, "n_submit"), Input(ids.PJ_AN_CLEAR, "n_clicks"),
             State(ids.PJ_AN_A, "value"), State(ids.PJ_AN_B, "value"), State(ids.PJ_AN_C, "value"),
             prevent_initial_call=True)(_ask_analogy)
    callback(Output(ids.PJ_ANALOGY_OUT, "children"), Input(ids.PJ_ANALOGY, "data"), Input(ids.PJ_STEPS, "data"),
             Input(ids.PJ_STEP, "value"), State(ids.PJ_SETTINGS, "data"))(_analogy)
    callback(Output(ids.PJ_SELECTION, "children"), Input(ids.PJ_MAP, "selectedData"), State(ids.PJ_SETTINGS, "data"),
             State(ids.PJ_STEPS, "data"), State(ids.PJ_STEP, "value"))(_selection)
