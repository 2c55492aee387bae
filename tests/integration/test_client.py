"""The client API (``import deepscope``): examples, crashes, unavailable stores, the dashboard's view.

Codes: cl0xx. ``pytest tests/integration/test_client.py -k cl003`` runs one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from backend.spec import RECURRENT
from backend.store import RunStore
from dashboard.data import DashboardData

ROOT = Path(__file__).resolve().parents[2]


def run_script(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def only_run(store: RunStore) -> dict:
    runs = store.list_runs()
    assert len(runs) == 1, runs
    return runs[0]


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 12, cells: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8)
        self.rnn = nn.LSTM(8, cells, batch_first=True)
        self.head = nn.Linear(cells, vocab)

    def forward(self, x):
        return self.head(self.rnn(self.embedding(x))[0])


def train_step(model, opt, vocab: int = 12) -> torch.Tensor:
    x = torch.randint(0, vocab, (4, 12))
    loss = nn.functional.cross_entropy(model(x).reshape(-1, vocab), x.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


# -- the examples -------------------------------------------------------------------------------
def test_cl001_lstm_example_records_metrics_and_hidden_states(tmp_path):
    proc = run_script(["examples/lstm_text.py", "--steps", "60", "--probe-chars", "600", "--data-dir",
                       str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = RunStore(tmp_path)
    run = only_run(store)
    assert (run["status"], run["source"], run["step"]) == ("completed", "client", 60)
    assert run["spec"]["model"]["family"] == "lstm" and run["spec"]["steps"] == 60
    series, _ = store.scalar_series(run["id"])
    assert series["train/loss"]["step"].tolist() == list(range(1, 61))
    assert series["train/loss"]["value"][-10:].mean() < series["train/loss"]["value"][:10].mean()

    data = DashboardData(store)
    assert [r["id"] for r in data.list_runs()] == [run["id"]]
    steps = [int(s["step"]) for s in data.hidden.snapshots(run["id"])]
    assert steps[0] == 0 and steps[-1] == 60
    snap, _ = data.hidden.open(run["id"])
    text = Path(textwrap.__file__).read_text(encoding="utf-8", errors="replace")
    probe = text[int(0.9 * len(text)):][:600]
    assert "".join(snap.tokens()) == probe  # the probe text round-trips through the record
    assert {"l0.fwd.h", "l0.fwd.c", "l0.fwd.i", "l0.fwd.f", "l0.fwd.g", "l0.fwd.o"} <= set(snap.keys)
    assert snap.n_cells == 128 and "bracket depth" in snap.track_names
    assert np.isfinite(snap.corr("l0.fwd.c")).all()
    assert "tokens" in data.projections.sources(run["id"])  # the character embeddings, for Projections
    from backend.inference import analyse_run  # the example's model was saved for Try it, with its optimizer

    assert run["spec"]["optimizer"] == "adam" and run["spec"]["model"]["try"]["ok"] is True
    tried = analyse_run(store, run["id"], "def f(x):")
    assert tried.step == 60 and len(tried.top_tokens[-1]) == 5 and tried.states[(0, "fwd")]["h"].shape == (9, 128)


@pytest.mark.timeout(180)
def test_cl002_lightning_example_records_kernels_and_features(tmp_path):
    pytest.importorskip("lightning")
    proc = run_script(["examples/lightning_cnn.py", "--steps", "30", "--data-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = RunStore(tmp_path)
    run = only_run(store)
    assert (run["status"], run["step"], run["spec"]["model"]["family"]) == ("completed", 30, "cnn")
    assert run["spec"]["lr"] == pytest.approx(3e-3)  # the module's hyperparameters are the config
    names = set(store.scalar_names(run["id"]))
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= names
    data = DashboardData(store)
    snaps = data.kernels.snapshots(run["id"])
    assert [int(s["step"]) for s in snaps][0] == 0 and int(snaps[-1]["step"]) == 30
    meta = snaps[-1]["meta"]
    assert meta["conv_layers"] == ["features.0", "features.3"] and meta["n_inputs"] == 8
    arrays = store.load_arrays(snaps[-1])
    assert arrays["w.features.0"].shape == (16, 1, 3, 3) and arrays["map.features.0"].shape == (8, 16, 8, 8)
    first = store.load_arrays(snaps[0])["w.features.0"]
    assert not np.allclose(first, arrays["w.features.0"])  # the kernels moved while it trained
    src = data.projections.sources(run["id"])["penultimate"]
    assert src["n"] == 297 and src["dim"] == 32 and "label" in src["fields"]


# -- crashes and forgotten runs -----------------------------------------------------------------
CRASH = """
import sys, torch, deepscope
data_dir, how, ending = sys.argv[1:4]

