"""The Projections page's map: the step slider over the maps, the worker's progress, Play, the figure.

The slider's steps are those with a map of the page's settings; it follows the newest map live
(until moved by hand) and Play animates through training (:mod:`dashboard.snapshot_slider`).
The figure (:func:`dashboard.views.projections.figures.map_figure`) keeps its axes over every map of
the settings, colours the points as chosen, and marks the focused point's nearest neighbours and
the analogy asked for (computed in the original space, :mod:`dashboard.views.projections.panels`).
A 2-D map writes a non-overlapping subset of its words and glides from map to map while Play runs
(:mod:`dashboard.views.projections.glide`); a map the worker restructured says so in its title and in the line
under the slider (:func:`restructured_note`). ``dashboard.views.projections.page`` lays the map out and calls
:func:`register`.

Example::

    page_step({"key": key, "steps": [0, 200, 400]}, 1)            # 200: the step the page looks at
    focus_query({"row": 7, "run": "a1", "source": "tokens"}, "a1", "tokens")   # 7
"""
from __future__ import annotations

from dash import Input, Output, State, callback, clientside_callback, html, no_update

from backend.store.projections import ProjectionSettings
from dashboard import ids
from dashboard.components import alert
from dashboard.context import current
from dashboard.views.projections.figures import LABEL_MAX, map_figure, message_figure
from dashboard.snapshots import ViewError, view_error_message
from dashboard.inputs import MAX_INDEX, as_dict, as_flags, as_int, as_run_id, as_steps, as_str, trigger_id
from dashboard.views.projections.controls import NO_SOURCE, SOURCE_LEN, read_settings
from dashboard.views.projections.data import colour_choices, positions
from dashboard.views.projections.glide import ANIMATION, glide, label_points
from dashboard.snapshot_slider import keeps_following, register_play, slider_marks, slider_value, step_at

METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA"}
QUERY_LEN = 200  # characters of a looked-up word or text


# -- maps: the step slider, progress, Play ----------------------------------------------------------------

def read_steps(value) -> dict | None:
    """The steps store (``{"key", "steps"}``, written by :func:`_map_steps`) as the page sends it back, checked."""
    v = as_dict(value)
    if v is None:
        return None
    return {"key": as_str(v.get("key"), 500), "steps": as_steps(v.get("steps"), [])}


def read_focus(value) -> dict | None:
    """The focus store: a clicked point ``{"row", "run", "source"}`` or a typed ``{"query"}``, checked; else None."""
    v = as_dict(value)
    if v is None:
        return None
    if v.get("row") is not None:
        row, run, source = as_int(v["row"], None, 0, MAX_INDEX), as_run_id(v.get("run")), as_str(v.get("source"),
                                                                                                   SOURCE_LEN)
        return {"row": row, "run": run, "source": source} if None not in (row, run, source) else None
    query = as_str(v.get("query"), QUERY_LEN)
    return {"query": query} if query else None


def read_analogy(value) -> dict | None:
    """The analogy store ``{"a", "b", "c"}`` (words), checked; None when it is not one."""
    v = as_dict(value)
    if v is None:
        return None
    words = {k: as_str(v.get(k), QUERY_LEN, "") for k in "abc"}
    return words if all(isinstance(v.get(k), str) for k in "abc") else None


def _map_steps(_n, settings, follow, known, index):
    settings, follow, known = read_settings(settings), as_flags(follow), read_steps(known)
    index = as_int(index, None, 0, MAX_INDEX)
    key = settings.get("key")
    if not key:
        empty = {"key": None, "steps": []}
        return (no_update,) * 5 + (None,) if known == empty else (0, {}, 0, empty, True, None)
    pd = current().data.projections
    run_id = settings["run"]
    steps = pd.map_steps(run_id, key)
    try:
        progress = pd.progress(run_id, key, len(steps), len(pd.snapshots(run_id)))
    except Exception as exc:  # noqa: BLE001 - a status file being replaced must not break the page
        progress = ("warning", view_error_message(exc))
    status = alert(_progress_text(progress[1]), progress[0]) if progress else None
    same_key = (known or {}).get("key") == key
    if same_key and known.get("steps") == steps and trigger_id() != ids.PJ_FOLLOW:
        return no_update, no_update, no_update, no_update, no_update, status
    if not steps:
        return 0, {}, 0, {"key": key, "steps": []}, True, status
    value = slider_value(steps, known["steps"] if same_key and known.get("steps") else None, index, follow, None)
    return len(steps) - 1, slider_marks(steps), value, {"key": key, "steps": steps}, len(steps) < 2, status


