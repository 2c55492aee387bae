"""Projections page (``/projections``): WebGL maps (t-SNE / PCA) of a model's points through training.

The points are a run's ``embeddings`` snapshots (word embeddings, final hidden states,
penultimate features, see ``backend.store.projections``); the maps are computed by the analysis
worker, asynchronously: changing the settings asks for them (``request_projection``) and the
page shows the worker's progress or error. The map's axes stay still over every snapshot of the
settings, the step slider follows the newest map live, and Play animates through training.

Nearest neighbours (click a point or type a word) and analogies (a - b + c) are computed here, in
the original space of the points (not on the map), so they work while a map is still computing.
A lasso or box selection lists its members.
"""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from pydantic import ValidationError

from backend.store.projections import SOURCES, ProjectionSettings, request_projection, requested
from dashboard import ids
from dashboard.components import alert, no_runs_state
from dashboard.context import current
from dashboard.figures.projections import map_figure, message_figure
from dashboard.hidden_data import ViewError, view_error_message
from dashboard.projection_data import COLOUR_FIELDS, a_noun, colour_choices, positions
from dashboard.snapshot_slider import PLAY, keeps_following, register_play, slider_marks, slider_value, step_at

dash.register_page(__name__, path="/projections", name="Projections", order=3, title="Projections · deepscope")

WHAT = ("Projections maps the points a model makes (its word embeddings, the final hidden state or the features "
        "its output layer reads for each input) onto 2D or 3D with t-SNE or PCA, one map per training snapshot, "
        "kept still from one snapshot to the next so you can watch the structure form. Click a point or type a "
        "word for its nearest neighbours, or try an analogy.")
CONFIG = {"displaylogo": False, "scrollZoom": True,
          "modeBarButtonsToRemove": ["autoScale2d", "toImage", "resetCameraLastSave3d", "hoverClosest3d"]}
PLAY_MS = 600  # Play: a snapshot every 0.6 s
METHODS = [{"label": " t-SNE", "value": "tsne"}, {"label": " PCA", "value": "pca"}]
DIMS = [{"label": " 2D", "value": "2"}, {"label": " 3D", "value": "3"}]  # strings: Dash 4 shows a numeric 0 as empty
METRICS = ("cosine", "euclidean")
COLOUR_LABELS = {"label": "label", "prediction": "prediction", "correct": "correct", "frequency": "frequency",
                 "none": "none"}
METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA"}
SETTING_IDS = (ids.PJ_SOURCE, ids.PJ_METHOD, ids.PJ_DIMS, ids.PJ_PERPLEXITY, ids.PJ_POINTS, ids.PJ_METRIC)
N_MEMBERS = 100
NO_SOURCE = "This run has no embeddings snapshot to draw."


# -- layout -----------------------------------------------------------------------------------------

