"""The dashboard's reads of projection records: sources, maps, neighbours and analogies (cached).

Reads only (``backend.store.projections``); the maps themselves are computed by the analysis
worker, never here. What the dashboard computes is cheap and exact, in the **original** space of a
source (not on the map): cosine nearest neighbours, ``a - b + c`` analogies and word lookup, done
by the pure functions of :mod:`dashboard.views.projections.search` and cached here. What the page says
about the worker comes from :mod:`dashboard.views.projections.status`. Errors a person can fix come out
as :class:`~dashboard.views.hidden_states.data.ViewError` with the message for the page.

Snapshot rows and map lists go through the dashboard's flask-caching helper (a second); the
arrays of a snapshot (unit-normalised points, texts, a lowercase index) are kept per process in a
small LRU keyed by the immutable snapshot id. The pure map helpers (:func:`fixed_ranges`,
:func:`positions`, :func:`colour_choices`) live here too.

Example::

    pd = ProjectionData(store)                          # or DashboardData(...).projections
    s = ProjectionSettings(source="tokens", method="pca")
    steps = pd.map_steps(run_id, s.key())               # steps that have a map
    frame = pd.map_at(run_id, s.key(), steps[-1])       # coords, rows, meta
    near = pd.neighbours(run_id, steps[-1], "tokens", "king")   # {"row", "text", "items": [...]}
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from backend.store import RunStore
from backend.store.hidden import SnapshotUnavailable
from backend.store.projections import (PROJECTION_KIND, SOURCE_KIND, ProjectionSettings, SourceSnapshot,
                                       load_projection, requested)

from dashboard.views.projections import search
from dashboard.views.projections import status as projection_status
from dashboard.snapshots import ViewError, open_newest
from dashboard.views.projections.search import N_ANSWERS, N_NEIGHBOURS, noun

SNAPSHOTS_TTL = 1
HAS_TTL = 5
RESULT_TTL = 600
LRU_SIZE = 6           # sources kept per process (a 50k x 256 vocabulary is 51 MB once its points are read)
COLOUR_FIELDS = ("label", "prediction", "correct", "frequency", "none")


@dataclass
class SourceData:
    """One source of one ``embeddings`` snapshot, ready for lookups (kept in the per-process LRU).

    The points are read only when a lookup needs them (:attr:`unit`): drawing a map needs the
    texts and columns alone, so Play through the snapshots never loads the points."""

    snapshot_id: int
    step: int
    source: str
    texts: np.ndarray                   # (n,) str
    label: np.ndarray | None = None
    pred: np.ndarray | None = None
    freq: np.ndarray | None = None
    classes: list[str] | None = None
    what: str = ""
    _points: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    _unit: np.ndarray | None = field(default=None, repr=False)
    _index: dict[str, int] | None = field(default=None, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def unit(self) -> np.ndarray:
        """(n, d) float32 points scaled to length 1 (all-zero rows stay 0), for cosine similarities."""
        with self._lock:
            if self._unit is None:
                x = np.asarray(self._points(), dtype=np.float32)
                norms = np.linalg.norm(x, axis=1, keepdims=True)
                self._unit = (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
            return self._unit

    def index(self) -> dict[str, int]:
        """Lowercase text -> first row with that text."""
        if self._index is None:
            lower = np.char.lower(self.texts.astype(str))
            keys, first = np.unique(lower, return_index=True)
            self._index = dict(zip(keys.tolist(), first.tolist()))
        return self._index


class _LRU:
    def __init__(self, size: int):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key, compute: Callable[[], Any]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class ProjectionData:
    """Cached access to the ``embeddings`` snapshots and ``projection`` maps of the runs in one store."""

    def __init__(self, store: RunStore, cached: Callable[[str, int, Callable[[], Any]], Any] | None = None):
        self.store = store
        self._cached = cached or (lambda _key, _ttl, compute: compute())
        self._sources = _LRU(LRU_SIZE)
        self._maps = _LRU(4 * LRU_SIZE)

    # -- snapshots --------------------------------------------------------------------------------
    def snapshots(self, run_id: str) -> list[dict]:
        """Index rows of a run's ``embeddings`` snapshots, by step."""
        return self._cached(f"pj:snaps:{run_id}", SNAPSHOTS_TTL, lambda: self.store.list_snapshots(run_id, SOURCE_KIND))

    def has_snapshots(self, run_id: str) -> bool:
        return bool(self._cached(f"pj:has:{run_id}", HAS_TTL,
                                 lambda: int(bool(self.store.list_snapshots(run_id, SOURCE_KIND)))))

    def sources(self, run_id: str) -> dict[str, dict]:
        """The newest snapshot's sources: ``{name: {"n", "dim", "what", "classes", "fields": [...]}}``.

        ``fields`` names the per-point columns the source has (``label``, ``pred``, ``freq``)."""
        snaps = self.snapshots(run_id)
        if not snaps:
            return {}
        row = snaps[-1]
        out = {}
        for name, info in (row["meta"].get("sources") or {}).items():
            fields = [f for f in ("label", "pred", "freq") if f"{f}.{name}" in row["arrays"]]
            out[name] = {**info, "fields": fields}
        return out

    def open(self, run_id: str, step: int | None = None, snapshot_id: int | None = None) -> tuple[SourceSnapshot, str | None]:
        """The snapshot with ``snapshot_id``, else the newest at or before ``step`` (newest when None),
        skipping one whose files are still being written (the note says so)."""
        snaps = self.snapshots(run_id)
        if snapshot_id is not None and any(int(s["id"]) == snapshot_id for s in snaps):
            snaps = [s for s in snaps if int(s["id"]) == snapshot_id]
            step = None
        return open_newest(snaps, step, lambda row: SourceSnapshot(self.store, row),
                           "This run has no embeddings snapshot yet.",
                           "The embeddings snapshots of this run are still being written; try again in a moment.")

    def source_data(self, run_id: str, step: int | None, source: str, snapshot_id: int | None = None) -> SourceData:
        """Points, texts and columns of ``source`` at ``step`` (the snapshot at or before it)."""
        snap, _ = self.open(run_id, step, snapshot_id)
        if source not in snap.sources:
            raise ViewError(f"The embeddings snapshot at step {snap.step:,} has no source {source!r}; "
                            f"it has {', '.join(snap.sources) or 'none'}.")

        def load() -> SourceData:
            info = snap.sources[source]
            return SourceData(snap.id, snap.step, source, snap.texts(source), snap.column(source, "label"),
                              snap.column(source, "pred"), snap.column(source, "freq"), info.get("classes"),
                              info.get("what", source), _points=lambda: snap.points(source))
        return self._sources.get((snap.id, source), load)

    # -- maps -------------------------------------------------------------------------------------
    def maps(self, run_id: str, key: str) -> list[dict]:
        """Projection rows of a run with settings ``key``, by step (the last one per step)."""
        def compute():
            rows = [r for r in self.store.list_snapshots(run_id, PROJECTION_KIND) if r["meta"].get("key") == key]
            by_step = {int(r["step"]): r for r in rows}
            return [by_step[s] for s in sorted(by_step)]
        return self._cached(f"pj:maps:{run_id}:{key}", SNAPSHOTS_TTL, compute)

    def map_steps(self, run_id: str, key: str) -> list[int]:
        return [int(r["step"]) for r in self.maps(run_id, key)]

    def newest_settings(self, run_id: str) -> ProjectionSettings | None:
        """What a page opens with: the settings asked for last that have a map, else those of the
        run's newest map, else None."""
        rows = self._cached(f"pj:allmaps:{run_id}", SNAPSHOTS_TTL,
                            lambda: self.store.list_snapshots(run_id, PROJECTION_KIND))
        keys = {r["meta"].get("key") for r in rows}
        for settings in reversed(requested(self.store, run_id)):
            if settings.key() in keys:
                return settings
        for row in sorted(rows, key=lambda r: (int(r["step"]), int(r["id"])), reverse=True):
            try:
                return ProjectionSettings.model_validate(row["meta"].get("settings") or {})
            except ValueError:
                continue
        return None

    def _load_map(self, row: dict) -> tuple[np.ndarray, np.ndarray]:
        return self._maps.get(int(row["id"]), lambda: load_projection(self.store, row))

    def map_at(self, run_id: str, key: str, step: int) -> dict:
        """The map of ``key`` at ``step`` (the newest at or before it): ``{"coords", "rows", "step", "meta",
        "index", "total", "note"}``; a map still being written is skipped for the one before it."""
        maps = self.maps(run_id, key)
        if not maps:
            raise ViewError("The map is not ready yet.")
        chosen = [r for r in maps if int(r["step"]) <= step] or maps[:1]
        note = None
        for row in reversed(chosen):
            try:
                coords, rows = self._load_map(row)
            except SnapshotUnavailable as exc:
                note = f"{exc} Showing an earlier map."
                continue
            return {"coords": coords, "rows": rows, "step": int(row["step"]), "meta": dict(row["meta"]),
                    "index": maps.index(row), "total": len(maps), "note": note}
        raise ViewError("The maps of this run are still being written; try again in a moment.")

    def ranges(self, run_id: str, key: str, pad: float = 0.05) -> list[list[float]] | None:
        """Axis ranges covering every map of ``key`` (so the axes stay still from one step to the next)."""
        maps = self.maps(run_id, key)
        if not maps:
            return None
        stamp = ",".join(str(r["id"]) for r in maps)

        def compute():
            lo = hi = None
            for row in maps:
                try:
                    coords, _ = self._load_map(row)
                except SnapshotUnavailable:
                    continue
                if not len(coords):
                    continue
                a, b = np.nanmin(coords, axis=0), np.nanmax(coords, axis=0)
                lo = a if lo is None else np.minimum(lo, a)
                hi = b if hi is None else np.maximum(hi, b)
            return fixed_ranges(lo, hi, pad) if lo is not None else []
        value = self._cached(f"pj:ranges:{run_id}:{key}:{hashlib.sha1(stamp.encode()).hexdigest()[:12]}", RESULT_TTL, compute)
        return value or None

    # -- lookups in the original space (dashboard.views.projections.search) ------------------------------------
    def find(self, data: SourceData, query: str) -> int:
        """Row of ``query`` (case-insensitive exact match on the text), else ViewError with close spellings."""
        return search.find_row(data, query)

    def neighbours(self, run_id: str, step: int | None, source: str, query: str | int, k: int = N_NEIGHBOURS) -> dict:
        """The ``k`` nearest points to ``query`` (its text, or a row number) by cosine similarity in the
        original space at ``step``: ``{"step", "row", "text", "items": [{"row", "text", "sim"}]}``."""
        data = self.source_data(run_id, step, source)
        row = search.row_of(data, query)
        return self._cached(f"pj:nn:{run_id}:{data.snapshot_id}:{source}:{row}:{k}", RESULT_TTL,
                            lambda: search.nearest(data, row, k))

    def analogy(self, run_id: str, step: int | None, source: str, a: str, b: str, c: str, k: int = N_ANSWERS) -> dict:
        """``a - b + c`` (king - man + woman): the ``k`` points nearest to it by cosine in the original
        space, ``a``, ``b`` and ``c`` excluded: ``{"step", "rows": {"a", "b", "c"}, "texts", "items"}``."""
        data = self.source_data(run_id, step, source)
        missing = [name for name, q in (("a", a), ("b", b), ("c", c)) if not (q or "").strip()]
        if missing:
            raise ViewError(f"Type three {noun(source)}s: a - b + c, e.g. king - man + woman.")
        rows = {name: search.row_of(data, q) for name, q in (("a", a), ("b", b), ("c", c))}
        key = ",".join(str(rows[n]) for n in "abc")
        return self._cached(f"pj:an:{run_id}:{data.snapshot_id}:{source}:{key}:{k}", RESULT_TTL,
                            lambda: search.analogy(data, rows, k))

    def members(self, run_id: str, step: int | None, source: str, rows) -> list[str]:
        """Texts of ``rows`` (a lasso/box selection), in the order given."""
        data = self.source_data(run_id, step, source)
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < data.n)]
        return [str(t) for t in data.texts[rows]]

    # -- settings and progress --------------------------------------------------------------------
    def check(self, run_id: str, settings: ProjectionSettings) -> str | None:
        """The message for settings that cannot work (too few points for the perplexity), else None."""
        info = self.sources(run_id).get(settings.source)
        if info is None:
            return f"This run has no source {settings.source!r}."
        if settings.method != "tsne":
            return None
        from backend.analysis.projection.checks import check_perplexity  # numpy only: no scipy for a check

        try:
            check_perplexity(min(int(info["n"]), settings.n_points), settings.perplexity)
        except ValueError as exc:
            return str(exc)
        return None

    def request_time(self, run_id: str, key: str) -> float | None:
        """When settings ``key`` were last asked for on this run (from the requests file), or None."""
        return projection_status.request_time(self.store, run_id, key)

    def progress(self, run_id: str, key: str, n_maps: int, n_snapshots: int, now: float | None = None) -> tuple[str, str] | None:
        """``(kind, message)`` about the worker and the maps of ``key``, or None when there is nothing to say
        (:func:`dashboard.views.projections.status.progress`)."""
        return projection_status.progress(self.store, run_id, key, n_maps, n_snapshots, now)


