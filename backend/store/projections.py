"""The projection records: the points a model makes of its inputs (sources), and their 2-D/3-D maps.

Two snapshot kinds, both immutable like every snapshot (``RunStore.add_snapshot``):

**``embeddings``** (written by the trainer's ``EmbeddingProbe`` at step 0, every K steps and at
the end). One snapshot holds one or more *sources*, each a set of points in a model's space:

- ``tokens``: the token-embedding table, one row per vocabulary entry;
- ``final_hidden``: the last hidden state of each probe sequence (recurrent classifiers);
- ``penultimate``: the features the output layer reads, one row per probe input (CNNs, MLPs, text CNNs).

Arrays per source ``S``: ``x.S`` float32 ``(n, d)``; ``text.S`` unicode ``(n,)`` (the token or
the input's text, truncated to 80 characters); optional ``label.S`` / ``pred.S`` int32 ``(n,)``
(class ids, -1 = none) and ``freq.S`` int64 ``(n,)`` (corpus frequency of a token). ``meta``:
``{"sources": {S: {"n", "dim", "what", "classes": [names] or null}}}``.

**``projection``** (written by the analysis worker, ``backend.analysis.projection.worker``, never
by the trainer or a web request). One map of one source of one ``embeddings`` snapshot, at that
snapshot's step. Arrays: ``coords`` float32 ``(m, dims)``, ``rows`` int32 ``(m,)`` (which rows of
``x.S`` were mapped: the same rows in every snapshot of a run, see
``backend.analysis.projection.core.sample_indices``). ``meta``: ``settings`` (a
:class:`ProjectionSettings` as a dict), ``key`` (:meth:`ProjectionSettings.key`), ``source_id``
(the ``embeddings`` snapshot row id), ``warm_from`` (the projection row id it continued, or
null), ``seconds``, ``kl_divergence`` (t-SNE) or ``explained`` (PCA: variance ratio per axis).

Requests and progress are small JSON files in the run folder (not rows: they change while a map
is computed): ``projection-requests.json`` (settings keys a page asked for, newest last) and
``projection-status.json`` (what the worker does now: key, step, state, iteration, message).

Example::

    snap = SourceSnapshot(store, store.list_snapshots(run_id, SOURCE_KIND)[-1])
    x = snap.points("tokens")                       # (n, d) float32
    s = ProjectionSettings(source="tokens", method="tsne", perplexity=30)
    request_projection(store, run_id, s)            # the worker picks it up
    maps = projections(store, run_id, s.key())      # rows of kind "projection" with that key, by step
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .arrays import read_array
from .hidden import SnapshotUnavailable, require_files
from .store import RunStore, StoreError

SOURCE_KIND = "embeddings"
PROJECTION_KIND = "projection"
SOURCES = ("tokens", "final_hidden", "penultimate")
TEXT_CHARS = 80
REQUESTS_FILE = "projection-requests.json"
STATUS_FILE = "projection-status.json"
MAX_REQUESTS = 8  # keys kept per run; older requests are dropped


class ProjectionSettings(BaseModel):
    """How to draw one source: the options a page offers. Defaults are what a run gets unasked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["tokens", "final_hidden", "penultimate"]
    method: Literal["tsne", "pca"] = "tsne"
    dims: Literal[2, 3] = 2
    perplexity: float = Field(30.0, ge=2, le=500)
    metric: Literal["cosine", "euclidean"] = "cosine"
    n_points: int = Field(5000, ge=10, le=200_000, description="points drawn (the same rows in every snapshot)")
    seed: int = Field(0, ge=0, le=2**31 - 1)

    def key(self) -> str:
        """A stable name of these settings, e.g. ``tokens-tsne-2d-p30-cosine-n5000-s0``."""
        if self.method == "pca":
            return f"{self.source}-pca-{self.dims}d-n{self.n_points}-s{self.seed}"
        return (f"{self.source}-tsne-{self.dims}d-p{self.perplexity:g}-{self.metric}-n{self.n_points}"
                f"-s{self.seed}")


def write_source_snapshot(store: RunStore, run_id: str, step: int, sources: Mapping[str, Mapping[str, Any]]) -> int:
    """Write one ``embeddings`` snapshot. ``sources``: ``{name: {"x": (n, d), "text": [str] * n,
    "label"?: (n,), "pred"?: (n,), "freq"?: (n,), "what"?: str, "classes"?: [str]}}``."""
    arrays: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    for name, src in sources.items():
        if name not in SOURCES:
            raise StoreError(f"unknown projection source {name!r}; known: {', '.join(SOURCES)}")
        x = np.asarray(src["x"], dtype=np.float32)
        if x.ndim != 2 or not len(x):
            raise StoreError(f"source {name!r}: points must be a non-empty (n, d) array, got shape {x.shape}")
        text = [str(t)[:TEXT_CHARS] for t in src["text"]]
        if len(text) != len(x):
            raise StoreError(f"source {name!r}: {len(text)} texts for {len(x)} points")
        arrays[f"x.{name}"] = x
        arrays[f"text.{name}"] = np.array(text, dtype=f"<U{max(1, max(map(len, text)))}")
        for field in ("label", "pred"):
            if src.get(field) is not None:
                arrays[f"{field}.{name}"] = _column(src[field], len(x), np.int32, name, field)
        if src.get("freq") is not None:
            arrays[f"freq.{name}"] = _column(src["freq"], len(x), np.int64, name, "freq")
        info[name] = {"n": int(len(x)), "dim": int(x.shape[1]), "what": src.get("what", name),
                      "classes": list(src["classes"]) if src.get("classes") is not None else None}
    if not info:
        raise StoreError("an embeddings snapshot needs at least one source")
    return store.add_snapshot(run_id, SOURCE_KIND, step, arrays, {"sources": info})


