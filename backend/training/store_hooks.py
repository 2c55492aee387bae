"""Hooks that connect a trainer to the run store: metrics writer, controls, checkpoints.

The writer batches rows and commits them from a background thread, so the
training step never waits on the database; control requests are read every
step, so pause/stop/learning-rate changes take effect within one step.
None of them lets a store outage end training (docs/store.md, "When the store is
unreachable"): rows wait in memory or a spool file, controls are asked again later,
and past the outage limit :class:`ControlHook` stops the run, which then ends ``interrupted``.
A run whose training loss becomes NaN or infinite is stopped at the next log step
(:class:`TrainingDiverged`: the run fails with a message that says so), after the
non-finite row is written.
"""
from __future__ import annotations

import logging
import math
import time

import torch

from ..lab.records import AFTER_CLIP
from ..models import layer_key
from ..store import RunStore
from ..store.retry import Backoff, brief, is_transient, outage_clock, outage_reason
from .checkpoint import clear_pending, promote_checkpoint, save_checkpoint
from .hooks import Hook, StepOutput
from .optim import get_lr, set_lr
from .writer import BackgroundWriter  # (callers have always found it here too)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: nothing more can be learnt from this run."""


def divergence_message(step: int, loss: float, lr: float, clip_norm: float | None) -> str:
    """What a diverged run says: where, what, and what to change."""
    clip = f"gradients clipped at norm {clip_norm:g}" if clip_norm else "no gradient clipping"
    return (f"training diverged at step {step:,}: the training loss became {loss} (learning rate {lr:g}, "
            f"{clip}). The weights are no longer finite, so the run stopped; lower the learning rate"
            + (" or turn on gradient clipping (clip_norm)." if not clip_norm else "."))


class MetricsHook(Hook):
    """Logs train loss/accuracy, learning rate, gradient norms and throughput every ``every`` steps.

    Gradient norms are measured before clipping (``grad_norm/<layer>``, ``grad_norm/global``); when the
    spec clips (``clip_norm``), ``grad_norm/after_clip`` is the global norm of the gradients the optimizer
    used, measured after the step. ``stop_on_divergence``: a non-finite training loss at a log step
    raises :class:`TrainingDiverged` once its row is queued (the run fails with that message).
    """

    def __init__(self, store: RunStore, run_id: str, every: int = 10, grad_norms: bool = True,
                 stop_on_divergence: bool = True, ranks=None):
        self.every, self.grad_norms, self.stop_on_divergence = every, grad_norms, stop_on_divergence
        self.ranks = ranks  # several processes (backend.training.distributed.Ranks): their sums at each log step
        self.writer = BackgroundWriter(store, run_id)
        self._reset(time.perf_counter())
        self._norms: dict[str, float] = {}

    def _reset(self, now: float) -> None:
        self._losses, self._corrects = [], []
        self._count, self._samples, self._steps = 0, 0, 0
        self._t0 = now

    def on_train_start(self, trainer) -> None:
        self._reset(time.perf_counter())
        self.writer.adopt_spools(trainer.step)  # rows a process of this run spooled before it ended

    def on_after_backward(self, trainer, step: int) -> None:
        if self.grad_norms and step % self.every == 0:
            self._norms = layer_grad_norms(trainer.model)

    def on_step_end(self, trainer, out: StepOutput) -> None:
        self._losses.append(out.loss)  # device tensors, summed at the log step: no sync, no op per step
        self._corrects.append(out.correct)
        self._count += out.count
        self._samples += out.samples
        self._steps += 1
        if out.step % self.every == 0:
            if self.grad_norms and self._norms and getattr(trainer.spec, "clip_norm", None):
                # the gradients stay until the next zero_grad: these are the ones clip_grad_norm_ left
                self._norms[AFTER_CLIP.split("/", 1)[1]] = global_grad_norm(trainer.model)
            self._emit(trainer, out)

    def _emit(self, trainer, out: StepOutput) -> None:
        now, wall = time.perf_counter(), time.time()
        elapsed = max(now - self._t0, 1e-9)
        step = out.step
        loss, correct, count, samples = self._period()
        rows = [("train/loss", step, loss, wall)]
        if count:  # a reconstruction task has no predictions to score
            rows.append(("train/acc", step, correct / count, wall))
        rows += [("lr", step, get_lr(trainer.optimizer), wall),
                 ("time/step_ms", step, 1000 * elapsed / self._steps, wall),
                 ("throughput/samples_per_s", step, samples / elapsed, wall)]
        rows += [(f"grad_norm/{k}", step, v, wall) for k, v in self._norms.items()]
        self.writer.put(rows, step)
        self._reset(now)
        self._norms = {}
        if self.stop_on_divergence and not math.isfinite(loss):
            raise TrainingDiverged(divergence_message(step, loss, get_lr(trainer.optimizer),
                                                      getattr(trainer.spec, "clip_norm", None)))

    def _period(self) -> tuple[float, float, int, int]:
        """The log period's mean loss, correct predictions, predictions and samples; with ``ranks``, over
        every process (one all_reduce: each rank's mean loss counts alike, as DDP's gradient does)."""
        totals = [_total(self._losses), _total(self._corrects), float(self._count), float(self._samples)]
        ranks = 1
        if self.ranks is not None and self.ranks.size > 1:
            totals, ranks = self.ranks.sum(totals), self.ranks.size
        return totals[0] / (self._steps * ranks), totals[1], int(totals[2]), int(totals[3])

    def on_eval_end(self, trainer, step: int, metrics: dict[str, float]) -> None:
        wall = time.time()
        self.writer.put([(k, step, v, wall) for k, v in metrics.items()], step)

    def on_train_end(self, trainer, status: str) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _total(values: list) -> float:
    """The sum of a log period's per-step values (0-d tensors or numbers) as a float: one op, one sync."""
    if values and isinstance(values[0], torch.Tensor):
        return float(torch.stack(values).sum())
    return float(sum(values))


