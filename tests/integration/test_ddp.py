"""Several training processes for one run (torchrun, DistributedDataParallel, gloo on CPU).

Codes: ddp0xx. ``pytest tests/integration/test_ddp.py -k ddp002`` runs one. The torchrun tests start 2
processes of one torch thread each (``slow``: ~10-20 s each on 2 cores, mostly starting Python and torch).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from backend import cli
from backend.jobs import JobManager
from backend.store import RunStore
from backend.tasks.data import load_task_data
from backend.spec import spec_info
from backend.training import distributed
from backend.training.distributed import Ranks
from backend.training.trainer import Trainer
from tests.conftest import tiny_spec

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DEEPSCOPE_TORCH_THREADS": "1", "PYTHONWARNINGS": "ignore"}
# digits-cnn without dropout: the 2-process step is then the 1-process step on the same global batch, up to
# the order of float sums (DDP averages the two half-batch gradients)
STEPS = 600
SETS = ["--set", f"steps={STEPS}", "--set", "channels=4,8", "--set", "dropout=0", "--set", "batch_size=32",
        "--set", "log_every=5", "--set", "eval_every=200", "--set", "checkpoint_every=10"]
needs_two_cores = pytest.mark.skipif(distributed.check_processes(2, "cpu") is not None,
                                     reason="2 training processes need 2 CPU cores and torch.distributed (gloo)")


def deepscope(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def only_run(store: RunStore) -> dict:
    runs = store.list_runs()
    assert len(runs) == 1, [(r["id"], r["name"]) for r in runs]
    return runs[0]


def losses(store: RunStore, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    rows, _ = store.scalars_after(run_id, 0)
    counts = Counter((name, step) for _, name, step, _, _ in rows)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]  # nothing written twice
    pts = sorted((step, value) for _, name, step, _, value in rows if name == "train/loss")
    return np.array([s for s, _ in pts]), np.array([v for _, v in pts])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """The 1-process loss curve of SETS: the reference of the 2-process runs."""
    store = RunStore(tmp_path_factory.mktemp("one") / "d")
    r = deepscope("train", "digits-cnn", "--data-dir", str(store.data_dir), *SETS)
    assert r.returncode == 0, r.stderr[-3000:]
    return losses(store, only_run(store)["id"])


def wait(pred, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- in one process: the sampler's shards -----------------------------------------------------------------
@pytest.mark.parametrize("task", ["digits-cnn", "code-lstm"])
def test_ddp001_ranks_draw_disjoint_slices_of_the_one_process_batch(task):
    torch.set_num_threads(1)
    spec = tiny_spec(task, batch_size=8)
    data = load_task_data(spec_info(spec), seed=spec.seed)
    single = Trainer(spec, data, device="cpu")
    ranks = [Trainer(spec, data, device="cpu", ranks=Ranks(r, 2, r, torch.device("cpu"))) for r in range(2)]
    for _ in range(30):  # past an epoch boundary of nothing here, but through many draws of the generator
        x, y = single.next_batch()
        parts = [t.next_batch() for t in ranks]
        assert all(len(px) == len(x) // 2 for px, _ in parts)
        assert torch.equal(torch.cat([px for px, _ in parts]), x) and torch.equal(torch.cat([py for _, py in parts]), y)
    if task == "digits-cnn":  # disjoint samples, and the sampler state a checkpoint saves is every rank's
        assert ranks[0]._pos == ranks[1]._pos == single._pos and torch.equal(ranks[0]._perm, ranks[1]._perm)
        a = set(ranks[0]._perm[:single._pos].view(-1, 8)[:, :4].reshape(-1).tolist())
        b = set(ranks[1]._perm[:single._pos].view(-1, 8)[:, 4:].reshape(-1).tolist())
        assert not a & b
    assert torch.equal(ranks[0].generator.get_state(), ranks[1].generator.get_state())


def test_ddp002_client_records_on_rank_zero_only(tmp_path, monkeypatch):
    import deepscope

    monkeypatch.setenv("RANK", "1")
    run = deepscope.init(name="rank 1", data_dir=tmp_path / "d")
    run.log({"train/loss": 1.0}, step=1)
    run.finish()
    assert run.disabled and not (tmp_path / "d").exists()  # no store opened, nothing written
    monkeypatch.setenv("RANK", "0")
    with deepscope.init(name="rank 0", data_dir=tmp_path / "d") as run:
        run.log({"train/loss": 1.0}, step=1)
    assert not run.disabled and only_run(RunStore(tmp_path / "d"))["status"] == "completed"


def test_ddp003_bad_process_counts_are_one_line_errors(tmp_path, capsys, monkeypatch):
    data = str(tmp_path / "d")
    for nproc, says in (("0", "must be 1 or more"), ("999", "at most 64")):
        assert cli.main(["train", "digits-cnn", "--data-dir", data, "--nproc", nproc]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1, err
    monkeypatch.setattr("backend.threads.available_cores", lambda: 1)
    assert cli.main(["train", "digits-cnn", "--data-dir", data, "--nproc", "2"]) == 2
    assert "2 processes on 1 CPU core(s)" in capsys.readouterr().err
    monkeypatch.setattr(distributed, "TORCHRUN", "torch.distributed.no_such_launcher")
    assert "torchrun is missing" in distributed.check_processes(2, "cpu")
    assert cli.main(["train", "digits-cnn", "--data-dir", data, "--set", "processes=2", "--set", "batch_size=33"]) == 2
    assert "does not divide among 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before the store was opened: no run


# -- torchrun ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_two_cores
def test_ddp004_two_processes_one_run_same_curve_as_one(tmp_path, one_process):
    """`deepscope train --nproc 2`: one run, each step logged once, the 1-process loss curve.

    Tolerance: the same global batch and seed give the same gradient up to float rounding (two
    half-batch means averaged by a gloo sum); measured here, every logged loss of 200 steps agreed
    within 2e-7. Each is held to 1e-3 (room for other CPUs' kernels), far below what a rank training on
    the wrong samples would show (the batch noise, ~0.05), while the loss falls from 2.3 to ~0.3."""
    s1, l1 = one_process
    two = RunStore(tmp_path / "two")
    r = deepscope("train", "digits-cnn", "--nproc", "2", "--data-dir", str(two.data_dir), *SETS)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(two)
    assert run["status"] == "completed" and run["step"] == STEPS and run["spec"]["processes"] == 2, run
    s2, l2 = losses(two, run["id"])
    assert list(s2) == list(range(5, STEPS + 1, 5)) and list(s1) == list(s2)
    assert np.abs(l1 - l2).max() < 1e-3, np.abs(l1 - l2)
    assert l2[-8:].mean() < 0.5 * l2[0]  # and it learnt
    series, _ = two.scalar_series(run["id"], ["val/acc"])
    assert list(series["val/acc"]["step"]) == [200, 400, 600]  # rank 0 evaluates, once per eval step
    ckpts = sorted(p.name for p in (two.run_dir(run["id"]) / "checkpoints").glob("*.pt"))
    assert ckpts == [f"step-000000{s}.pt" for s in (580, 590, 600)], ckpts


@pytest.mark.slow
@needs_two_cores
def test_ddp005_controls_reach_every_rank_through_the_job_manager(tmp_path):
    """A run started as the dashboard does (processes=2 in the spec): pause, learning rate, resume, stop.
    At the end the ranks compare learning rate and weights (rank_hooks.check_agreement): a control that
    reached only rank 0 would end the run failed, not stopped."""
    store = RunStore(tmp_path / "d")
    jobs = JobManager(store)
    run_id = jobs.start(tiny_spec(steps=1_000_000, processes=2, batch_size=32), threads=1)
    try:
        wait(lambda: store.get_run(run_id)["status"] == "running" and store.get_run(run_id)["step"] >= 20, 90,
             "the run to train")
        jobs.control(run_id, "pause")
        wait(lambda: store.get_run(run_id)["status"] == "paused", 30, "paused")
        _, cursor = store.scalars_after(run_id, 0)
        time.sleep(0.6)
        assert store.scalars_after(run_id, cursor)[0] == []  # every rank waits
        jobs.control(run_id, "set_lr", 0.0123)
        jobs.control(run_id, "resume")
        wait(lambda: any(r[1] == "lr" and r[4] == pytest.approx(0.0123) for r in store.scalars_after(run_id, cursor)[0]),
             30, "the new learning rate")
        jobs.control(run_id, "stop")
        assert jobs.wait(run_id, timeout=60) == 0
    finally:
        jobs.shutdown(timeout=10)
    run = store.get_run(run_id)
    assert run["status"] == "stopped", run["error"]
    assert len(store.list_runs()) == 1
    losses(store, run_id)  # each step logged once


@pytest.mark.slow
@needs_two_cores
def test_ddp006_a_killed_rank_fails_the_run_with_a_reason_and_resume_continues_it(tmp_path, one_process):
    """Kill -9 rank 1: the run ends failed, naming it; `deepscope resume` trains it on 2 processes again
    from its last checkpoint, and the whole curve is still the 1-process one (the checkpoint's sampler
    state is every rank's; tolerance as ddp004: checkpoints every 10 steps keep the log periods whole)."""
    import psutil

    store = RunStore(tmp_path / "d")
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "train", "digits-cnn", "--nproc", "2",
                             "--data-dir", str(store.data_dir), *SETS],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait(lambda: store.list_runs() and store.list_runs()[0]["step"] >= 60, 90, "the run to train")
        rank0 = psutil.Process(store.list_runs()[0]["pid"])
        rank1 = next(p for p in rank0.parent().children() if p.pid != rank0.pid)
        rank1.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = only_run(store)
    assert proc.returncode == 1 and run["status"] == "failed", (run["status"], err[-2000:])
    # whichever came first (rank 0's gloo error, or torchrun's SIGTERM to it), the error names the rank that died
    assert run["error"].startswith(f"training process of rank 1 (pid {rank1.pid}) ended with exit code -9"), \
        run["error"][:2000]
    assert not rank0.is_running() or rank0.status() == psutil.STATUS_ZOMBIE
    assert run["step"] < STEPS
    r = deepscope("resume", run["id"], "--data-dir", str(store.data_dir))
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(store)
    assert run["status"] == "completed" and run["step"] == STEPS
    s1, l1 = one_process
    s2, l2 = losses(store, run["id"])  # each step once: what came after the checkpoint was superseded
    assert list(s2) == list(s1) and np.abs(l1 - l2).max() < 1e-3, np.abs(l1 - l2)


@pytest.mark.slow
@needs_two_cores
def test_ddp007_client_example_under_torchrun(tmp_path):
    """examples/ddp_lstm.py under torchrun: one client run whose curve is the 1-process run's (the same
    global batches and seed; the rounding of two half-batch gradients aside: 0.02 on every logged loss)."""
    one, two = RunStore(tmp_path / "one"), RunStore(tmp_path / "two")
    args = ["examples/ddp_lstm.py", "--steps", "100"]
    r1 = subprocess.run([sys.executable, *args, "--data-dir", str(one.data_dir)], cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=120)
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args,
                         "--data-dir", str(two.data_dir)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                        timeout=120)
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr[-3000:]
    run = only_run(two)
    assert run["status"] == "completed" and run["source"] == "client" and run["spec"]["processes"] == 2
    (s1, l1), (s2, l2) = losses(one, only_run(one)["id"]), losses(two, run["id"])
    assert list(s2) == list(range(10, 101, 10)) and list(s1) == list(s2)
    assert np.abs(l1 - l2).max() < 0.02 and l2[-1] < 0.8 * l2[0], (l1, l2)
    assert two.list_snapshots(run["id"])  # watch() ran on rank 0


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2 or not torch.distributed.is_nccl_available(),
                    reason="NCCL training needs 2 GPUs")
def test_ddp008_two_gpus_with_nccl(tmp_path):
    two = RunStore(tmp_path / "two")
    r = deepscope("train", "digits-cnn", "--nproc", "2", "--device", "cuda", "--data-dir", str(two.data_dir), *SETS)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(two)
    assert run["status"] == "completed" and run["step"] == STEPS
    steps, values = losses(two, run["id"])
    assert list(steps) == list(range(5, STEPS + 1, 5)) and values[-8:].mean() < 0.5 * values[0]
