"""``/_deepscope/health``: a cheap "this dashboard process answers" for the reconnect banner and probes.

It answers ``200 ok`` without touching the store or the cache, so it says only that the web server is
up; whether the store answers shows on the pages themselves. The path is in
:data:`dashboard.security.PUBLIC_PATHS` (no sign-in: it reveals nothing), but the Host check and, without
``--auth``, the loopback-only rule still apply.

Example::

    register_health(app.server)
    # curl http://127.0.0.1:8050/_deepscope/health   ->  ok
"""
from __future__ import annotations

import flask

HEALTH_PATH = "/_deepscope/health"


def register_health(server: flask.Flask) -> None:
    """Add the health route to ``server`` (the Dash app's Flask server)."""
    server.add_url_rule(HEALTH_PATH, endpoint="deepscope_health", view_func=_health, methods=["GET", "HEAD"])


def _health() -> flask.Response:
    return flask.Response("ok", mimetype="text/plain", headers={"Cache-Control": "no-store"})