@torch.no_grad()
def layer_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of each layer, and ``global`` over all of them."""
    keys, grads = [], []
    for name, p in model.named_parameters():
        if p.grad is not None:
            keys.append(layer_key(name))
            grads.append(p.grad)
    if not grads:
        return {}
    # one fused kernel for every tensor's norm (as clip_grad_norm_ does) and one copy to the host; the few
    # per-layer sums in Python (a handful of tensor ops more cost 2.4x as much: 240 vs 100 us after backward)
    norms = torch.stack(torch._foreach_norm(grads)).float().tolist()
    sq: dict[str, float] = {}
    for key, n in zip(keys, norms):
        sq[key] = sq.get(key, 0.0) + n * n
    out = {k: math.sqrt(v) for k, v in sq.items()}
    out["global"] = math.sqrt(sum(sq.values()))
    return out


@torch.no_grad()
def global_grad_norm(model: torch.nn.Module) -> float:
    """L2 norm of all the model's gradients together (0 when there are none)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.stack(torch._foreach_norm(grads)).float().norm()) if grads else 0.0


class ControlHook(Hook):
    """Applies pause, resume, stop and learning-rate requests between steps.

    A store that cannot be asked is asked again later (backoff up to 5 s, logged once per outage) and
    training goes on; what could not be written (a status, handled marks) is written when it returns. Once
    the outage has lasted past its limit (``$DEEPSCOPE_STORE_OUTAGE_S``) this hook stops the run and sets
    ``trainer.stop_reason``: the run checkpoints and ends ``interrupted``.
    """

    def __init__(self, store: RunStore, run_id: str, poll: float = 0.1, on_pause=None, check_every_s: float = 0.05,
                 on_wait=None):
        self.store, self.run_id, self.poll = store, run_id, poll
        self.on_pause = on_pause  # called before the run reports "paused" (e.g. flush metrics)
        self.on_wait = on_wait  # called every poll while paused (several processes: the others wait on it)
        # the store is asked at most every check_every_s (~60 us a query, 0.6% of a 10 ms step when asked every
        # step; bench/overhead.py --profile): a request waits at most that long plus one step
        self.check_every_s, self._next_check = check_every_s, 0.0
        self.clock = outage_clock(store)
        self._backoff = Backoff(0.1, 5.0)
        self._handled: set[int] = set()  # applied here, not yet marked handled in the store
        self._owed_status: str | None = None  # a status change the store has not taken yet
        self._owed_lr: float | None = None  # a rate set here, for the run's spec (what its page shows)

    def on_step_end(self, trainer, out: StepOutput) -> None:
        now = time.perf_counter()
        if now < self._next_check:
            return
        self._next_check = now + self.check_every_s
        if self.clock.exceeded():
            self._stop_for_outage(trainer)
        elif controls := self._poll():
            self.apply(trainer, controls)

    def apply(self, trainer, controls: list[dict]) -> None:
        """Handle ``controls``; on pause, wait here (between steps) for resume or stop."""
        paused = was_paused = False
        while True:
            for c in controls:
                if c["kind"] == "set_lr" and c["value"]:
                    set_lr(trainer.optimizer, float(c["value"]))
                    self._owed_lr = float(c["value"])
                elif c["kind"] == "stop":
                    trainer.should_stop, paused = True, False
                elif c["kind"] == "pause" and not trainer.should_stop and not paused:
                    if self.on_pause:
                        self.on_pause()
                    paused = was_paused = True
                    self._owed_status = "paused"
                elif c["kind"] == "resume":
                    paused = False
            self._handled.update(c["id"] for c in controls)
            self._try(self._settle)
            if not paused:
                break
            if self.clock.exceeded():
                self._stop_for_outage(trainer)
                break
            if self.on_wait is not None:
                self.on_wait()
            time.sleep(max(self.poll, self._next_check - time.perf_counter()))
            controls = self._poll() or []
        if was_paused and not trainer.should_stop:
            self._owed_status = "running"
            self._try(self._settle)

    def on_train_end(self, trainer, status: str) -> None:
        self._owed_status = None  # the run's final status is written by whoever ran it
        self._try(self._settle)  # a stop left pending would stop the resumed run at once

    def _poll(self) -> list[dict] | None:
        """Unhandled requests, or None when the store cannot be asked now (asked again later)."""
        try:
            if self._owed_status or self._handled:
                self._settle()
            controls = []
            if self.store.has_pending_controls(self.run_id):  # cheap; the full read only when needed
                controls = [c for c in self.store.pending_controls(self.run_id) if c["id"] not in self._handled]
        except Exception as exc:
            self._outage(exc)
            return None
        self._backoff.reset()
        return controls

    def _settle(self) -> None:
        """Write what the store owes: handled marks, then the latest status change."""
        if not (self._handled or self._owed_status or self._owed_lr is not None):
            return
        if self._owed_lr is not None:  # the spec's lr is the run's rate now: its page and a resume read it
            run = self.store.get_run(self.run_id)
            if run is not None:
                self.store.update_spec(self.run_id, {**(run.get("spec") or {}), "lr": self._owed_lr})
            self._owed_lr = None
        if self._handled:
            self.store.mark_handled(sorted(self._handled))
            self._handled.clear()
        if self._owed_status:
            self.store.set_status(self.run_id, self._owed_status)
            self._owed_status = None
        self.clock.ok()

    def _try(self, fn) -> None:
        try:
            fn()
        except Exception as exc:
            self._outage(exc)

    def _outage(self, exc: Exception) -> None:
        """A store error: an outage is waited out (asked again after a backoff); anything else is raised."""
        if not is_transient(exc):
            raise exc
        if self.clock.failed(exc):
            log.warning("the store is unreachable (%s); training goes on, control requests are read "
                        "when it returns", brief(exc))
        self._next_check = time.perf_counter() + self._backoff.next()

    def _stop_for_outage(self, trainer) -> None:
        if trainer.should_stop:
            return
        trainer.should_stop = True
        trainer.stop_reason = outage_reason(self.clock.limit_s, trainer.step)
        log.error("the store has been unreachable for %.0f s (limit %.0f s): checkpointing and ending run %s "
                  "at step %d; resume it when the store is back", self.clock.down_for(), self.clock.limit_s,
                  self.run_id, trainer.step)