def train(run):
    for step in range(1, 6):
        run.log({"train/loss": torch.tensor(1.0 / step)}, step=step)
    if ending == "raise":
        raise RuntimeError("user code blew up at step 5")

if how == "with":
    with deepscope.init(name="crash", data_dir=data_dir) as run:
        train(run)
else:  # no with-block and no finish(): deepscope finishes the run at exit
    train(deepscope.init(name="crash", data_dir=data_dir))
"""


@pytest.mark.parametrize("how,ending,status", [("with", "raise", "failed"), ("bare", "raise", "failed"),
                                               ("bare", "ok", "completed")])
def test_cl003_a_script_that_raises_keeps_its_metrics_and_fails(tmp_path, how, ending, status):
    script = tmp_path / "user_script.py"
    script.write_text(CRASH)
    proc = run_script([str(script), str(tmp_path / "data"), how, ending])
    assert proc.returncode == (1 if ending == "raise" else 0), proc.stderr[-2000:]
    store = RunStore(tmp_path / "data")
    run = only_run(store)
    assert run["status"] == status
    series, _ = store.scalar_series(run["id"])
    assert series["train/loss"]["step"].tolist() == [1, 2, 3, 4, 5]  # written before the end, kept
    if ending == "raise":
        assert "Traceback" in run["error"] and "user code blew up at step 5" in run["error"]
        assert "user code blew up" in proc.stderr  # the exception still reached the user
    else:
        assert not run["error"]


def test_cl004_context_manager_marks_failed_and_reraises(tmp_path):
    model = TinyLM()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="bad batch"):
        with deepscope.init(data_dir=tmp_path) as run:
            run.watch(model, probe=torch.randint(0, 12, (300,)))
            for step in range(1, 4):
                run.log({"loss": train_step(model, opt)}, step=step)
            raise ValueError("bad batch")
    row = RunStore(tmp_path).get_run(run.id)
    assert row["status"] == "failed" and "bad batch" in row["error"]
    assert run.status == "failed"
    assert len(RunStore(tmp_path).scalars_after(run.id)[0]) == 3


# -- unavailable stores and bad input never stop training ------------------------------------
@pytest.mark.parametrize("where", ["file-as-folder", "bad-url"])
def test_cl005_unavailable_store_warns_and_training_continues(tmp_path, where):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    kwargs = ({"data_dir": blocker / "data"} if where == "file-as-folder"
              else {"data_dir": tmp_path / "d", "store_url": "nosuchdialect://nowhere/db"})
    model = TinyLM()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(deepscope.DeepscopeWarning, match="cannot open the store"):
        run = deepscope.init(name="nowhere", **kwargs)
    assert run.disabled and run.id is None
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a disabled run is silent from here on
        with run:
            run.watch(model, probe=torch.randint(0, 12, (100,)))
            for step in range(1, 21):
                losses.append(float(train_step(model, opt)))
                run.log({"loss": losses[-1]}, step=step)
            run.log_track("t", np.zeros(100))
            run.snapshot()
    # every step ran and updated the model (a loss trend on 20 random batches is noise: it flaked in CI)
    assert len(losses) == 20 and all(np.isfinite(losses))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cl006_log_never_raises_and_never_waits_for_the_store(tmp_path):
    run = deepscope.init(data_dir=tmp_path)
    store = run.store
    real = store.log_scalars
    calls = []

    def slow_then_broken(*args, **kwargs):
        calls.append(time.perf_counter())
        time.sleep(0.3)
        raise OSError("disk went away")

    store.log_scalars = slow_then_broken
    with pytest.warns(deepscope.DeepscopeWarning) as caught:
        t0 = time.perf_counter()
        for step in range(1, 101):
            run.log({"loss": 1.0 / step, "acc": np.float32(0.5), "vec": torch.ones(3), "name": "x",
                     "nan": float("nan")}, step=step)
        run.log({"loss": 1.0}, step="not a step")
        elapsed = time.perf_counter() - t0
    assert elapsed < 0.25, elapsed  # the 0.3 s writes happened in the writer thread, not here
    messages = [str(w.message) for w in caught]
    assert sum("'vec'" in m for m in messages) == 1 and sum("'name'" in m for m in messages) == 1  # once each
    assert any("run.log failed" in m for m in messages)
    deadline = time.time() + 5
    while not calls and time.time() < deadline:
        time.sleep(0.05)
    assert calls, "the background writer never tried to write"
    store.log_scalars = real  # the store comes back: the kept rows are written on the next try
    run.finish()
    series, _ = RunStore(tmp_path).scalar_series(run.id)
    assert series["loss"]["step"].tolist() == list(range(1, 101))
    assert np.isnan(series["nan"]["value"]).all() and "vec" not in series and "name" not in series
    run.log({"loss": 0.0}, step=101)  # after finish: nothing, no error
    assert RunStore(tmp_path).get_run(run.id)["status"] == "completed"


# -- watch: the same probes, found by type, chosen by name ------------------------------------
class Mixed(nn.Module):
    """Token model with an embedding, two Conv1d layers and an LSTM."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(12, 8)
        self.conv1 = nn.Conv1d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv1d(8, 8, 3, padding=1)
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 12)

    def forward(self, x):
        e = self.embedding(x)
        e = e + self.conv2(self.conv1(e.transpose(1, 2))).transpose(1, 2)
        return self.head(self.rnn(e)[0])