# -- pure helpers --------------------------------------------------------------------------------------

def fixed_ranges(lo, hi, pad: float = 0.05) -> list[list[float]]:
    """``[lo, hi]`` per axis, widened by ``pad`` of the span on each side (a zero span gets +-1)."""
    out = []
    for a, b in zip(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)):
        span = b - a
        if not np.isfinite(span) or span <= 0:
            out.append([float(a) - 1.0, float(a) + 1.0] if np.isfinite(a) else [-1.0, 1.0])
        else:
            out.append([float(a - pad * span), float(b + pad * span)])
    return out


def positions(map_rows: np.ndarray, rows) -> np.ndarray:
    """Index into a map's points of each of ``rows`` (source row numbers); -1 where a row is not drawn."""
    map_rows = np.asarray(map_rows, dtype=np.int64).reshape(-1)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.full(len(rows), -1, dtype=np.int64)
    if not len(map_rows) or not len(rows):
        return out
    order = np.argsort(map_rows, kind="stable")
    srt = map_rows[order]
    at = np.clip(np.searchsorted(srt, rows), 0, len(srt) - 1)
    hit = srt[at] == rows
    out[hit] = order[at[hit]]
    return out


def colour_choices(fields: list[str], source: str) -> dict[str, str | None]:
    """For each colour field, None when the source supports it, else why not."""
    has = set(fields)
    what = "token embeddings have no classes" if source == "tokens" else "this source records none"
    return {
        "label": None if "label" in has else f"this source has no labels ({what})",
        "prediction": None if "pred" in has else f"this source has no predictions ({what})",
        "correct": None if {"label", "pred"} <= has else
        "needs labels and predictions; this source " + ("has neither" if not has & {"label", "pred"} else
                                                        "has no " + ("predictions" if "label" in has else "labels")),
        "frequency": None if "freq" in has else
        ("this source has no corpus frequencies" if source == "tokens" else
         "frequencies are counted for tokens, not for inputs"),
        "none": None,
    }
