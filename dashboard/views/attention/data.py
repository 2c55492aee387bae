"""The Attention page's reads and pure helpers: which runs have attention, the view in the address bar,
the snapshots of a run and their per-snapshot summary (mean entropy, alignment share).

Two kinds of run record attention (``backend/store/attention.py``): an encoder-decoder with attention on
``dates-seq2seq`` (8 probe dates, one map each, layer ``dec-enc``, head ``h0``) and a transformer language
model (one item, the probe text, every layer and head). :func:`run_kind` tells them apart from the spec.

Example::

    view = parse_view(Query({"run": "a1b2", "item": "3", "layer": "9"}))   # View(run="a1b2", item=3, layer=9, ...)
    view.clamp(n_items=8, n_layers=2, n_heads=4).layer                      # 0: out of range falls back
    ad = attention_data(current().data)                                    # one per DashboardData
    snap, note = ad.open(run_id, step=200)                                 # AttentionSnapshot at or before it
    ad.summary_series(run_id)          # {"steps": [...], "entropy": {"mean": [...]}, "alignment": [...]}
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from backend.store import RunStore, StoreError
from backend.store.attention import KIND, AttentionSnapshot
from backend.store.hidden import SnapshotUnavailable
from backend.tasks.registry import TASKS

from dashboard.snapshots import open_newest
from dashboard.inputs import MAX_INDEX, Query

SNAPSHOTS_TTL = 1
RESULT_TTL = 3600   # a snapshot never changes: its summary is kept long
MAX_LAYERS = 64     # as the spec allows (heads <= 64, layers well under it)
SEQ2SEQ, TRANSFORMER = "seq2seq", "transformer"


@dataclass
class View:
    """What the page shows: run, probe item, layer, head (indices) and training step (None: the newest)."""

    run: str | None = None
    item: int = 0
    layer: int = 0
    head: int = 0
    step: int | None = None

    def clamp(self, n_items: int, n_layers: int, n_heads: int) -> "View":
        """Indices past what the snapshot has fall back to 0 (no error: a shared link of another run)."""
        self.item = self.item if 0 <= self.item < n_items else 0
        self.layer = self.layer if 0 <= self.layer < n_layers else 0
        self.head = self.head if 0 <= self.head < n_heads else 0
        return self

    def to_query(self, kind: str | None) -> dict[str, str]:
        """The address bar's parameters: only those the run's kind uses (item: seq2seq; layer, head:
        transformer) and the step unless the page follows the newest.

        >>> View("a1", 2, 1, 3, None).to_query("transformer")
        {'run': 'a1', 'layer': '1', 'head': '3'}
        """
        q = {"run": self.run} if self.run else {}
        if kind == SEQ2SEQ:
            q["item"] = str(self.item)
        if kind == TRANSFORMER:
            q.update(layer=str(self.layer), head=str(self.head))
        if self.step is not None:
            q["step"] = str(self.step)
        return q


def parse_view(q: Query) -> View:
    """The view of ``?run=ID&item=N&layer=L&head=H&step=S``; junk falls back to the default (and
    ``q.notice()`` says what was ignored).

    >>> parse_view(Query({"run": "r1", "item": "x", "step": "200"}))
    View(run='r1', item=0, layer=0, head=0, step=200)
    """
    return View(run=q.run_id("run"), item=q.int("item", 0, 0, 63), layer=q.int("layer", 0, 0, MAX_LAYERS - 1),
                head=q.int("head", 0, 0, 63), step=q.int("step", None, 0, MAX_INDEX))


def run_kind(run: dict | None) -> str | None:
    """``"seq2seq"`` (an encoder-decoder run, with or without attention), ``"transformer"`` (a transformer on a
    language-model task) or None (no attention of any kind).

    >>> run_kind({"task": "dates-seq2seq", "spec": {"model": {"family": "gru", "attention": "additive"}}})
    'seq2seq'
    """
    if not isinstance(run, dict):
        return None
    model = (run.get("spec") or {}).get("model") or {}
    info = TASKS.get(run.get("task"))
    if info is not None and info.kind == "seq2seq":
        return SEQ2SEQ
    if model.get("family") == "transformer" and (info is None or info.kind == "lm"):
        return TRANSFORMER
    return None


def has_attention(run: dict | None) -> bool:
    """Whether the run's spec records attention maps (an encoder-decoder with attention, a transformer LM)."""
    kind = run_kind(run)
    if kind == SEQ2SEQ:
        return ((run.get("spec") or {}).get("model") or {}).get("attention", "additive") != "none"
    return kind == TRANSFORMER


def attention_runs(runs: list[dict]) -> list[dict]:
    """The runs the page offers, in the order given (newest first)."""
    return [r for r in runs if has_attention(r)]


