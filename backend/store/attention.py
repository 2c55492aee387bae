"""The attention record: attention maps of a few fixed probe inputs at one step, and a reader.

One snapshot (kind ``attention``) of a run at a step holds, per probe **item** ``n`` (0, 1, ...), one
immutable .npy file ``i{n}``: float16 weights ``(layers, heads, queries, keys)``; row ``q`` of a map is how
query position ``q`` spreads its attention over the key positions (each row sums to 1).

``meta`` (JSON, in the index row) says what the arrays are:

- ``attention_version``: 1 (a reader refuses a newer one);
- ``layers``, ``heads``: names of the first two axes (``["dec-enc"]``, ``["h0"]`` for a recurrent
  encoder-decoder; ``["l0", "l1"]``, ``["h0", ..., "h3"]`` for a transformer's self-attention);
- ``items``: one entry per item, in order: ``name``, ``queries`` and ``keys`` (token strings, one per
  row and per column; for self-attention both are the probe text's tokens) and ``extra`` (anything
  JSON, e.g. the target, the input's format, which key span determines each query);
- whatever the writer adds (task, cadence, probe cost, ...).

Encoder-decoder attention: queries are the output tokens the model produced (greedy, free-running),
keys the input tokens. A transformer's self-attention over one probe text fits as one item whose
queries and keys are the same tokens, with ``layers x heads`` maps.

Example::

    write_attention_snapshot(store, run_id, 100, [
        {"name": "5/3/21", "queries": list("2021-05-03"), "keys": list("5/3/21"),
         "weights": w, "extra": {"format": "m/d/yy"}}],       # w: (1, 1, 10, 6)
        meta={"layers": ["dec-enc"], "heads": ["h0"]})
    snap = AttentionSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    snap.weights("5/3/21", "dec-enc", "h0")                  # (10, 6) float32
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .arrays import read_array
from .hidden import SnapshotUnavailable, require_files  # noqa: F401 (re-exported)
from .store import RunStore, StoreError

KIND = "attention"
VERSION = 1
MAX_ITEMS = 64


def write_attention_snapshot(store: RunStore, run_id: str, step: int, items: Sequence[Mapping[str, Any]],
                             meta: Mapping[str, Any] | None = None) -> int:
    """Write one attention snapshot; returns its id.

    ``items``: mappings with ``name`` (str), ``queries`` and ``keys`` (lists of token strings), ``weights``
    (array ``(layers, heads, len(queries), len(keys))``; a 2-D ``(queries, keys)`` map is one layer and
    head) and optionally ``extra`` (JSON). ``meta`` may name the layers and heads (default ``l0``...,
    ``h0``...). Raises StoreError naming the item and the problem.
    """
    if not items or len(items) > MAX_ITEMS:
        raise StoreError(f"an attention snapshot needs 1 to {MAX_ITEMS} items, not {len(items)}")
    arrays, entries, shape = {}, [], None
    for n, item in enumerate(items):
        entry, weights = _checked_item(n, item)
        if shape is not None and weights.shape[:2] != shape:
            raise StoreError(f"item {entry['name']!r} has {weights.shape[:2]} layers x heads, the first item "
                             f"{shape}: every item of a snapshot has the same layers and heads")
        shape = weights.shape[:2]
        arrays[f"i{n}"] = weights.astype(np.float16)
        entries.append(entry)
    info = dict(meta or {})
    layers = list(info.get("layers") or [f"l{i}" for i in range(shape[0])])
    heads = list(info.get("heads") or [f"h{i}" for i in range(shape[1])])
    if len(layers) != shape[0] or len(heads) != shape[1]:
        raise StoreError(f"meta names {len(layers)} layers and {len(heads)} heads; the weights have "
                         f"{shape[0]} and {shape[1]}")
    info.update(attention_version=VERSION, layers=[str(x) for x in layers], heads=[str(x) for x in heads],
                items=entries)
    return store.add_snapshot(run_id, KIND, step, arrays, info)


def _checked_item(n: int, item: Mapping[str, Any]) -> tuple[dict, np.ndarray]:
    if not isinstance(item, Mapping):
        raise StoreError(f"item {n} must be a mapping (name, queries, keys, weights), not {type(item).__name__}")
    name = str(item.get("name") or f"item {n}")
    queries, keys = item.get("queries"), item.get("keys")
    if not isinstance(queries, (list, tuple)) or not isinstance(keys, (list, tuple)):
        raise StoreError(f"item {name!r}: queries and keys must be lists of token strings")
    weights = np.asarray(item.get("weights"), dtype=np.float32)
    if weights.ndim == 2:
        weights = weights[None, None]
    if weights.ndim != 4 or weights.shape[2:] != (len(queries), len(keys)):
        raise StoreError(f"item {name!r}: weights of shape {weights.shape} do not match (layers, heads, "
                         f"{len(queries)} queries, {len(keys)} keys)")
    if not np.isfinite(weights).all():
        raise StoreError(f"item {name!r}: the weights have NaN or infinite values")
    return {"name": name, "queries": [str(q) for q in queries], "keys": [str(k) for k in keys],
            "extra": dict(item.get("extra") or {})}, weights


class AttentionSnapshot:
    """Read-only view of one attention snapshot row. Malformed records raise StoreError saying what is
    wrong (never a KeyError or an IndexError from deep inside)."""

    def __init__(self, store: RunStore, row: Mapping[str, Any]):
        meta = row.get("meta") if isinstance(row, Mapping) else None
        if not isinstance(meta, Mapping):
            raise StoreError("not an attention snapshot: its row has no meta mapping")
        version = meta.get("attention_version")
        if not isinstance(version, int) or version < 1:
            raise StoreError(f"not an attention snapshot: attention_version is {version!r}")
        if version > VERSION:
            raise StoreError(f"attention snapshot version {version} was written by a newer deepscope; upgrade to "
                             "read it")
        self.meta, self.step = dict(meta), int(row.get("step", 0))
        self.layers, self.heads = _names(meta, "layers"), _names(meta, "heads")
        self._items = _items(meta)
        arrays = row.get("arrays")
        if not isinstance(arrays, Mapping) or any(f"i{n}" not in arrays for n in range(len(self._items))):
            raise StoreError(f"the attention snapshot at step {self.step} lacks an array for some of its "
                             f"{len(self._items)} items")
        self.paths = {k: Path(store.data_dir) / p for k, p in arrays.items()}
        require_files(self.paths, f"the attention snapshot at step {self.step}")

    def items(self) -> list[dict]:
        """One dict per item: ``name``, ``queries``, ``keys``, ``extra``."""
        return [dict(e) for e in self._items]

    def all_weights(self, item: int | str) -> np.ndarray:
        """float32 ``(layers, heads, queries, keys)`` of ``item`` (its index or name)."""
        n = self._index(item)
        entry = self._items[n]
        arr = read_array(self.paths[f"i{n}"], mmap=False)
        expect = (len(self.layers), len(self.heads), len(entry["queries"]), len(entry["keys"]))
        if arr.shape != expect:
            raise StoreError(f"item {entry['name']!r}: its array has shape {arr.shape}, its meta says {expect}")
        return arr.astype(np.float32)

    def weights(self, item: int | str, layer: int | str = 0, head: int | str = 0) -> np.ndarray:
        """float32 ``(queries, keys)`` map of one layer and head of ``item`` (indices or names)."""
        return self.all_weights(item)[_pick(self.layers, layer, "layer"), _pick(self.heads, head, "head")]

    def summary(self) -> dict:
        """Step, layers, heads and per item its size and mean normalised entropy of each layer and head
        (0: every query on one key; 1: uniform)."""
        out = []
        for n, e in enumerate(self._items):
            w = self.all_weights(n)
            ent = -(w * np.log(np.clip(w, 1e-12, None))).sum(-1) / np.log(max(w.shape[-1], 2))
            out.append({"name": e["name"], "queries": len(e["queries"]), "keys": len(e["keys"]),
                        "entropy": ent.mean(-1).round(4).tolist()})
        return {"step": self.step, "layers": self.layers, "heads": self.heads, "items": out}

    def _index(self, item: int | str) -> int:
        if isinstance(item, str):
            names = [e["name"] for e in self._items]
            if item not in names:
                raise StoreError(f"no item {item!r}; this snapshot has {', '.join(map(repr, names))}")
            return names.index(item)
        if not 0 <= int(item) < len(self._items):
            raise StoreError(f"item {item} is out of range: this snapshot has {len(self._items)} items")
        return int(item)


def _names(meta: Mapping[str, Any], key: str) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
        raise StoreError(f"the attention snapshot's meta[{key!r}] must be a non-empty list of names, not {names!r}")
    return names


def _items(meta: Mapping[str, Any]) -> list[dict]:
    items = meta.get("items")
    if not isinstance(items, list) or not items:
        raise StoreError("the attention snapshot's meta['items'] must be a non-empty list")
    for n, e in enumerate(items):
        if not isinstance(e, Mapping) or not isinstance(e.get("name"), str) \
                or not isinstance(e.get("queries"), list) or not isinstance(e.get("keys"), list):
            raise StoreError(f"the attention snapshot's item {n} needs a name and lists of queries and keys")
    return [dict(e, extra=dict(e.get("extra") or {})) for e in items]


def _pick(names: list[str], which: int | str, what: str) -> int:
    if isinstance(which, str):
        if which not in names:
            raise StoreError(f"no {what} {which!r}; there are {', '.join(names)}")
        return names.index(which)
    if not 0 <= int(which) < len(names):
        raise StoreError(f"{what} {which} is out of range: there are {len(names)}")
    return int(which)