def _progress_text(text: str) -> list:
    """A message with `code` spans."""
    parts = text.split("`")
    return [html.Code(p) if i % 2 else p for i, p in enumerate(parts)]


def _stop_following(index, steps, follow):
    index, steps, follow = as_int(index, None, 0, MAX_INDEX), read_steps(steps), as_flags(follow)
    return no_update if keeps_following(index, (steps or {}).get("steps"), follow) else []


# -- the map ----------------------------------------------------------------------------------------------

def page_step(steps: dict | None, index) -> int | None:
    """The step the page looks at: the slider's map, or (no map yet) None for the newest snapshot."""
    return step_at((steps or {}).get("steps"), index)


def _map(steps, index, colour, focus, analogy, settings):
    settings, steps, index = read_settings(settings), read_steps(steps), as_int(index, 0, 0, MAX_INDEX)
    colour, focus, analogy = as_str(colour, SOURCE_LEN), read_focus(focus), read_analogy(analogy)
    if settings.get("error") or not settings.get("key"):
        return message_figure(settings.get("error") or NO_SOURCE), ""
    key = settings["key"]
    if (steps or {}).get("key") != key:
        return no_update, no_update
    if not steps.get("steps"):
        return message_figure("The map is not ready yet: no snapshot has a map with these settings (the analysis "
                              "worker's progress is above).<br>Nearest neighbours and analogies already work."), \
            "no map yet"
    run_id, source = settings["run"], settings["source"]
    s = ProjectionSettings.model_validate(settings["settings"])
    pd = current().data.projections
    try:
        frame = pd.map_at(run_id, key, page_step(steps, index))
        data = pd.source_data(run_id, frame["step"], source, frame["meta"].get("source_id"))
        rows = frame["rows"]
        if len(rows) and int(rows.max()) >= data.n:
            raise ViewError(f"The map at step {frame['step']:,} names point {int(rows.max())}, but the source has "
                            f"{data.n:,} points: it belongs to other data.")
        highlight = _highlight(pd, run_id, frame, source, focus)
        marks = _analogy_positions(pd, run_id, frame, source, analogy)
    except ViewError as exc:
        return message_figure(view_error_message(exc)), ""
    except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
        return message_figure(view_error_message(exc)), ""
    why = colour_choices([f for f, col in (("label", data.label), ("pred", data.pred), ("freq", data.freq))
                          if col is not None], source)
    colour = colour if colour in why and why[colour] is None else "none"
    meta = frame["meta"]
    explained = meta.get("explained")
    axis_titles = ([f"PC{i + 1} ({float(v):.0%})" for i, v in enumerate(explained)]
                   if s.method == "pca" and explained else None)
    method = METHOD_NAMES[s.method] + (f", perplexity {s.perplexity:g}, {s.metric}" if s.method == "tsne" else "")
    title = f"{data.what or source}: {method}, {len(rows):,} of {data.n:,} points, step {frame['step']:,}"
    moved = restructured_note(meta, frame["step"], source)
    if moved:
        title += " · the layout changed a lot at this step"
    ranges = pd.ranges(run_id, key)
    freq = None if data.freq is None else data.freq[rows]
    fig = map_figure(frame["coords"], rows, data.texts[rows], colour_by=colour,
                     label=None if data.label is None else data.label[rows],
                     pred=None if data.pred is None else data.pred[rows], classes=data.classes,
                     freq=freq, ranges=ranges, title=title, uirevision=f"{run_id}:{key}",
                     highlight=highlight, analogy=marks, axis_titles=axis_titles)
    if s.dims == 2:
        fig = glide(fig)
        if freq is not None or len(rows) <= LABEL_MAX:  # words: any size; reviews, images: small maps only
            fig = label_points(fig, frame["coords"], rows, data.texts[rows], priority=freq, ranges=ranges,
                               first=[i for i in (highlight or {}).get("neighbours", []) if i >= 0],
                               reserved=_reserved(highlight, marks))
    info = f"map at step {frame['step']:,} ({frame['index'] + 1} of {frame['total']})"
    if meta.get("kl_divergence") is not None:
        info += f" · KL divergence {float(meta['kl_divergence']):.2f}"
    if moved:
        info += f" · {moved}"
    if frame.get("note"):
        info += f" · {frame['note']}"
    return fig, info


