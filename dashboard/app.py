"""The deepscope web dashboard: a Dash multi-page app over one run store.

Run it::

    python -c "from dashboard.app import create_app; create_app('./deepscope-data').run(port=8050)"
    gunicorn -w 4 'dashboard.app:server_from_env()'   # DEEPSCOPE_DATA_DIR, DEEPSCOPE_STORE_URL

Pages live in ``dashboard/pages``; each registers itself with ``dash.register_page``
(``name`` and ``order`` place it in the nav bar), so adding a page is adding one file.
The dashboard never imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path

import dash
from dash import Input, Output, dcc, html
from flask_caching import Cache

from backend.store import RunStore

from . import ids
from .context import EXTENSION, DashboardContext
from .data import DashboardData

ROOT = Path(__file__).resolve().parent
PAGES_FOLDER = ROOT / "pages"
ASSETS_FOLDER = ROOT.parent / "assets"
DEFAULT_DATA_DIR = "./deepscope-data"


def cache_config(data_dir: str | Path) -> dict:
    """flask-caching settings: a shared folder by default, Redis when the environment says so.

    ``DEEPSCOPE_CACHE_TYPE`` (e.g. ``RedisCache``) and ``DEEPSCOPE_REDIS_URL`` let
    docker-compose point every gunicorn worker at one Redis.
    """
    cache_type = os.environ.get("DEEPSCOPE_CACHE_TYPE", "FileSystemCache")
    config = {"CACHE_TYPE": cache_type, "CACHE_DEFAULT_TIMEOUT": 60}
    if cache_type.lower() in ("filesystemcache", "filesystem"):
        config.update(CACHE_DIR=str(Path(data_dir).expanduser() / "cache"), CACHE_THRESHOLD=2000)
    if "redis" in cache_type.lower():
        config["CACHE_REDIS_URL"] = os.environ.get("DEEPSCOPE_REDIS_URL", "redis://localhost:6379/0")
    return config


def create_app(data_dir: str | Path, store_url: str | None = None, poll_ms: int = 500, jobs=None) -> dash.Dash:
    """Build the dashboard for the store in ``data_dir`` (or at ``store_url``).

    ``jobs`` is a ``backend.jobs.JobManager``; without one the app makes its own the
    first time a run is started or restarted. ``poll_ms`` is the live-update period.

    >>> app = create_app("/tmp/deepscope-data")   # doctest: +SKIP
    >>> app.run(port=8050)                         # doctest: +SKIP
    """
    app = dash.Dash(
        __name__, use_pages=True, pages_folder=str(PAGES_FOLDER), assets_folder=str(ASSETS_FOLDER),
        title="deepscope", update_title=None, suppress_callback_exceptions=True,
        serve_locally=True,  # no CDN: the dashboard must work without network
        compress=True,  # flask-compress: a live update shrinks ~5x, the first 100k-point figure ~4x
    )
    cache = Cache(app.server, config=cache_config(data_dir))
    data = DashboardData(RunStore(data_dir, url=store_url), cache)
    app.server.extensions[EXTENSION] = DashboardContext(data=data, poll_ms=int(poll_ms), _jobs=jobs)
    app.layout = _shell
    _register_nav_callback(app)
    return app


def _nav_links() -> list:
    pages = sorted(dash.page_registry.values(), key=lambda p: (p.get("order", 99), p["name"]))
    return [dcc.Link(p["name"], href=p["relative_path"], className="nav-link", id=f"nav-{p['module']}")
            for p in pages if p.get("nav", True)]


def _shell() -> html.Div:
    """Nav bar and page container; a function so pages registered later still appear."""
    brand = dcc.Link([html.Span("◉", className="brand-mark"), "deepscope"], href="/", className="brand")
    return html.Div([
        html.Header(html.Nav([brand, html.Div(_nav_links(), id=ids.NAV, className="nav-links")],
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
    """WSGI server for gunicorn, configured by ``DEEPSCOPE_DATA_DIR`` and ``DEEPSCOPE_STORE_URL``."""
    data_dir = os.environ.get("DEEPSCOPE_DATA_DIR", DEFAULT_DATA_DIR)
    poll_ms = int(os.environ.get("DEEPSCOPE_POLL_MS", "500"))
    return create_app(data_dir, store_url=os.environ.get("DEEPSCOPE_STORE_URL") or None, poll_ms=poll_ms).server
