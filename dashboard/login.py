"""The sign-in page (``/login``) and ``/logout`` of a dashboard started with ``--auth``.

A plain Flask form, not a Dash page: it must work before the visitor may load the app. A good
name and password put ``user`` in Flask's signed session cookie (the secret is in the accounts
file, so it survives restarts); the role is looked up again on every request, so removing an
account or changing its role takes effect at once. Failed attempts are slowed per client address.

Example::

    register_login(app.server)    # after install_guard(app.server, SecurityConfig(auth=True, ...))
"""
from __future__ import annotations

import html
import threading
import time
from collections import defaultdict, deque

import flask

from dashboard.security import security

MAX_FAILURES = 5        # per client address within WINDOW_S; more get 429 until the window passes
WINDOW_S = 60.0
_failures: dict[str, deque] = defaultdict(deque)
_lock = threading.Lock()

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · deepscope</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;display:flex;justify-content:center;
padding-top:12vh;margin:0}}form{{background:#fff;padding:28px 32px;border-radius:10px;
box-shadow:0 1px 4px #0002;width:300px}}h1{{font-size:20px;margin:0 0 4px}}p{{color:#555;font-size:13px}}
label{{display:block;font-size:13px;margin-top:12px}}input{{width:100%;box-sizing:border-box;padding:7px;
margin-top:4px;border:1px solid #bbb;border-radius:5px}}button{{margin-top:18px;width:100%;padding:8px;
background:#2f6fde;color:#fff;border:0;border-radius:5px;font-size:14px}}.err{{color:#b00020}}</style>
</head><body><form method="post" action="/login"><h1>◉ deepscope</h1>
<p>This dashboard is shared; sign in with the name and password its operator gave you.</p>
{error}<input type="hidden" name="next" value="{next}">
<label>Name<input name="name" autocomplete="username" autofocus required maxlength="64"></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required
maxlength="1024"></label><button type="submit">Sign in</button></form></body></html>"""


def register_login(server: flask.Flask) -> None:
    """Add ``/login`` and ``/logout`` to the dashboard's Flask server."""
    server.add_url_rule("/login", "deepscope_login", _login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "deepscope_logout", _logout, methods=["GET", "POST"])


def safe_next(value: object) -> str:
    """A local path to go to after signing in; anything else (another site, ``//host``) is ``/``."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:2000]


def _login():
    request = flask.request
    nxt = safe_next(request.values.get("next", "/"))
    if request.method == "GET":
        return _page(nxt)
    client = request.remote_addr or "?"
    if _throttled(client):
        return _page(nxt, "Too many failed attempts; wait a minute and try again.", 429)
    accounts = security().accounts
    name, password = request.form.get("name", ""), request.form.get("password", "")
    role = accounts.check(name, password) if accounts is not None else None
    if role is None:
        _record_failure(client)
        return _page(nxt, "Wrong name or password.", 401)
    flask.session.clear()
    flask.session["user"] = name
    flask.session.permanent = True
    return flask.redirect(nxt)


def _logout():
    flask.session.clear()
    return flask.redirect("/login")


def _page(nxt: str, error: str = "", status: int = 200) -> flask.Response:
    body = _PAGE.format(next=html.escape(nxt), error=f'<p class="err">{html.escape(error)}</p>' if error else "")
    return flask.Response(body, status=status, mimetype="text/html")


def _throttled(client: str) -> bool:
    with _lock:
        recent = _failures[client]
        while recent and recent[0] < time.monotonic() - WINDOW_S:
            recent.popleft()
        return len(recent) >= MAX_FAILURES


def _record_failure(client: str) -> None:
    with _lock:
        _failures[client].append(time.monotonic())
