"""The hidden-state record: writing a snapshot and reading windows of it.

One snapshot (kind ``hidden``) of a run at a step holds, as immutable .npy files:

- ``l{layer}.{direction}.{state}``: float16 ``(tokens, cells)`` for h, c and each gate;
- ``l...T``: the same transposed to ``(cells, tokens)`` for arrays over
  ``INDEX_MIN_BYTES``, so a match reads only the selected cells' rows (the match index);
- ``tokens``: int32 token ids; ``tracks``: float32 ``(n_tracks, tokens)`` annotations;

Correlations with the tracks and gate saturation are derived by readers
(:meth:`HiddenSnapshot.corr`, :meth:`HiddenSnapshot.saturation`, cached by the dashboard),
not by the writer: the writer runs beside training, and every millisecond it spends
there slows training down (bench/overhead.py).

``meta`` says what is there (family, layers, directions, states, cells, tokens,
vocab, track names, source text, probe cadence). Users' own annotation tracks are
records of kind ``hidden-track`` (one per track, any step) that readers merge in.

Readers use :class:`HiddenSnapshot`: windows and columns come from plain reads,
never a whole-file load, so the dashboard stays small with a 1 GB snapshot open.

Example::

    snap = HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    window = snap.window("l0.fwd.c", 1000, 1100)          # (100, cells) float32
    cols = snap.columns("l0.fwd.c", [3, 17])               # (2, tokens) float16
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..analysis.cells import correlations, saturation
from ..probes.states import GATES
from .arrays import array_header, read_row_ranges, read_rows, read_span
from .store import RunStore, StoreError

KIND = "hidden"
TRACK_KIND = "hidden-track"
INDEX_MIN_BYTES = 16 * 2**20
GATE_STATES = frozenset(g for gates in GATES.values() for g in gates)
ROW_CHUNK = 16_384  # rows per read when a column scan has no index


class SnapshotUnavailable(StoreError):
    """A snapshot's files are missing or incomplete (still being written or copied)."""


def require_files(paths: Mapping[str, Path], what: str) -> None:
    """Raise SnapshotUnavailable when any of a snapshot's files is not on disk (yet)."""
    missing = [k for k, p in paths.items() if not p.exists()]
    if missing:
        raise SnapshotUnavailable(f"{what} is not complete on disk ({len(missing)} of {len(paths)} files "
                                  "missing): still being written?")


def state_key(layer: int, direction: str, state: str) -> str:
    return f"l{layer}.{direction}.{state}"


def write_hidden_snapshot(store: RunStore, run_id: str, step: int, states: Mapping[tuple[int, str, str], np.ndarray],
                          token_ids: np.ndarray, vocab: Sequence[str], tracks: Mapping[str, np.ndarray],
                          meta: Mapping[str, Any] | None = None) -> int:
    """Write one snapshot (and its match index when large); returns its id."""
    n = len(token_ids)
    names = list(tracks)
    track_arr = np.stack([np.asarray(tracks[k], dtype=np.float32) for k in names]) if names else np.zeros((0, n), np.float32)
    if track_arr.shape[1] != n:
        raise StoreError(f"annotation tracks have {track_arr.shape[1]} values, the corpus has {n} tokens")
    arrays: dict[str, np.ndarray] = {"tokens": np.asarray(token_ids, dtype=np.int32), "tracks": track_arr}
    indexed, cells = [], 0
    for (layer, d, s), arr in states.items():
        if arr.shape[0] != n:
            raise StoreError(f"state {state_key(layer, d, s)} has {arr.shape[0]} rows, the corpus has {n} tokens")
        key, values = state_key(layer, d, s), np.asarray(arr, dtype=np.float16)
        cells = values.shape[1]
        arrays[key] = values
        if values.nbytes >= INDEX_MIN_BYTES:
            arrays[key + ".T"] = np.ascontiguousarray(values.T)
            indexed.append(key)
    layers = sorted({k[0] for k in states})
    ranges = [[float(np.min(t)), float(np.max(t))] if len(t) else [0.0, 1.0] for t in track_arr]
    info = {"tokens": n, "cells": cells, "vocab": list(vocab), "tracks": names, "track_ranges": ranges,
            "indexed": indexed,
            "layers": len(layers), "directions": sorted({k[1] for k in states}, key=["fwd", "bwd"].index),
            "states": list(dict.fromkeys(k[2] for k in states))}
    info.update(meta or {})
    return store.add_snapshot(run_id, KIND, step, arrays, info)


def add_user_track(store: RunStore, run_id: str, name: str, values: np.ndarray) -> int:
    """Attach a per-token annotation track to a run's hidden-state snapshots.

    Raises StoreError when the run has no snapshot or the length is not the corpus's.
    """
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise StoreError("a track needs a name of 1 to 60 characters")
    snaps = store.list_snapshots(run_id, KIND)
    if not snaps:
        raise StoreError(f"run {run_id} has no hidden-state snapshot yet to attach a track to")
    n = int(snaps[-1]["meta"]["tokens"])
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if len(values) != n:
        raise StoreError(f"the track has {len(values)} values but the probe corpus has {n} tokens: "
                         "give one value per token")
    if not np.isfinite(values).all():
        raise StoreError("the track has missing or infinite values; give a number for every token")
    return store.add_snapshot(run_id, TRACK_KIND, 0, {"values": values},
                              {"name": name, "tokens": n, "range": [float(values.min()), float(values.max())]})


