"""The Projections page's controls: which run, which points, which map settings, which colours.

Control values a run opens with (:func:`initial_controls`: the settings of its newest map, else
the defaults for its first source), the options the controls offer, and the callbacks that fill
them when the run changes or a new source appears, grey out colourings a source cannot have, and
turn the controls into the page's settings store: checked at once (a perplexity too large for
the points) and asked of the analysis worker (``request_projection``) when some snapshot has no
map with them yet. ``dashboard.views.projections.page`` lays the controls out and calls :func:`register`.

Example::

    init = initial_controls(current().data.projections, run_id)
    init["source"], init["method"], init["dims"]          # a run without maps: "tokens", "tsne", "2"
    metric_options("pca")                                 # both metrics, disabled: PCA has none
"""
from __future__ import annotations

from dash import Input, Output, State, callback, ctx, html, no_update
from pydantic import ValidationError

from backend.store.projections import SOURCES, ProjectionSettings, request_projection, requested
from backend.tasks.registry import TASKS, records_projections
from dashboard import ids
from dashboard.components import alert
from dashboard.context import current
from dashboard.inputs import as_choice, as_dict, as_float, as_int, as_run_id, as_str, trigger_id
from dashboard.views.projections.data import COLOUR_FIELDS, colour_choices

METHODS = [{"label": " t-SNE", "value": "tsne"}, {"label": " PCA", "value": "pca"}]
DIMS = [{"label": " 2D", "value": "2"}, {"label": " 3D", "value": "3"}]  # strings: Dash 4 shows a numeric 0 as empty
METRICS = ("cosine", "euclidean")
COLOUR_LABELS = {"label": "label", "prediction": "prediction", "correct": "correct", "frequency": "frequency",
                 "none": "none"}
SETTING_IDS = (ids.PJ_SOURCE, ids.PJ_METHOD, ids.PJ_DIMS, ids.PJ_PERPLEXITY, ids.PJ_POINTS, ids.PJ_METRIC)
NO_SOURCE = "This run has no embeddings snapshot to draw."
SOURCE_LEN = 64  # characters of a source or colouring name


def read_settings(value) -> dict:
    """The settings store (:func:`_settings` wrote it) as the page sends it back, checked:
    ``{"run", "source", "key", "error"}`` plus ``"settings"`` (a dict ProjectionSettings accepts)
    only when ``key`` is the key of those settings; otherwise ``key`` is None and nothing is drawn."""
    v = as_dict(value, {})
    out = {"run": as_run_id(v.get("run")), "source": as_str(v.get("source"), SOURCE_LEN), "key": None,
           "error": as_str(v.get("error"), 2000)}
    key = as_str(v.get("key"), 500)
    if key and out["run"] and isinstance(v.get("settings"), dict):
        try:
            settings = ProjectionSettings.model_validate(v["settings"])
        except (ValidationError, ValueError, TypeError):
            return out
        if settings.key() == key and settings.source == out["source"]:
            out.update(key=key, settings=settings.model_dump())
    return out


def source_options(sources: dict) -> list[dict]:
    """Dropdown options for a run's sources (:meth:`ProjectionData.sources`), the known ones in their usual order."""
    order = [s for s in SOURCES if s in sources] + [s for s in sources if s not in SOURCES]
    return [{"label": f"{sources[s].get('what') or s} ({int(sources[s].get('n', 0)):,} × {sources[s].get('dim', '?')})",
             "value": s} for s in order]


def initial_controls(pd, run_id: str | None) -> dict:
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
    return {"options": source_options(sources), "source": settings.source if settings else None, "colour": colour,
            "method": base.method, "dims": str(base.dims), "perplexity": base.perplexity, "points": base.n_points,
            "metric": base.metric, "seed": base.seed}


def metric_options(method: str | None) -> list[dict]:
    """The metric radio's options: both disabled (with a tip saying why) for PCA."""
    tip = "the metric of t-SNE's neighbourhoods; PCA has none" if method == "pca" else None
    return [{"label": html.Span(f" {m}", title=tip) if tip else f" {m}", "value": m, "disabled": method == "pca"}
            for m in METRICS]


def colour_options(fields, why: dict) -> list[dict]:
    """The colour radio's options; ``why`` (from :func:`colour_choices`) disables the ones a source lacks."""
    return [{"label": html.Span(f" {COLOUR_LABELS[f]}", title=why.get(f) or f"colour the points by {COLOUR_LABELS[f]}"),
             "value": f, "disabled": why.get(f) is not None} for f in fields]


def _run_controls(run_id, _n, shown):
    run_id = as_run_id(run_id)
    data = current().data
    run = data.get_run(run_id) if run_id else None
    if run is None:
        return ([], None) + (no_update,) * 6 + (alert("Choose a run.", "warning"),)
    pd = data.projections
    snaps = pd.snapshots(run_id)
    note = None if snaps else _no_snapshot_note(run)
    init = initial_controls(pd, run_id)
    # the first call sets every control too: a callback whose inputs all come back as no_update never runs
    if trigger_id() == ids.PJ_INTERVAL:
        if init["options"] == (shown or []):
            return (no_update,) * 8 + (note,)
        if shown:  # a new source appeared: keep the person's settings
            return (init["options"],) + (no_update,) * 7 + (note,)
    return (init["options"], init["source"], init["method"], init["dims"], init["perplexity"], init["points"],
            init["metric"], init["seed"], note)


