"""``/_deepscope/export/<run>``: a run's metrics at full resolution as a streamed download.

The Training and Runs pages link here (:func:`export_href`). The answer streams the store in pages
(:func:`backend.export.metric_chunks`), so a series of millions of points downloads in bounded memory.
The request passes the dashboard's guard like any page (hosts, sign-in; viewers may download).

    GET /_deepscope/export/a1b2c3d4e5?format=csv&series=train/loss&series=val/acc
    -> a1b2c3d4e5-metrics.csv (name, step, value, wall_time)
"""
from __future__ import annotations

from urllib.parse import urlencode

import flask

from backend.export import FORMATS, ExportError, metric_chunks
from dashboard.inputs import as_run_id, as_str

EXPORT_PATH = "/_deepscope/export/"
MAX_SERIES = 200  # series names one request may list
MIMETYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def export_href(run_id: str, fmt: str = "csv", series: list[str] | None = None) -> str:
    """The download address of ``run_id``'s metrics (of ``series`` only, when given).

    >>> export_href("a1b2c3d4e5", series=["train/loss"])
    '/_deepscope/export/a1b2c3d4e5?format=csv&series=train%2Floss'
    """
    query = [("format", fmt)] + [("series", s) for s in series or []]
    return f"{EXPORT_PATH}{run_id}?{urlencode(query)}"


def register_export(server: flask.Flask, store_of) -> None:
    """Add the export route to ``server``; ``store_of()`` gives the store (called per request)."""

    def export(run_id: str) -> flask.Response:
        rid = as_run_id(run_id)
        fmt = as_str(flask.request.args.get("format", "csv"), 8) or "csv"
        series = [s for s in (as_str(v, 128) for v in flask.request.args.getlist("series")[:MAX_SERIES + 1]) if s]
        if rid is None:
            return _refuse(f"{run_id[:40]!r} is not a run id", 400)
        if fmt not in FORMATS or len(series) > MAX_SERIES:
            return _refuse(f"format must be one of {', '.join(FORMATS)}, with at most {MAX_SERIES} series", 400)
        try:
            chunks = metric_chunks(store_of(), rid, fmt, series or None)
        except ExportError as exc:
            return _refuse(str(exc), 404 if "no run" in str(exc) else 400)
        response = flask.Response(flask.stream_with_context(chunks), mimetype=MIMETYPES[fmt])
        response.headers["Content-Disposition"] = f'attachment; filename="{rid}-metrics.{fmt}"'
        response.headers["Cache-Control"] = "no-store"
        return response

    server.add_url_rule(f"{EXPORT_PATH}<run_id>", endpoint="deepscope_export", view_func=export, methods=["GET"])


def _refuse(message: str, status: int) -> flask.Response:
    return flask.Response(message + "\n", status=status, mimetype="text/plain")
