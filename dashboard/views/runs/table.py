"""The Runs table: pure row building plus its HTML, used by ``page.py`` beside it."""
from __future__ import annotations

from itertools import islice

from dash import dcc, html

from dashboard import ids
from dashboard.components import format_params, format_time, status_badge
from dashboard.export_route import export_href
from dashboard.inputs import MAX_ITEMS, MAX_RUNS, as_list, as_run_ids

COLUMNS = ("", "Name", "Id", "Task", "Model", "Status", "Step", "Created", "Params", "Download")


def run_row(run: dict, summary: dict) -> dict:
    """Display values of one run (pure: testable without Dash)."""
    total = summary.get("steps")
    step = f"{run.get('step', 0):,}" + (f" / {total:,}" if isinstance(total, int) else "")
    return {"id": run["id"], "name": run.get("name") or run["id"], "task": run.get("task", ""),
            "family": summary.get("family", "?"), "status": run["status"], "step": step,
            "created": format_time(run.get("created_at")), "params": format_params(summary.get("params"))}


def compare_href(selected: list[str]) -> str:
    """Training-page URL overlaying the selected runs, e.g. ``/?run=a,b``."""
    return "/?run=" + ",".join(selected) if selected else "/"


def flatten_picks(values: list | None) -> list[str]:
    """Run ids ticked in the per-row checklists, in table order (junk dropped, at most MAX_RUNS)."""
    ticked = (v for vs in as_list(values, MAX_ITEMS) for v in as_list(vs, MAX_ITEMS))
    return as_run_ids(list(islice(ticked, 4 * MAX_RUNS)))


def _row(row: dict, picked: bool) -> html.Tr:
    rid = row["id"]
    return html.Tr([
        html.Td(dcc.Checklist(id={"type": ids.RUNS_PICK, "index": rid}, options=[{"label": "", "value": rid}],
                              value=[rid] if picked else [], className="pick")),
        html.Td(dcc.Link(row["name"], href=compare_href([rid]), title="Open its training view")),
        html.Td(rid, className="mono muted"), html.Td(row["task"]), html.Td(row["family"]),
        html.Td(status_badge(row["status"]), id={"type": ids.RUNS_STATUS_CELL, "index": rid}),
        html.Td(row["step"], id={"type": ids.RUNS_STEP_CELL, "index": rid}, className="num"),
        html.Td(row["created"], className="muted"), html.Td(row["params"], className="num"),
        html.Td([html.A("CSV", href=export_href(rid, "csv"), download=f"{rid}-metrics.csv",
                        title="every logged point of this run, full resolution"), " · ",
                 html.A("JSONL", href=export_href(rid, "jsonl"), download=f"{rid}-metrics.jsonl",
                        title="every logged point of this run as JSON Lines")], className="export-links"),
    ])


def runs_table(rows: list[dict], picked: set[str]) -> html.Table:
    """The table, newest first, with a tick box per run for Compare."""
    head = html.Thead(html.Tr([html.Th(c) for c in COLUMNS]))
    return html.Table([head, html.Tbody([_row(r, r["id"] in picked) for r in rows])], className="table")