def test_cl007_hidden_states_are_the_models_own(tmp_path):
    torch.manual_seed(0)
    model = TinyLM()
    ids = torch.randint(0, 12, (300,))
    with deepscope.init(data_dir=tmp_path) as run:
        run.watch(model, probe=ids, vocab=list("abcdefghijkl"))
    store = RunStore(tmp_path)
    snap, _ = DashboardData(store).hidden.open(run.id)
    with torch.no_grad():
        h = model.rnn(model.embedding(ids[None, :256]))[0][0].numpy()
    assert np.allclose(snap.window("l0.fwd.h", 0, 256), h, atol=2e-3)  # float16 record of nn.LSTM's output
    assert "".join(snap.tokens(0, 5)) == "".join("abcdefghijkl"[i] for i in ids[:5])
    assert store.get_run(run.id)["spec"]["model"]["family"] in RECURRENT


def test_cl008_layers_by_name_and_cadence_across_skipped_steps(tmp_path):
    model = Mixed()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(deepscope.DeepscopeWarning, match="match no recurrent"):
        run = deepscope.init(data_dir=tmp_path)
        run.watch(model, probe=torch.randint(0, 12, (200,)), layers=["conv2", "nope"], every=10)
    for step in range(7, 50, 7):  # 7, 14, ..., 49: never a multiple of 10, crossing 10, 20, 30, 40
        train_step(model, opt)
        run.log({"loss": 1.0}, step=step)
    run.finish()
    store = RunStore(tmp_path)
    snaps = store.list_snapshots(run.id)
    assert {s["kind"] for s in snaps} == {"kernels"}  # the LSTM and the embedding were not chosen
    assert [int(s["step"]) for s in snaps] == [0, 14, 21, 35, 42, 49]  # first step past each multiple, end
    assert list(store.load_arrays(snaps[-1])) == ["w.conv2"]  # only the chosen conv layer

    run2 = deepscope.init(data_dir=tmp_path)
    run2.watch(model, probe=torch.randint(0, 12, (200,)), vocab=[str(i) for i in range(12)], every=10)
    run2.log_track("position", np.arange(200) % 7)
    with pytest.warns(deepscope.DeepscopeWarning, match="already called"):
        run2.watch(nn.LSTM(4, 4))  # one model per run: a second watch changes nothing
    run2.finish()
    kinds = {s["kind"] for s in store.list_snapshots(run2.id)}
    assert kinds == {"hidden", "hidden-track", "kernels", "embeddings"}  # all found by type
    assert store.get_run(run2.id)["spec"]["model"]["family"] == "lstm"