def _column(values, n: int, dtype, source: str, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if len(arr) != n:
        raise StoreError(f"source {source!r}: {len(arr)} {field} values for {n} points")
    return arr


class SourceSnapshot:
    """Read-only view of one ``embeddings`` snapshot row."""

    def __init__(self, store: RunStore, row: Mapping[str, Any]):
        self.row, self.meta, self.step, self.id = row, dict(row["meta"]), int(row["step"]), int(row["id"])
        self.paths = {k: Path(store.data_dir) / p for k, p in row["arrays"].items()}
        require_files(self.paths, f"the embeddings snapshot at step {self.step}")

    @property
    def sources(self) -> dict[str, dict]:
        return dict(self.meta.get("sources", {}))

    def points(self, source: str) -> np.ndarray:
        return self._load(f"x.{source}")

    def texts(self, source: str) -> np.ndarray:
        return self._load(f"text.{source}")

    def column(self, source: str, field: str) -> np.ndarray | None:
        """``label``, ``pred`` or ``freq`` of a source, or None when it has none."""
        name = f"{field}.{source}"
        return self._load(name) if name in self.paths else None

    def _load(self, name: str) -> np.ndarray:
        if name not in self.paths:
            raise StoreError(f"the embeddings snapshot at step {self.step} has no {name!r}; its sources: "
                             f"{', '.join(self.sources) or 'none'}")
        return read_array(self.paths[name], mmap=False)


def write_projection(store: RunStore, run_id: str, step: int, settings: ProjectionSettings, coords: np.ndarray,
                     rows: np.ndarray, meta: Mapping[str, Any]) -> int:
    """Write one finished map (``meta``: source_id, warm_from, seconds, kl_divergence / explained)."""
    coords = np.asarray(coords, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int32)
    if coords.shape != (len(rows), settings.dims):
        raise StoreError(f"coords of shape {coords.shape} do not fit {len(rows)} rows in {settings.dims} dimensions")
    info = {"settings": settings.model_dump(), "key": settings.key(), **dict(meta)}
    return store.add_snapshot(run_id, PROJECTION_KIND, step, {"coords": coords, "rows": rows}, info)


def projections(store: RunStore, run_id: str, key: str) -> list[dict]:
    """Projection rows of a run with settings ``key``, by step (one per source snapshot)."""
    return [r for r in store.list_snapshots(run_id, PROJECTION_KIND) if r["meta"].get("key") == key]


def load_projection(store: RunStore, row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(coords, rows)`` of a projection row; SnapshotUnavailable while its files are incomplete."""
    paths = {k: Path(store.data_dir) / p for k, p in row["arrays"].items()}
    require_files(paths, f"the projection at step {row['step']}")
    return read_array(paths["coords"], mmap=False), read_array(paths["rows"], mmap=False)


# -- requests and progress: small JSON files, replaced atomically ------------------------------------

def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def request_projection(store: RunStore, run_id: str, settings: ProjectionSettings) -> None:
    """Ask the analysis worker for maps with ``settings`` (all snapshots of the run)."""
    path = store.run_dir(run_id) / REQUESTS_FILE
    wanted = [r for r in _read_json(path, []) if r.get("key") != settings.key()]
    wanted.append({"key": settings.key(), "settings": settings.model_dump(), "time": time.time()})
    _write_json(path, wanted[-MAX_REQUESTS:])


def requested(store: RunStore, run_id: str) -> list[ProjectionSettings]:
    """Settings asked for on this run, oldest first (unreadable entries are skipped)."""
    out = []
    for entry in _read_json(store.run_dir(run_id) / REQUESTS_FILE, []):
        try:
            out.append(ProjectionSettings.model_validate(entry["settings"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def write_status(store: RunStore, run_id: str, **status: Any) -> None:
    """What the worker does now, e.g. ``key=..., step=..., state="computing", iteration=120, total=500``."""
    _write_json(store.run_dir(run_id) / STATUS_FILE, {**status, "time": time.time()})


def read_status(store: RunStore, run_id: str) -> dict:
    """The worker's last status for a run (``{}`` when none)."""
    return _read_json(store.run_dir(run_id) / STATUS_FILE, {})


__all__ = ["SOURCE_KIND", "PROJECTION_KIND", "SOURCES", "ProjectionSettings", "write_source_snapshot",
           "SourceSnapshot", "SnapshotUnavailable", "write_projection", "projections", "load_projection",
           "request_projection", "requested", "write_status", "read_status"]
