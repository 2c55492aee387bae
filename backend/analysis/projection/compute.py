"""One job of the analysis worker: the missing ``projection`` maps of one run for one settings key.

:func:`compute` is what :mod:`backend.analysis.projection.worker` (the process: what to do next, in
which order, retries) runs for each settings key; it reads the run's ``embeddings`` snapshots and
writes ``projection`` snapshots through ``backend/store/projections.py``, using the maths of
:mod:`backend.analysis.projection.core` (maps) and :mod:`backend.analysis.projection.compare`
(neighbourhood overlap). Like the worker, it imports numpy only inside functions (the worker sets
its thread variables before numpy loads) and never imports torch.

Each ``embeddings`` snapshot that has the source and no map with that key yet is mapped, by step:
the first from scratch (``tsne_fit`` / ``pca``), each next one from the previous map
(``tsne_continue``: the same rows, warm-started, Procrustes-aligned; PCA: computed again, each
axis's sign matched to the previous map's; ``warm_from`` names the map it continued or was matched
to). The rows are ``sample_indices(n, n_points, seed)``, the same in every snapshot as long as the
source keeps its ``n`` rows. **When the source grows** (rows appended, t-SNE), the previous rows are
kept and the new ones, sampled at the previous rate, enter the previous map through openTSNE's
``transform`` (``add_points``) before the warm start (meta ``added_points``); any other change of
``n`` gets a fresh fit (``warm_from`` null), and later snapshots warm-start from it. A warm start
whose neighbourhoods changed a lot (``neighbourhood_overlap`` below :data:`RESTRUCTURE_BELOW`,
typically early in training) runs the full t-SNE schedule from the previous map (meta
``restructured``).

Progress is ``projection-status.json`` of the run (:func:`~backend.store.projections.write_status`):
``{"key", "step", "state": "computing" | "idle" | "error", "iteration", "total", "unit": "maps",
"message", "errors": {key: message}}``. ``iteration`` / ``total`` count the maps of the current key
(``backend.analysis.projection.core`` has no per-iteration hook). ``errors`` keeps the message of every
key that failed with a ``ValueError`` (too few points for the perplexity, NaN rows, all-zero rows
under the cosine metric), so a later key's ``idle`` does not hide it; a key leaves ``errors`` when it
computes.

Example::

    from backend.store import RunStore
    from backend.store.projections import ProjectionSettings

    store = RunStore("./deepscope-data")
    s = ProjectionSettings(source="penultimate", n_points=500, perplexity=30)
    compute(store, run_id, s, progress=print)   # -> 3: one map per snapshot, each warm-started from the last
    compute(store, run_id, s)                   # -> 0: nothing left to map
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # numpy-heavy imports stay inside functions: the worker sets the thread variables first
    from backend.store import RunStore
    from backend.store.projections import ProjectionSettings

log = logging.getLogger("deepscope.analysis")

RESTRUCTURE_BELOW = 0.7  # neighbourhood overlap under which a warm start runs the full schedule

Progress = Callable[[dict], None]


class Stopped(Exception):
    """Raised inside :func:`compute` when its ``stop`` callable says so (between maps)."""


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

    from backend.analysis.projection.core import TSNEResult, add_points, pca, sample_indices, tsne_continue, tsne_fit
    from backend.analysis.projection.compare import neighbourhood_overlap
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
