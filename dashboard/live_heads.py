"""Run heads: what is new in a run, known once for every viewer and every dashboard worker.

A run's *head* is its row (status, step, attempt, name, error), its scalar cursor (the id of its newest
scalar row) and, for language-model runs, the signature of its text-sample snapshots. Heads live in the
process, and their *stamps* (the head with the rows of its newest refresh only, not its window) in the
dashboard's flask-caching cache (the shared folder by default, Redis in docker-compose), so a Training page's
live stream or poll (:mod:`dashboard.views.training.live_stream`, :mod:`dashboard.views.training.live_route`)
is answered from them without touching the store while nothing is new, and its Python callback
(:mod:`dashboard.views.training.tick`) draws nothing it already shows. A worker whose head is where another
worker's stamp started takes its rows; one further behind reads the rows it lacks from the store (one indexed
query): measured under gunicorn, passing whole heads with their windows through Redis cost more CPU than that
query (:func:`dashboard.head_rows.stamp_of`).

**One read per tick for all workers.** The live streams of every worker wake on one clock, so while workers
share the cache (:meth:`RunHeads.sharing`) the first to find a run's head stale *claims* that tick's refresh
(``claim:<run>:<slot>``, set only if absent: atomic on Redis), reads the store, has the newest chunks built
(:attr:`RunHeads.on_refresh`) and writes its stamp, which carries them; the others wait for the stamp (at most
:data:`CLAIM_WAIT_S`, then they read themselves) and take its rows and chunks. A worker that lost a run's last
claim looks for the stamp before it claims (:data:`CLAIM_FOLLOW_S`): in the steady state a tick costs each of
the other workers one cache read per run. Measured with 4 workers of 5 streams each (``bench/viewers.py
--gunicorn``, ``bench/worker_ticks.py``; ``bench/RESULTS.md``), each worker refreshing on its own was most of
what viewers cost there, and then each cache command (~0.3 ms of CPU for a thread just woken) most of the rest.

A head older than :data:`HEAD_MAX_AGE_S` is refreshed by whichever request meets it first: one primary-key
read of the run row and one indexed read of the scalar rows after the previous head's cursor. The head
carries the rows of its last :data:`~dashboard.head_rows.WINDOW_S` seconds, so every page that polled in that
window (all of them, in the steady state) gets what it lacks with the head instead of one store query each; a page
further behind (e.g. its figures were built from a cached series) reads its range once for everyone at
the same cursor (cached under the range). The sample snapshots of a
language-model run are listed at most every :data:`SAMPLES_MAX_AGE_S` (they come every few hundred steps)
and cached under their signature.

Heads and the newest row ranges are also kept in this process: a worker's viewers read a fresh head
without touching the cache either, and with no cache, or while the cache fails
(:meth:`DashboardData.cache_get` answers None then), a refresh still starts from the last known cursor
instead of reading the whole series again. The process also keeps a *tail* per run: the rows of every head it
saw in the last :data:`~dashboard.head_rows.TAIL_S` seconds, so a page back from a pause (a hidden tab) is
answered without a query.
A worker alone on its cache (no other worker's head read for :data:`PEER_S`) reads and writes a head there at
most every :data:`LONE_WRITE_S`: a lone ``deepscope serve`` would only pay for its own copies.

Example::

    heads = data.heads.heads(["a1b2c3"])          # {"a1b2c3": {"cursor": 812, "run": {...}, ...}}
    rows, cursor = data.heads.rows_between("a1b2c3", 800, heads["a1b2c3"])
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import threading
import time
from typing import Any

from backend.store import StoreError
from backend.store.samples import KIND as SAMPLES_KIND
from backend.tasks.registry import TASKS
from dashboard.head_rows import (attempt, build_head, delta_fits, extended_tail, grouped, is_stamp, plain,
                                 rows_after, stamp_of, tail_window, well_formed, zipped)

HEAD_MAX_AGE_S = 0.2     # a poll may see a head this old: the live lag grows by at most this much
SAMPLES_MAX_AGE_S = 2.0  # text samples come every few hundred steps: listing them more often is waste
RUNS_MAX_AGE_S = 1.0     # the run list (the selector's options), as cached by DashboardData.list_runs
HEAD_TTL = 60            # cache lifetime of a head: the next refresh continues from its cursor
RANGE_TTL = 30           # rows between two heads: every viewer takes them within a poll or two
ROW_LIMIT = 50_000       # rows per refresh; the next refresh continues from there
RANGES_KEPT = 64         # row ranges kept in this process besides the cache
PEER_S = 60.0            # a worker that saw no other worker's head for this long writes its own heads ...
LONE_WRITE_S = 10.0      # ... to the shared cache at most this often (a write there costs ~5 ms: files)
CLAIM_TTL = 5            # s: a claim on a run's refresh in one HEAD_MAX_AGE_S slot (its key names the slot)
CLAIM_WAIT_S = 0.15      # how long the other workers wait for the claimant's stamp before reading themselves
CLAIM_POLL_S = 0.004     # first look for it after this, then at doubling gaps
CLAIM_FOLLOW_S = 0.008   # a worker that lost a run's last claim looks for the stamp after this before claiming
FOLLOW_S = 2.0           # ... for this long after it lost
_NOT_YET = object()      # no stamp of this tick in the cache yet


class RunHeads:
    """Heads of runs, shared through the cache of a :class:`dashboard.data.DashboardData`."""

    def __init__(self, data: Any):
        self.data = data
        self._local: dict[str, dict] = {}
        self._ranges: dict[str, list] = {}  # the newest row ranges, in this process
        self._tails: dict[str, dict] = {}   # per run: the rows of the heads seen in the last TAIL_S seconds
        self._me = f"{os.getpid()}:{id(self)}"
        self._peer_seen_at = 0.0   # when a head another worker wrote was last read from the cache
        self._written: dict[str, float] = {}  # when each key was last written to the cache
        self._read: dict[str, float] = {}     # and read from it
        self._lock = threading.Lock()
        self._refreshing: dict[str, threading.Lock] = {}  # per run: held while its head is refreshed
        self._followed: dict[str, float] = {}  # per run: when this worker last lost the claim of its refresh
        # called with (run id, head) after this worker read a head from the store while it shares the cache
        # with other workers, before its stamp is written (LiveAnswers builds the newest chunks there)
        self.on_refresh: Any = None
        self.read = self.taken = 0  # heads read from the store, and taken from another worker's stamp

    def sharing(self) -> bool:
        """Whether other dashboard workers use this cache now (one of their heads was read in the last
        :data:`PEER_S`): then each tick's refresh of a run is claimed by one worker, and the others take its rows
        and chunks from the cache (:meth:`_take_shared`)."""
        return time.time() - self._peer_seen_at <= PEER_S

    # -- heads -------------------------------------------------------------------------------------------
    def heads(self, run_ids: list[str]) -> dict[str, dict | None]:
        """``{run_id: head or None}`` (None: no such run), at most :data:`HEAD_MAX_AGE_S` old."""
        now = time.time()
        out = {}
        for rid in run_ids:
            key = f"head:{rid}"
            head = self._local.get(key)
            if head is None or now - head["at"] > HEAD_MAX_AGE_S:
                # one look at the cache and one refresh per run at a time in this process: the live streams of
                # every viewer wake together (dashboard/views/training/live_stream.py); the first looks and
                # refreshes, the others take its head
                with self._refresh_lock(rid):
                    head = self._fresh(rid, now)
            if head.get("run"):
                self._extend_tail(rid, head, now)
            out[rid] = head if head.get("run") else None
        return out

    def _fresh(self, rid: str, now: float) -> dict:
        """The run's head, refreshed unless another stream of this process just did (the caller holds the
        run's refresh lock)."""
        key = f"head:{rid}"
        head = self._local.get(key)
        if head is not None and now - head["at"] <= HEAD_MAX_AGE_S:
            return head
        if head is not None and head.get("run") and self.sharing():
            # claim this tick's refresh, or take the claimant's stamp (the stamp the cache holds at the start of a
            # tick is the last tick's: no use reading it first)
            return self._take_shared(rid, head) or self._refresh(rid, head, time.time())
        head = self._known(key, now, HEAD_MAX_AGE_S)
        if head is None or now - head["at"] > HEAD_MAX_AGE_S:
            head = self._refresh(rid, head, time.time())
        return head

    def _refresh_lock(self, rid: str) -> threading.Lock:
        with self._lock:
            lock = self._refreshing.get(rid)
            if lock is None:
                if len(self._refreshing) > 4096:  # run ids asked for over a long life: forget the idle ones
                    self._refreshing = {k: v for k, v in self._refreshing.items() if v.locked()}
                lock = self._refreshing[rid] = threading.Lock()
            return lock

    def _extend_tail(self, rid: str, head: dict, now: float) -> None:
        """Add a head's new rows to the run's tail in this process (:func:`dashboard.head_rows.extended_tail`).
        A page that paused (a hidden tab, a viewer back after a while) finds its rows here, not in the store."""
        with self._lock:
            tail = extended_tail(self._tails.get(rid), head, now)
            if tail is not None:
                self._tails[rid] = tail

    def _known(self, key: str, now: float | None = None, max_age: float = 0.0) -> dict | None:
        """The newer of the in-process and the cached value under ``key``; the cache is not read when the
        in-process value is at most ``max_age`` old (a worker's viewers share it)."""
        local = self._local.get(key)
        if local is not None and now is not None and now - local["at"] <= max_age:
            return local
        if local is not None and self._lone(key, self._read):
            return local  # alone: the cache holds at best what this process wrote
        cached = self.data.cache_get(key)
        if not well_formed(cached):  # whoever can write the cache is trusted with data, not with crashes
            return local
        if cached.get("by") != self._me and time.time() - cached["at"] < PEER_S:
            self._peer_seen_at = time.time()  # another worker shares this cache: share every head
        if is_stamp(key):
            cached = self._take(cached, local)
            if cached is None:
                return local
        if local is None or cached["at"] > local["at"]:
            with self._lock:
                self._local[key] = cached
            return cached
        return local

    def _keep(self, key: str, value: dict, ttl: int) -> None:
        """Keep ``value`` here and in the shared cache. While no other worker has written to the cache for
        :data:`PEER_S`, a head is written there at most every :data:`LONE_WRITE_S` (enough for a new worker
        to find it, and to find us): a lone ``deepscope serve`` would only pay for writes nobody reads."""
        value["by"] = self._me
        with self._lock:
            self._local[key] = value
        if not self._lone(key, self._written):
            self.data.cache_set(key, stamp_of(value) if is_stamp(key) else value, ttl)

    def _lone(self, key: str, last: dict[str, float]) -> bool:
        """Whether to skip a cache read or write of ``key`` (``last``: when each key was last read or written).
        While no other worker's head was read for :data:`PEER_S`, only one every :data:`LONE_WRITE_S` goes
        through: enough for a new worker to find this one's heads, and for this one to find the newcomer's."""
        now = time.time()
        with self._lock:
            if now - self._peer_seen_at > PEER_S and now - last.get(key, 0.0) < LONE_WRITE_S:
                return True
            last[key] = now
            return False

    def _refresh(self, rid: str, prev: dict | None, now: float) -> dict:
        run = self.data.store.get_run(rid)
        if run is None:
            head = {"at": now, "run": None}
            self._keep(f"head:{rid}", head, HEAD_TTL)
            return head
        start = prev.get("cursor") if prev and prev.get("run") else None
        if not isinstance(start, int):
            _series, start = self.data.initial_series(rid)  # cached: only the rows since it are read
        rows, cursor = self.data.store.scalars_after(rid, start, limit=ROW_LIMIT)
        head = build_head(prev, plain(run), rows, start, cursor, now,
                          (prev or {}).get("samples"), (prev or {}).get("samples_at", 0.0))
        if is_language_run(run) and (now - head["samples_at"] > SAMPLES_MAX_AGE_S
                                     or attempt(prev) != attempt(head)):
            head["samples"], head["samples_at"] = self._list_samples(rid), now
        self.read += 1
        if self.on_refresh is not None and self.sharing():
            chunks = self.on_refresh(rid, head)  # in the stamp: a worker that takes it takes the chunks too
            if isinstance(chunks, dict) and chunks:
                head["chunks"] = chunks
        self._keep(f"head:{rid}", head, HEAD_TTL)
        return head

    def _take_shared(self, rid: str, local: dict) -> dict | None:
        """The run's head from the stamp of the worker that claimed this tick's refresh, or None: this worker
        claimed it and the cache has no fresh stamp (it reads the store; its stamp carries the rows it read), or
        the claimant's stamp did not come within :data:`CLAIM_WAIT_S` or cannot be taken (this worker's head is
        at another cursor).

        The live streams of every worker wake on the same clock: without a claim each worker would read the
        same rows from the store and build the same chunks, so the cost of viewers grew with the workers."""
        now = time.time()
        # the HEAD_MAX_AGE_S slot of the clock this refresh falls in (every worker's streams wake together in one)
        slot = now - now % HEAD_MAX_AGE_S if HEAD_MAX_AGE_S > 0 else now
        if now - self._followed.get(rid, 0.0) <= FOLLOW_S:
            # another worker claimed this run's last refreshes: it is most likely at this one now, so look for its
            # stamp before claiming (one cache read per tick, where a claim and then the look were two or more)
            time.sleep(CLAIM_FOLLOW_S)
            head = self._look(rid, local, slot)
            if head is not _NOT_YET:
                return head
        if self.data.cache_add(f"claim:{rid}:{slot:.3f}", self._me, CLAIM_TTL):
            self._followed.pop(rid, None)
            # ours: a fresh stamp may be there all the same (a poll's, off the streams' clock), else read
            head = self._known(f"head:{rid}", now, HEAD_MAX_AGE_S)
            return head if head is not None and now - head["at"] <= HEAD_MAX_AGE_S else None
        with self._lock:
            if len(self._followed) > 4096:  # run ids followed over a long life: forget the old ones
                self._followed = {k: t for k, t in self._followed.items() if now - t <= FOLLOW_S}
            self._followed[rid] = now
        delay, deadline = CLAIM_POLL_S, time.monotonic() + CLAIM_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay *= 2
            head = self._look(rid, local, slot)
            if head is not _NOT_YET:
                return head
        return None

    def _look(self, rid: str, local: dict, slot: float) -> Any:
        """The run's head taken from this tick's stamp in the cache (kept here); None when the stamp is this
        tick's but this worker cannot take it (it reads the store); :data:`_NOT_YET` when the cache holds no
        stamp of this tick yet."""
        key = f"head:{rid}"
        cached = self.data.cache_get(key)
        if not well_formed(cached) or cached["at"] <= local["at"]:
            return _NOT_YET  # not written yet
        head = self._take(cached, local)
        if head is None:
            # this tick's stamp, but not one this worker can take: it reads the store; an older one: wait on
            return None if cached["at"] >= slot else _NOT_YET
        with self._lock:
            self._local[key] = head
            if cached.get("by") != self._me:
                self._peer_seen_at = time.time()
        return head

    def _take(self, stamp: dict, local: dict | None) -> dict | None:
        """This process's head brought up to a stamp another worker (or this one) shared, or None when the
        stamp cannot be taken: it is older than the local head, of another attempt, or its rows would have to
        be read (its cursor is past the local head's and it does not carry the rows after the local cursor).
        Without a local head, a stamp starts one with an empty window."""
        if not stamp.get("run"):
            return stamp  # the run is gone
        if local is None or not local.get("run"):
            return {**stamp_of(stamp), "marks": [[stamp["at"], stamp["cursor"]]],
                    "rows": {k: [] for k in ("id", "name", "step", "value")}}
        if attempt(stamp) != attempt(local) or stamp["at"] <= local["at"]:
            return None
        if stamp["cursor"] == local["cursor"]:
            return {**local, **stamp_of(stamp)}  # nothing new since the local head: its window and marks stay
        delta = stamp.get("delta")
        if stamp.get("from") != local["cursor"] or not delta_fits(delta, local["cursor"], stamp["cursor"]):
            return None
        self.taken += 1
        head = build_head(local, stamp["run"], zipped(delta), local["cursor"], stamp["cursor"], stamp["at"],
                          stamp.get("samples"), stamp.get("samples_at", 0.0))
        if isinstance(stamp.get("chunks"), dict):
            head["chunks"] = stamp["chunks"]  # checked where they are used (LiveAnswers), not trusted
        return head

    # -- what a head points at ------------------------------------------------------------------------------
    def rows_between(self, rid: str, cursor: int, head: dict) -> tuple[dict[str, dict[str, list]], int]:
        """Scalar rows after ``cursor`` up to the head's cursor, grouped by name, and the cursor they end at.

        A page one head behind (every page in the steady state) gets the rows the head carries; one
        further behind gets them from the cache when another viewer read the same range, else from one
        store query."""
        head_cursor = head["cursor"]
        if cursor >= head_cursor:
            return {}, cursor
        key = f"rows:{rid}:{cursor}:{head_cursor}"
        value = self._ranges.get(key)  # the viewers of this worker at the same cursor group them once
        marks = head.get("marks") or []
        if value is None and marks and cursor >= marks[0][1] and isinstance(head.get("rows"), dict):
            value = [grouped(zipped(rows_after(head["rows"], cursor))), head_cursor]
        if value is None:
            value = self._from_tail(rid, cursor, head_cursor)
        if value is None:
            value = self.data.cache_get(key)
        if not (isinstance(value, list) and len(value) == 2):
            rows, _ = self.data.store.scalars_after(rid, cursor, limit=ROW_LIMIT)
            rows = [r for r in rows if r[0] <= head_cursor]
            value = [grouped(rows), rows[-1][0] if rows else cursor]
            self.data.cache_set(key, value, RANGE_TTL)
        self._remember_range(key, value)
        return {name: {"x": list(v["x"]), "y": list(v["y"])} for name, v in value[0].items()}, value[1]

    def boundaries(self, head: dict) -> list[int]:
        """The cursors the head's window is cut at: where each of its refreshes started, then its own cursor.
        Every page that polled within the window holds one of them (ascending; equal when a refresh found
        nothing new)."""
        return [m[1] for m in head.get("marks") or []] + [head["cursor"]]

    def rows_in(self, head: dict, lo: int, hi: int) -> dict[str, dict[str, list]] | None:
        """The head's rows with ids in ``(lo, hi]``, grouped by name; None when its window does not hold them."""
        marks, rows = head.get("marks") or [], head.get("rows")
        if not marks or lo < marks[0][1] or hi > head["cursor"] or not isinstance(rows, dict):
            return None
        ids = rows["id"]
        a, b = bisect.bisect_right(ids, lo), bisect.bisect_right(ids, hi)
        return grouped(zipped({k: v[a:b] for k, v in rows.items()}))

    def _from_tail(self, rid: str, cursor: int, head_cursor: int) -> list | None:
        """``[grouped rows, head_cursor]`` from this process's tail of the run, or None."""
        with self._lock:
            window = tail_window(self._tails.get(rid), cursor, head_cursor)
        return None if window is None else [grouped(zipped(window)), head_cursor]

    def _remember_range(self, key: str, value: list) -> None:
        with self._lock:
            self._ranges[key] = value
            while len(self._ranges) > RANGES_KEPT:
                self._ranges.pop(next(iter(self._ranges)))

    def _list_samples(self, rid: str) -> str | None:
        """Signature of the run's sample snapshots; their rows are cached under it."""
        try:
            rows = self.data.store.list_snapshots(rid, SAMPLES_KIND)
        except StoreError:
            return None
        rows = [plain(r) for r in rows]
        sig = hashlib.sha1(json.dumps([[r.get("id"), r.get("step")] for r in rows]).encode()).hexdigest()[:16]
        self._keep(f"samples:{rid}:{sig}", {"at": time.time(), "rows": rows}, HEAD_TTL)
        return sig

    def snapshot_rows(self, rid: str, head: dict | None) -> list[dict]:
        """The sample snapshot rows the head's signature names (read again if the cache lost them)."""
        sig = (head or {}).get("samples")
        found = self._known(f"samples:{rid}:{sig}") if sig else None
        if found is not None:
            return found["rows"]
        return [plain(r) for r in self.data.store.list_snapshots(rid, SAMPLES_KIND)]

    def runs_signature(self) -> str:
        """Signature of the run list (ids, names, statuses), at most :data:`RUNS_MAX_AGE_S` old."""
        now = time.time()
        local = self._local.get("head:runs")
        if local is not None and now - local["at"] <= RUNS_MAX_AGE_S:
            return local["sig"]
        with self._refresh_lock(""):  # one look at the cache and one listing at a time in this process
            known = self._known("head:runs", now, RUNS_MAX_AGE_S)
            if known is not None and now - known["at"] <= RUNS_MAX_AGE_S:
                return known["sig"]
            listed = self.data.list_runs()
            sig = hashlib.sha1(json.dumps([[r["id"], r.get("name"), r.get("status")] for r in listed]).encode())
            head = {"at": now, "sig": sig.hexdigest()[:16]}
            self._keep("head:runs", head, HEAD_TTL)
            return head["sig"]


def is_language_run(run: dict) -> bool:
    return getattr(TASKS.get(run.get("task", "")), "kind", None) == "lm"
