"""Hooks that keep the processes of a multi-process run in step (see :mod:`.distributed`).

- :class:`ControlSync` (every rank): rank 0 reads the store's controls at sync steps and broadcasts the
  decision; every rank applies it at the same step, so the learning rate and the stop are the same
  everywhere. At the end of training the ranks compare learning rate and weights (:class:`RanksDisagree`).
- :class:`FollowerMetricsHook` (ranks other than 0): joins the log step's ``all_reduce`` of the metrics
  that differ per rank (loss, correct predictions, counts) and writes nothing.
"""
from __future__ import annotations

import math
import time

import torch

from .distributed import Ranks
from .hooks import Hook, StepOutput
from .optim import get_lr, set_lr
from .store_hooks import ControlHook, MetricsHook, TrainingDiverged, divergence_message

SYNC_TARGET_S = 0.05  # about how often the ranks sync controls: the single-process ControlHook's poll period
MAX_SYNC_EVERY = 100  # steps between syncs at most
PAUSED, RUNNING = 1.0, 0.0


class RanksDisagree(RuntimeError):
    """The ranks ended with different learning rates or weights: a control or an update reached only some."""


class ControlSync(Hook):
    """Rank 0's control decisions on every rank, at the same step.

    Syncs happen at steps all ranks know in advance: each broadcast carries the number of steps to the next,
    chosen by rank 0 so that syncs come about every ``SYNC_TARGET_S`` (a broadcast costs ~0.35 ms with gloo
    on 2 cores; every step would add 10% to a 3 ms step). At a sync rank 0 asks the store (its
    ``control`` hook) and sends ``(paused, stop, lr, steps to next sync)``; while paused it repeats
    ``paused`` every poll, so the other ranks wait in short collectives rather than one that could time out.
    """

    def __init__(self, ranks: Ranks, control: ControlHook | None = None):
        if ranks.is_main and control is None:
            raise ValueError("rank 0's ControlSync needs the run's ControlHook")
        self.ranks, self.control = ranks, control
        self._next = 1
        self._since, self._since_step = time.perf_counter(), 0
        self._trainer = None
        if control is not None:
            control.check_every_s = 0.0  # asked at every sync step; the sync cadence spaces them
            control.on_wait = self._still_paused

    def on_train_start(self, trainer) -> None:
        self._trainer = trainer
        self._next = trainer.step + 1
        self._since, self._since_step = time.perf_counter(), trainer.step
        if self.control is not None:
            self.control.on_train_start(trainer)

    def on_step_end(self, trainer, out: StepOutput) -> None:
        if out.step < self._next:
            return
        if self.ranks.is_main:
            self.control.on_step_end(trainer, out)  # may wait here while paused (sending PAUSED)
            msg = self.ranks.broadcast([RUNNING, float(trainer.should_stop), get_lr(trainer.optimizer),
                                        float(self._cadence(out.step))])
        else:
            msg = self.ranks.broadcast([0.0] * 4)
            while msg[0] == PAUSED:
                msg = self.ranks.broadcast([0.0] * 4)
            if msg[1]:
                trainer.should_stop = True
            if msg[2] != get_lr(trainer.optimizer):
                set_lr(trainer.optimizer, msg[2])
        self._next = out.step + int(msg[3])

    def _still_paused(self) -> None:
        self.ranks.broadcast([PAUSED, 0.0, 0.0, 0.0])

    def _cadence(self, step: int) -> int:
        now = time.perf_counter()
        per_step = (now - self._since) / max(1, step - self._since_step)
        self._since, self._since_step = now, step
        return max(1, min(MAX_SYNC_EVERY, int(SYNC_TARGET_S / max(per_step, 1e-6))))

    def on_train_end(self, trainer, status: str) -> None:
        if self.control is not None:
            self.control.on_train_end(trainer, status)
        check_agreement(self.ranks, trainer)

    def close(self) -> None:
        if self.control is not None:
            self.control.close()


@torch.no_grad()
def check_agreement(ranks: Ranks, trainer) -> None:
    """Raise :class:`RanksDisagree` on every rank when the ranks' learning rates or weights differ (one
    all_gather of two numbers at the end of training): DDP keeps them equal as long as every rank applied
    every control at the same step."""
    params = [p.detach().double().sum() for p in trainer.model.parameters()]
    checksum = float(torch.stack(params).sum()) if params else 0.0
    seen = ranks.gather([get_lr(trainer.optimizer), checksum])
    lrs, sums = [s[0] for s in seen], [s[1] for s in seen]
    scale = max(1.0, max(abs(s) for s in sums))
    if max(lrs) != min(lrs) or max(sums) - min(sums) > 1e-9 * scale:
        raise RanksDisagree(f"the training processes disagree at step {trainer.step}: learning rates by rank "
                            f"{lrs}, weight checksums {sums}; a control or an update reached only some of them")


class FollowerMetricsHook(MetricsHook):
    """A rank other than 0: the same log-period sums as rank 0's MetricsHook (it joins their all_reduce)
    and the same divergence stop, without a writer or gradient norms."""

    def __init__(self, ranks: Ranks, every: int = 10, stop_on_divergence: bool = True):
        self.every, self.grad_norms, self.stop_on_divergence = every, False, stop_on_divergence
        self.ranks, self.writer = ranks, None
        self._norms: dict[str, float] = {}
        self._reset(time.perf_counter())

    def on_train_start(self, trainer) -> None:
        self._reset(time.perf_counter())

    def _emit(self, trainer, out: StepOutput) -> None:
        loss = self._period()[0]
        self._reset(time.perf_counter())
        if self.stop_on_divergence and not math.isfinite(loss):  # rank 0 raises at the same step
            raise TrainingDiverged(divergence_message(out.step, loss, get_lr(trainer.optimizer),
                                                      getattr(trainer.spec, "clip_norm", None)))

    def on_eval_end(self, trainer, step: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer, status: str) -> None: ...

    def close(self) -> None: ...
