"""Runs page (``/runs``): every run, newest first, with live status; tick several to compare."""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.components import no_runs_state, status_badge
from dashboard.context import current
from dashboard.inputs import Query, as_run_id
from dashboard.views.runs.table import compare_href, flatten_picks, run_row, runs_table

dash.register_page(__name__, path="/runs", name="Runs", order=10, title="Runs · deepscope")

WHAT = "Runs lists every training run in this store with its status, progress and size."
REFRESH_MS = 2000


def _rows() -> list[dict]:
    data = current().data
    return [run_row(r, data.run_summary(r)) for r in data.list_runs()]


def layout(**query) -> html.Div:
    """Table of runs and the Compare button."""
    rows = _rows()
    if not rows:
        body = no_runs_state(WHAT)
    else:
        body = runs_table(rows, set())
    return html.Div([
        html.Div([html.H2("Runs"),
                  dcc.Link("Compare selected", id=ids.RUNS_COMPARE, href="/", className="btn btn-primary disabled")],
                 className="page-head"),
        html.P("Tick runs and press Compare to overlay their curves; a name opens that run's training view.",
               className="muted"),
        Query(query).notice(),  # this page reads no parameter: say so when the address holds some
        html.Div(body, id=ids.RUNS_TABLE),
        dcc.Store(id=ids.RUNS_IDS, data=[r["id"] for r in rows]),
        dcc.Interval(id=ids.RUNS_INTERVAL, interval=REFRESH_MS),
    ])


@callback(Output(ids.RUNS_TABLE, "children"), Output(ids.RUNS_IDS, "data"),
          Input(ids.RUNS_INTERVAL, "n_intervals"), State(ids.RUNS_IDS, "data"),
          State({"type": ids.RUNS_PICK, "index": ALL}, "value"))
def _refresh_table(_n, shown, picks):
    """Re-render only when runs appear or disappear, keeping the ticks."""
    rows = _rows()
    if [r["id"] for r in rows] == shown:
        raise PreventUpdate
    body = runs_table(rows, set(flatten_picks(picks))) if rows else no_runs_state(WHAT)
    return body, [r["id"] for r in rows]


@callback(Output({"type": ids.RUNS_STATUS_CELL, "index": ALL}, "children"),
          Output({"type": ids.RUNS_STEP_CELL, "index": ALL}, "children"),
          Input(ids.RUNS_INTERVAL, "n_intervals"))
def _refresh_cells(_n):
    """Live status and step of the rows on screen."""
    by_id = {r["id"]: r for r in _rows()}
    status_cells, step_cells = (_row_ids(cells) for cells in ctx.outputs_list)  # each as the page has them
    statuses = [status_badge(by_id[i]["status"]) if i in by_id else "gone" for i in status_cells]
    steps = [by_id[i]["step"] if i in by_id else "" for i in step_cells]
    return statuses, steps


def _row_ids(cells: list) -> list[str | None]:
    """The run id of each output cell (its id's ``index``), None where it is no run id."""
    out = []
    for cell in cells if isinstance(cells, list) else []:
        cid = cell.get("id") if isinstance(cell, dict) else None
        out.append(as_run_id(cid.get("index")) if isinstance(cid, dict) else None)
    return out


@callback(Output(ids.RUNS_COMPARE, "href"), Output(ids.RUNS_COMPARE, "children"),
          Output(ids.RUNS_COMPARE, "className"),
          Input({"type": ids.RUNS_PICK, "index": ALL}, "value"))
def _compare(picks):
    selected = flatten_picks(picks)
    label = f"Compare {len(selected)} runs" if len(selected) > 1 else (
        "Open selected run" if selected else "Compare selected")
    return compare_href(selected), label, "btn btn-primary" + ("" if selected else " disabled")
