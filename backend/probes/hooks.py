"""The hidden-state probe as a trainer hook: snapshots at the start, every K steps and at the end.

K starts at about a tenth of the run and doubles whenever a probe (its capture plus
the writing of the previous snapshot) would cost more than its ``budget`` of the
training time between probes, so probes never slow training noticeably whatever the
model size (bench/overhead.py measures it). All of a run's snapshot probes share one
budget, :data:`PROBE_BUDGET` (1.5%), split by :func:`share_budget` in proportion to
each kind's ``weight``. Capture runs in the training thread (it
needs the weights of this very step); writing the files runs in a background thread
at a lower priority. A snapshot that cannot be indexed while the store is unreachable is
tried again a few times, then skipped with a log line, and no snapshot is taken while the
store is known to be unreachable: snapshots are samples, the next one comes at its cadence.

Example::

    probe = HiddenStateProbe(store, run_id, probe_corpus(get_task("brackets-lstm")))
    Trainer(spec, data, hooks=[probe]).run()
"""
from __future__ import annotations

import logging
import math
import time

import torch

from ..store import RunStore
from ..store.hidden import KIND, write_hidden_snapshot
from ..store.retry import Backoff, brief, call_with_retry, is_transient, outage_clock
from ..tasks.probe import ProbeCorpus
from ..training.hooks import Hook
from .hidden import SEGMENT, WARMUP, SnapshotWriterThread, adapt_every, capture_model, describe, find_recurrent

log = logging.getLogger(__name__)
# All snapshot probes of a run together: at most this share of its training time. The per-step hooks
# (metrics, gradient norms, controls) take another 1-2% on 2 CPU cores, and the whole must stay within 3%
# (bench/overhead.py). A probe alone gets all of it; share_budget() splits it between a run's probes.
PROBE_BUDGET = 0.015
SNAPSHOT_TRIES = 3  # writes of one snapshot while the store is unreachable (1 s, then 2 s apart), then skipped
START_WAIT_S = 30.0  # how long a probe's start waits for the store to say which steps it has already


def share_budget(probes: list["SnapshotProbe"], total: float = PROBE_BUDGET) -> list["SnapshotProbe"]:
    """Split ``total`` between ``probes`` in proportion to their kinds' ``weight``; returns them.

    For a character language model (hidden states 3, gradient flow 1, text samples 1, embeddings 0.5):
    0.82%, 0.27%, 0.27%, 0.14%.

    >>> class P(SnapshotProbe):
    ...     def __init__(self, weight): self.weight, self.budget = weight, None
    >>> [round(p.budget, 4) for p in share_budget([P(3), P(1), P(1)])]
    [0.009, 0.003, 0.003]
    """
    weights = sum(p.weight for p in probes)
    for p in probes:
        p.budget = total * p.weight / weights
    return probes


