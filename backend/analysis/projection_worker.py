"""The analysis worker: computes the ``projection`` maps of every run's ``embeddings`` snapshots.

A process of its own, never the trainer and never a web request (see ``backend/store/projections.py``
for the records). ``JobManager.start_analysis`` starts one per dashboard; by hand::

    python -m backend.analysis.projection_worker --data-dir ./deepscope-data          # polls every second
    python -m backend.analysis.projection_worker --data-dir ./deepscope-data --once   # one pass, then exit

What it computes, per run (active runs first, then newest first), in this order:

1. the settings a page asked for (:func:`~backend.store.projections.request_projection`), newest first;
2. a default map per source of the newest ``embeddings`` snapshot: 2-D t-SNE, cosine,
   ``n_points = min(5000, n)``, ``perplexity = min(30, (n_points - 1) // 3)`` (sources of fewer than
   :data:`MIN_POINTS` points get none).

For one settings key, :func:`compute` maps each ``embeddings`` snapshot that has the source and no map
with that key yet, by step: the first from scratch (``tsne_fit`` / ``pca``), each next one from the
previous map (``tsne_continue``: the same rows, warm-started, Procrustes-aligned; PCA: computed again,
each axis's sign matched to the previous map's; ``warm_from`` names the map it continued or was
matched to). The rows are ``sample_indices(n, n_points, seed)``,
the same in every snapshot as long as the source keeps its ``n`` rows. **When the source grows** (rows
appended, t-SNE), the previous rows are kept and the new ones, sampled at the previous rate, enter the
previous map through openTSNE's ``transform`` (``add_points``) before the warm start (meta
``added_points``); any other change of ``n`` gets a fresh fit (``warm_from`` null), and later
snapshots warm-start from it. A warm start whose neighbourhoods changed a lot (``neighbourhood_overlap``
below ``RESTRUCTURE_BELOW``, typically early in training) runs the full t-SNE schedule from the previous
map (meta ``restructured``).

Progress is ``projection-status.json`` of the run (:func:`~backend.store.projections.write_status`):
``{"key", "step", "state": "computing" | "idle" | "error", "iteration", "total", "unit": "maps",
"message", "errors": {key: message}}``. ``iteration`` / ``total`` count the maps of the current key
(``backend.analysis.projection`` has no per-iteration hook). ``errors`` keeps the message of every key
that failed with a ``ValueError`` (too few points for the perplexity, NaN rows, all-zero rows under the
cosine metric), so a later key's ``idle`` does not hide it; a key leaves ``errors`` when it computes.
A failed key is not retried until a new request for it arrives (its request time changes); any other
exception (files still being written, a store hiccup) is logged and retried after :data:`RETRY_S`.

Between maps the worker checks whether a page asked for something new (any run's requests file
changed): if so it stops the current key and starts a new pass, so a request never waits behind a long
run's defaults. One worker per data folder (a lock file, ``analysis-worker.lock``); a second exits.
The process runs at nice 10 with one thread (OMP / OpenBLAS / MKL / numba set to 1 before numpy is
imported) and never imports torch.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # numpy-heavy imports stay inside functions: main sets the thread variables first
    from backend.store import RunStore
    from backend.store.projections import ProjectionSettings

log = logging.getLogger("deepscope.analysis")

DEFAULT_POINTS = 5000
MIN_POINTS = 10            # a source with fewer rows gets no default map
DEFAULT_PERPLEXITY = 30
RETRY_S = 60.0             # an unexpected error (not a ValueError) is retried after this
NICE = 10
LOCK_FILE = "analysis-worker.lock"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

Progress = Callable[[dict], None]


class Stopped(Exception):
    """Raised inside :func:`compute` when its ``stop`` callable says so (between maps)."""


# ----------------------------------------------------------------------------------------- what to do

def _request_entries(store: RunStore, run_id: str) -> list[tuple[ProjectionSettings, float | None]]:
    """``(settings, request time)`` asked for on a run, newest first (the requests file, read as is)."""
    from backend.store.projections import REQUESTS_FILE, ProjectionSettings

    try:
        entries = json.loads((store.run_dir(run_id) / REQUESTS_FILE).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for entry in reversed(entries if isinstance(entries, list) else []):
        try:
            t = entry.get("time")
            out.append((ProjectionSettings.model_validate(entry["settings"]),
                        float(t) if t is not None else None))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


def default_settings(n: int, source: str) -> ProjectionSettings | None:
    """The map a source of ``n`` rows gets unasked (None below :data:`MIN_POINTS` rows)."""
    from backend.store.projections import ProjectionSettings

    if n < MIN_POINTS:
        return None
    m = min(DEFAULT_POINTS, n)
    try:
        return ProjectionSettings(source=source, n_points=m, perplexity=min(DEFAULT_PERPLEXITY, (m - 1) // 3))
    except ValueError:  # a source name this version does not know
        return None


def _candidates(store: RunStore, run_id: str, sources_rows: list[dict]) -> list[ProjectionSettings]:
    out: dict[str, ProjectionSettings] = {}
    for s, _ in _request_entries(store, run_id):
        out.setdefault(s.key(), s)
    if sources_rows:
        for name, info in (sources_rows[-1]["meta"].get("sources") or {}).items():
            d = default_settings(int((info or {}).get("n", 0)), name)
            if d is not None:
                out.setdefault(d.key(), d)
    return list(out.values())


def _missing(settings: ProjectionSettings, sources_rows: list[dict], done: dict[str, set[int]]) -> list[dict]:
    have = done.get(settings.key(), set())
    return [r for r in sources_rows
            if settings.source in (r["meta"].get("sources") or {}) and int(r["id"]) not in have]


def _done_ids(store: RunStore, run_id: str) -> dict[str, set[int]]:
    from backend.store.projections import PROJECTION_KIND

    done: dict[str, set[int]] = {}
    for r in store.list_snapshots(run_id, PROJECTION_KIND):
        sid = r["meta"].get("source_id")
        if sid is not None:
            done.setdefault(r["meta"].get("key"), set()).add(int(sid))
    return done


def pending(store: RunStore, run_id: str) -> list[ProjectionSettings]:
    """Settings with at least one snapshot still to map on this run: requested (newest first), then defaults.

    Defaults: one per source of the newest ``embeddings`` snapshot (see :func:`default_settings`); a
    default that equals a requested key appears once, in the requested place.
    """
    from backend.store.projections import SOURCE_KIND

    rows = store.list_snapshots(run_id, SOURCE_KIND)
    done = _done_ids(store, run_id)
    return [s for s in _candidates(store, run_id, rows) if _missing(s, rows, done)]


# ----------------------------------------------------------------------------------------- computing

def _status(store: RunStore, run_id: str, progress: Progress | None, *, key: str, error: str | None = None,
            clear_error: bool = False, **status: Any) -> None:
    from backend.store.projections import read_status, write_status

    errors = dict(read_status(store, run_id).get("errors") or {})
    if error is not None:
        errors[key] = error
    elif clear_error:
        errors.pop(key, None)
    write_status(store, run_id, key=key, errors=errors, **status)
    if progress is not None:
        progress({"key": key, "errors": errors, **status})


def _align_signs(coords, reference):
    """Flip each PCA axis whose direction disagrees with the previous map's (same rows)."""
    import numpy as np

    dots = (np.asarray(coords, dtype=np.float64) * np.asarray(reference, dtype=np.float64)).sum(axis=0)
    return (coords * np.where(dots < 0, -1.0, 1.0)).astype(np.float32)