class CheckpointHook(Hook):
    """Saves a checkpoint every ``every`` steps and when training ends.

    With ``writer`` (the run's metrics writer) a checkpoint is written as pending and becomes the one a
    resume starts from only once the writer has made every row logged up to its step durable (committed,
    or in the spool file while the store is unreachable): a resume from step S never logs the steps up
    to S again. The training thread never waits for the store here; a kill before the promotion resumes
    from the checkpoint before, and the rows after that one are superseded anyway. (bench/faults.py lost
    rows at a checkpoint when it was saved at once, and stalled training for a 30 s store lock when the
    training thread wrote the rows itself before saving.)
    """

    def __init__(self, store: RunStore, run_id: str, every: int = 1000, writer: BackgroundWriter | None = None):
        self.folder = store.run_dir(run_id) / "checkpoints"
        self.every = every
        self.writer = writer

    def on_train_start(self, trainer) -> None:
        cleared = clear_pending(self.folder)  # a process before this one died before they counted
        if cleared:
            log.info("cleared %d pending checkpoint(s) of an earlier process of this run", cleared)

    def on_step_end(self, trainer, out: StepOutput) -> None:
        if out.step % self.every == 0 and not _evaluates_at(trainer, out.step):
            self._save(trainer)

    def on_eval_end(self, trainer, step: int, metrics: dict[str, float]) -> None:
        # at an evaluation step the checkpoint waits for the validation metrics: a resume starts after
        # this step and never evaluates it again, so they must be durable before it counts
        if step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, status: str) -> None:
        self._save(trainer)

    def _save(self, trainer) -> None:
        if self.writer is None:
            save_checkpoint(trainer, self.folder)
            return
        pending = save_checkpoint(trainer, self.folder, pending=True)
        self.writer.when_durable(lambda: promote_checkpoint(pending))


def _evaluates_at(trainer, step: int) -> bool:
    """Whether the trainer evaluates after ``step`` (its rule in ``Trainer.run``)."""
    spec = getattr(trainer, "spec", None)
    every = getattr(spec, "eval_every", None)
    return bool(every) and (step % every == 0 or step == getattr(trainer, "total_steps", None))
