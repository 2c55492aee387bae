"""The dashboard's reads of hidden-state snapshots: windows, selections, matches, summaries.

Every read is a window or a few columns (``backend.store.hidden`` reads with plain
file reads, never a whole-snapshot load); results that are small and reused
(matches, summaries, snapshot lists) go through flask-caching, keyed by run,
snapshot id and parameters. Errors a person can fix come out as ``ViewError``
with a message meant for the page.

Example::

    hs = HiddenStates(store)                                  # or DashboardData(...).hidden (cached)
    snap = hs.open(run_id)                                    # newest snapshot
    sel = hs.select(snap, "l0.fwd.c", 500, 505, threshold=0.3)
    hint = hs.suggest(snap, {"l0.fwd.h": (1, 0)}, 500, 505)   # Suggestion(threshold=0.21, cells=3, ...)
    found = hs.match(run_id, snap, "l0.fwd.c", sel.cells, 0.3, query_len=5)
    both = hs.match_groups(run_id, snap, [("l0.fwd.c", [3]), ("l0.bwd.c", [7])], 0.3, query_len=5)
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from backend.analysis.cells import (Brushed, Candidates, SelectionError, Suggestion, candidate_ranges, extra_cells,
                                    rank_candidates, select_cells, suggest_threshold)
from backend.store import RunStore
from backend.store.hidden import KIND, TRACK_KIND, HiddenSnapshot

from dashboard.snapshots import ViewError, open_newest, view_error_message  # noqa: F401 - shared; imported from here too

log = logging.getLogger(__name__)
N_MATCHES = 50
EXTRA_CANDIDATES = 500  # candidates whose extra cells are counted (each is one small read)
CONTEXT = 4             # tokens shown around a match
SUGGEST_CONTEXT = 40    # tokens each side of a brushed range that the suggested threshold keeps the cells off
SNAPSHOTS_TTL = 1
RESULT_TTL = 600
MAX_SEARCH_TOKENS = 5_000_000


@dataclass
class Selection:
    start: int
    stop: int
    cells: list[int]
    on_count: np.ndarray  # per token of the window: how many selected cells are on


class HiddenStates:
    """Cached access to the hidden-state snapshots of the runs in one store."""

    def __init__(self, store: RunStore, cached: Callable[[str, int, Callable[[], Any]], Any] | None = None):
        """``cached(key, ttl, compute)`` is the dashboard's flask-caching helper; without one, no cache."""
        self.store = store
        self._cached = cached or (lambda _key, _ttl, compute: compute())
        self._open: OrderedDict[int, HiddenSnapshot] = OrderedDict()

    # -- snapshots ------------------------------------------------------------------
    def snapshots(self, run_id: str) -> list[dict]:
        """Index rows (id, step, meta, arrays) of a run's hidden-state snapshots, by step."""
        return self._cached(f"hidden:snaps:{run_id}", SNAPSHOTS_TTL, lambda: self.store.list_snapshots(run_id, KIND))

    def open(self, run_id: str, step: int | None = None) -> tuple[HiddenSnapshot, str | None]:
        """The snapshot at ``step`` (the newest at or before it; newest when None) and a note.

        A snapshot whose files are not all there yet is skipped for the one before it,
        and the note says so. Raises ViewError when there is nothing to show.
        """
        return open_newest(self.snapshots(run_id), step, lambda row: self._reader(run_id, row), "no-snapshot",
                           "The snapshots of this run are still being written; try again in a moment.",
                           say_nearest=True)

    def _reader(self, run_id: str, row: dict) -> HiddenSnapshot:
        sid = int(row["id"])
        if sid in self._open:
            self._open.move_to_end(sid)
            return self._open[sid]
        tracks = self.store.list_snapshots(run_id, TRACK_KIND)
        snap = HiddenSnapshot(self.store, row, tracks)
        self._open[sid] = snap
        while len(self._open) > 64:
            self._open.popitem(last=False)
        return snap

    def forget_tracks(self) -> None:
        """Drop open readers so newly attached user tracks are seen."""
        self._open.clear()

    # -- select ---------------------------------------------------------------------
    def select(self, snap: HiddenSnapshot, key: str, start: int, stop: int, threshold: float,
               off_before: int = 1, off_after: int = 0, window: tuple[int, int] | None = None) -> Selection:
        """Cells on across ``[start, stop)`` and off in the margins; counts over ``window``."""
        n = snap.n_tokens
        if not 0 <= start < stop <= n:
            raise ViewError(f"The range {start:,}–{stop:,} is outside the probe text, which has {n:,} tokens "
                            f"(0–{n - 1:,}). Brush a range inside it.")
        lo = max(0, start - off_before)
        values = snap.window(key, lo, stop + off_after)
        try:
            cells = select_cells(values, start - lo, stop - lo, threshold, off_before, off_after)
        except SelectionError as exc:
            raise ViewError(str(exc)) from None
        w0, w1 = window or (start, stop)
        on = snap.window(key, w0, w1)[:, cells] > threshold if len(cells) else np.zeros((w1 - w0, 0), bool)
        return Selection(start, stop, cells.tolist(), on.sum(axis=1))

    def suggest(self, snap: HiddenSnapshot, margins: dict[str, tuple[int, int]], start: int, stop: int,
                context: int = SUGGEST_CONTEXT) -> Suggestion | None:
        """The threshold at which the cells selected for ``[start, stop)`` are most off in the ``context``
        tokens around it (see backend.analysis.cells.suggest_threshold); ``margins`` maps each state key
        to its (off before, off after) tokens, left and right. None: no threshold >= 0 selects a cell."""
        n = snap.n_tokens
        if not 0 <= start < stop <= n:
            return None
        lo, hi = max(0, start - context), min(n, stop + context)
        groups = [Brushed(snap.window(key, lo, hi), start - lo, stop - lo, ob, oa) for key, (ob, oa) in margins.items()]
        return suggest_threshold(groups)

    # -- match ----------------------------------------------------------------------
    def match(self, run_id: str, snap: HiddenSnapshot, key: str, cells: list[int], threshold: float,
              query_len: int, n: int = N_MATCHES) -> list[dict]:
        """The ``n`` best places where the selected cells are on together (see backend.analysis.cells)."""
        return self.match_groups(run_id, snap, [(key, cells)], threshold, query_len, n)

    def match_groups(self, run_id: str, snap: HiddenSnapshot, groups: Sequence[tuple[str, Sequence[int]]],
                     threshold: float, query_len: int, n: int = N_MATCHES) -> list[dict]:
        """:meth:`match` over selected cells of several states at once, e.g. the forward and the backward
        cells of a bidirectional layer: a place counts when those cells are on together, and its extra
        cells are counted in every state. A match's ``cells`` rows are the groups' cells in order."""
        groups = [(k, [int(c) for c in cells]) for k, cells in groups if len(cells)]
        if not groups:
            raise ViewError("Select cells first: brush a range where some cells are on.")
        what = ";".join(f"{k}:{','.join(map(str, cells))}" for k, cells in groups)
        ckey = f"hidden:match:{run_id}:{snap.row['id']}:{what}:{threshold:.6g}:{query_len}:{n}"
        return self._cached(ckey, RESULT_TTL, lambda: self._match(snap, groups, threshold, query_len, n))

    def _match(self, snap: HiddenSnapshot, groups: list[tuple[str, list[int]]], threshold: float, query_len: int,
               n: int) -> list[dict]:
        cols = np.concatenate([snap.columns(key, cells) for key, cells in groups])
        max_len = max(3 * query_len, query_len + 20)
        cand = candidate_ranges(cols, threshold, max_len=max_len)
        if not len(cand):
            return []
        pre = rank_candidates(cand, query_len)[:EXTRA_CANDIDATES]
        sub = Candidates(cand.start[pre], cand.stop[pre], cand.common[pre])
        # the groups' states side by side, as one (tokens, groups x cells) array per candidate
        sel = np.concatenate([np.asarray(cells) + g * snap.n_cells for g, (_, cells) in enumerate(groups)])
        per_key = [snap.windows(key, sub.start, sub.stop) for key, _ in groups]
        rows_of = (np.hstack(parts) if len(parts) > 1 else parts[0] for parts in zip(*per_key))
        extra = np.array([extra_cells(rows, sel, threshold) for rows in rows_of])
        order = rank_candidates(sub, query_len, extra)[:n]
        out = []
        for i in order:
            s, e = int(sub.start[i]), int(sub.stop[i])
            a, b = max(0, s - CONTEXT), min(snap.n_tokens, e + CONTEXT)
            out.append({"start": s, "stop": e, "common": int(sub.common[i]), "extra": int(extra[i]),
                        "context": [a, b], "cells": cols[:, a:b].astype(np.float32).tolist()})
        return out

    # -- corpus-wide reads ---------------------------------------------------------
    def summary(self, run_id: str, snap: HiddenSnapshot, key: str) -> dict:
        """Correlation of every cell with every track: ``{"tracks": [...], "r": [[...], ...]}``."""
        def compute():
            return {"tracks": snap.track_names, "r": np.round(snap.corr(key), 4).tolist()}
        n_user = len(snap.track_names)
        return self._cached(f"hidden:summary:{run_id}:{snap.row['id']}:{key}:{n_user}", RESULT_TTL, compute)

    def saturation(self, run_id: str, snap: HiddenSnapshot, key: str) -> np.ndarray | None:
        """Gate saturation per cell (see HiddenSnapshot.saturation), cached per snapshot."""
        value = self._cached(f"hidden:sat:{run_id}:{snap.row['id']}:{key}", RESULT_TTL,
                             lambda: _or_empty(snap.saturation(key)))
        return None if value.size == 0 else value

    def find_text(self, snap: HiddenSnapshot, text: str, after: int = -1) -> int | None:
        """Token position of the next occurrence of ``text`` after ``after`` (wrapping), or None."""
        if not text:
            return None
        corpus = self._cached(f"hidden:text:{snap.row['id']}", RESULT_TTL, lambda: self._corpus_text(snap))
        hit = corpus.find(text, after + 1)
        if hit < 0:
            hit = corpus.find(text)
        return None if hit < 0 else hit  # one character per token for the built-in vocabularies

    def _corpus_text(self, snap: HiddenSnapshot) -> str:
        if snap.n_tokens > MAX_SEARCH_TOKENS:
            raise ViewError("text search is limited to corpora of 5 million tokens")
        tokens = snap.tokens()
        if any(len(t) != 1 for t in tokens[:1000]):
            # multi-character tokens: search over tokens joined without separators, map back
            raise ViewError("text search needs a character-level corpus")
        return "".join(tokens)


