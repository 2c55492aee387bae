"""A store that is unreachable for a while: training goes on, nothing is lost or written twice.

The outage is injected deterministically (:class:`Outage`): while it lasts, every new SQLAlchemy connection or
transaction of the store, and the trainer's control poll, raise ``OperationalError`` as a database restart does.

    .venv/bin/python -m pytest -q tests/integration/test_store_outage.py
"""
from __future__ import annotations

import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import torch

from backend.jobs import JobManager
from backend.store.retry import call_with_retry, is_transient, outage_clock
from backend.store.spool import spool_files
from backend.training.checkpoint import latest_checkpoint, read_checkpoint
from backend.training.hooks import Hook
from backend.training.store_hooks import BackgroundWriter, ControlHook
from backend.training.worker import run_training
from tests.conftest import tiny_spec

torch.set_num_threads(1)


def _error(text: str = "unable to open database file") -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", None, sqlite3.OperationalError(text))


class _FlakyEngine:
    """The store's engine, refusing new connections and transactions while ``down`` is set."""

    def __init__(self, engine, down: threading.Event):
        self._engine, self._down = engine, down

    def _check(self) -> None:
        if self._down.is_set():
            raise _error()

    def begin(self):
        self._check()
        return self._engine.begin()

    def connect(self):
        self._check()
        return self._engine.connect()

    def __getattr__(self, name):
        return getattr(self._engine, name)


class Outage:
    """Switch ``store`` off and on: ``outage.down.set()`` / ``outage.down.clear()``."""

    def __init__(self, store):
        self.down = threading.Event()
        store.engine = _FlakyEngine(store.engine, self.down)
        poll = store.has_pending_controls  # the raw SQLite poll does not go through the engine

        def has_pending_controls(run_id):
            if self.down.is_set():
                raise sqlite3.OperationalError("unable to open database file")
            return poll(run_id)

        store.has_pending_controls = has_pending_controls


class OutageAt(Hook):
    """Takes the store away at ``step``; gives it back ``seconds`` later (None: 0.5 s after training ends).
    Steps sleep a little during the outage, so that training spans it without busying the shared cores."""

    def __init__(self, outage: Outage, step: int, seconds: float | None):
        self.outage, self.step, self.seconds = outage, step, seconds
        self.began, self.steps_during = None, 0

    def on_step_end(self, trainer, out):
        if out.step == self.step:
            self.outage.down.set()
            self.began = time.monotonic()
        if self.outage.down.is_set():
            self.steps_during += 1
            time.sleep(0.005)
            if self.seconds is not None and time.monotonic() - self.began >= self.seconds:
                self.outage.down.clear()

    def on_train_end(self, trainer, status):
        threading.Timer(0.5, self.outage.down.clear).start()


def _new_run(store, **overrides):
    spec = tiny_spec(**overrides)
    return store.create_run("t", spec.task, spec.model_dump()), spec


def _duplicates(store, run_id) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT name, step, COUNT(*) FROM scalars WHERE run_id = :r "
                                    "GROUP BY name, step HAVING COUNT(*) > 1"), {"r": run_id}).all()