class HiddenSnapshot:
    """Read-only view of one hidden-state snapshot row; every read is a window."""

    def __init__(self, store: RunStore, row: Mapping[str, Any], user_tracks: Sequence[Mapping[str, Any]] = ()):
        if int(row.get("schema_version", 1)) > 1:
            raise StoreError("snapshot written by a newer deepscope; upgrade to read it")
        self.row, self.meta, self.step = row, dict(row["meta"]), int(row["step"])
        self.paths = {k: Path(store.data_dir) / p for k, p in row["arrays"].items()}
        require_files(self.paths, f"the snapshot at step {self.step}")
        self.n_tokens, self.n_cells = int(self.meta["tokens"]), int(self.meta["cells"])
        self.vocab: list[str] = list(self.meta.get("vocab", []))
        user = [t for t in user_tracks if int(t["meta"].get("tokens", -1)) == self.n_tokens]
        self._user = [(t["meta"]["name"], Path(store.data_dir) / t["arrays"]["values"]) for t in user]
        self._ranges = list(self.meta.get("track_ranges") or [None] * len(self.meta.get("tracks", [])))
        self._ranges += [t["meta"].get("range") for t in user]

    # -- what is there ------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return [k for k in self.paths if k.startswith("l") and not k.endswith(".T")]

    @property
    def track_names(self) -> list[str]:
        return list(self.meta.get("tracks", [])) + [name for name, _ in self._user]

    def has(self, key: str) -> bool:
        return key in self.paths

    def require(self, key: str) -> None:
        if key not in self.paths:
            raise StoreError(f"this snapshot has no {key!r}; it holds {', '.join(self.keys)}")

    # -- reads --------------------------------------------------------------------
    def window(self, key: str, start: int, stop: int) -> np.ndarray:
        """``(stop - start, cells)`` float32 values of ``key`` (clipped to the corpus)."""
        self.require(key)
        return read_rows(self.paths[key], start, stop).astype(np.float32)

    def windows(self, key: str, starts: Sequence[int], stops: Sequence[int]) -> list[np.ndarray]:
        """Many small windows of ``key`` in its stored dtype (float16), read through one open file."""
        self.require(key)
        return read_row_ranges(self.paths[key], starts, stops)

    def columns(self, key: str, cells: Sequence[int]) -> np.ndarray:
        """``(len(cells), tokens)`` float16: whole-corpus traces of some cells."""
        self.require(key)
        cells = [int(c) for c in cells]
        if any(c < 0 or c >= self.n_cells for c in cells):
            raise StoreError(f"cells must be between 0 and {self.n_cells - 1}")
        if key + ".T" in self.paths:
            t_path = self.paths[key + ".T"]
            return np.stack([read_rows(t_path, c, c + 1)[0] for c in cells]) if cells else \
                np.zeros((0, self.n_tokens), np.float16)
        out = np.empty((len(cells), self.n_tokens), dtype=np.float16)
        for r0 in range(0, self.n_tokens, ROW_CHUNK):
            out[:, r0:r0 + ROW_CHUNK] = read_rows(self.paths[key], r0, r0 + ROW_CHUNK)[:, cells].T
        return out

    def token_ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return read_rows(self.paths["tokens"], start, self.n_tokens if stop is None else stop)

    def tokens(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The text of tokens ``start:stop`` (one string per token)."""
        vocab = self.vocab
        return [vocab[i] if 0 <= i < len(vocab) else "?" for i in self.token_ids(start, stop).tolist()]

    def tracks(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(n_tracks, stop - start)`` float32: built-in tracks then users' own."""
        stop = self.n_tokens if stop is None else stop
        n_built = array_header(str(self.paths["tracks"]))[0][0]
        rows = [read_span(self.paths["tracks"], i, start, stop).astype(np.float32) for i in range(n_built)]
        rows += [read_rows(path, start, stop).astype(np.float32) for _, path in self._user]
        return np.stack(rows) if rows else np.zeros((0, max(0, min(stop, self.n_tokens) - start)), np.float32)

    def track_range(self, k: int) -> tuple[float, float]:
        """Min and max of track ``k`` over the whole corpus (from the record; computed once if absent)."""
        if self._ranges[k] is None:
            values = self.tracks()[k]
            self._ranges[k] = [float(values.min()), float(values.max())] if len(values) else [0.0, 1.0]
        lo, hi = self._ranges[k]
        return float(lo), float(hi)

    def corr(self, key: str) -> np.ndarray:
        """``(n_tracks, cells)`` Pearson r of each cell with each track (built-in, then users').

        Reads 64 cells at a time (from the match index when there is one), so memory stays
        small on a large snapshot; callers cache the result.
        """
        self.require(key)
        tracks = self.tracks()
        out = np.zeros((len(tracks), self.n_cells), dtype=np.float32)
        for j in range(0, self.n_cells, 64):
            cells = list(range(j, min(j + 64, self.n_cells)))
            out[:, cells] = correlations(self._column_block(key, cells), tracks)
        return out

    def saturation(self, key: str) -> np.ndarray | None:
        """``(2, cells)``: fraction of tokens below 0.1 and above 0.9, for gates (None otherwise)."""
        if key.rsplit(".", 1)[-1] not in GATE_STATES or key not in self.paths:
            return None
        out = np.zeros((2, self.n_cells), dtype=np.float32)
        for j in range(0, self.n_cells, 64):
            cells = list(range(j, min(j + 64, self.n_cells)))
            out[:, cells] = saturation(self._column_block(key, cells))
        return out

    def _column_block(self, key: str, cells: list[int]) -> np.ndarray:
        """``(tokens, len(cells))`` for a contiguous block of cells."""
        if key + ".T" in self.paths:
            return read_rows(self.paths[key + ".T"], cells[0], cells[-1] + 1).T
        if self.n_tokens * self.n_cells * 2 <= INDEX_MIN_BYTES:  # small: one read
            return read_rows(self.paths[key], 0, self.n_tokens)[:, cells[0]:cells[-1] + 1]
        return self.columns(key, cells).T