def test_cl009_api_runs_appear_live_in_the_dashboard(tmp_path):
    run = deepscope.init(name="live one", config={"lr": 0.01, "model": "tiny"}, data_dir=tmp_path, task="mine")
    data = DashboardData(RunStore(tmp_path))
    row = data.list_runs()[0]
    assert (row["id"], row["status"], row["name"], row["task"]) == (run.id, "running", "live one", "mine")
    assert row["spec"] == {"lr": 0.01, "model_name": "tiny"}  # "model" is the dashboard's; the user's moves aside
    for step in range(1, 6):
        run.log({"loss": 1.0 / step})  # steps 1, 2, ... when none is given
    run._writer.flush()
    rows, cursor = data.store.scalars_after(run.id, 0)
    assert [r[2] for r in rows] == [1, 2, 3, 4, 5] and cursor > 0
    assert data.run_summary(row)["lr"] == 0.01
    run.finish()
    assert data.get_run(run.id)["status"] == "completed"


def test_cl010_unknown_length_keeps_snapshots_few(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    run = deepscope.init(data_dir=tmp_path)  # no total_steps: every 100, then a tenth of the steps so far
    run.watch(model)
    for probe in run._probes:
        probe.budget = 1e9  # this loop does no training: keep the cost rule out of the cadence under test
    for step in range(1, 2501):
        run.log({"x": 1.0}, step=step)
    run.finish()
    steps = [int(s["step"]) for s in RunStore(tmp_path).list_snapshots(run.id, "kernels")]
    assert steps == list(range(0, 1101, 100)) + [1200, 1400, 1600, 1800, 2000, 2200, 2500]


def test_a_killed_script_leaves_its_run_interrupted_not_running(tmp_path):
    """SIGKILL skips atexit: the dashboard's reaper finds the script's process gone and says so."""
    import signal
    import subprocess
    import sys

    from backend.jobs import JobManager
    from backend.store import RunStore

    data_dir = tmp_path / "data"
    script = ("import time, deepscope\n"
              f"run = deepscope.init(name='doomed', data_dir={str(data_dir)!r})\n"
              "run.log({'loss': 1.0}, step=1)\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        store = RunStore(data_dir)
        (run,) = store.list_runs()
        jobs = JobManager(store)
        assert jobs.reconcile() == [] and store.get_run(run["id"])["status"] == "running"  # alive: left alone
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert jobs.reconcile(stale_after_s=0) == [run["id"]]
        after = store.get_run(run["id"])
        assert after["status"] == "interrupted" and "is gone" in after["error"]
    finally:
        proc.kill()


def test_cl020_a_client_runs_header_names_its_optimizer_and_size(tmp_path):
    # issue 17: the Training page's header of a script's run said "optimizer ?" and "params -"
    from dashboard.components import spec_line

    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=0.004)
    with deepscope.init(name="mine", data_dir=tmp_path) as run:
        run.watch(model, optimizer=opt)
        run.log({"loss": float(train_step(model, opt))}, step=1)
    store = RunStore(tmp_path)
    summary = DashboardData(store).run_summary(only_run(store))
    params = sum(p.numel() for p in model.parameters())
    assert summary["optimizer"] == "adamw" and summary["lr"] == 0.004 and summary["params"] == params
    text = str(spec_line(summary))
    assert "?" not in text and f"{params:,}" in text
    bare = DashboardData(store).run_summary({"id": "x", "task": "custom", "spec": {}})
    assert "?" not in str(spec_line(bare)) and "–" not in str(spec_line(bare))  # unknown facts are left out
