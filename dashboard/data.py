"""The dashboard's one reader of the run store.

Slow-changing reads (run list, spec summaries, the downsampled series a figure starts
from) go through flask-caching, shared by every dashboard worker. Live updates ask
only for rows after a cursor: that query is cheap and never cached.

Example::

    data = DashboardData(RunStore("./deepscope-data"), cache)
    series, cursor = data.initial_series(run_id)      # {name: {"x": [...], "y": [...]}}
    new, cursor = data.scalars_since(run_id, cursor)  # only rows logged after cursor
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Callable

import numpy as np

from backend.spec import estimate, parse_spec
from backend.store import FINAL_STATUSES, RunStore

from dashboard.series import downsample_indices, to_plot_list
from dashboard.views.hidden_states.data import HiddenStates
from dashboard.views.kernels.data import KernelData
from dashboard.live_heads import RunHeads
from dashboard.views.projections.data import ProjectionData

MAX_POINTS = 2000        # per series in a figure's first draw
LIVE_ROW_LIMIT = 50_000  # rows per run per poll; the cursor picks up the rest next time
RUN_LIST_TTL = 1         # seconds: statuses must look live
SERIES_TTL_LIVE = 5      # a stale start is harmless, the cursor streams what it missed
SERIES_TTL_FINAL = 600
SUMMARY_TTL = 60
CACHE_RETRY_S = 5.0     # after a cache error, the store is read directly this long
CACHE_WARN_S = 60.0     # at most one warning about a failing cache per this many seconds
log = logging.getLogger(__name__)


class DashboardData:
    """Cached, read-mostly access to one store (plus the job manager's controls elsewhere)."""

    def __init__(self, store: RunStore, cache: Any = None, max_points: int = MAX_POINTS):
        self.store = store
        self.cache = cache
        self.max_points = max_points
        # Cache keys name the store, so several stores may share one Redis.
        self._prefix = "ds:" + hashlib.sha1(store.url.encode()).hexdigest()[:10]
        self.hidden = HiddenStates(store, self._cached)
        self.kernels = KernelData(store, self._cached)
        self.projections = ProjectionData(store, self._cached)
        self.heads = RunHeads(self)

    # When the cache fails (Redis down, a full disk), reads go straight to the store for CACHE_RETRY_S
    # before the cache is tried again, and the log says so at most once per CACHE_WARN_S.
    _cache_down_until = 0.0
    _cache_warned_at: float | None = None

    def _cached(self, key: str, ttl: int, compute: Callable[[], Any]) -> Any:
        """``compute()``'s value, from the cache when it holds one; a cache that fails is bypassed, never
        an error (the store is the truth, the cache only spares it reads)."""
        value = self.cache_get(key)
        if value is None:
            value = compute()
            self.cache_set(key, value, ttl)
        return value

    def cache_get(self, key: str) -> Any:
        """The cached value under ``key`` (this store's), or None: missing, or the cache is failing."""
        if self.cache is None or time.monotonic() < self._cache_down_until:
            return None
        try:
            value = self.cache.get(f"{self._prefix}:{key}")
        except Exception as exc:  # noqa: BLE001 - any backend error (redis ConnectionError, OSError, ...)
            self._cache_failed(exc)
            return None
        if self._cache_warned_at is not None:
            self._cache_warned_at = None
            log.warning("the dashboard cache answers again")
        return value

    def cache_set(self, key: str, value: Any, ttl: int) -> None:
        """Cache ``value`` under ``key`` for ``ttl`` seconds; a failing cache is noted, never an error."""
        if self.cache is None or time.monotonic() < self._cache_down_until:
            return
        try:
            self.cache.set(f"{self._prefix}:{key}", value, timeout=ttl)
        except Exception as exc:  # noqa: BLE001
            self._cache_failed(exc)

    def cache_add(self, key: str, value: Any, ttl: int) -> bool:
        """Cache ``value`` under ``key`` unless something is there: True when this call set it (a claim
        between dashboard workers: atomic on Redis). False when it was there, or without a working cache."""
        if self.cache is None or time.monotonic() < self._cache_down_until:
            return False
        try:
            return bool(self.cache.add(f"{self._prefix}:{key}", value, timeout=ttl))
        except Exception as exc:  # noqa: BLE001
            self._cache_failed(exc)
            return False

    def _cache_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._cache_down_until = now + CACHE_RETRY_S
        if self._cache_warned_at is None or now - self._cache_warned_at >= CACHE_WARN_S:
            self._cache_warned_at = now
            log.warning("the dashboard cache failed (%s: %s); reading the store directly, trying the cache "
                        "again every %.0f s", type(exc).__name__, exc, CACHE_RETRY_S)

    def list_runs(self) -> list[dict]:
        """All runs, newest first (cached for a second)."""
        return self._cached("runs", RUN_LIST_TTL, self.store.list_runs)

    def get_run(self, run_id: str) -> dict | None:
        """One run's row, fresh from the store (status, step and error change live)."""
        return self.store.get_run(run_id)

    def newest_run_id(self) -> str | None:
        """Id of the most recently created run, or None when the store is empty."""
        runs = self.list_runs()
        return runs[0]["id"] if runs else None

    def run_summary(self, run: dict) -> dict:
        """Spec summary of a run (task, family, sizes, optimizer, lr, params), cached per run."""
        lr = (run.get("spec") or {}).get("lr")  # changed from the Training page: a new summary
        return self._cached(f"summary:{run['id']}:{lr}", SUMMARY_TTL,
                            lambda: spec_summary(run.get("task", ""), run.get("spec") or {}))

    def initial_series(self, run_id: str) -> tuple[dict[str, dict[str, list]], int]:
        """Every series of a run, downsampled, as lists ``{name: {"x", "y"}}``, and its cursor."""
        run = self.get_run(run_id)
        ttl = SERIES_TTL_FINAL if run and run["status"] in FINAL_STATUSES else SERIES_TTL_LIVE
        attempt = int((run or {}).get("attempt") or 0)  # a resume deleted points: never serve the old ones
        return self._cached(f"series:{run_id}:{attempt}:{self.max_points}", ttl,
                            lambda: self._load_series(run_id))

    def _load_series(self, run_id: str) -> tuple[dict[str, dict[str, list]], int]:
        raw, cursor = self.store.scalar_series(run_id)
        return {name: downsampled(s["step"], s["value"], self.max_points) for name, s in raw.items()}, cursor

    def scalars_since(self, run_id: str, cursor: int) -> tuple[dict[str, dict[str, list]], int]:
        """Rows logged after ``cursor``, grouped by name in log order, and the new cursor."""
        rows, new_cursor = self.store.scalars_after(run_id, cursor, limit=LIVE_ROW_LIMIT)
        return group_rows(rows), new_cursor


def downsampled(steps: np.ndarray, values: np.ndarray, max_points: int) -> dict[str, list]:
    """A series sorted by step and reduced to ~``max_points`` with MinMax-LTTB, as lists."""
    order = np.argsort(steps, kind="stable")  # a resumed run may log steps again
    x, y = np.asarray(steps)[order], np.asarray(values, dtype=np.float64)[order]
    idx = downsample_indices(x, y, max_points)
    return {"x": np.asarray(x)[idx].tolist(), "y": to_plot_list(y[idx])}


def group_rows(rows: list[tuple]) -> dict[str, dict[str, list]]:
    """Store rows ``(id, name, step, wall_time, value)`` as ``{name: {"x": steps, "y": values}}``."""
    out: dict[str, dict[str, list]] = {}
    for _id, name, step, _wall, value in rows:
        s = out.setdefault(name, {"x": [], "y": []})
        s["x"].append(int(step))
        s["y"].append(value)
    for s in out.values():
        s["y"] = to_plot_list(s["y"])  # once per series: per value it was most of a live update's time
    return out


def spec_summary(task: str, spec: dict) -> dict:
    """Readable facts about a spec; tolerates specs from users' own scripts that are not RunSpecs."""
    parsed, _errors = parse_spec({"task": task, **{k: v for k, v in spec.items() if k != "task"}})
    model = spec.get("model") or {}
    family = model.get("family", "?")
    summary = {"task": task, "family": family, "sizes": _sizes(family, model),
               # unknown facts are left out (a client run's header said "optimizer ?" and "params -")
               "optimizer": spec.get("optimizer"), "lr": spec.get("lr"),
               "batch_size": spec.get("batch_size"), "steps": spec.get("steps"),
               "params": model.get("params") if isinstance(model.get("params"), int) else None}
    if parsed is not None:
        cost = estimate(parsed)
        summary.update(params=cost.params, memory=cost.describe())
    return summary


def _sizes(family: str, model: dict) -> str:
    if family == "sparse-ae":
        k = (model.get("kernel_sizes") or ["?"])[0]
        return (f"{(model.get('channels') or ['?'])[0]} filters {k}x{k}, top {model.get('top_k', '?')}, "
                f"input noise {model.get('noise', 0)}")
    if family == "skipgram":
        return f"word vectors of {model.get('embedding_dim', '?')} dimensions"
    if family == "textcnn":
        widths = ",".join(str(k) for k in model.get("kernel_sizes", []))
        return (f"{(model.get('channels') or ['?'])[0]} filters of each width {widths}, "
                f"embedding {model.get('embedding_dim', '?')}")
    if family == "cnn":
        chans = ",".join(str(c) for c in model.get("channels", []))
        kern = ",".join(str(k) for k in model.get("kernel_sizes", []))
        return f"channels {chans}, kernels {kern}, {model.get('pooling', 'max')} pool"
    if model.get("hidden_size") is None:  # a model of a user's own script: its class, if known
        return str(model.get("class") or "")
    layers, hidden = model.get("layers", 1), model.get("hidden_size")
    text = f"{layers} x {hidden} units"
    if family in ("rnn", "gru", "lstm"):
        text += f", embedding {model.get('embedding_dim', '?')}"
        text += ", bidirectional" if model.get("bidirectional") else ""
    return text