def layout(run: str | None = None, **_query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    if not runs:
        return no_runs_state(WHAT)
    pd = context.data.projections
    with_maps = [r for r in runs if pd.has_snapshots(r["id"])]
    others = [r for r in runs if r not in with_maps]
    chosen = run if run in {r["id"] for r in runs} else (with_maps[0]["id"] if with_maps else runs[0]["id"])
    options = [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in with_maps]
    options += [{"label": f"{r['name']}  ({r['id']}, no projections)", "value": r["id"]} for r in others]
    init = _initial_controls(pd, chosen)

    def field(label, cid, comp, title=None):
        return html.Div([html.Label(label, htmlFor=cid), comp], className="field", title=title)
    return html.Div([
        html.P(WHAT, className="page-intro"),
        html.Div([
            field("Run", ids.PJ_RUN, dcc.Dropdown(id=ids.PJ_RUN, options=options, value=chosen, clearable=False)),
            field("Points of", ids.PJ_SOURCE, dcc.Dropdown(id=ids.PJ_SOURCE, options=init["options"],
                                                           value=init["source"], clearable=False,
                                                           placeholder="no source yet")),
            field("Method", ids.PJ_METHOD, dcc.RadioItems(id=ids.PJ_METHOD, options=METHODS, value=init["method"],
                                                          inline=True, className="pj-radio")),
            field("Map", ids.PJ_DIMS, dcc.RadioItems(id=ids.PJ_DIMS, options=DIMS, value=init["dims"], inline=True,
                                                     className="pj-radio")),
            field("Perplexity", ids.PJ_PERPLEXITY, dcc.Input(
                id=ids.PJ_PERPLEXITY, type="number", value=init["perplexity"], min=2, max=500, step="any",
                debounce=True, className="num"), title="t-SNE: about how many neighbours each point keeps close"),
            field("Points", ids.PJ_POINTS, dcc.Input(
                id=ids.PJ_POINTS, type="number", value=init["points"], min=10, max=200_000, step=1, debounce=True,
                className="num"), title="how many points are drawn (the same ones at every snapshot)"),
            field("Metric", ids.PJ_METRIC, dcc.RadioItems(id=ids.PJ_METRIC, value=init["metric"], inline=True,
                                                          options=_metric_options(init["method"]),
                                                          className="pj-radio")),
            html.Div([html.Span("Colour by", className="field-label"),
                      dcc.RadioItems(id=ids.PJ_COLOUR, value=init["colour"], inline=True, className="pj-radio",
                                     options=_colour_options(COLOUR_FIELDS, {k: None for k in COLOUR_FIELDS})),
                      html.Div(id=ids.PJ_COLOUR_WHY, className="pj-why")], className="field pj-colour-field"),
            html.Div([html.Label("Training step", htmlFor=ids.PJ_STEP),
                      html.Div([html.Button(PLAY, id=ids.PJ_PLAY, className="btn kn-play", n_clicks=0,
                                            title="step through the maps up to the newest"),
                                html.Div(dcc.Slider(id=ids.PJ_STEP, min=0, max=0, step=1, value=0, marks=None,
                                                    included=False, allow_direct_input=False),
                                         className="kn-slider")], className="kn-step-row"),
                      html.Div([dcc.Checklist(id=ids.PJ_FOLLOW, options=[{"label": " follow the newest",
                                                                           "value": "on"}], value=["on"], inline=True),
                                html.Span(id=ids.PJ_INFO, className="muted")], className="step-info")],
                     className="field field-step pj-step-field"),
        ], className="toolbar pj-toolbar"),
        html.Div(id=ids.PJ_NOTE, role="status"),
        html.Div(id=ids.PJ_CHECK, role="status"),
        html.Div(id=ids.PJ_STATUS, role="status"),
        html.Div([
            html.Section([
                dcc.Graph(id=ids.PJ_MAP, config=CONFIG, figure=message_figure("Loading the map…")),
                html.P("Scroll to zoom, drag to zoom into a box; the lasso and box-select tools (top right) list "
                       "the points you select. Click a point for its nearest neighbours.", className="hint"),
            ], className="card pj-map-card"),
            html.Div([
                html.Section([
                    html.H3("Nearest neighbours"),
                    html.Div([dcc.Input(id=ids.PJ_QUERY, type="text", placeholder="a word or text, e.g. king",
                                        debounce=False, className="search pj-query", n_submit=0),
                              html.Button("Find", id=ids.PJ_QUERY_GO, className="btn", n_clicks=0),
                              html.Button("Clear", id=ids.PJ_CLEAR, className="btn", n_clicks=0)],
                             className="pj-row"),
                    html.Div(id=ids.PJ_NEIGHBOURS, className="pj-list")], className="card"),
                html.Section([
                    html.H3("Analogy"),
                    html.Div([dcc.Input(id=ids.PJ_AN_A, type="text", placeholder="king", className="search pj-word",
                                        n_submit=0),
                              html.Span("−", className="pj-op"),
                              dcc.Input(id=ids.PJ_AN_B, type="text", placeholder="man", className="search pj-word",
                                        n_submit=0),
                              html.Span("+", className="pj-op"),
                              dcc.Input(id=ids.PJ_AN_C, type="text", placeholder="woman", className="search pj-word",
                                        n_submit=0)], className="pj-row"),
                    html.Div([html.Button("Solve", id=ids.PJ_AN_GO, className="btn btn-primary", n_clicks=0),
                              html.Button("Clear", id=ids.PJ_AN_CLEAR, className="btn", n_clicks=0)],
                             className="pj-row"),
                    html.Div(id=ids.PJ_ANALOGY_OUT, className="pj-list")], className="card"),
                html.Section([html.H3("Selection"), html.Div(id=ids.PJ_SELECTION, className="pj-list pj-members")],
                             className="card"),
            ], className="pj-side"),
        ], className="pj-main"),
        dcc.Store(id=ids.PJ_SETTINGS), dcc.Store(id=ids.PJ_STEPS), dcc.Store(id=ids.PJ_FOCUS),
        dcc.Store(id=ids.PJ_ANALOGY), dcc.Store(id=ids.PJ_SEED, data=init["seed"]),
        dcc.Interval(id=ids.PJ_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
        dcc.Interval(id=ids.PJ_PLAY_TICK, interval=PLAY_MS, disabled=True),
    ], className="projections-page")


def _source_options(sources: dict) -> list[dict]:
    order = [s for s in SOURCES if s in sources] + [s for s in sources if s not in SOURCES]
    return [{"label": f"{sources[s].get('what') or s} ({int(sources[s].get('n', 0)):,} × {sources[s].get('dim', '?')})",
             "value": s} for s in order]


def _initial_controls(pd, run_id: str | None) -> dict:
    """Control values a run opens with: the settings of its newest map, else the defaults for its first source."""
    sources = pd.sources(run_id) if run_id else {}
    settings = pd.newest_settings(run_id) if sources else None
    if settings is None or settings.source not in sources:
        first = next((s for s in SOURCES if s in sources), None)
        settings = ProjectionSettings(source=first) if first else None
    base = settings or ProjectionSettings(source="tokens")
    colour = "none"
    if settings is not None:
        why = colour_choices(sources[settings.source].get("fields", []), settings.source)
        colour = next((f for f in ("label", "frequency") if why[f] is None), "none")
    return {"options": _source_options(sources), "source": settings.source if settings else None, "colour": colour,
            "method": base.method, "dims": str(base.dims), "perplexity": base.perplexity, "points": base.n_points,
            "metric": base.metric, "seed": base.seed}


def _metric_options(method: str | None) -> list[dict]:
    tip = "the metric of t-SNE's neighbourhoods; PCA has none" if method == "pca" else None
    return [{"label": html.Span(f" {m}", title=tip) if tip else f" {m}", "value": m, "disabled": method == "pca"}
            for m in METRICS]


def _colour_options(fields, why: dict) -> list[dict]:
    return [{"label": html.Span(f" {COLOUR_LABELS[f]}", title=why.get(f) or f"colour the points by {COLOUR_LABELS[f]}"),
             "value": f, "disabled": why.get(f) is not None} for f in fields]


# -- run, source and settings ------------------------------------------------------------------------

@callback(Output(ids.PJ_SOURCE, "options"), Output(ids.PJ_SOURCE, "value"), Output(ids.PJ_METHOD, "value"),
          Output(ids.PJ_DIMS, "value"), Output(ids.PJ_PERPLEXITY, "value"), Output(ids.PJ_POINTS, "value"),
          Output(ids.PJ_METRIC, "value"), Output(ids.PJ_SEED, "data"), Output(ids.PJ_NOTE, "children"),
          Input(ids.PJ_RUN, "value"), Input(ids.PJ_INTERVAL, "n_intervals"), State(ids.PJ_SOURCE, "options"))
def _run_controls(run_id, _n, shown):
    data = current().data
    run = data.get_run(run_id) if run_id else None
    if run is None:
        return ([], None) + (no_update,) * 6 + (alert("Choose a run.", "warning"),)
    pd = data.projections
    snaps = pd.snapshots(run_id)
    note = None if snaps else _no_snapshot_note(run)
    init = _initial_controls(pd, run_id)
    # the first call sets every control too: a callback whose inputs all come back as no_update never runs
    if ctx.triggered_id == ids.PJ_INTERVAL:
        if init["options"] == (shown or []):
            return (no_update,) * 8 + (note,)
        if shown:  # a new source appeared: keep the person's settings
            return (init["options"],) + (no_update,) * 7 + (note,)
    return (init["options"], init["source"], init["method"], init["dims"], init["perplexity"], init["points"],
            init["metric"], init["seed"], note)


def _no_snapshot_note(run: dict) -> html.Div:
    name = f"{run['name']} ({run['id']})"
    if run["status"] in ("queued", "running", "paused"):
        return alert(f"No embeddings snapshot yet in run {name} (status: {run['status']}). The embedding probe "
                     "records the first one when training starts; this page updates by itself.", "info")
    return alert(f"Run {name} has no embeddings snapshots, so there is nothing to project: its model has no token "
                 "embedding and no classifier features, or it was recorded without the embedding probe. Choose a "
                 "run without “(no projections)” in the list, or start a new run.", "warning")


@callback(Output(ids.PJ_COLOUR, "options"), Output(ids.PJ_COLOUR, "value"), Output(ids.PJ_COLOUR_WHY, "children"),
          Input(ids.PJ_RUN, "value"), Input(ids.PJ_SOURCE, "value"), State(ids.PJ_COLOUR, "value"))
def _colour_choices(run_id, source, colour):
    info = current().data.projections.sources(run_id).get(source) if run_id and source else None
    if info is None:
        why = {f: "no source chosen" for f in COLOUR_FIELDS if f != "none"} | {"none": None}
        return _colour_options(COLOUR_FIELDS, why), "none", None
    why = colour_choices(info.get("fields", []), source)
    usable = [f for f in COLOUR_FIELDS if why[f] is None]
    if colour not in usable:
        colour = next((f for f in ("label", "frequency") if f in usable), "none")
    notes = [html.Span(f"{COLOUR_LABELS[f]}: {why[f]}") for f in ("label", "frequency") if why[f] is not None]
    return _colour_options(COLOUR_FIELDS, why), colour, notes or None


@callback(Output(ids.PJ_SETTINGS, "data"), Output(ids.PJ_CHECK, "children"), Output(ids.PJ_PERPLEXITY, "disabled"),
          Output(ids.PJ_METRIC, "options"),
          Input(ids.PJ_SOURCE, "value"), Input(ids.PJ_METHOD, "value"), Input(ids.PJ_DIMS, "value"),
          Input(ids.PJ_PERPLEXITY, "value"), Input(ids.PJ_POINTS, "value"), Input(ids.PJ_METRIC, "value"),
          State(ids.PJ_RUN, "value"), State(ids.PJ_SEED, "data"))
def _settings(source, method, dims, perplexity, n_points, metric, run_id, seed):
    """The settings shown: checked at once (too few points for the perplexity), and asked of the worker
    when some snapshot has no map with them yet.

    A run change sets every control at once (``_run_controls``), so this fires after it with the new
    run's values; a person changes one control at a time, and only that asks the worker again for
    settings it was asked for before."""
    pca = method == "pca"
    extra = (pca, _metric_options(method))
    base = {"run": run_id, "source": source, "key": None}
    if not run_id or not source:
        return {**base, "error": NO_SOURCE}, None, *extra
    if perplexity is None and not pca:
        msg = "Type a perplexity between 2 and 500."
        return {**base, "error": msg}, alert(msg, "warning"), *extra
    if n_points is None:
        msg = "Type how many points to draw (10 to 200,000)."
        return {**base, "error": msg}, alert(msg, "warning"), *extra
    try:
        settings = ProjectionSettings(source=source, method=method or "tsne", dims=int(dims or 2),
                                      perplexity=30.0 if perplexity is None else float(perplexity),
                                      n_points=int(n_points), metric=metric or "cosine", seed=int(seed or 0))
    except (ValidationError, ValueError, TypeError) as exc:
        msg = _settings_message(exc)
        return {**base, "error": msg}, alert(msg, "warning"), *extra
    pd = current().data.projections
    problem = pd.check(run_id, settings)
    if problem:
        return {**base, "error": problem}, alert(problem, "warning"), *extra
    key = settings.key()
    n_maps, n_snaps = len(pd.maps(run_id, key)), len(pd.snapshots(run_id))
    if n_maps < n_snaps:
        asked_before = key in {s.key() for s in requested(pd.store, run_id)}
        changed_one = len(ctx.triggered or []) == 1 and ctx.triggered_id in SETTING_IDS
        if changed_one or not asked_before:
            request_projection(pd.store, run_id, settings)
    return {**base, "key": key, "settings": settings.model_dump(), "error": None}, None, *extra


def _settings_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = {"perplexity": "Perplexity", "n_points": "Points"}.get(str(err["loc"][0]), str(err["loc"][0]))
            parts.append(f"{where}: {err['msg'].lower()}")
        return "; ".join(parts) + "."
    return f"These settings do not work: {exc}"


# -- maps: the step slider, progress, Play ----------------------------------------------------------------

@callback(Output(ids.PJ_STEP, "max"), Output(ids.PJ_STEP, "marks"), Output(ids.PJ_STEP, "value"),
          Output(ids.PJ_STEPS, "data"), Output(ids.PJ_STEP, "disabled"), Output(ids.PJ_STATUS, "children"),
          Input(ids.PJ_INTERVAL, "n_intervals"), Input(ids.PJ_SETTINGS, "data"), Input(ids.PJ_FOLLOW, "value"),
          State(ids.PJ_STEPS, "data"), State(ids.PJ_STEP, "value"))
def _map_steps(_n, settings, follow, known, index):
    key = (settings or {}).get("key")
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
    if same_key and known.get("steps") == steps and ctx.triggered_id != ids.PJ_FOLLOW:
        return no_update, no_update, no_update, no_update, no_update, status
    if not steps:
        return 0, {}, 0, {"key": key, "steps": []}, True, status
    value = slider_value(steps, known["steps"] if same_key and known.get("steps") else None, index, follow, None)
    return len(steps) - 1, slider_marks(steps), value, {"key": key, "steps": steps}, len(steps) < 2, status


def _progress_text(text: str) -> list:
    """A message with `code` spans."""
    parts = text.split("`")
    return [html.Code(p) if i % 2 else p for i, p in enumerate(parts)]


@callback(Output(ids.PJ_FOLLOW, "value"), Input(ids.PJ_STEP, "value"), State(ids.PJ_STEPS, "data"),
          State(ids.PJ_FOLLOW, "value"), prevent_initial_call=True)
def _stop_following(index, steps, follow):
    return no_update if keeps_following(index, (steps or {}).get("steps"), follow) else []


# Play through the snapshots (dashboard/snapshot_slider.py)
register_play(ids.PJ_PLAY, ids.PJ_PLAY_TICK, ids.PJ_STEP, ids.PJ_FOLLOW, ids.PJ_STEPS,
              Input(ids.PJ_SETTINGS, "data"))


# -- the map ----------------------------------------------------------------------------------------------

def _step(steps: dict | None, index) -> int | None:
    """The step the page looks at: the slider's map, or (no map yet) None for the newest snapshot."""
    return step_at((steps or {}).get("steps"), index)


@callback(Output(ids.PJ_MAP, "figure"), Output(ids.PJ_INFO, "children"),
          Input(ids.PJ_STEPS, "data"), Input(ids.PJ_STEP, "value"), Input(ids.PJ_COLOUR, "value"),
          Input(ids.PJ_FOCUS, "data"), Input(ids.PJ_ANALOGY, "data"), Input(ids.PJ_SETTINGS, "data"))
def _map(steps, index, colour, focus, analogy, settings):
    settings = settings or {}
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
        frame = pd.map_at(run_id, key, _step(steps, index))
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
    fig = map_figure(frame["coords"], rows, data.texts[rows], colour_by=colour,
                     label=None if data.label is None else data.label[rows],
                     pred=None if data.pred is None else data.pred[rows], classes=data.classes,
                     freq=None if data.freq is None else data.freq[rows],
                     ranges=pd.ranges(run_id, key), title=title, uirevision=f"{run_id}:{key}",
                     highlight=highlight, analogy=marks, axis_titles=axis_titles)
    info = f"map at step {frame['step']:,} ({frame['index'] + 1} of {frame['total']})"
    if meta.get("kl_divergence") is not None:
        info += f" · KL divergence {float(meta['kl_divergence']):.2f}"
    if frame.get("note"):
        info += f" · {frame['note']}"
    return fig, info


def _focus_query(focus: dict | None, run_id: str, source: str):
    """The text or row to look up, or None (a row of another run or source does not carry over)."""
    if not focus:
        return None
    if focus.get("row") is not None:
        return int(focus["row"]) if focus.get("run") == run_id and focus.get("source") == source else None
    return focus.get("query") or None


def _highlight(pd, run_id: str, frame: dict, source: str, focus) -> dict | None:
    query = _focus_query(focus, run_id, source)
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


# -- nearest neighbours -------------------------------------------------------------------------------------

@callback(Output(ids.PJ_FOCUS, "data"), Output(ids.PJ_QUERY, "value"),
          Input(ids.PJ_QUERY, "n_submit"), Input(ids.PJ_QUERY_GO, "n_clicks"), Input(ids.PJ_MAP, "clickData"),
          Input({"type": ids.PJ_NEIGHBOUR, "index": ALL}, "n_clicks"), Input(ids.PJ_CLEAR, "n_clicks"),
          State(ids.PJ_QUERY, "value"), State(ids.PJ_SETTINGS, "data"), prevent_initial_call=True)
def _focus(_sub, _go, click, _near, _clear, text, settings):
    trig = ctx.triggered_id
    settings = settings or {}
    if trig == ids.PJ_CLEAR:
        return None, ""
    if trig in (ids.PJ_QUERY, ids.PJ_QUERY_GO):
        text = (text or "").strip()
        return ({"query": text} if text else None), no_update
    row = None
    if isinstance(trig, dict) and trig.get("type") == ids.PJ_NEIGHBOUR:
        if not (ctx.triggered and ctx.triggered[0].get("value")):
            return no_update, no_update  # the buttons were (re)drawn, not clicked
        row = int(trig["index"])
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
    if not click or not click.get("points"):
        return None
    custom = click["points"][0].get("customdata")
    if isinstance(custom, (list, tuple)):
        custom = custom[0] if custom else None
    try:
        return int(custom)
    except (TypeError, ValueError):
        return None


@callback(Output(ids.PJ_NEIGHBOURS, "children"), Input(ids.PJ_FOCUS, "data"), Input(ids.PJ_STEPS, "data"),
          Input(ids.PJ_STEP, "value"), State(ids.PJ_SETTINGS, "data"))
def _neighbours(focus, steps, index, settings):
    settings = settings or {}
    run_id, source = settings.get("run"), settings.get("source")
    if not run_id or not source:
        return html.P("Choose a run with embeddings snapshots.", className="hint")
    query = _focus_query(focus, run_id, source)
    if query is None:
        return html.P(f"Click a point on the map, or type {a_noun(source)} and press Enter, for its 10 nearest "
                      "neighbours by cosine similarity in the model's own space (not on the map).", className="hint")
    pd = current().data.projections
    step = _step(steps, index)
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
        return pd.map_at(settings["run"], key, _step(steps, index))
    except ViewError:
        return None


# -- analogies ------------------------------------------------------------------------------------------------

@callback(Output(ids.PJ_ANALOGY, "data"), Output(ids.PJ_AN_A, "value"), Output(ids.PJ_AN_B, "value"),
          Output(ids.PJ_AN_C, "value"),
          Input(ids.PJ_AN_GO, "n_clicks"), Input(ids.PJ_AN_A, "n_submit"), Input(ids.PJ_AN_B, "n_submit"),
          Input(ids.PJ_AN_C, "n_submit"), Input(ids.PJ_AN_CLEAR, "n_clicks"),
          State(ids.PJ_AN_A, "value"), State(ids.PJ_AN_B, "value"), State(ids.PJ_AN_C, "value"),
          prevent_initial_call=True)
def _ask_analogy(_go, _a, _b, _c, _clear, a, b, c):
    if ctx.triggered_id == ids.PJ_AN_CLEAR:
        return None, "", "", ""
    return {"a": (a or "").strip(), "b": (b or "").strip(), "c": (c or "").strip()}, no_update, no_update, no_update


@callback(Output(ids.PJ_ANALOGY_OUT, "children"), Input(ids.PJ_ANALOGY, "data"), Input(ids.PJ_STEPS, "data"),
          Input(ids.PJ_STEP, "value"), State(ids.PJ_SETTINGS, "data"))
def _analogy(asked, steps, index, settings):
    settings = settings or {}
    run_id, source = settings.get("run"), settings.get("source")
    if not asked:
        return html.P("a − b + c: the points nearest to it by cosine in the model's space, a, b and c excluded "
                      "(king − man + woman ≈ queen). On a 2D map, arrows go from b to a and from c to the answer.",
                      className="hint")
    if not run_id or not source:
        return alert("Choose a run with embeddings snapshots.", "warning")
    pd = current().data.projections
    try:
        found = pd.analogy(run_id, _step(steps, index), source, asked.get("a"), asked.get("b"), asked.get("c"))
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

@callback(Output(ids.PJ_SELECTION, "children"), Input(ids.PJ_MAP, "selectedData"), State(ids.PJ_SETTINGS, "data"),
          State(ids.PJ_STEPS, "data"), State(ids.PJ_STEP, "value"))
def _selection(selected, settings, steps, index):
    settings = settings or {}
    points = (selected or {}).get("points") or []
    rows = []
    for p in points:
        custom = p.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if isinstance(custom, (int, float)) and not isinstance(custom, bool):
            rows.append(int(custom))
    rows = list(dict.fromkeys(rows))  # highlight rings repeat points: once each, in order
    if not rows:
        return html.P("Pick the lasso or box-select tool at the top right of the map and draw around points to list "
                      "them here.", className="hint")
    try:
        texts = current().data.projections.members(settings.get("run"), _step(steps, index),
                                                   settings.get("source"), rows[:N_MEMBERS])
    except Exception as exc:  # noqa: BLE001
        return alert(view_error_message(exc), "warning")
    head = f"{len(rows):,} points selected" + (f"; the first {N_MEMBERS}:" if len(rows) > N_MEMBERS else ":")
    return [html.P(head, className="pj-head"), html.Div([html.Span(t, className="pj-member") for t in texts],
                                                        className="pj-member-list")]