RESTRUCTURE_BELOW = 0.7  # neighbourhood overlap under which a warm start runs the full schedule


def _grown_rows(store: RunStore, run_id: str, projection_row: dict, source: str, old_rows, n: int, settings):
    """When the source grew since the previous map (rows appended, e.g. more probe inputs): the previous
    rows, then the new rows sampled at the previous rate; and the new ones. None otherwise."""
    import numpy as np

    from backend.store.projections import SOURCE_KIND

    source_id = (projection_row.get("meta") or {}).get("source_id")
    n_old = next((int(r["meta"]["sources"][source]["n"]) for r in store.list_snapshots(run_id, SOURCE_KIND)
                  if int(r["id"]) == source_id and source in (r["meta"].get("sources") or {})), None)
    if n_old is None or n <= n_old or int(np.max(old_rows)) >= n_old:
        return None
    rate = min(1.0, settings.n_points / n_old)
    fresh = np.arange(n_old, n)
    fresh = fresh[np.random.default_rng(settings.seed).random(len(fresh)) < rate]
    if not len(fresh):
        return None
    return np.concatenate([np.asarray(old_rows, dtype=np.int64), fresh]), fresh


def _source_points(store: RunStore, run_id: str, projection_row: dict, source: str, rows, known):
    """The points a projection was drawn from (``rows`` of its source snapshot), or ``known``."""
    if known is not None:
        return known
    from backend.store.projections import SOURCE_KIND, SourceSnapshot

    source_id = (projection_row.get("meta") or {}).get("source_id")
    for row in store.list_snapshots(run_id, SOURCE_KIND):
        if int(row["id"]) == source_id:
            return SourceSnapshot(store, row).points(source)[rows]
    return None


