"""Metric rows from the training step to the store, whether or not the store is reachable.

The training step only queues rows (:meth:`BackgroundWriter.put`); a daemon thread commits them every
``interval`` seconds and writes the run's heartbeat every :data:`~backend.store.retry.HEARTBEAT_S`. While
the store is unreachable the thread keeps rows in memory (up to ``memory_rows``), appends what is beyond
that to a spool file in the run's folder (:mod:`backend.store.spool`), and tries again with capped
exponential backoff; when the store returns it writes the spool, then memory, in order, each row once.
:meth:`BackgroundWriter.when_durable` runs a callback in that thread once every row queued before it is
durable (committed, or spooled while the store is unreachable): how a checkpoint becomes resumable.

Example::

    writer = BackgroundWriter(store, run_id)
    writer.put([("train/loss", 10, 0.5, time.time())], step=10)
    writer.when_durable(lambda: promote_checkpoint(pending))   # after the step-10 rows are safe
    writer.close()      # waits up to the outage limit; past it, rows stay in the spool for the resume
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from typing import Callable

from ..store import RunStore
from ..store.retry import HEARTBEAT_S, Backoff, brief, is_transient, outage_clock
from ..store.spool import Spool, chunked, replay_spools, spool_files, write_rows_once

log = logging.getLogger(__name__)
MEMORY_ROWS = 200_000  # ~40 MB of rows kept in memory during an outage; later rows go to the spool file
CHUNK_ROWS = 5_000  # rows per transaction when catching up after an outage
MAX_WRITE_TRIES = 20  # failures in a row that retrying cannot fix (not an outage) before rows are set aside


class BackgroundWriter:
    """Commits queued scalar rows every ``interval`` seconds from a daemon thread; survives store outages."""

    def __init__(self, store: RunStore, run_id: str, interval: float = 0.2, memory_rows: int = MEMORY_ROWS,
                 heartbeat_s: float = HEARTBEAT_S, chunk_rows: int = CHUNK_ROWS):
        self.store, self.run_id, self.interval = store, run_id, interval
        self.memory_rows, self.heartbeat_s, self.chunk_rows = memory_rows, heartbeat_s, chunk_rows
        self.clock = outage_clock(store)
        self.spool = self._new_spool()
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._memory: list[tuple] = []
        self._appended = 0  # rows ever moved from the queue to memory: rows durable = this - len(memory)
        self._waiting: list[tuple[int, Callable[[], object]]] = []  # (rows before it, callback), in order
        self._closed = False
        self._max_step = 0
        self._spooled_done = 0  # rows at the head of the spool file already in the store
        self._adopt: int | None = None  # replay older spool files up to this step first
        self._uncertain = False  # the head chunk may have been committed before the connection dropped
        self._failures = 0
        self._backoff = Backoff(0.1, 5.0)
        self._retry_at = self._next_beat = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="deepscope-writer", daemon=True)
        self._thread.start()

    def _new_spool(self) -> Spool:
        return Spool(self.store.run_dir(self.run_id), token=f"{os.getpid()}-{uuid.uuid4().hex[:6]}")

    # -- the training thread's side -----------------------------------------------------------
    def put(self, rows: list[tuple], step: int) -> None:
        self._queue.put((rows, step))

    def when_durable(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` (in the writer's thread) once every row put before this call is durable:
        committed, or in the spool file while the store is unreachable. Never waits; exceptions from the
        callback are logged. A writer already closed runs it now when nothing is left unwritten."""
        if self._closed:
            with self._lock:
                self._drain()
                self._waiting.append((self._appended, callback))
                self._run_ready()
            return
        self._queue.put(_Durable(callback))

    def adopt_spools(self, upto_step: int) -> None:
        """Write the rows an earlier process of this run spooled (up to ``upto_step``, the step this one
        resumes from) before this writer's own; later ones are superseded by the resume."""
        if spool_files(self.store, self.run_id):
            with self._lock:
                self._adopt = int(upto_step)

    def flush(self) -> bool:
        """Commit everything queued so far, in the caller's thread. Never raises: while the store is
        unreachable it returns False at once and the writer's thread keeps trying."""
        with self._lock:
            self._drain()
            if self.clock.down and time.monotonic() < self._retry_at:
                return not self._unwritten()
            done = self._attempt()
            self._run_ready()
            return done

    def close(self, deadline_s: float | None = None) -> bool:
        """Stop the thread and write what is left, waiting up to ``deadline_s`` (default: the outage
        limit) for an unreachable store. Past it the rows stay in the spool file, written when the run
        resumes (or by :func:`~backend.store.spool.replay_spools`). Never raises; True when all is written."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._closed = True
        end = time.monotonic() + (self.clock.limit_s if deadline_s is None else deadline_s)
        while True:
            with self._lock:
                self._drain()
                if self._attempt():
                    self._run_ready()
                    return True
                if time.monotonic() >= end:
                    n = len(self._memory)
                    self._spill()
                    self._run_ready()
                    log.error("the store stayed unreachable; %d metric rows of run %s wait in %s and are written "
                              "when the run resumes", n, self.run_id, self.spool.path)
                    return False
                wait = min(self._retry_at, end) - time.monotonic()
            time.sleep(max(0.01, wait))

    # -- the writer thread's side ---------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                with self._lock:
                    self._drain()
                    if time.monotonic() >= self._retry_at:
                        self._attempt(heartbeat=True)
                    if self._waiting and not self._ready() and time.monotonic() < self._retry_at:
                        self._spill()  # the store is unreachable: the spool makes the rows durable now
                    self._run_ready()
            except Exception:  # noqa: BLE001 - the thread must outlive any one tick; close() retries
                log.exception("the metrics writer's tick failed")
            if self._stop.wait(self.interval):
                return

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Durable):
                self._waiting.append((self._appended, item.callback))
                continue
            rows, step = item
            for name, s, value, wall in rows:
                try:  # a one-element tensor (client runs) becomes a float here, off the training thread
                    self._memory.append((name, int(s), float(value), float(wall)))
                    self._appended += 1
                except (TypeError, ValueError, RuntimeError) as exc:
                    log.warning("metric %r at step %s is not a number (%s); not recorded", name, s, exc)
            self._max_step = max(self._max_step, int(step))
        if len(self._memory) > self.memory_rows:
            log.warning("%d metric rows waiting for the store: moving them to %s", len(self._memory), self.spool.path)
            self._spill()

    def _ready(self) -> bool:
        """Whether the oldest waiting callback's rows are all durable."""
        return bool(self._waiting) and self._waiting[0][0] <= self._appended - len(self._memory)

    def _run_ready(self) -> None:
        while self._ready():
            _, callback = self._waiting.pop(0)
            try:
                callback()
            except Exception:  # noqa: BLE001 - e.g. a full disk while renaming a checkpoint
                log.exception("a callback waiting for the metric rows of run %s failed", self.run_id)

    def _spill(self) -> None:
        """Move every row in memory to the end of the spool file (all of them: the file stays older)."""
        try:
            self.spool.append(self._memory)
        except OSError as exc:  # a full or read-only disk: keep them in memory rather than lose them
            log.error("could not spool %d metric rows to %s (%s); they stay in memory", len(self._memory),
                      self.spool.path, exc)
            return
        self._memory = []

    def _unwritten(self) -> bool:
        return bool(self._memory) or self.spool.exists() or self._adopt is not None

    def _attempt(self, heartbeat: bool = False) -> bool:
        """One try at writing everything (and the heartbeat); True when nothing is left unwritten."""
        started = time.monotonic()
        try:
            touched = self._write_all()
            if heartbeat and self.heartbeat_s > 0 and started >= self._next_beat:
                self.store.heartbeat(self.run_id)
                self._next_beat, touched = started + self.heartbeat_s, True
        except Exception as exc:  # never into training: an outage waits, anything else is set aside
            self._failed(exc, started)
            return False
        if touched:
            lasted = self.clock.ok()
            if lasted is not None:
                log.warning("the store is reachable again after %.1f s; catching up on metric rows", lasted)
        self._backoff.reset()
        self._retry_at, self._failures = 0.0, 0
        return True

    def _write_all(self) -> bool:
        """Older spools, this writer's spool, then memory, in order; True when the store was asked."""
        touched = False
        step = self._max_step or None
        if self._adopt is not None:
            replay_spools(self.store, self.run_id, upto_step=self._adopt, exclude=[self.spool.path])
            self._adopt, touched = None, True
        if self.spool.exists():
            for batch in chunked(self.spool.rows(skip=self._spooled_done), self.chunk_rows):
                write_rows_once(self.store, self.run_id, batch, step=step)
                self._spooled_done += len(batch)
            self.spool.remove()
            self._spooled_done, touched = 0, True
        while self._memory:
            batch = self._memory[:self.chunk_rows]
            if self._uncertain:  # its commit may have happened: write only what is missing
                write_rows_once(self.store, self.run_id, batch, step=step)
            else:
                self.store.log_scalars(self.run_id, batch, step=step)
            del self._memory[:len(batch)]
            self._uncertain, touched = False, True
        return touched

    def _failed(self, exc: Exception, started: float) -> None:
        self._uncertain = True
        if is_transient(exc):
            if self.clock.failed(exc, since=started):
                log.warning("the store is unreachable (%s); training goes on: metric rows wait in memory "
                            "(then in %s) and are written when it returns", brief(exc), self.spool.path.name)
            self._retry_at = time.monotonic() + self._backoff.next()
            return
        self._failures += 1
        log.warning("could not write %d metric rows (try %d): %s", len(self._memory), self._failures, exc)
        self._retry_at = time.monotonic() + self.interval
        if self._failures >= MAX_WRITE_TRIES:  # retrying will not help: keep the rows on disk, go on
            self._spill()
            log.error("metric rows of run %s could not be written after %d tries; they are kept in %s",
                      self.run_id, self._failures, self.spool.path)
            self.spool, self._spooled_done, self._adopt, self._failures = self._new_spool(), 0, None, 0


class _Durable:
    """A callback in the writer's queue: its place there says which rows it waits for."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], object]):
        self.callback = callback