def default_every(total_steps: int) -> int:
    """About ten snapshots per run, at a round number of steps (1, 2 or 5 x 10^k).

    >>> default_every(5000), default_every(1500), default_every(30)
    (500, 200, 5)
    """
    raw = max(1, total_steps // 10)
    base = 10 ** int(math.log10(raw))
    return min((m * base for m in (1, 2, 5, 10) if m * base >= raw), default=raw) if raw > 1 else 1


class SnapshotProbe(Hook):
    """A probe that snapshots at the start, every ``every`` steps and at the end.

    Subclasses say what they record: :meth:`setup` (False turns the probe off),
    :meth:`take` (capture in the training thread; returns what :meth:`write` gets)
    and :meth:`write` (runs in the background writer thread). The cadence and its
    cost budget are handled here, once for every kind of snapshot.
    """

    kind = "snapshot"
    weight = 1.0  # its part of a run's shared probe budget (share_budget)

    def __init__(self, store: RunStore, run_id: str, every: int | None = None, budget: float = PROBE_BUDGET,
                 adaptive: bool = True):
        self.store, self.run_id = store, run_id
        self.every, self.budget, self.adaptive = every, budget, adaptive
        self.writer = SnapshotWriterThread(self._write_tolerant)
        self.clock = outage_clock(store)
        self._write_s = 0.0  # the latest successful write (waits for the store are not the probe's cost)
        self._skipping = False
        self._done: set[int] = set()
        self._last_step, self._last_time = 0, 0.0
        self.enabled = True

    # -- what subclasses provide --------------------------------------------------------
    def setup(self, trainer) -> bool:
        return True

    def take(self, trainer) -> tuple[object, dict]:
        raise NotImplementedError

    def write(self, step: int, payload, meta: dict) -> None:
        raise NotImplementedError

    # -- hook events ----------------------------------------------------------------------
    def on_train_start(self, trainer) -> None:
        try:
            self.enabled = self.setup(trainer)
        except ValueError as exc:
            log.warning("%s probe off: %s", self.kind, exc)
            self.enabled = False
        if not self.enabled:
            return
        self.every = self.every or default_every(trainer.total_steps)
        self._done = self._steps_done()
        self.capture(trainer)

    def _steps_done(self) -> set[int]:
        """Steps this run already has a snapshot of (a resumed run does not take them again)."""
        try:
            rows = call_with_retry(lambda: self.store.list_snapshots(self.run_id, self.kind),
                                   deadline_s=min(START_WAIT_S, self.clock.limit_s))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s probe: the store is unreachable (%s); it may snapshot a step it has already",
                        self.kind, brief(exc))
            return set()
        return {int(s["step"]) for s in rows}

    def on_step_end(self, trainer, out) -> None:
        if self.enabled and out.step % self.every == 0:
            self.capture(trainer)

    def on_train_end(self, trainer, status: str) -> None:
        if self.enabled:
            self.capture(trainer)

    def capture(self, trainer) -> None:
        step = trainer.step
        if step in self._done:
            return
        if self.clock.down:  # the writer would only wait for the store: skip this sample
            if not self._skipping:
                log.warning("the store is unreachable: no %s snapshots until it returns (from step %d)",
                            self.kind, step)
            self._skipping = True
            return
        self._skipping = False
        now = time.perf_counter()
        payload, meta = self.take(trainer)
        # cost of a probe: this capture plus the latest write (a background thread, but it shares the cores)
        probe_s = time.perf_counter() - now + self._write_s
        if self.adaptive and self._last_time and step > self._last_step:
            step_s = (now - self._last_time) / (step - self._last_step)
            new_every = adapt_every(self.every, probe_s, step_s, self.budget)
            if new_every != self.every:
                log.info("%s probe takes %.0f ms; snapshots every %d steps now (was %d)", self.kind,
                         1000 * probe_s, new_every, self.every)
                self.every = new_every
        self._last_step, self._last_time = step, time.perf_counter()
        self._done.add(step)
        meta = dict(meta, task=trainer.spec.task, every=self.every, probe_ms=round(1000 * probe_s, 1))
        self.writer.put(step, payload, meta)

    def _write_tolerant(self, step: int, payload, meta: dict) -> None:
        """:meth:`write`, in the writer thread: tried again while the store is unreachable, then skipped."""
        backoff = Backoff(1.0, 4.0, jitter=0.1)
        for attempt in range(SNAPSHOT_TRIES):
            started = time.monotonic()
            try:
                if attempt and self._indexed(step):  # the previous try's commit went through after all
                    return
                self.write(step, payload, meta)
            except Exception as exc:
                if not is_transient(exc):
                    raise  # SnapshotWriterThread logs it; training goes on
                self.clock.failed(exc, since=started)
                if attempt + 1 < SNAPSHOT_TRIES:
                    time.sleep(backoff.next())
                    continue
                log.warning("%s snapshot at step %d skipped: the store is unreachable (%s); snapshots are "
                            "samples, the next one is taken at its cadence", self.kind, step, brief(exc))
                self._done.discard(step)
                return
            self._write_s = time.monotonic() - started
            self.clock.ok()
            return

    def _indexed(self, step: int) -> bool:
        return any(int(s["step"]) == step for s in self.store.list_snapshots(self.run_id, self.kind))

    def flush(self) -> None:
        """Wait until every captured snapshot is on disk."""
        self.writer.join()

    def close(self) -> None:
        self.writer.close()


class HiddenStateProbe(SnapshotProbe):
    """Records h, c and gates of every recurrent layer over ``corpus`` every ``every`` steps."""

    kind = KIND
    weight = 3.0  # the largest capture, and the view that needs snapshots most (Hidden states)

    def __init__(self, store: RunStore, run_id: str, corpus: ProbeCorpus, every: int | None = None,
                 budget: float = PROBE_BUDGET, adaptive: bool = True, segment: int = SEGMENT, warmup: int = WARMUP):
        super().__init__(store, run_id, every, budget, adaptive)
        self.corpus, self.segment, self.warmup = corpus, segment, warmup
        self._ids: torch.Tensor | None = None

    def setup(self, trainer) -> bool:
        self._describe = describe(find_recurrent(trainer.model))  # ValueError: no recurrent layer
        self._ids = torch.as_tensor(self.corpus.ids, device=trainer.device)
        return True

    def take(self, trainer):
        states = capture_model(trainer.model, self._ids, segment=self.segment, warmup=self.warmup)
        return states, dict(self._describe, source=self.corpus.source, segment=self.segment, warmup=self.warmup)

    def write(self, step: int, states, meta) -> None:
        write_hidden_snapshot(self.store, self.run_id, step, states, self.corpus.ids, self.corpus.vocab,
                              self.corpus.tracks, meta)
