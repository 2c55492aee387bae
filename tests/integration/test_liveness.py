"""Liveness, resume and orphans: a trainer, a `deepscope train` and a client script killed with SIGKILL
each show `interrupted`; a resume continues from the checkpoint with no step logged twice; temporary
files of killed writers are swept and never read.

    .venv/bin/python -m pytest -q tests/integration/test_liveness.py
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from backend import cli
from backend.jobs import JobManager
from backend.liveness import (STALE_AFTER_S, START_GRACE_S, claim_resume, sweep_interrupted, sweep_orphans,
                              verdict)
from backend.store import RunStore, StoreError
from backend.store.arrays import read_array, write_array
from backend.training.checkpoint import latest_checkpoint
from dashboard.views.training.controls import apply_control
from tests.conftest import tiny_spec

ROOT = Path(__file__).resolve().parents[2]
CKPT_EVERY = 100  # kill early in a checkpoint interval: rows after the checkpoint are then in the store
TINY = {"model.channels": "4,8", "model.dropout": "0", "batch_size": "32", "log_every": "5", "eval_every": "50",
        "checkpoint_every": str(CKPT_EVERY), "steps": "1000000"}


def _wait(cond, timeout: float = 60.0, every: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("condition not met in %.0f s" % timeout)


def _ckpt_step(store, run_id) -> int:
    path = latest_checkpoint(store.run_dir(run_id) / "checkpoints")
    return int(path.stem.split("-")[1]) if path else -1


def _mid_interval(store, run_id) -> bool:
    """Past a checkpoint by a few logged periods, far from the next one: a good moment to kill."""
    run, ckpt = store.get_run(run_id), _ckpt_step(store, run_id)
    return run["status"] == "running" and ckpt >= 0 and 15 <= run["step"] - ckpt <= CKPT_EVERY // 2


def _sweep_until_marked(store, run_id, timeout: float = 20.0) -> float:
    """Sweep (1 s staleness) until ``run_id`` is marked; seconds it took."""
    t0 = time.time()
    _wait(lambda: run_id in sweep_interrupted(store, stale_after_s=1), timeout, every=0.2)
    return time.time() - t0


def _assert_no_step_twice(store, run_id) -> None:
    """Each series, read in the order it was logged, runs strictly forward; no snapshot step repeats."""
    rows, _ = store.scalars_after(run_id, 0)
    steps = defaultdict(list)
    for _id, name, step, _wall, _value in rows:
        steps[name].append(step)
    assert steps and all(np.all(np.diff(s) > 0) for s in steps.values()), \
        {n: s for n, s in steps.items() if not np.all(np.diff(s) > 0)}
    snaps = [(s["kind"], s["step"]) for s in store.list_snapshots(run_id)]
    assert len(snaps) == len(set(snaps))


def _killed_at(store, run_id, pid) -> tuple[int, int]:
    """SIGKILL ``pid`` mid-interval; returns (checkpoint step, highest step logged) after the kill."""
    _wait(lambda: _mid_interval(store, run_id), 120)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    logged = max(r[2] for r in store.scalars_after(run_id, 0)[0])
    return _ckpt_step(store, run_id), logged


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, DEEPSCOPE_TORCH_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "backend.cli", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, text=True, **kw)


def test_lv001_killed_trainer_is_interrupted_and_the_resume_button_continues_without_duplicates(store):
    jobs = JobManager(store)
    run_id = jobs.start(tiny_spec(steps=1_000_000, checkpoint_every=CKPT_EVERY))
    _wait(lambda: store.get_run(run_id)["status"] == "running", 90)
    assert jobs.reconcile(stale_after_s=0) == []  # alive: never marked, however old its last sign of life
    pid = store.get_run(run_id)["pid"]
    ckpt, logged = _killed_at(store, run_id, pid)
    assert logged > ckpt >= 0
    # the job manager saw its child exit: marked at once, whatever the heartbeat says
    assert jobs.reconcile(stale_after_s=3600) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and f"process {pid} on host" in run["error"]
    assert "killed by SIGKILL" in run["error"]

    ok, msg = apply_control(jobs, store, run_id, "resume")  # the Training page's Resume button
    assert ok, msg
    _wait(lambda: store.get_run(run_id)["status"] == "running" and store.get_run(run_id)["step"] > logged, 90)
    jobs.control(run_id, "stop")
    assert jobs.wait(run_id, timeout=60) == 0
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["attempt"] == 1
    assert [r["step"] for r in run["resumes"]] == [ckpt]
    _assert_no_step_twice(store, run_id)


def test_lv002_killed_cli_run_is_interrupted_and_deepscope_resume_continues_it(tmp_path, capsys):
    data = tmp_path / "data"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    with open(tmp_path / "train.log", "w") as out:
        train = _cli("train", "digits-cnn", "--data-dir", str(data), *sets, stdout=out, stderr=subprocess.STDOUT)
    store = RunStore(data)
    run_id = _wait(lambda: next((r["id"] for r in store.list_runs()), None), 60)
    ckpt, logged = _killed_at(store, run_id, train.pid)
    assert logged > ckpt >= 0
    # not waited for: its zombie still answers kill(pid, 0), and must count as gone
    took = _sweep_until_marked(store, run_id)
    train.wait(10)
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and run["source"] == "cli" and f"process {train.pid}" in run["error"]
    assert took < 10

    # `deepscope resume` in this process (one torch start less than a subprocess), stopped from the store
    code = []
    resume = threading.Thread(target=lambda: code.append(cli.main(["resume", run_id, "--data-dir", str(data)])))
    resume.start()
    try:
        _wait(lambda: store.get_run(run_id)["status"] == "running" and store.get_run(run_id)["step"] > logged, 90)
    finally:
        store.request_control(run_id, "stop")
        resume.join(60)
    out = capsys.readouterr().out
    assert code == [0] and "resuming from its latest checkpoint" in out and "stopped at step" in out
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and [r["step"] for r in run["resumes"]] == [ckpt]
    _assert_no_step_twice(store, run_id)


def test_lv003_killed_client_script_is_interrupted_and_not_resumable(tmp_path, capsys):
    data = tmp_path / "data"
    script = ("import time, deepscope\n"
              f"run = deepscope.init(name='doomed', data_dir={str(data)!r})\n"
              "run.log({'loss': 1.0}, step=1)\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        store = RunStore(data)
        (run,) = store.list_runs()
        assert sweep_interrupted(store, stale_after_s=0) == []
        proc.send_signal(signal.SIGKILL)
        _sweep_until_marked(store, run["id"])
    finally:
        proc.kill()
        proc.wait(10)
    after = store.get_run(run["id"])
    assert after["status"] == "interrupted" and f"process {proc.pid} on host" in after["error"]
    with pytest.raises(StoreError, match="your own script"):
        JobManager(store).resume(run["id"])
    assert cli.main(["resume", run["id"], "--data-dir", str(data)]) == 2
    assert "your own script" in capsys.readouterr().err


def test_lv004_resume_refusals_say_why(store, capsys):
    done = store.create_run("done", "digits-cnn", tiny_spec().model_dump(), status="completed")
    early = store.create_run("early", "digits-cnn", tiny_spec().model_dump(), status="interrupted")
    for run_id, why in ((done, "nothing to resume"), (early, "no checkpoint"), ("nope", "no run with id")):
        assert cli.main(["resume", run_id, "--data-dir", str(store.data_dir)]) == 2
        assert why in capsys.readouterr().err


def test_lv005_verdicts_by_host_heartbeat_and_queue():
    here, now = socket.gethostname(), 10_000.0

    def row(**kw):
        return {"id": "r", "status": "running", "pid": 4242, "host": "gpu-7", "heartbeat_at": None,
                "updated_at": now, **kw}

    other = STALE_AFTER_S * 3
    assert verdict(row(heartbeat_at=now - other + 1), now) is None  # another host: its heartbeat alone decides
    assert "no heartbeat for" in verdict(row(heartbeat_at=now - other - 1, updated_at=0.0), now)
    assert verdict(row(status="queued", pid=None, updated_at=0.0), now) is None  # waits for an agent
    assert verdict(row(status="queued", pid=-1, updated_at=now - START_GRACE_S + 5), now) is None
    assert "never reported" in verdict(row(status="queued", pid=-1, updated_at=now - START_GRACE_S - 5), now)
    assert verdict(row(status="completed", updated_at=0.0), now) is None
    # this host: pid 1 lives and started long before; with a last sign of life from 1970 it is a reused pid
    assert verdict(row(host=here, pid=1, updated_at=time.time() - 100), time.time()) is None
    assert "is gone" in verdict(row(host=here, pid=1, updated_at=1000.0), time.time())
    assert verdict(row(host=here, pid=1, updated_at=1000.0, heartbeat_at=time.time()), time.time()) is None


def test_lv006_orphan_temp_files_are_swept_fresh_ones_kept_and_none_read(store):
    run_dir = store.run_dir(store.create_run("r", "digits-cnn", {}))
    old = [run_dir / "snapshots" / "kernels" / ".tmp-abc.npy", run_dir / "checkpoints" / ".tmp-step-000000200.pt",
           store.data_dir / "uploads" / ".upload-x1y2"]
    fresh = run_dir / "snapshots" / "kernels" / ".tmp-live.npy"
    keep = write_array(run_dir / "snapshots" / "kernels" / "000000010-ab12-w.npy", np.arange(3))
    for path in old + [fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    for path in old:
        os.utime(path, (time.time() - 120, time.time() - 120))
    assert latest_checkpoint(run_dir / "checkpoints") is None  # a temp file is never a checkpoint
    with pytest.raises(ValueError, match="temporary"):
        read_array(fresh)
    assert JobManager(store).reconcile() == []  # the first reconcile of a dashboard or agent sweeps
    assert not any(p.exists() for p in old) and fresh.exists() and keep.exists()
    os.utime(fresh, (time.time() - 120, time.time() - 120))
    assert sweep_orphans(store) == [fresh]


def test_a_status_note_left_during_an_outage_decides_the_status(store):
    """A trainer that could not reach the store at its end leaves a note; the sweep writes it."""
    from backend.liveness import sweep_interrupted
    from backend.store.spool import write_status_note

    run = store.create_run("note", "digits-cnn", {}, status="running")
    store.set_pid(run, 2**22 + 12345)  # no such process
    write_status_note(store.run_dir(run), "completed", None)
    assert sweep_interrupted(store, stale_after_s=0) == [run]
    assert store.get_run(run)["status"] == "completed"


def test_lv011_of_two_resumers_exactly_one_claims_the_run(store, monkeypatch, capsys):
    run_id = store.create_run("r", "digits-cnn", tiny_spec().model_dump(), status="interrupted")
    barrier, won = threading.Barrier(4), []

    def resumer():
        barrier.wait()
        won.append(claim_resume(store, run_id))

    threads = [threading.Thread(target=resumer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(won) == [False, False, False, True]
    assert store.get_run(run_id)["status"] == "queued"
    # a resumer that checked before the winner claimed is told why, and changes nothing
    monkeypatch.setattr("backend.liveness.why_not_resumable", lambda store, run: None)
    with pytest.raises(StoreError, match="being resumed by another process"):
        JobManager(store, launch=False).resume(run_id)
    assert cli.main(["resume", run_id, "--data-dir", str(store.data_dir)]) == 2
    assert "being resumed by another process" in capsys.readouterr().err
    assert store.get_run(run_id)["status"] == "queued" and store.get_run(run_id)["resumes"] in (None, [])
