"""A checkpoint counts only once the metric rows up to its step are durable, and the trainer never waits for it.

A resume from step S never logs steps up to S again, so a checkpoint saved while rows before S are still
queued would lose them to a kill. ``CheckpointHook`` writes it as ``pending-step-*.pt``; the metrics writer
promotes it (``when_durable``) once those rows are committed, or spooled while the store is unreachable.

    .venv/bin/python -m pytest -q tests/integration/test_checkpoint_durable.py
"""
from __future__ import annotations

import threading
import time

import torch

from backend.store.spool import spool_files
from backend.training.checkpoint import checkpoints, clear_pending, latest_checkpoint
from backend.training.hooks import Hook
from backend.training.store_hooks import BackgroundWriter
from backend.training.worker import run_training
from tests.conftest import tiny_spec
from tests.integration.test_store_outage import Outage, _wait

torch.set_num_threads(1)


def _new_run(store, **overrides):
    spec = tiny_spec(**overrides)
    return store.create_run("t", spec.task, spec.model_dump())


class _SlowStore:
    """Makes the store's scalar writes block while ``held`` is set, as a SQLite file locked by another
    process does for up to its busy timeout."""

    def __init__(self, store):
        self.held = threading.Event()
        self.released = threading.Event()
        real = store.log_scalars

        def log_scalars(run_id, rows, step=None):
            while self.held.is_set():
                self.released.wait(0.01)
            return real(run_id, rows, step=step)

        store.log_scalars = log_scalars


def test_cd001_when_durable_waits_for_the_rows_before_it_not_after(store):
    run_id = _new_run(store)
    slow = _SlowStore(store)
    writer = BackgroundWriter(store, run_id, interval=0.02)
    fired: list[int] = []
    slow.held.set()
    t0 = time.monotonic()
    writer.put([("loss", 1, 1.0, time.time())], 1)
    writer.when_durable(lambda: fired.append(1))
    writer.put([("loss", 2, 2.0, time.time())], 2)
    assert time.monotonic() - t0 < 0.1  # the training thread's side never waits for the store
    time.sleep(0.3)
    assert fired == []  # its row is not in the store yet
    slow.held.clear()
    _wait(lambda: fired == [1])
    assert writer.close() is True
    series, _ = store.scalar_series(run_id, ["loss"])
    assert series["loss"]["step"].tolist() == [1, 2]


def test_cd002_in_an_outage_the_spool_makes_rows_durable_at_once(store):
    run_id = _new_run(store)
    outage = Outage(store)
    outage.down.set()
    writer = BackgroundWriter(store, run_id, interval=0.02)
    fired = threading.Event()
    writer.put([("loss", s, float(s), time.time()) for s in range(1, 11)], 10)
    writer.when_durable(fired.set)
    assert fired.wait(5)  # without waiting for the store: the rows are in the spool file
    assert writer.spool.exists() and len(list(writer.spool.rows())) == 10
    outage.down.clear()
    assert writer.close() is True
    series, _ = store.scalar_series(run_id, ["loss"])
    assert series["loss"]["step"].tolist() == list(range(1, 11))  # once each
    assert not spool_files(store, run_id)


def test_cd003_a_closed_writer_runs_a_callback_at_once(store):
    run_id = _new_run(store)
    writer = BackgroundWriter(store, run_id, interval=0.02)
    assert writer.close() is True
    fired = []
    writer.when_durable(lambda: fired.append(True))
    assert fired == [True]


class _HoldStoreAt(Hook):
    """Blocks scalar writes from ``step`` on and records what a resume would see at ``look_at``."""

    def __init__(self, slow: _SlowStore, folder, step: int, look_at: int):
        self.slow, self.folder, self.step, self.look_at = slow, folder, step, look_at
        self.seen = None
        self.step_s: list[float] = []
        self._t = None

    def on_step_end(self, trainer, out):
        now = time.monotonic()
        if self._t is not None and self.slow.held.is_set():
            self.step_s.append(now - self._t)
        self._t = now
        if out.step == self.step:
            _wait(lambda: latest_checkpoint(self.folder) is not None, 10)  # the store was fine until here
            self.slow.held.set()
            self._t = time.monotonic()
        if out.step == self.look_at:
            self.seen = (latest_checkpoint(self.folder), sorted(p.name for p in self.folder.glob("pending-*")))
            self.slow.held.clear()


def test_cd004_training_goes_on_while_checkpoints_wait_and_they_count_once_the_rows_are_in(store):
    run_id = _new_run(store, steps=200, checkpoint_every=50, eval_every=100)
    folder = store.run_dir(run_id) / "checkpoints"
    slow = _SlowStore(store)
    hook = _HoldStoreAt(slow, folder, step=60, look_at=160)
    assert run_training(store, run_id, extra_hooks=[hook]) == "completed"
    latest, pending = hook.seen
    # while the store held its writes, steps 100 and 150 were saved but did not count: a kill here resumes
    # from step 50 and logs 55-160 again, where it would have lost the queued rows up to 150
    assert latest is not None and latest.name == "step-000000050.pt"
    assert pending == ["pending-step-000000100.pt", "pending-step-000000150.pt"]
    assert max(hook.step_s) < 1.0  # and the trainer never waited on the store for them
    names = [p.name for p in checkpoints(folder)]
    assert names[-1] == "step-000000200.pt" and not list(folder.glob("pending-*"))
    series, _ = store.scalar_series(run_id, ["train/loss"])
    assert series["train/loss"]["step"].tolist() == list(range(5, 201, 5))


def test_cd005_a_resume_clears_the_pending_checkpoints_of_a_dead_process(store, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "pending-step-000000300.pt").write_bytes(b"half a story")
    (folder / "step-000000200.pt").write_bytes(b"kept")
    assert clear_pending(folder) == 1
    assert [p.name for p in folder.iterdir()] == ["step-000000200.pt"]
