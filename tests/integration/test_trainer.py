"""Trainer + store: crashes, controls within a step, checkpoint resume, live processes."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from backend.jobs import JobManager
from backend.store import StoreError
from backend.training.hooks import Hook
from backend.training.worker import run_training
from tests.conftest import tiny_spec


class Boom(Hook):
    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, trainer, out):
        if out.step == self.at:
            raise RuntimeError("injected failure at step %d" % out.step)


class RequestAt(Hook):
    """Acts like a user pressing a button when the run reaches ``step``."""

    def __init__(self, store, run_id, step, kind, value=None):
        self.store, self.run_id, self.step, self.kind, self.value = store, run_id, step, kind, value

    def on_step_end(self, trainer, out):
        if out.step == self.step:
            self.store.request_control(self.run_id, self.kind, self.value)


def _new_run(store, **overrides):
    spec = tiny_spec(**overrides)
    return store.create_run("t", spec.task, spec.model_dump()), spec


def test_crash_marks_failed_and_keeps_metrics(store):
    run_id, _ = _new_run(store, steps=500)
    assert run_training(store, run_id, extra_hooks=[Boom(at=37)]) == "failed"
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "injected failure at step 37" in run["error"]
    series, _ = store.scalar_series(run_id)
    assert series["train/loss"]["step"].tolist() == list(range(5, 36, 5))  # logged before the crash
    assert series["lr"]["value"][0] == pytest.approx(0.003)


def test_logged_series_cover_the_metrics(store):
    run_id, _ = _new_run(store, steps=50, clip_norm=1.0)
    assert run_training(store, run_id) == "completed"
    names = set(store.scalar_names(run_id))
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/precision", "val/recall", "val/f1", "lr",
            "grad_norm/global", "time/step_ms", "throughput/samples_per_s"} <= names
    layer_norms = {n for n in names if n.startswith("grad_norm/") and n not in ("grad_norm/global", "grad_norm/after_clip")}
    assert "grad_norm/after_clip" in names  # the run clips: the norm the clip left is logged too
    assert {"grad_norm/features.0", "grad_norm/features.3", "grad_norm/head"} == layer_norms
    series, _ = store.scalar_series(run_id)
    glob = series["grad_norm/global"]["value"]
    per_layer = np.sqrt(sum(series[n]["value"] ** 2 for n in layer_norms))
    assert np.allclose(glob, per_layer, rtol=1e-4)  # norms are before clipping, and consistent
    assert store.get_run(run_id)["status"] == "completed"


class Record(Hook):
    """Every step's loss and correct count, and each layer's gradient norm recomputed naively at log steps."""

    def __init__(self):
        self.losses, self.correct, self.counts, self.norms = {}, {}, {}, {}

    def on_after_backward(self, trainer, step):
        if step % 5 == 0:
            sq = {}
            for name, p in trainer.model.named_parameters():
                layer = name.rsplit(".", 1)[0]
                sq[layer] = sq.get(layer, 0.0) + float(p.grad.norm()) ** 2
            self.norms[step] = {k: v ** 0.5 for k, v in sq.items()}

    def on_step_end(self, trainer, out):
        self.losses[out.step], self.correct[out.step] = float(out.loss), int(out.correct)
        self.counts[out.step] = out.count


def test_logged_loss_accuracy_and_layer_norms_are_those_of_the_steps(store):
    """train/loss and train/acc are the means over each log period's steps; grad_norm/<layer> is the norm of
    that layer's gradients (summed per layer after one fused norm: checked against a per-tensor recount)."""
    run_id, _ = _new_run(store, steps=20)
    rec = Record()
    assert run_training(store, run_id, extra_hooks=[rec]) == "completed"
    series, _ = store.scalar_series(run_id)
    for i, step in enumerate(series["train/loss"]["step"].tolist()):
        period = range(step - 4, step + 1)
        assert series["train/loss"]["value"][i] == pytest.approx(np.mean([rec.losses[s] for s in period]), rel=1e-5)
        acc = sum(rec.correct[s] for s in period) / sum(rec.counts[s] for s in period)
        assert series["train/acc"]["value"][i] == pytest.approx(acc, rel=1e-6)
        for layer, norm in rec.norms[step].items():
            assert series[f"grad_norm/{layer}"]["value"][i] == pytest.approx(norm, rel=1e-4)


def test_stop_then_resume_continues_steps_and_loss(store):
    run_id, _ = _new_run(store, steps=120, lr=0.01)
    assert run_training(store, run_id, extra_hooks=[RequestAt(store, run_id, 60, "stop")]) == "stopped"
    before, cursor = store.scalar_series(run_id, ["train/loss"])
    stopped_at = store.get_run(run_id)["step"]
    # the trainer asks the store for requests at most every 50 ms (ControlHook.check_every_s): it stops
    # soon after the request, not at the end of the run
    assert 60 <= stopped_at < 120 and before["train/loss"]["step"][-1] == stopped_at - stopped_at % 5
    assert run_training(store, run_id, resume=True) == "completed"
    rows, _ = store.scalars_after(run_id, cursor)
    after = [(r[2], r[4]) for r in rows if r[1] == "train/loss"]
    assert after[0][0] == stopped_at - stopped_at % 5 + 5 and after[-1][0] == 120  # the step count continues
    first_loss = before["train/loss"]["value"][0]
    last_before = before["train/loss"]["value"][-3:].mean()
    assert after[0][1] < 0.6 * first_loss  # the loss continues too: not back at initialisation
    assert abs(after[0][1] - last_before) < 0.5 * (first_loss - last_before)


