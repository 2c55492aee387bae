"""The hidden-state probe as a trainer hook: snapshots at the start, every K steps and at the end.

K starts at about a tenth of the run and doubles whenever a probe (its capture plus
the writing of the previous snapshot) would cost more than its ``budget`` of the
training time between probes, so probes never slow training noticeably whatever the
model size (bench/overhead.py measures it). All of a run's snapshot probes share one
budget, :data:`PROBE_BUDGET` (1.5%), split by :func:`share_budget` in proportion to
each kind's ``weight``. Capture runs in the training thread (it
needs the weights of this very step); writing the files runs in a background thread
at a lower priority.

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
from ..tasks.probe import ProbeCorpus
from ..training.hooks import Hook
from .hidden import SEGMENT, WARMUP, SnapshotWriterThread, adapt_every, capture_model, describe, find_recurrent

log = logging.getLogger(__name__)
# All snapshot probes of a run together: at most this share of its training time. The per-step hooks
# (metrics, gradient norms, controls) take another 1-2% on 2 CPU cores, and the whole must stay within 3%
# (bench/overhead.py). A probe alone gets all of it; share_budget() splits it between a run's probes.
PROBE_BUDGET = 0.015


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
        self.writer = SnapshotWriterThread(self.write)
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
        self._done = {int(s["step"]) for s in self.store.list_snapshots(self.run_id, self.kind)}
        self.capture(trainer)

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
        now = time.perf_counter()
        payload, meta = self.take(trainer)
        # cost of a probe: this capture plus the latest write (a background thread, but it shares the cores)
        probe_s = time.perf_counter() - now + self.writer.last_write_s
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