def no_states_message(run: dict) -> tuple[str, str]:
    """What the Hidden states page says about ``run`` while it has no hidden-state snapshot, and the alert's
    colour: why it never will (no recurrent layer; a task without probe inputs), or that the first is coming.

    >>> no_states_message({"id": "r1", "name": "t", "task": "code-lstm", "status": "completed",
    ...                    "spec": {"model": {"family": "transformer"}}})[0][:60]
    'Run t (r1) is a transformer language model on code-lstm: it '
    """
    from backend.spec import RECURRENT
    from backend.tasks.registry import TASKS, records_projections

    family = (run.get("spec") or {}).get("model", {}).get("family")
    name = f"{run['name']} ({run['id']})"
    with_states = [n for n, t in TASKS.items() if t.kind in STATE_KINDS]
    info = TASKS.get(run["task"])
    if family == "transformer":
        embeddings = ", its character embeddings on Projections" if info and records_projections(info) else ""
        return (f"Run {name} is a transformer language model on {run['task']}: it has no recurrent layer, so it "
                "has no hidden states (h, c and gates per token). What it reads is on the Attention page (every "
                f"layer and head over its probe text){embeddings}. Choose an LSTM, GRU or RNN run to see hidden "
                "states.", "warning")
    if family not in RECURRENT:
        return (f"Run {name} is a {family or 'non-recurrent'} model on {run['task']}: it has no recurrent layer, "
                "so it has no hidden states. Choose an LSTM, GRU or RNN run, or start one on New run (task "
                f"{', '.join(with_states)}).", "warning")
    if info is not None and info.kind not in STATE_KINDS:  # a built-in task without probe inputs (any source)
        return (f"Task {run['task']} has no probe text: hidden states per token are recorded for "
                f"{', '.join(with_states)}. A classifier's final hidden states are on Projections.", "info")
    return ("No hidden-state snapshot yet. The probe records the first one when training starts "
            f"(run status: {run['status']}); this page updates by itself.", "info")


# tasks whose recurrent runs record hidden states: language models and the tagger (a probe text), and
# encoder-decoders (their probe items' inputs and outputs, backend/probes/seq_states.py)
STATE_KINDS = ("lm", "tag", "seq2seq")


def _or_empty(arr: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, np.float32) if arr is None else arr  # None would read as a cache miss