def _wait(cond, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in %.0f s" % timeout)


def test_so001_training_goes_on_through_an_outage_and_loses_nothing(store):
    run_id, _ = _new_run(store, steps=600)
    outage = Outage(store)
    hook = OutageAt(outage, step=20, seconds=3.0)
    assert run_training(store, run_id, extra_hooks=[hook]) == "completed"
    assert hook.steps_during > 100  # it trained on while the store was away
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["step"] == 600 and run["heartbeat_at"] is not None
    series, _ = store.scalar_series(run_id)
    assert series["train/loss"]["step"].tolist() == list(range(5, 601, 5))  # every row, once, in order
    assert series["val/loss"]["step"].tolist() == list(range(50, 601, 50))
    assert _duplicates(store, run_id) == []
    rows, _ = store.scalars_after(run_id, 0)
    loss_steps = [r[2] for r in rows if r[1] == "train/loss"]
    assert loss_steps == sorted(loss_steps)  # written in order: the live cursor never sees a step go back
    assert not spool_files(store, run_id)


def test_so002_an_outage_past_the_limit_checkpoints_and_ends_interrupted(store, monkeypatch):
    monkeypatch.setenv("DEEPSCOPE_STORE_OUTAGE_S", "2")
    run_id, _ = _new_run(store, steps=100_000)
    outage = Outage(store)
    hook = OutageAt(outage, step=20, seconds=None)
    t0 = time.monotonic()
    assert run_training(store, run_id, extra_hooks=[hook]) == "interrupted"
    assert time.monotonic() - t0 < 20
    run = store.get_run(run_id)
    assert run["status"] == "interrupted"
    assert "the store was unreachable for more than 2 seconds; resume continues from step" in run["error"]
    stopped_at = int(run["error"].rsplit(" ", 1)[1])
    assert stopped_at > 20
    assert read_checkpoint(latest_checkpoint(store.run_dir(run_id) / "checkpoints"))["step"] == stopped_at
    series, _ = store.scalar_series(run_id, ["train/loss"])
    assert series["train/loss"]["step"].tolist() == list(range(5, stopped_at + 1, 5))  # none lost
    assert _duplicates(store, run_id) == []


def test_so003_the_agent_survives_the_store_going_away(store):
    run_id, _ = _new_run(store)
    jobs, spawned, calls = JobManager(store, launch=True), [], []

    def claim_queued():
        calls.append(1)
        if len(calls) <= 3:
            raise _error("database is locked")
        return {"id": run_id} if len(calls) == 4 else None

    store.claim_queued = claim_queued
    jobs._spawn = lambda rid, resume, threads=None: spawned.append(rid)
    stop = threading.Event()
    agent = threading.Thread(target=jobs.serve_queue, kwargs={"poll": 0.02, "stop": stop}, daemon=True)
    agent.start()
    try:
        _wait(lambda: spawned == [run_id] and len(calls) >= 6)  # kept looping after the errors
    finally:
        stop.set()
        agent.join(5)
    assert not agent.is_alive()

    def broken():
        raise ValueError("a bug, not an outage")

    store.claim_queued = broken
    with pytest.raises(ValueError):
        jobs.serve_queue(once=True)  # --once shows a real error


def test_so004_control_hook_survives_and_reads_requests_when_the_store_returns(store):
    run_id, _ = _new_run(store)
    outage = Outage(store)
    hook = ControlHook(store, run_id, check_every_s=0)
    trainer, out = SimpleNamespace(should_stop=False, stop_reason=None, step=7, optimizer=None), SimpleNamespace(step=7)
    outage.down.set()
    for _ in range(20):
        hook.on_step_end(trainer, out)  # no error into training
    assert outage_clock(store).down and not trainer.should_stop
    outage.down.clear()
    store.request_control(run_id, "stop")
    _wait(lambda: hook.on_step_end(trainer, out) or trainer.should_stop, 10)
    assert store.pending_controls(run_id) == [] and trainer.stop_reason is None


def test_so005_rows_past_the_memory_bound_go_to_a_spool_file_and_come_back_in_order(store):
    run_id, _ = _new_run(store)
    outage = Outage(store)
    outage.down.set()
    writer = BackgroundWriter(store, run_id, interval=0.02, memory_rows=50)
    wall = time.time()
    for step in range(1, 401):
        writer.put([("loss", step, 1.0 / step, wall), ("acc", step, 0.5, wall)], step)
    _wait(lambda: writer.spool.exists())
    assert not writer.flush()  # never raises; False: not written yet
    outage.down.clear()
    _wait(writer.flush)
    assert not writer.spool.exists()
    writer.close()
    rows, _ = store.scalars_after(run_id, 0)
    assert [r[2] for r in rows if r[1] == "loss"] == list(range(1, 401))  # once each, in id order
    assert [r[2] for r in rows if r[1] == "acc"] == list(range(1, 401))
    assert store.get_run(run_id)["step"] == 400


def test_so006_close_in_an_outage_leaves_a_spool_the_resume_replays(store):
    run_id, _ = _new_run(store)
    outage = Outage(store)
    outage.down.set()
    writer = BackgroundWriter(store, run_id, interval=0.02)
    for step in range(1, 101):
        writer.put([("loss", step, float(step), time.time())], step)
    assert writer.close(deadline_s=0.3) is False  # gave up waiting: nothing raised, nothing dropped
    (path,) = spool_files(store, run_id)
    with open(path, "ab") as f:
        f.write(b'not json\n["loss", 101, 0.5')  # a damaged line, and one cut short by a crash
    outage.down.clear()
    resumed = BackgroundWriter(store, run_id, interval=0.02)
    resumed.adopt_spools(upto_step=60)  # resumed from the step-60 checkpoint: later rows are superseded
    resumed.put([("loss", 65, 65.0, time.time())], 65)
    assert resumed.close() is True
    rows, _ = store.scalars_after(run_id, 0)
    assert [r[2] for r in rows] == list(range(1, 61)) + [65]
    assert not spool_files(store, run_id)


def test_so007_a_batch_committed_as_the_connection_dropped_is_not_written_twice(store):
    run_id, _ = _new_run(store)
    real, armed = store.log_scalars, [True]

    def commit_then_fail(rid, rows, step=None):
        n = real(rid, rows, step=step)
        if armed and armed.pop():
            raise _error("disk I/O error")  # committed, but the caller cannot know
        return n

    store.log_scalars = commit_then_fail
    writer = BackgroundWriter(store, run_id, interval=0.02)
    writer.put([("loss", s, float(s), time.time()) for s in range(1, 11)], 10)
    _wait(lambda: not armed)
    writer.put([("loss", s, float(s), time.time()) for s in range(11, 21)], 20)
    assert writer.close() is True
    series, _ = store.scalar_series(run_id, ["loss"])
    assert series["loss"]["step"].tolist() == list(range(1, 21))


def test_so008_client_runs_heartbeat_and_log_through_an_outage(tmp_path):
    import deepscope

    run = deepscope.init(name="outage", data_dir=tmp_path)
    _wait(lambda: run.store.get_run(run.id)["heartbeat_at"] is not None, 5)
    outage = Outage(run.store)
    outage.down.set()
    for step in range(1, 51):
        run.log({"loss": 1.0 / step}, step=step)
    time.sleep(0.3)
    outage.down.clear()
    run.finish()
    got = run.store.get_run(run.id)
    assert got["status"] == "completed"
    series, _ = run.store.scalar_series(run.id, ["loss"])
    assert series["loss"]["step"].tolist() == list(range(1, 51))


def test_so009_what_is_an_outage():
    assert is_transient(_error("database is locked")) and is_transient(_error("unable to open database file"))
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert not is_transient(sa.exc.OperationalError("x", None, sqlite3.OperationalError("no such table: runs")))
    assert not is_transient(sa.exc.IntegrityError("x", None, sqlite3.IntegrityError("UNIQUE constraint failed")))
    assert not is_transient(ValueError("database is locked"))
    invalidated = sa.exc.DBAPIError("x", None, Exception("reset"), connection_invalidated=True)
    assert is_transient(invalidated)
    psycopg2 = pytest.importorskip("psycopg2")
    assert is_transient(sa.exc.OperationalError("x", None, psycopg2.OperationalError("the database system is "
                                                                                      "shutting down")))
    assert not is_transient(sa.exc.ProgrammingError("x", None, psycopg2.ProgrammingError("syntax error")))


def test_so010_call_with_retry_waits_out_an_outage_and_gives_up_past_its_deadline():
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise _error()
        return "ok"

    assert call_with_retry(flaky, deadline_s=5, first_delay=0.01) == "ok" and len(tries) == 3
    t0 = time.monotonic()
    with pytest.raises(sa.exc.OperationalError):
        call_with_retry(lambda: (_ for _ in ()).throw(_error()), deadline_s=0.2, first_delay=0.01)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(ValueError):
        call_with_retry(lambda: int("x"), deadline_s=5)  # not an outage: at once