def compute(store: RunStore, run_id: str, settings: ProjectionSettings, progress: Progress | None = None,
            stop: Callable[[], bool] | None = None) -> int:
    """Write the missing maps with ``settings`` of a run, by step; returns how many were written.

    Each snapshot that has ``settings.source`` and no projection row with ``settings.key()`` gets one:
    the first from scratch, each next one warm-started from the map before it (see the module
    docstring). Status goes to the run's ``projection-status.json`` (and to ``progress``, called with
    each status dict): ``computing`` before each map, ``idle`` at the end, ``error`` with the message
    when the maths refuses the data (``ValueError``, re-raised after the status is written; the maps
    written before it stay). ``stop`` is asked between maps; when it returns True the key stops
    (status ``idle``, the maps so far kept) and :class:`Stopped` is raised. Other exceptions
    (e.g. ``SnapshotUnavailable`` while a snapshot's files are still incomplete) propagate as they are.
    """
    import numpy as np

    from backend.analysis.projection import (TSNEResult, add_points, neighbourhood_overlap, pca, sample_indices,
                                             tsne_continue, tsne_fit)
    from backend.store.projections import (SOURCE_KIND, SourceSnapshot, load_projection, projections,
                                           write_projection)

    key, source = settings.key(), settings.source
    rows_all = [r for r in store.list_snapshots(run_id, SOURCE_KIND) if source in (r["meta"].get("sources") or {})]
    existing = {int(r["meta"]["source_id"]): r for r in projections(store, run_id, key)
                if r["meta"].get("source_id") is not None}
    todo = [r for r in rows_all if int(r["id"]) not in existing]
    if not todo:
        return 0
    what = "PCA" if settings.method == "pca" else "t-SNE"
    total, written, step = len(todo), 0, int(todo[0]["step"])
    prev_row: dict | None = None     # the projection row before the current snapshot
    prev: tuple[Any, Any] | None = None   # its (coords, rows), loaded when needed
    prev_x = None                          # the points it was drawn from (its rows), loaded when needed
    try:
        for src_row in rows_all:
            if int(src_row["id"]) in existing:
                prev_row, prev, prev_x = existing[int(src_row["id"])], None, None
                continue
            if stop is not None and stop():
                _status(store, run_id, progress, key=key, step=step, state="idle", iteration=written, total=total,
                        unit="maps", message=f"stopped after {written} of {total} maps for a newer request")
                raise Stopped(key)
            step = int(src_row["step"])
            _status(store, run_id, progress, key=key, step=step, state="computing", iteration=written, total=total,
                    unit="maps", message=f"{what} of {source} at step {step} ({written + 1} of {total})")
            t0 = time.perf_counter()
            x = SourceSnapshot(store, src_row).points(source)
            rows = sample_indices(len(x), settings.n_points, settings.seed)
            if prev_row is not None and prev is None:
                prev = load_projection(store, prev_row)
            added = None  # rows new to this snapshot (the source grew): placed by openTSNE's transform
            if prev is not None and settings.method == "tsne" and not np.array_equal(prev[1], rows):
                grown = _grown_rows(store, run_id, prev_row, source, prev[1], len(x), settings)
                if grown is not None:
                    rows, added = grown
            xs = x[rows]
            same_rows = prev is not None and (np.array_equal(prev[1], rows) or added is not None)
            warm_from = int(prev_row["id"]) if same_rows else None
            if settings.method == "pca":
                coords, explained = pca(xs, settings.dims)
                if same_rows:
                    coords = _align_signs(coords, prev[0])
                extra = {"explained": [float(v) for v in explained]}
            else:
                if same_rows:
                    # neighbourhoods that changed a lot (vectors leaving their random start) need the
                    # full schedule from the previous map, a small step only a short continuation
                    old_rows = prev[1]
                    prev_x = _source_points(store, run_id, prev_row, source, old_rows, prev_x)
                    start = prev[0]
                    if added is not None:  # new points enter the previous map through openTSNE's transform
                        placed = add_points(TSNEResult(coords=prev[0], params={
                            "perplexity": settings.perplexity, "metric": settings.metric, "seed": settings.seed,
                            "n_jobs": 1, "dims": settings.dims}, kl_divergence=float("nan"), seconds=0.0),
                            prev_x, x[added])
                        start = np.concatenate([prev[0], placed])
                    overlap = neighbourhood_overlap(prev_x, xs[:len(old_rows)], metric=settings.metric) \
                        if prev_x is not None else 1.0
                    res = tsne_continue(xs, start, perplexity=settings.perplexity, metric=settings.metric,
                                        seed=settings.seed, n_jobs=1, restructure=overlap < RESTRUCTURE_BELOW)
                    extra_meta = {"neighbourhood_overlap": round(float(overlap), 3),
                                  "restructured": overlap < RESTRUCTURE_BELOW,
                                  "added_points": 0 if added is None else int(len(added))}
                else:
                    res = tsne_fit(xs, dims=settings.dims, perplexity=settings.perplexity, metric=settings.metric,
                                   seed=settings.seed, n_jobs=1)
                coords, extra = res.coords, {"kl_divergence": float(res.kl_divergence)}
                if same_rows:
                    extra.update(extra_meta)
            seconds = time.perf_counter() - t0
            new_id = write_projection(store, run_id, step, settings, coords, rows,
                                      {"source_id": int(src_row["id"]), "warm_from": warm_from,
                                       "seconds": round(seconds, 3), **extra})
            written += 1
            log.info("run %s: %s at step %d (%d points, %s) in %.1f s", run_id, key, step, len(rows),
                     "warm" if warm_from is not None else "fresh", seconds)
            prev_row = {"id": new_id, "step": step, "meta": {"source_id": int(src_row["id"])}}
            prev, prev_x = (coords, rows), xs
    except ValueError as exc:
        _status(store, run_id, progress, key=key, step=step, state="error", iteration=written, total=total,
                unit="maps", message=str(exc), error=str(exc))
        raise
    except (Stopped, Exception):
        raise
    except BaseException:  # SIGTERM / Ctrl-C in the middle of a map: do not leave "computing" behind
        try:
            _status(store, run_id, progress, key=key, step=step, state="idle", iteration=written, total=total,
                    unit="maps", message="the analysis worker stopped")
        except Exception:
            pass
        raise
    _status(store, run_id, progress, key=key, step=step, state="idle", iteration=written, total=total, unit="maps",
            message=f"{written} map(s) written", clear_error=True)
    return written


