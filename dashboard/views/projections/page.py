"""Projections page (``/projections``): WebGL maps (t-SNE / PCA) of a model's points through training.

The points are a run's ``embeddings`` snapshots (word embeddings, final hidden states,
penultimate features, see ``backend.store.projections``); the maps are computed by the analysis
worker, asynchronously: changing the settings asks for them (``request_projection``) and the
page shows the worker's progress or error. The map's axes stay still over every snapshot of the
settings, the step slider follows the newest map live, and Play animates through training.

Nearest neighbours (click a point or type a word) and analogies (a - b + c) are computed in the
original space of the points (not on the map), so they work while a map is still computing.
A lasso or box selection lists its members.

This module lays the page out; the callbacks live in :mod:`dashboard.views.projections.controls` (run,
source, settings), :mod:`dashboard.views.projections.map_view` (step slider, progress, Play, the map) and
:mod:`dashboard.views.projections.panels` (neighbours, analogies, selection), registered below: Dash
runs a page module once per app, while a plain module's ``@callback`` reaches only the first app
a process builds.

Example: ``/projections?run=<run id>`` opens the page on that run, with the settings of its newest map.
"""
from __future__ import annotations

import dash
from dash import dcc, html

from dashboard import ids

from dashboard.views.projections import controls as projection_controls

from dashboard.views.projections import map_view as projection_map

from dashboard.views.projections import panels as projection_panels
from dashboard.components import no_runs_state
from dashboard.context import current
from dashboard.views.projections.figures import message_figure
from dashboard.inputs import Query
from dashboard.views.projections.controls import DIMS, METHODS, colour_options, initial_controls, metric_options
from dashboard.views.projections.data import COLOUR_FIELDS
from dashboard.views.projections.glide import ANIMATION
from dashboard.views.projections.search import ANALOGY_EXAMPLE, EXAMPLE_WORD
from dashboard.snapshot_slider import PLAY

dash.register_page(__name__, path="/projections", name="Projections", order=3, title="Projections · deepscope")
projection_controls.register()  # here: Dash runs this module once per app, so every app gets the callbacks
projection_map.register()
projection_panels.register()

WHAT = ("Projections maps the points a model makes (its word or character embeddings, the final hidden state or "
        "the features its output layer reads for each input) onto 2D or 3D with t-SNE or PCA, one map per training "
        "snapshot, kept still from one snapshot to the next so you can watch the structure form. Click a point or "
        "type a word for its nearest neighbours, or try an analogy.")
CONFIG = {"displaylogo": False, "scrollZoom": True,
          "modeBarButtonsToRemove": ["autoScale2d", "toImage", "resetCameraLastSave3d", "hoverClosest3d"]}
PLAY_MS = 600  # Play: a snapshot every 0.6 s


# -- layout -----------------------------------------------------------------------------------------

def layout(**query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    run = q.run_id("run")
    if not runs:
        return html.Div([q.notice(), no_runs_state(WHAT)])
    pd = context.data.projections
    with_maps = [r for r in runs if pd.has_snapshots(r["id"])]
    others = [r for r in runs if r not in with_maps]
    chosen = run if run in {r["id"] for r in runs} else (with_maps[0]["id"] if with_maps else runs[0]["id"])
    options = [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in with_maps]
    options += [{"label": f"{r['name']}  ({r['id']}, no projections)", "value": r["id"]} for r in others]
    init = initial_controls(pd, chosen)

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
                                                          options=metric_options(init["method"]),
                                                          className="pj-radio")),
            html.Div([html.Span("Colour by", className="field-label"),
                      dcc.RadioItems(id=ids.PJ_COLOUR, value=init["colour"], inline=True, className="pj-radio",
                                     options=colour_options(COLOUR_FIELDS, {k: None for k in COLOUR_FIELDS})),
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
        q.notice(),
        html.Div(id=ids.PJ_NOTE, role="status"),
        html.Div(id=ids.PJ_CHECK, role="status"),
        html.Div(id=ids.PJ_STATUS, role="status"),
        html.Div([
            html.Section([
                dcc.Graph(id=ids.PJ_MAP, config=CONFIG, figure=message_figure("Loading the map…"),
                          animate=False, animation_options=ANIMATION),
                html.P("Scroll to zoom, drag to zoom into a box; the lasso and box-select tools (top right) list "
                       "the points you select. Click a point for its nearest neighbours.", className="hint"),
            ], className="card pj-map-card"),
            html.Div([
                html.Section([
                    html.H3("Nearest neighbours"),
                    html.Div([dcc.Input(id=ids.PJ_QUERY, type="text", placeholder=f"a word or text, e.g. {EXAMPLE_WORD}",
                                        debounce=False, className="search pj-query", n_submit=0),
                              html.Button("Find", id=ids.PJ_QUERY_GO, className="btn", n_clicks=0),
                              html.Button("Clear", id=ids.PJ_CLEAR, className="btn", n_clicks=0)],
                             className="pj-row"),
                    html.Div(id=ids.PJ_NEIGHBOURS, className="pj-list")], className="card"),
                html.Section([
                    html.H3("Analogy"),
                    html.Div([dcc.Input(id=ids.PJ_AN_A, type="text", placeholder=ANALOGY_EXAMPLE[0], className="search pj-word",
                                        n_submit=0),
                              html.Span("−", className="pj-op"),
                              dcc.Input(id=ids.PJ_AN_B, type="text", placeholder=ANALOGY_EXAMPLE[1], className="search pj-word",
                                        n_submit=0),
                              html.Span("+", className="pj-op"),
                              dcc.Input(id=ids.PJ_AN_C, type="text", placeholder=ANALOGY_EXAMPLE[2], className="search pj-word",
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
