"""What every request passes before a page or callback sees it: host, origin, size, login and role.

The threat model and the reasons are in ``docs/security.md``. In short:

- **Host**: only the names in :attr:`SecurityConfig.allowed_hosts` (loopback names by default) are
  answered; any other ``Host`` gets 400 (Flask's ``TRUSTED_HOSTS``), so a DNS-rebinding page cannot
  drive a local dashboard.
- **Origin**: a POST whose ``Origin`` (or, without one, ``Referer``) is not this dashboard's own gets
  403, so another site cannot start runs from a user's browser. Requests with neither header come
  from programs, not from a browser page, and are judged by login alone.
- **Size**: bodies over :func:`body_limit` get 413 before they are read.
- **Login** (``auth=True``): every request but the login page needs a signed session cookie; only
  operators may call the callbacks that change something (:data:`OPERATOR_OUTPUTS`).
- **No auth**: the dashboard answers loopback clients only, whatever address it is bound to.
- **Headers**: no framing, no sniffing, same-origin referrers.

Example::

    install_guard(app.server, SecurityConfig(auth=True, allowed_hosts=("dash.example.org",)))
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import flask

from dashboard import ids
from dashboard.accounts import Accounts
from dashboard.uploads import UPLOAD_LIMIT

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
DISPATCH = "/_dash-update-component"
PUBLIC_PATHS = ("/login", "/logout", "/_deepscope/health")
# Callbacks that change something: their output ids. A callback is found by its output key
# (Dash's dispatch looks it up by the request's "output"), so guarding by output is guarding the function.
OPERATOR_OUTPUTS = (ids.NEW_ALERT, ids.TRAIN_ALERT, ids.LAB_ALERT, ids.HS_UPLOAD_MSG, ids.NEW_UPLOAD_STATUS)


@dataclass(frozen=True)
class SecurityConfig:
    """How the dashboard admits requests; the default suits a local, single-user dashboard."""

    auth: bool = False
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    accounts: Accounts | None = field(default=None, compare=False)
    cookie_secure: bool = False  # set behind TLS so the session cookie never travels in clear
    upload_limit: int = UPLOAD_LIMIT


def on(value: str | None) -> bool:
    """An environment switch: on, true, yes, 1."""
    return (value or "").strip().lower() in ("1", "on", "true", "yes")


def make_security(auth: bool, hosts: tuple[str, ...] = (), auth_file: str | None = None,
                  cookie_secure: bool = False) -> SecurityConfig:
    """The configuration ``deepscope serve`` and gunicorn use; raises ``ValueError`` saying what is missing.

    ``hosts`` are added to the loopback names (``*`` accepts any Host: only behind a proxy that checks it).
    With ``auth``, the accounts file must exist and hold at least one operator.
    """
    allowed = () if "*" in hosts else tuple(dict.fromkeys((*LOOPBACK_HOSTS, *(h.strip().lower() for h in hosts if h.strip()))))
    accounts = None
    if auth:
        accounts = Accounts.load(auth_file)
        if not any(u["role"] == "operator" for u in accounts.users.values()):
            raise ValueError(f"--auth needs an operator account in {accounts.path}; add one with "
                             "`deepscope auth add NAME --role operator`")
    return SecurityConfig(auth=auth, allowed_hosts=allowed, accounts=accounts, cookie_secure=cookie_secure)


def security_from_env() -> SecurityConfig:
    """:func:`make_security` from ``DEEPSCOPE_AUTH``, ``DEEPSCOPE_ALLOWED_HOSTS``, ``DEEPSCOPE_AUTH_FILE``
    and ``DEEPSCOPE_COOKIE_SECURE`` (for gunicorn, where there is no command line of ours)."""
    env = os.environ
    hosts = tuple(h for h in env.get("DEEPSCOPE_ALLOWED_HOSTS", "").split(",") if h.strip())
    return make_security(on(env.get("DEEPSCOPE_AUTH")), hosts, env.get("DEEPSCOPE_AUTH_FILE") or None,
                         on(env.get("DEEPSCOPE_COOKIE_SECURE")))


def body_limit(upload_limit: int = UPLOAD_LIMIT) -> int:
    """Largest request body: one upload as base64 (4/3 of its size) in a callback's JSON, plus room
    (:data:`dashboard.uploads.UPLOAD_REQUEST_LIMIT` for the default)."""
    return upload_limit * 4 // 3 + 2**20


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything unparsable."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped and mapped.is_loopback))


def install_guard(server: flask.Flask, config: SecurityConfig) -> None:
    """Wire the checks into ``server`` (a Dash app's Flask server)."""
    server.config.update(MAX_CONTENT_LENGTH=body_limit(config.upload_limit),
                         SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_SECURE=config.cookie_secure, SESSION_COOKIE_NAME="deepscope_session")
    if config.auth:
        if config.accounts is None:
            raise ValueError("auth needs accounts")
        server.secret_key = config.accounts.secret_key
    server.extensions["deepscope_security"] = config
    server.before_request(_admit)
    server.after_request(_harden)


def security() -> SecurityConfig:
    """The configuration of the app serving this request."""
    return flask.current_app.extensions.get("deepscope_security") or SecurityConfig()


def current_user() -> tuple[str | None, str]:
    """``(name, role)`` of this request: ``(None, "operator")`` without auth, ``(None, "")`` when not signed in."""
    config = security()
    if not config.auth:
        return None, "operator"
    name = flask.session.get("user")
    role = config.accounts.role_of(name) if isinstance(name, str) and config.accounts else None
    return (name, role) if role else (None, "")


def _admit():
    config = security()
    request = flask.request
    if not host_allowed(request.headers.get("Host"), config.allowed_hosts):
        return _refuse(400, "unknown Host; start the dashboard with --allowed-host NAME to answer this name")
    if not config.auth and not is_loopback(request.remote_addr):
        return _refuse(403, "This dashboard runs without --auth and answers its own machine only. "
                            "Start it with `deepscope serve --auth` to share it.")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
        return _refuse(403, "cross-origin request refused")
    if request.path.endswith(DISPATCH) and request.method == "POST":
        problem = malformed_dispatch(request.get_json(silent=True, cache=True))
        if problem:
            return _refuse(400, f"malformed callback request: {problem}")
    if not config.auth or request.path in PUBLIC_PATHS:
        return None
    name, role = current_user()
    if not role:
        if request.method == "GET" and not request.path.startswith(("/_dash", "/assets", "/_deepscope/live", "/_deepscope/stream")):
            nxt = request.full_path if request.query_string else request.path
            return flask.redirect(flask.url_for("deepscope_login", next=nxt))
        return _refuse(401, "sign in first")
    if request.path.endswith(DISPATCH) and role != "operator" and _changes_something(request):
        return _viewer_refusal(request, name)
    return None


ROUTER_ID = "_pages_location"  # Dash's pages router reads these props; it fails on non-strings before our code


def malformed_dispatch(body: Any) -> str | None:
    """What is wrong with the shape of a Dash callback request, or None (values are the callbacks' business).

    Dash itself raises (HTTP 500) on a body without ``output``, on inputs that are not
    ``{"id", "property", "value"}`` objects, and in its pages router on a pathname or search that is
    not a string; such requests are refused here with 400 instead.
    """
    if not isinstance(body, dict):
        return "not a JSON object"
    if not isinstance(body.get("output"), str) or len(body["output"]) > 20_000:
        return "no output"
    for key in ("inputs", "state", "changedPropIds"):
        if key in body and not isinstance(body[key], list):
            return f"{key} is not a list"
    if "inputs" not in body:
        return "no inputs"
    for item in [*body["inputs"], *body.get("state", [])]:
        for dep in item if isinstance(item, list) else [item]:
            if not isinstance(dep, dict) or not isinstance(dep.get("property"), str) or "id" not in dep:
                return "an input is not an {id, property, value} object"
            if not isinstance(dep["id"], (str, dict)):
                return "an input id is neither a string nor an object"
            if dep["id"] == ROUTER_ID and not _router_value_ok(dep["property"], dep.get("value")):
                return f"{ROUTER_ID}.{dep['property']} is not a path"
    if not all(isinstance(p, str) for p in body.get("changedPropIds", [])):
        return "changedPropIds holds a non-string"
    return None


def _router_value_ok(prop: str, value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    return value.startswith("/") if prop == "pathname" else True


_HOST_RE = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?")


def host_allowed(header: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header (``name[:port]``, ``[v6]:port``) names one of ``allowed`` (any port).

    Flask's ``TRUSTED_HOSTS`` would do this, but werkzeug 3.1 cannot match ``[::1]`` in that list.
    An empty ``allowed`` accepts every well-formed name (``--allowed-host '*'``, behind a checking proxy).
    """
    match = _HOST_RE.fullmatch((header or "").strip().lower())
    if match is None:
        return False
    if not allowed:
        return True
    name = match.group(1).strip("[]")
    return any(name == a.strip("[]").lower() or (a.startswith(".") and name.endswith(a.lower())) for a in allowed)


def _same_origin(request: flask.Request) -> bool:
    """The request's Origin (or Referer) names this host, or it carries neither (not a browser page)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return True
    try:
        netloc = urlsplit(source).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == request.host.lower()


def _changes_something(request: flask.Request) -> bool:
    body = request.get_json(silent=True, cache=True)
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, str):
        return True  # not a well-formed dispatch: treat it as the most dangerous kind
    return any(_names_output(output, target) for target in OPERATOR_OUTPUTS)


def _names_output(output: str, target: str) -> bool:
    """Whether a Dash output key (``id.prop`` or ``..id.prop...id2.prop2..``) names component ``target``."""
    for part in output.strip(".").split("..."):
        component = part.rsplit(".", 1)[0]
        if component == target:
            return True
        if component.startswith("{"):  # pattern-matching id: a JSON object with a "type"
            try:
                parsed: Any = json.loads(component)
            except ValueError:
                return True
            if isinstance(parsed, dict) and target in (parsed.get("type"), parsed.get("id")):
                return True
    return False


def _viewer_refusal(request: flask.Request, name: str) -> flask.Response:
    """403; for a well-formed call, a Dash answer (200, or the page would show nothing) that puts the
    reason in the callback's own alert. The callback itself never runs."""
    message = f"Signed in as {name}, a viewer: starting, stopping, changing and uploading need an operator account."
    body = request.get_json(silent=True, cache=True)
    output = body.get("output") if isinstance(body, dict) else None
    alerts = [part.rsplit(".", 1)[0] for part in (output or "").strip(".").split("...")
              if part.endswith(".children") and part.rsplit(".", 1)[0] in OPERATOR_OUTPUTS]
    if not alerts:
        return _refuse(403, message)
    log.info("refused a viewer's call to %s", output)
    shown = {"props": {"children": message, "className": "alert alert-warning"}, "type": "Div",
             "namespace": "dash_html_components"}
    return flask.Response(json.dumps({"multi": True, "response": {alerts[0]: {"children": shown}}}),
                          status=200, mimetype="application/json")


def _refuse(status: int, message: str) -> flask.Response:
    log.info("refused %s %s (%s): %s", flask.request.method, flask.request.path, status, message)
    return flask.Response(message + "\n", status=status, mimetype="text/plain")


def _harden(response: flask.Response) -> flask.Response:
    headers = response.headers
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if security().auth:
        headers.setdefault("Cache-Control", "private, no-store" if flask.request.path in PUBLIC_PATHS else "private")
    return response