# ----------------------------------------------------------------------------------------- the loop

@dataclass
class WorkerState:
    """What a worker remembers between passes (in memory only)."""

    failed: set[tuple[str, str, float | None]] = field(default_factory=set)  # (run, key, request time)
    retry_at: dict[tuple[str, str], float] = field(default_factory=dict)      # (run, key) -> time
    settled: dict[str, tuple] = field(default_factory=dict)                   # run -> signature with nothing to do
    should_stop: Callable[[], bool] = lambda: False                            # e.g. the parent process is gone


_STATES: dict[str, WorkerState] = {}


def _requests_stamp(store: RunStore) -> tuple:
    """Changes whenever a page asks any run for a map (the requests files' mtimes)."""
    from backend.store.projections import REQUESTS_FILE

    stamps = []
    for path in (store.data_dir / "runs").glob(f"*/{REQUESTS_FILE}"):
        try:
            stamps.append((path.parent.name, path.stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(sorted(stamps))


def _signature(store: RunStore, run_id: str) -> tuple:
    from backend.store.projections import REQUESTS_FILE, SOURCE_KIND

    rows = store.list_snapshots(run_id, SOURCE_KIND)
    try:
        mtime = (store.run_dir(run_id) / REQUESTS_FILE).stat().st_mtime_ns
    except OSError:
        mtime = None
    return (len(rows), int(rows[-1]["id"]) if rows else None, mtime)


class _NewRequest(Exception):
    pass


def run_once(store: RunStore, state: WorkerState | None = None) -> int:
    """One pass over all runs (active first, then newest first); returns the number of maps written.

    ``state`` (default: one per store URL in this process) remembers failed keys and runs with
    nothing left to do. A pass ends early, to start over with the new priorities, when a page asks
    for a map meanwhile; an exception on one run or key is logged and the pass goes on.
    """
    from backend.store import ACTIVE_STATUSES
    from backend.store.projections import SOURCE_KIND

    state = state if state is not None else _STATES.setdefault(store.url, WorkerState())
    runs = store.list_runs()  # newest first
    runs.sort(key=lambda r: r["status"] not in ACTIVE_STATUSES)
    stamp = _requests_stamp(store)
    interrupt = lambda: state.should_stop() or _requests_stamp(store) != stamp  # noqa: E731
    written = 0
    for run in runs:
        run_id = run["id"]
        if state.should_stop():
            break
        try:
            sig = _signature(store, run_id)
            if state.settled.get(run_id) == sig:
                continue
            times = {s.key(): t for s, t in _request_entries(store, run_id)}
            rows = store.list_snapshots(run_id, SOURCE_KIND)
            done = _done_ids(store, run_id)
            clean = True
            for settings in _candidates(store, run_id, rows):
                key = settings.key()
                if not _missing(settings, rows, done):
                    continue
                if (run_id, key, times.get(key)) in state.failed:
                    continue
                if state.retry_at.get((run_id, key), 0) > time.time():
                    clean = False
                    continue
                try:
                    written += compute(store, run_id, settings, stop=interrupt)
                    state.retry_at.pop((run_id, key), None)
                except Stopped:
                    raise _NewRequest from None
                except ValueError as exc:
                    log.warning("run %s: %s cannot be computed: %s", run_id, key, exc)
                    state.failed.add((run_id, key, times.get(key)))
                except Exception:
                    log.exception("run %s: %s failed; retrying in %.0f s", run_id, key, RETRY_S)
                    state.retry_at[(run_id, key)] = time.time() + RETRY_S
                    clean = False
            if clean and _signature(store, run_id) == sig:
                state.settled[run_id] = sig
        except _NewRequest:
            break
        except Exception:
            log.exception("run %s: skipped in this pass", run_id)
    return written


# ----------------------------------------------------------------------------------------- the process

def _renice(target: int = NICE) -> None:
    """Lower this process's priority to nice ``target`` (no lower if it already runs nicer)."""
    try:
        now = os.getpriority(os.PRIO_PROCESS, 0)
        if now < target:
            os.nice(target - now)
    except (AttributeError, OSError):
        pass


def _lock(data_dir) -> Any:
    """An exclusive lock on the data folder's worker lock file, or None when another worker holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return object()
    fh = open(os.path.join(data_dir, LOCK_FILE), "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend.analysis.projection_worker",
                                description="Compute the projection maps of every run's embeddings snapshots.")
    p.add_argument("--data-dir", default=os.environ.get("DEEPSCOPE_DATA_DIR", "./deepscope-data"))
    p.add_argument("--store-url", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between passes when there was nothing to do")
    p.add_argument("--once", action="store_true", help="one pass over all runs, then exit")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process (the dashboard that started the worker) is gone")
    return p


def main(argv: list[str] | None = None) -> int:
    for var in THREAD_VARS:  # before numpy / scipy / openTSNE load their thread pools
        os.environ[var] = "1"
    args = build_parser().parse_args(argv)
    _renice(NICE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def terminate(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        from backend.store import RunStore

        store = RunStore(args.data_dir, url=args.store_url)
        lock = _lock(store.data_dir)
        if lock is None:
            log.info("another analysis worker serves %s; exiting", store.data_dir)
            return 0
        state = _STATES.setdefault(store.url, WorkerState())
        if args.parent_pid:
            state.should_stop = lambda: os.getppid() != args.parent_pid
        log.info("analysis worker on %s (pid %d, nice %d)", store.url, os.getpid(), os.getpriority(os.PRIO_PROCESS, 0))
        while True:
            try:
                written = run_once(store, state)
            except Exception:  # the store itself failed (e.g. the database is briefly unavailable)
                log.exception("pass failed; trying again")
                written = 0
            if args.once:
                return 0
            if state.should_stop():
                log.info("the dashboard that started this worker is gone; exiting")
                return 0
            if not written:
                time.sleep(args.poll)
    except KeyboardInterrupt:
        log.info("analysis worker stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
