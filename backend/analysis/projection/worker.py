"""The analysis worker: computes the ``projection`` maps of every run's ``embeddings`` snapshots.

A process of its own, never the trainer and never a web request (see ``backend/store/projections.py``
for the records). ``JobManager.start_analysis`` starts one per dashboard; by hand::

    python -m backend.analysis.projection.worker --data-dir ./deepscope-data          # polls every second
    python -m backend.analysis.projection.worker --data-dir ./deepscope-data --once   # one pass, then exit

This module is the bookkeeping: which settings keys each run still needs, in which order, what failed
and when to retry, and the process around it. The maps of one key are computed by
:func:`~backend.analysis.projection.compute.compute` (warm starts, growing sources, restructuring and
the ``projection-status.json`` it writes are described there).

What it computes, per run (active runs first, then newest first), in this order:

1. the settings a page asked for (:func:`~backend.store.projections.request_projection`), newest first;
2. a default map per source of the newest ``embeddings`` snapshot: 2-D t-SNE, cosine,
   ``n_points = min(5000, n)``, ``perplexity = min(30, (n_points - 1) // 3)`` (sources of fewer than
   :data:`MIN_POINTS` points get none).

A key that failed with a ``ValueError`` (its message stays in the status file's ``errors``) is not
retried until a new request for it arrives (its request time changes); any other exception (files
still being written, a store hiccup) is logged and retried after :data:`RETRY_S`.

Between maps the worker checks whether a page asked for something new (any run's requests file
changed): if so it stops the current key and starts a new pass, so a request never waits behind a long
run's defaults. One worker per store works at a time: it holds the store's ``analysis`` lease
(:class:`AnalysisLease`, renewed every :data:`LEASE_RENEW_S`, expiring after :data:`LEASE_TTL_S`); every
other worker (one per dashboard) stands by and takes the lease over within ``LEASE_TTL_S +
LEASE_RENEW_S`` seconds once the holder dies, within ``LEASE_RENEW_S`` after a clean exit. The process runs at
nice 10 with one thread (OMP / OpenBLAS / MKL / numba set to 1 before numpy is imported) and never
imports torch.

SIGTERM (what ``JobManager`` sends, once or twice) ends the process with status 0, the lease released and
"analysis worker stopped" logged, whenever it arrives: it sets a stop flag that the loop, its waits and
:func:`compute` (between maps) check, and only inside a map computation does it also raise (see
:func:`main` for why never ``KeyboardInterrupt``). The lease and the stop flag are in
:mod:`backend.analysis.projection.lease`.

``compute``, ``Stopped``, ``Progress`` and ``RESTRUCTURE_BELOW`` are re-exported from
:mod:`~backend.analysis.projection.compute` for code written before the split; ``run_once`` calls
``compute`` through this module, so a test can replace ``projection_worker.compute``.

Example (one pass in-process, as the tests do)::

    from backend.store import RunStore

    store = RunStore("./deepscope-data")
    [s.key() for s in pending(store, run_id)]   # requested keys newest first, then the defaults
    run_once(store)                              # -> the number of maps written over all runs
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
from typing import TYPE_CHECKING, Callable

# compute / Stopped are used below; RESTRUCTURE_BELOW and Progress are re-exports (see the module docstring).
# projection_compute imports numpy only inside functions, as this module does.
from backend.analysis.projection.compute import RESTRUCTURE_BELOW, Progress, Stopped, compute  # noqa: F401
# the lease and the stop flag (AnalysisLease and LEASE_NAME are imported from here by the service and tests)
from backend.analysis.projection.lease import (LEASE_NAME, LEASE_RENEW_S, LEASE_TTL_S, AnalysisLease,  # noqa: F401
                                               StopFlag, Terminated, in_interruptible, interruptible)

if TYPE_CHECKING:  # numpy-heavy imports stay inside functions: main sets the thread variables first
    from backend.store import RunStore
    from backend.store.projections import ProjectionSettings

log = logging.getLogger("deepscope.analysis")

DEFAULT_POINTS = 5000
MIN_POINTS = 10            # a source with fewer rows gets no default map
DEFAULT_PERPLEXITY = 30
RETRY_S = 60.0             # an unexpected error (not a ValueError) is retried after this
NICE = 10
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


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
                    with interruptible():
                        n = compute(store, run_id, settings, stop=interrupt)
                    written += n
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


def _serve(store: RunStore, args: argparse.Namespace, lease: AnalysisLease, stop: StopFlag | None = None) -> int:
    """The worker loop: stand by until this process holds the lease, work while it does, until ``stop``."""
    stop = stop if stop is not None else StopFlag()
    state = _STATES.setdefault(store.url, WorkerState())
    parent_gone = (lambda: os.getppid() != args.parent_pid) if args.parent_pid else (lambda: False)
    state.should_stop = lambda: stop.is_set() or parent_gone() or not lease.held()
    log.info("analysis worker on %s (pid %d, nice %d)", store.url, os.getpid(), os.getpriority(os.PRIO_PROCESS, 0))
    while not stop.is_set():
        if not lease.held():
            if not lease.try_acquire():
                if args.once:
                    log.info("another analysis worker holds the %s lease on %s; exiting", LEASE_NAME, store.url)
                    return 0
                log.info("standing by: another analysis worker holds the %s lease (it expires %.0f s after its "
                         "holder stops renewing it)", LEASE_NAME, lease.ttl)
                if not lease.wait(lambda: stop.is_set() or parent_gone(), sleep=stop.wait):
                    if not stop.is_set():
                        log.info("the dashboard that started this worker is gone; exiting")
                    return 0
            log.info("holding the %s lease as %s; computing maps", LEASE_NAME, lease.holder)
        try:
            written = run_once(store, state)
        except Exception:  # the store itself failed (e.g. the database is briefly unavailable)
            log.exception("pass failed; trying again")
            written = 0
        if args.once:
            return 0
        if parent_gone():
            log.info("the dashboard that started this worker is gone; exiting")
            return 0
        if not written:
            stop.wait(args.poll)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend.analysis.projection.worker",
                                description="Compute the projection maps of every run's embeddings snapshots.")
    p.add_argument("--data-dir", default=os.environ.get("DEEPSCOPE_DATA_DIR", "./deepscope-data"))
    p.add_argument("--store-url", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between passes when there was nothing to do")
    p.add_argument("--once", action="store_true", help="one pass over all runs, then exit")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process (the dashboard that started the worker) is gone")
    p.add_argument("--lease-ttl", type=float, default=LEASE_TTL_S,
                   help="seconds the analysis lease lasts unrenewed (a standby worker takes over after it)")
    p.add_argument("--lease-renew", type=float, default=LEASE_RENEW_S,
                   help="seconds between renewals (and between a standby worker's tries)")
    return p


def main(argv: list[str] | None = None) -> int:
    for var in THREAD_VARS:  # before numpy / scipy / openTSNE load their thread pools
        os.environ[var] = "1"
    stop = StopFlag()

    def terminate(*_):
        # A flag, not a KeyboardInterrupt raised wherever the main thread happens to be: one raised while
        # an import built a dataclass ended the process with -2 although main caught it (see Terminated).
        # Only inside a map computation, which may run longer than shutdown waits, does it raise.
        # Once is enough: a second SIGTERM (JobManager.shutdown() and stop_analysis() both ask) is ignored,
        # also while the interpreter exits (it resets Python handlers to SIG_DFL there, but leaves SIG_IGN).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        if in_interruptible():
            raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    stop.wake_on_signals()
    args = build_parser().parse_args(argv)
    _renice(NICE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from backend.store import RunStore

        store = RunStore(args.data_dir, url=args.store_url)
        lease = AnalysisLease(store, ttl=args.lease_ttl, renew_s=args.lease_renew)
        try:
            code = _serve(store, args, lease, stop)
        except Terminated:
            code = 0
        finally:
            lease.release()
    except KeyboardInterrupt:  # Ctrl-C
        log.info("analysis worker stopped")
        return 0
    if stop.is_set():
        log.info("analysis worker stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