# -- pure summaries of one map ----------------------------------------------------------------------------
def row_entropy(weights: np.ndarray) -> np.ndarray:
    """Per row of ``(..., queries, keys)`` maps: entropy over the keys a row could read, divided by its log
    (0: all on one key; 1: spread evenly). A causal row ``i`` can read ``i + 1`` keys (zeros above the
    diagonal); a row with a single readable key is NaN (nothing to choose).

    >>> row_entropy(np.array([[1.0, 0.0], [0.5, 0.5]])).round(3).tolist()   # causal: row 0 reads one key
    [nan, 1.0]
    """
    w = np.asarray(weights, dtype=np.float64)
    ent = -(w * np.log(np.clip(w, 1e-12, None))).sum(-1)
    causal = np.allclose(np.triu(w, 1), 0) and w.shape[-1] == w.shape[-2]
    n = np.arange(1, w.shape[-2] + 1) if causal else np.full(w.shape[-2], w.shape[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 1, ent / np.log(np.maximum(n, 2)), np.nan)


def alignment_hits(weights: np.ndarray, spans: list) -> tuple[int, int]:
    """Rows of a ``(queries, keys)`` map whose strongest attention falls in their span ``[start, end)`` and the
    rows that have one (``spans``: one ``[start, end]`` per query; ``[-1, -1]`` or missing: no span).

    >>> alignment_hits(np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5]]), [[0, 1], [1, 2], [-1, -1]])
    (1, 2)
    """
    w = np.asarray(weights)
    hits = total = 0
    for q, span in enumerate(list(spans or [])[: len(w)]):
        if not isinstance(span, (list, tuple)) or len(span) != 2 or int(span[0]) < 0:
            continue
        total += 1
        hits += int(int(span[0]) <= int(np.argmax(w[q])) < int(span[1]))
    return hits, total


def snapshot_summary(snap: AttentionSnapshot) -> dict:
    """One snapshot's points of the summary chart: ``entropy`` per layer (mean over heads, rows and items)
    and, where the items say which input spans determine each output, the ``alignment`` share."""
    per_layer = [[] for _ in snap.layers]
    hits = total = 0
    for n, item in enumerate(snap.items()):
        w = snap.all_weights(n)
        ent = row_entropy(w)
        for layer in range(w.shape[0]):
            per_layer[layer].extend(ent[layer][np.isfinite(ent[layer])].ravel().tolist())
        spans = item["extra"].get("spans")
        if spans:
            h, t = alignment_hits(w[0, 0], spans)
            hits, total = hits + h, total + t
    out = {"step": snap.step, "entropy": [float(np.mean(v)) if v else None for v in per_layer]}
    out["alignment"] = hits / total if total else None
    return out


# -- cached reads ---------------------------------------------------------------------------------------
class AttentionData:
    """Cached access to the attention snapshots of the runs in one store."""

    def __init__(self, store: RunStore, cached: Callable[[str, int, Callable[[], Any]], Any] | None = None):
        self.store = store
        self._cached = cached or (lambda _key, _ttl, compute: compute())

    def snapshots(self, run_id: str) -> list[dict]:
        """Index rows of the run's attention snapshots, by step."""
        return self._cached(f"attention:snaps:{run_id}", SNAPSHOTS_TTL, lambda: self.store.list_snapshots(run_id, KIND))

    def open(self, run_id: str, step: int | None = None) -> tuple[AttentionSnapshot, str | None]:
        """The snapshot at ``step`` (the newest at or before it), skipping one still being written."""
        return open_newest(self.snapshots(run_id), step, lambda row: AttentionSnapshot(self.store, row),
                           "This run has no attention snapshot yet.",
                           "The attention snapshots of this run are still being written; try again in a moment.")

    def summary_series(self, run_id: str) -> dict:
        """``{"steps", "layers", "entropy": {layer: [...]}, "alignment": [...] or None}`` over the readable
        snapshots; each snapshot's summary is computed once (cached by its id)."""
        points, layers = [], []
        for row in self.snapshots(run_id):
            try:
                point = self._cached(f"attention:summary:{run_id}:{row['id']}", RESULT_TTL,
                                     lambda row=row: snapshot_summary(AttentionSnapshot(self.store, row)))
                layers = list(row["meta"].get("layers") or layers)
            except (SnapshotUnavailable, StoreError):
                continue  # still being written, or unreadable: the chart has a gap there
            points.append(point)
        entropy = {name: [p["entropy"][i] if i < len(p["entropy"]) else None for p in points]
                   for i, name in enumerate(layers)}
        alignment = [p["alignment"] for p in points]
        return {"steps": [p["step"] for p in points], "layers": layers, "entropy": entropy,
                "alignment": alignment if any(a is not None for a in alignment) else None}


_READERS: "weakref.WeakKeyDictionary[Any, AttentionData]" = weakref.WeakKeyDictionary()


def attention_data(data) -> AttentionData:
    """The :class:`AttentionData` of a :class:`~dashboard.data.DashboardData` (one per reader, sharing its
    cache through ``cache_get``/``cache_set``)."""
    reader = _READERS.get(data)
    if reader is None:
        def cached(key: str, ttl: int, compute: Callable[[], Any]) -> Any:
            value = data.cache_get(key)
            if value is None:
                value = compute()
                data.cache_set(key, value, ttl)
            return value
        reader = _READERS[data] = AttentionData(data.store, cached)
    return reader