def _no_snapshot_note(run: dict) -> html.Div:
    name = f"{run['name']} ({run['id']})"
    info = TASKS.get(run.get("task") or "")
    if info is not None and not records_projections(info) and run.get("source") != "client":
        why = (f"its {info.vocab_size} characters are too few points for a map" if info.kind == "lm"
               else "its model has no token embedding and no classifier features")
        some = ", ".join(t for t, i in TASKS.items() if records_projections(i))
        return alert(f"Runs of the {info.name} task record no embeddings ({why}), so run {name} will have nothing "
                     f"to project. Choose a run without “(no projections)” in the list (runs of {some} have "
                     "some).", "info")
    if run["status"] in ("queued", "running", "paused"):
        return alert(f"No embeddings snapshot yet in run {name} (status: {run['status']}). The embedding probe "
                     "records the first one when training starts; this page updates by itself.", "info")
    return alert(f"Run {name} has no embeddings snapshots, so there is nothing to project: its model has no token "
                 "embedding and no classifier features, or it was recorded without the embedding probe. Choose a "
                 "run without “(no projections)” in the list, or start a new run.", "warning")


def _colour_choices(run_id, source, colour):
    run_id, source, colour = as_run_id(run_id), as_str(source, SOURCE_LEN), as_str(colour, SOURCE_LEN)
    info = current().data.projections.sources(run_id).get(source) if run_id and source else None
    if info is None:
        why = {f: "no source chosen" for f in COLOUR_FIELDS if f != "none"} | {"none": None}
        return colour_options(COLOUR_FIELDS, why), "none", None
    why = colour_choices(info.get("fields", []), source)
    usable = [f for f in COLOUR_FIELDS if why[f] is None]
    if colour not in usable:
        colour = next((f for f in ("label", "frequency") if f in usable), "none")
    notes = [html.Span(f"{COLOUR_LABELS[f]}: {why[f]}") for f in ("label", "frequency") if why[f] is not None]
    return colour_options(COLOUR_FIELDS, why), colour, notes or None


def _settings(source, method, dims, perplexity, n_points, metric, run_id, seed):
    """The settings shown: checked at once (too few points for the perplexity), and asked of the worker
    when some snapshot has no map with them yet.

    A run change sets every control at once (``_run_controls``), so this fires after it with the new
    run's values; a person changes one control at a time, and only that asks the worker again for
    settings it was asked for before."""
    source, method, metric = as_str(source, SOURCE_LEN), as_choice(method, ("tsne", "pca")), as_choice(metric, METRICS)
    dims, perplexity, n_points = as_int(dims), as_float(perplexity), as_int(n_points)
    run_id, seed = as_run_id(run_id), as_int(seed, 0, 0, 2**31 - 1)
    pca = method == "pca"
    extra = (pca, metric_options(method))
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
        changed_one = len(ctx.triggered or []) == 1 and trigger_id() in SETTING_IDS
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


def register() -> None:
    """Register the controls' callbacks with the app being built. The page module calls it: Dash runs
    a page module once per app, while a plain module's ``@callback`` would reach only the first
    app a process builds (tests build several)."""
    callback(Output(ids.PJ_SOURCE, "options"), Output(ids.PJ_SOURCE, "value"), Output(ids.PJ_METHOD, "value"),
             Output(ids.PJ_DIMS, "value"), Output(ids.PJ_PERPLEXITY, "value"), Output(ids.PJ_POINTS, "value"),
             Output(ids.PJ_METRIC, "value"), Output(ids.PJ_SEED, "data"), Output(ids.PJ_NOTE, "children"),
             Input(ids.PJ_RUN, "value"), Input(ids.PJ_INTERVAL, "n_intervals"),
             State(ids.PJ_SOURCE, "options"))(_run_controls)
    callback(Output(ids.PJ_COLOUR, "options"), Output(ids.PJ_COLOUR, "value"), Output(ids.PJ_COLOUR_WHY, "children"),
             Input(ids.PJ_RUN, "value"), Input(ids.PJ_SOURCE, "value"), State(ids.PJ_COLOUR, "value"))(_colour_choices)
    callback(Output(ids.PJ_SETTINGS, "data"), Output(ids.PJ_CHECK, "children"), Output(ids.PJ_PERPLEXITY, "disabled"),
             Output(ids.PJ_METRIC, "options"),
             Input(ids.PJ_SOURCE, "value"), Input(ids.PJ_METHOD, "value"), Input(ids.PJ_DIMS, "value"),
             Input(ids.PJ_PERPLEXITY, "value"), Input(ids.PJ_POINTS, "value"), Input(ids.PJ_METRIC, "value"),
             State(ids.PJ_RUN, "value"), State(ids.PJ_SEED, "data"))(_settings)