def test_pause_resume_lr_and_stop_in_process(store):
    run_id, _ = _new_run(store, steps=100_000)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", run_training(store, run_id)))
    thread.start()
    try:
        _wait(lambda: store.get_run(run_id)["step"] >= 20)
        store.request_control(run_id, "pause")
        _wait(lambda: store.get_run(run_id)["status"] == "paused")
        _, c1 = store.scalars_after(run_id, 0)
        time.sleep(0.6)
        assert store.scalars_after(run_id, c1)[0] == []  # paused: no new points
        store.request_control(run_id, "set_lr", 0.0123)
        store.request_control(run_id, "resume")
        _wait(lambda: store.get_run(run_id)["status"] == "running")
        _wait(lambda: any(r[1] == "lr" and r[4] == pytest.approx(0.0123) for r in store.scalars_after(run_id, c1)[0]))
        assert store.get_run(run_id)["spec"]["lr"] == pytest.approx(0.0123)  # what the run's page shows now
        store.request_control(run_id, "stop")
        thread.join(30)
    finally:
        if thread.is_alive():
            store.request_control(run_id, "stop")
            thread.join(30)
    assert result["status"] == "stopped" and store.get_run(run_id)["status"] == "stopped"
    with pytest.raises(StoreError, match="already stopped"):
        store.request_control(run_id, "pause")


def test_job_manager_process_lifecycle(store):
    """A real trainer process: pause, resume, stop; a killed one is marked interrupted (resumable)."""
    jobs = JobManager(store)
    run_id = jobs.start(tiny_spec(steps=1_000_000))
    _wait(lambda: store.get_run(run_id)["status"] == "running" and store.get_run(run_id)["step"] > 10, 60)
    jobs.control(run_id, "pause")
    _wait(lambda: store.get_run(run_id)["status"] == "paused")
    jobs.control(run_id, "resume")
    _wait(lambda: store.get_run(run_id)["status"] == "running")
    jobs.control(run_id, "stop")
    assert jobs.wait(run_id, timeout=30) == 0
    assert store.get_run(run_id)["status"] == "stopped"
    jobs.resume(run_id)  # continue from the stop checkpoint in a new process
    _wait(lambda: store.get_run(run_id)["status"] == "running", 60)
    os.kill(store.get_run(run_id)["pid"], signal.SIGKILL)
    jobs.wait(run_id, timeout=30)
    assert jobs.reconcile() == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "ended without reporting" in run["error"]


def _wait(cond, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in %.0f s" % timeout)


def test_agent_starts_runs_queued_by_a_dashboard(store):
    """Deployment mode: the dashboard only queues; `deepscope agent` claims and starts the run once."""
    dashboard_jobs, agent = JobManager(store, launch=False), JobManager(store, launch=True)
    run_id = dashboard_jobs.start(tiny_spec(steps=1_000_000))
    assert store.get_run(run_id)["status"] == "queued" and store.get_run(run_id)["pid"] is None
    assert dashboard_jobs.reconcile() == []  # an unclaimed queued run is not a dead one
    agent.serve_queue(once=True)
    agent.serve_queue(once=True)  # claims nothing twice
    assert list(agent._procs) == [run_id]
    _wait(lambda: store.get_run(run_id)["status"] == "running", 60)
    dashboard_jobs.control(run_id, "stop")
    assert agent.wait(run_id, timeout=30) == 0
    assert store.get_run(run_id)["status"] == "stopped"


def test_shutdown_stops_runs_it_started(store):
    """Closing the dashboard (`deepscope demo` + Ctrl-C) leaves no trainer behind, and a resumable run."""
    jobs = JobManager(store)
    run_id = jobs.start(tiny_spec(steps=1_000_000))
    _wait(lambda: store.get_run(run_id)["status"] == "running", 60)
    assert jobs.shutdown(timeout=20) == [run_id]
    assert jobs._procs[run_id].poll() == 0
    assert store.get_run(run_id)["status"] == "stopped"
    assert list((store.run_dir(run_id) / "checkpoints").glob("step-*.pt"))


def test_control_hook_asks_the_store_at_most_every_check_interval(store):
    """The per-step query costs ~60 us (0.6% of a 10 ms step): it runs at most every check_every_s."""
    from types import SimpleNamespace

    from backend.training.store_hooks import ControlHook

    run_id, _ = _new_run(store)
    asked = []
    real = store.has_pending_controls
    store.has_pending_controls = lambda rid: asked.append(rid) or real(rid)
    hook = ControlHook(store, run_id, check_every_s=0.2)
    out = SimpleNamespace(step=1)
    for _ in range(50):  # 50 steps well within 0.2 s: one query
        hook.on_step_end(None, out)
    assert len(asked) == 1
    time.sleep(0.25)
    hook.on_step_end(None, out)
    assert len(asked) == 2
    every = ControlHook(store, run_id, check_every_s=0)
    for _ in range(5):
        every.on_step_end(None, out)
    assert len(asked) == 7  # check_every_s=0: every step, as before
