"""What the page says about the analysis worker and the maps of one projection setting.

Reads the worker's status file and the run's requests file (``backend.store.projections``) and
turns them into ``(kind, message)`` for an alert: the worker's progress or error for these
settings, that it is busy with another map, or (no status for a while after the request) how the
worker is started. :meth:`dashboard.views.projections.data.ProjectionData.progress` calls :func:`progress`.

Example::

    progress(store, run_id, settings.key(), n_maps=3, n_snapshots=5)
    # while the worker computes that key: ("info", "computing step 400: iteration 120 of 500 · 3 of 5 maps ready")
    status_line({"step": 400, "iteration": 120, "total": 500}, 3, 5)   # the message of that case
"""
from __future__ import annotations

import json
import time

from backend.store import RunStore
from backend.store.projections import REQUESTS_FILE, read_status

WAIT_S = 15.0           # no worker status this long after a request: say how the worker is started
BUSY_STATES = ("computing", "running", "fitting", "started", "queued", "loading")
ERROR_STATES = ("error", "failed")


def request_time(store: RunStore, run_id: str, key: str) -> float | None:
    """When settings ``key`` were last asked for on this run (from the requests file), or None."""
    try:
        entries = json.loads((store.run_dir(run_id) / REQUESTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    times = [e.get("time") for e in entries if isinstance(e, dict) and e.get("key") == key]
    return float(times[-1]) if times and isinstance(times[-1], (int, float)) else None


def progress(store: RunStore, run_id: str, key: str, n_maps: int, n_snapshots: int,
             now: float | None = None) -> tuple[str, str] | None:
    """``(kind, message)`` about the worker and the maps of ``key``, or None when there is nothing to say.

    The worker's status for this key wins (its progress, or its error message); when maps are
    missing and no status has come for a while after the request, the message says how the
    worker is started."""
    now = time.time() if now is None else now
    status = read_status(store, run_id) or {}
    state = str(status.get("state", "")).lower()
    failed = (status.get("errors") or {}).get(key) if isinstance(status.get("errors"), dict) else None
    if status.get("key") == key and state in ERROR_STATES or failed:
        msg = failed or status.get("message") or status.get("error") or "the analysis worker failed on this map"
        return "danger", f"The analysis worker could not compute this map: {msg}"
    if n_maps >= n_snapshots and n_snapshots:
        return None
    if status.get("key") == key and state in BUSY_STATES:
        return "info", status_line(status, n_maps, n_snapshots)
    asked = request_time(store, run_id, key)
    status_time = status.get("time") if isinstance(status.get("time"), (int, float)) else None
    if status.get("key") and status.get("key") != key and state in BUSY_STATES and \
            (status_time is None or now - status_time < 10 * WAIT_S):
        return "info", (f"The analysis worker is busy with another map ({status['key']}, step "
                        f"{_int(status.get('step'))}); this one is queued ({n_maps} of {n_snapshots} ready).")
    if asked is not None and now - asked > WAIT_S and (status_time is None or status_time < asked):
        return "warning", ("Waiting for the analysis worker; it runs with `deepscope serve` "
                           f"({n_maps} of {n_snapshots} maps ready).")
    if asked is None:
        return "info", f"No map with these settings yet: {n_maps} of {n_snapshots} snapshots have one."
    return "info", f"Asked the analysis worker for this map: {n_maps} of {n_snapshots} snapshots ready."


def status_line(status: dict, n_maps: int, n_snapshots: int) -> str:
    """``computing step 400: iteration 120 of 500`` from a worker status."""
    parts = [f"computing step {_int(status.get('step'))}"]
    if status.get("unit") == "maps" and status.get("iteration") is not None:  # the worker counts whole maps
        done = status.get("iteration")
        line = (f"drawing the map of step {_int(status.get('step'))} ({_int((done or 0) + 1)} of "
                f"{_int(status.get('total'))} in this pass)")
        return f"{line} · {n_maps} of {n_snapshots} maps ready"
    if status.get("iteration") is not None:
        it = f"iteration {_int(status.get('iteration'))}"
        if status.get("total") is not None:
            it += f" of {_int(status.get('total'))}"
        parts.append(it)
    line = ": ".join(parts)
    if status.get("message"):
        line += f" ({status['message']})"
    return f"{line} · {n_maps} of {n_snapshots} maps ready"


def _int(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "?"
