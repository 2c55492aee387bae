"""The deepscope web dashboard: a Dash multi-page app over one run store.

Run it::

    python -c "from dashboard.app import create_app; create_app('./deepscope-data').run(port=8050)"
    gunicorn -w 4 'dashboard.app:server_from_env()'   # DEEPSCOPE_DATA_DIR, DEEPSCOPE_STORE_URL

Each page is a folder of ``dashboard/views`` (layout and callbacks in ``page.py``, beside its data
access and figures; see docs/layout.md). Dash imports every module there that calls
``dash.register_page`` (``name`` and ``order`` place it in the nav bar), so only ``page.py`` files may
name that function: a second module naming it would be imported twice and register its callbacks twice.
The dashboard never imports torch.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import dash
import plotly.io.json as plotly_json
from dash import Input, Output, dcc, html
from flask_caching import Cache

from backend.store import RunStore

from dashboard import ids
from dashboard.context import EXTENSION, DashboardContext
from dashboard.data import DashboardData
from dashboard.export_route import register_export
from dashboard.health import register_health
from dashboard.login import register_login
from dashboard.views.training.live_route import LiveAnswers, register_live
from dashboard.views.training.live_stream import end_streams_on_sigterm, register_stream
from dashboard.security import SecurityConfig, current_user, install_guard, security_from_env

ROOT = Path(__file__).resolve().parent
PAGES_FOLDER = ROOT / "views"
ASSETS_FOLDER = ROOT.parent / "assets"
DEFAULT_DATA_DIR = "./deepscope-data"
DEFAULT_POLL_MS = 500  # the other pages' timers are multiples of it (2-5 s for snapshots)
# The Training page's one timer. Each tick is one plain GET of the live route per viewer (answered from the
# shared run heads, dashboard/views/training/live_route.py), so a viewer costs ~1.2 requests/s; a point waits
# at most one period plus the heads' age (dashboard/live_heads.py): lag p95 under 1 s (bench/live_update.py).
DEFAULT_TRAINING_POLL_MS = 850
log = logging.getLogger(__name__)


def cache_config(data_dir: str | Path) -> dict:
    """flask-caching settings: a shared folder by default, Redis when the environment says so.

    ``DEEPSCOPE_CACHE_TYPE`` (e.g. ``RedisCache``) and ``DEEPSCOPE_REDIS_URL`` let
    docker-compose point every gunicorn worker at one Redis. Both use the backends of
    :mod:`dashboard.safe_cache`, which never unpickle: whoever can write ``<data>/cache`` or
    Redis must not run code in the dashboard. Other persistent types are refused.

    >>> cache_config("/data")["CACHE_TYPE"]    # doctest: +SKIP
    'dashboard.safe_cache.SafeFileSystemCache'
    """
    requested = os.environ.get("DEEPSCOPE_CACHE_TYPE", "FileSystemCache")
    safe = {"filesystemcache": "SafeFileSystemCache", "filesystem": "SafeFileSystemCache",
            "rediscache": "SafeRedisCache", "redis": "SafeRedisCache"}
    name = safe.get(requested.lower().rsplit(".", 1)[-1].removeprefix("safe"))  # also takes full import paths
    if name is None and requested not in ("SimpleCache", "NullCache"):  # in-process only: no one else writes them
        raise ValueError(f"DEEPSCOPE_CACHE_TYPE={requested!r}: use FileSystemCache or RedisCache (stored "
                         "without pickle), or SimpleCache / NullCache")
    config = {"CACHE_TYPE": f"dashboard.safe_cache.{name}" if name else requested, "CACHE_DEFAULT_TIMEOUT": 60}
    if name == "SafeFileSystemCache":
        config.update(CACHE_DIR=str(Path(data_dir).expanduser() / "cache"), CACHE_THRESHOLD=2000)
    if name == "SafeRedisCache":
        config["CACHE_REDIS_URL"] = os.environ.get("DEEPSCOPE_REDIS_URL", "redis://localhost:6379/0")
    return config


def create_app(data_dir: str | Path, store_url: str | None = None, poll_ms: int | None = None, jobs=None,
               data_roots=(), security: SecurityConfig | None = None) -> dash.Dash:
    """Build the dashboard for the store in ``data_dir`` (or at ``store_url``).

    ``jobs`` is a ``backend.jobs.JobManager``; without one the app makes its own the
    first time a run is started or restarted. ``poll_ms`` is the live-update period (default: the Training
    page's one timer every :data:`DEFAULT_TRAINING_POLL_MS`, the other pages' timers multiples of
    :data:`DEFAULT_POLL_MS`; given, both are it).
    ``data_roots``: folders whose files the New run form may name (none by default; uploads always work).
    ``security``: hosts, login and roles (default: no login, loopback names and clients only).

    >>> app = create_app("/tmp/deepscope-data")   # doctest: +SKIP
    >>> app.run(port=8050)                         # doctest: +SKIP
    """
    # Dash answers with plotly's JSON encoder. With orjson installed plotly's "auto" engine picks orjson, whose
    # pass over every list item in Python made a live update 2.5x slower to encode (0.43 vs 0.17 ms measured).
    plotly_json.config.default_engine = "json"
    app = dash.Dash(
        __name__, use_pages=True, pages_folder=str(PAGES_FOLDER), assets_folder=str(ASSETS_FOLDER),
        title="deepscope", update_title=None, suppress_callback_exceptions=True,
        serve_locally=True,  # no CDN: the dashboard must work without network
        compress=True,  # flask-compress: a live update shrinks ~5x, the first 100k-point figure ~4x
        on_error=_callback_failed,
    )
    install_guard(app.server, security or SecurityConfig())
    register_login(app.server)
    cache = Cache(app.server, config=cache_config(data_dir))
    data = DashboardData(RunStore(data_dir, url=store_url), cache)
    roots = tuple(Path(r).expanduser().resolve() for r in data_roots)
    app.server.extensions[EXTENSION] = DashboardContext(data=data, poll_ms=int(poll_ms or DEFAULT_POLL_MS),
                                                        training_poll_ms=int(poll_ms or DEFAULT_TRAINING_POLL_MS),
                                                        _jobs=jobs,
                                                        data_roots=roots)
    app.layout = _shell
    _register_nav_callback(app)
    register_health(app.server)
    register_export(app.server, lambda: data.store)
    answers = LiveAnswers(data)
    register_live(app.server, answers)
    register_stream(app.server, answers)
    finish_dash_setup(app)
    return app


def finish_dash_setup(app: dash.Dash) -> None:
    """Do now what Dash 4.4.1 defers to the first request, so a fresh gunicorn worker is ready before it.

    Dash registers two ``before_request`` hooks that set a "done" flag first and then do the work:
    ``_setup_server`` (moves the ``dash.callback`` callbacks of the pages into the app, walks the assets)
    and the pages router (``enable_pages.<locals>.router_sync``: registers the page-content callback). A
    second thread's first request could see the flag set and the work half done: ``KeyError: Callback
    function not found`` or ``dictionary changed size during iteration`` (measured under gunicorn
    ``--threads 4``). Run here, in a request context (the layout reads the signed-in user), both hooks
    find their flag set later and return at once. Call it after every callback is registered.
    """
    routers = [f for f in app.server.before_request_funcs.get(None, ())
               if getattr(f, "__qualname__", "") == "Dash.enable_pages.<locals>.router_sync"]
    with app.server.test_request_context("/"):
        app._setup_server()  # noqa: SLF001 - Dash has no public way to finish its setup eagerly
        for router in routers:
            router()
    if app.use_pages and not app._got_first_request.get("pages", True):  # noqa: SLF001
        raise RuntimeError("Dash's pages router was not found: check finish_dash_setup against this Dash version")


def _nav_links() -> list:
    pages = sorted(dash.page_registry.values(), key=lambda p: (p.get("order", 99), p["name"]))
    return [dcc.Link(p["name"], href=p["relative_path"], className="nav-link",
                     id=f"nav-{p['module'].split('.')[-2]}")  # views.<folder>.page: nav-lab
            for p in pages if p.get("nav", True)]


def _callback_failed(exc: Exception):
    """Last line of defence: a callback that raised answers "no update" instead of HTTP 500.

    Callbacks check their inputs themselves (``dashboard/inputs.py``); reaching this is a bug, so
    it is logged with its traceback under a fixed prefix that ``bench/fuzz_http.py`` counts.
    """
    output = dash.callback_context.outputs_list if dash.callback_context else None
    log.warning("callback raised, answered with no update: %r (outputs %s)", exc, output, exc_info=exc)


def _who() -> html.Div | None:
    """Who is signed in, with a sign-out link; for viewers, what they may not do."""
    name, role = current_user()
    if name is None:
        return None
    note = "Viewers look only: starting, stopping and uploading need an operator account." if role == "viewer" \
        else "Operators may start, stop and re-tune runs and upload files."
    return html.Div([html.Span(f"{name} · {role}", title=note), html.A("Sign out", href="/logout")],
                    className="who", id="nav-who")


def _shell() -> html.Div:
    """Nav bar and page container; a function so pages registered later still appear."""
    brand = dcc.Link([html.Span("◉", className="brand-mark"), "deepscope"], href="/", className="brand")
    return html.Div([
        html.Header(html.Nav([brand, html.Div(_nav_links(), id=ids.NAV, className="nav-links"), _who()],
                             className="navbar-inner"), className="navbar"),
        html.Main(dash.page_container, className="page"),
    ])


def _register_nav_callback(app: dash.Dash) -> None:
    """Highlight the nav link of the page being shown."""
    @app.callback(Output(ids.NAV, "children"), Input("_pages_location", "pathname"))
    def _highlight(pathname):
        links = _nav_links()
        for link in links:
            active = link.href == (pathname or "/")
            link.className = "nav-link active" if active else "nav-link"
        return links


def server_from_env():
    """WSGI server for gunicorn, configured by the environment.

    ``DEEPSCOPE_DATA_DIR``, ``DEEPSCOPE_STORE_URL``, ``DEEPSCOPE_POLL_MS``, ``DEEPSCOPE_STREAMS`` (live streams
    per worker: keep it below gunicorn's ``--threads``, see :mod:`dashboard.views.training.live_stream`), ``DEEPSCOPE_STREAM_NICE``
    (the nice value of stream threads, default 5); security as for
    ``deepscope serve``: ``DEEPSCOPE_AUTH=on`` (accounts in ``DEEPSCOPE_AUTH_FILE``),
    ``DEEPSCOPE_ALLOWED_HOSTS`` (comma-separated), ``DEEPSCOPE_COOKIE_SECURE=on`` behind TLS,
    ``DEEPSCOPE_DATA_ROOTS`` (folders, separated by ``os.pathsep``). Without auth it answers loopback
    clients only, whatever gunicorn binds. The app is fully set up when this returns
    (:func:`finish_dash_setup`), so the concurrent first requests of a fresh or respawned worker are safe.
    """
    data_dir = os.environ.get("DEEPSCOPE_DATA_DIR", DEFAULT_DATA_DIR)
    poll_ms = int(os.environ.get("DEEPSCOPE_POLL_MS") or 0) or None
    end_streams_on_sigterm()  # a stopping worker is not held by the pages' open live streams
    return create_app(data_dir, store_url=os.environ.get("DEEPSCOPE_STORE_URL") or None, poll_ms=poll_ms,
                      data_roots=data_roots_from_env(), security=security_from_env()).server


def data_roots_from_env() -> tuple[str, ...]:
    """Folders in ``DEEPSCOPE_DATA_ROOTS`` (separated by ``os.pathsep``); none when unset."""
    return tuple(p for p in os.environ.get("DEEPSCOPE_DATA_ROOTS", "").split(os.pathsep) if p.strip())