def restructured_note(meta: dict, step: int, source: str) -> str | None:
    """What the page says under a map that the worker restructured (the data's neighbourhoods changed a
    lot since the previous snapshot, so the map was laid out again from it), else None.

    >>> restructured_note({"restructured": True, "neighbourhood_overlap": 0.12}, 500, "tokens")
    'the layout changed a lot at step 500: the words moved to new places (12% of their neighbours kept)'
    """
    if not meta.get("restructured"):
        return None
    what = "words" if source == "tokens" else "points"
    note = f"the layout changed a lot at step {int(step):,}: the {what} moved to new places"
    kept = meta.get("neighbourhood_overlap")
    return note + (f" ({float(kept):.0%} of their neighbours kept)" if isinstance(kept, (int, float)) else "")


def _reserved(highlight: dict | None, marks: dict | None) -> list[int]:
    """Points whose names the figure writes already: the searched word and an analogy's words."""
    out = [int((highlight or {}).get("query", -1))]
    out += [int((marks or {}).get(k, -1)) for k in ("a", "b", "c", "answer")]
    return [i for i in out if i >= 0]


def focus_query(focus: dict | None, run_id: str, source: str):
    """The text or row to look up, or None (a row of another run or source does not carry over)."""
    if not focus:
        return None
    if focus.get("row") is not None:
        return int(focus["row"]) if focus.get("run") == run_id and focus.get("source") == source else None
    return focus.get("query") or None


def _highlight(pd, run_id: str, frame: dict, source: str, focus) -> dict | None:
    query = focus_query(focus, run_id, source)
    if query is None:
        return None
    try:
        near = pd.neighbours(run_id, frame["step"], source, query)
    except ViewError:
        return None  # the list says why
    pos = positions(frame["rows"], [near["row"]] + [it["row"] for it in near["items"]])
    return {"query": int(pos[0]), "neighbours": pos[1:].tolist(),
            "texts": [near["text"]] + [it["text"] for it in near["items"]]}


def _analogy_positions(pd, run_id: str, frame: dict, source: str, analogy) -> dict | None:
    if not analogy or not all(analogy.get(k) for k in "abc"):
        return None
    try:
        found = pd.analogy(run_id, frame["step"], source, analogy["a"], analogy["b"], analogy["c"])
    except ViewError:
        return None
    if not found["items"]:
        return None
    best = found["items"][0]
    pos = positions(frame["rows"], [found["rows"][k] for k in "abc"] + [best["row"]])
    return {"a": int(pos[0]), "b": int(pos[1]), "c": int(pos[2]), "answer": int(pos[3]),
            "texts": {**found["texts"], "answer": best["text"]}}


def register() -> None:
    """Register the map's callbacks with the app being built. The page module calls it: Dash runs
    a page module once per app, while a plain module's ``@callback`` would reach only the first
    app a process builds (tests build several)."""
    callback(Output(ids.PJ_STEP, "max"), Output(ids.PJ_STEP, "marks"), Output(ids.PJ_STEP, "value"),
             Output(ids.PJ_STEPS, "data"), Output(ids.PJ_STEP, "disabled"), Output(ids.PJ_STATUS, "children"),
             Input(ids.PJ_INTERVAL, "n_intervals"), Input(ids.PJ_SETTINGS, "data"), Input(ids.PJ_FOLLOW, "value"),
             State(ids.PJ_STEPS, "data"), State(ids.PJ_STEP, "value"))(_map_steps)
    callback(Output(ids.PJ_FOLLOW, "value"), Input(ids.PJ_STEP, "value"), State(ids.PJ_STEPS, "data"),
             State(ids.PJ_FOLLOW, "value"), prevent_initial_call=True)(_stop_following)
    # Play through the snapshots (dashboard/snapshot_slider.py)
    register_play(ids.PJ_PLAY, ids.PJ_PLAY_TICK, ids.PJ_STEP, ids.PJ_FOLLOW, ids.PJ_STEPS,
                  Input(ids.PJ_SETTINGS, "data"))
    # points glide from one map to the next while Play runs (dashboard.views.projections.glide); by hand the
    # map redraws at once and keeps the person's zoom (an animated frame would reset the axes)
    clientside_callback("function(disabled) { return !disabled; }", Output(ids.PJ_MAP, "animate"),
                        Input(ids.PJ_PLAY_TICK, "disabled"))
    callback(Output(ids.PJ_MAP, "figure"), Output(ids.PJ_INFO, "children"),
             Input(ids.PJ_STEPS, "data"), Input(ids.PJ_STEP, "value"), Input(ids.PJ_COLOUR, "value"),
             Input(ids.PJ_FOCUS, "data"), Input(ids.PJ_ANALOGY, "data"), Input(ids.PJ_SETTINGS, "data"))(_map)
