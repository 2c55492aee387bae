"""Lab presets at a reduced budget: each shows its phenomenon (asserted on numbers, not plots).

- optimizers: the six runs launched by ``launch`` (real trainer processes) all complete and end
  apart; Adam's and momentum's losses are below plain SGD's at the same budget.
- dropout: the train-validation gap (loss, model in eval mode) is far smaller with dropout 0.5.
- gradient flow: after training on recall-lstm, the tanh RNN's decay ratio of ||dL/dh|| between
  distance 1 and 20 is at least 10x the LSTM's (and the GRU's), read from the gradient-flow probe's
  snapshots in the store.
- activations: the ReLU RNN's hidden-state norm grows past sqrt(hidden units), which the tanh RNN's
  never exceeds, along the sequence and through training.
- clipping: without clipping one exploding gradient turns the loss NaN and the run fails saying it
  diverged; with clipping the same gradient is cut to the threshold at every logged step and the run
  trains on.

Measured figures are in each test's comments (1 trainer thread, this 2-core machine).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.jobs import JobManager
from backend.lab.presets import PRESETS, launch
from backend.lab.records import (AFTER_CLIP, BEFORE_CLIP, KIND as GRADFLOW_KIND, hidden_norm_history,
                                 latest_gradflow)
from backend.probes.gradflow import decay_ratio
from backend.store import FINAL_STATUSES
from backend.training import Hook
from backend.training.worker import run_training


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """In-process runs train with one thread, as launched ones do: two threads on two busy cores
    ran these runs 3x slower here (OpenMP workers spin while they wait for a core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _last(store, run_id: str, name: str, n: int = 1) -> float:
    series, _ = store.scalar_series(run_id, [name])
    return float(np.mean(series[name]["value"][-n:]))


@pytest.mark.timeout(150)
def test_optimizers_preset_six_runs_finish_and_differ(store):
    # 300 steps each (the preset runs 1,500). Measured: final validation loss sgd 0.333,
    # momentum 0.090, adam 0.147, adagrad 0.124, rmsprop 0.071, adadelta 0.162 (final train loss sgd 0.33,
    # adam 0.12); the six processes completed side by side in 18 s here.
    jobs = JobManager(store, launch=True)
    t0 = time.monotonic()
    run_ids = launch(jobs, "optimizers", steps=300)
    try:
        for rid in run_ids:
            jobs.wait(rid, timeout=120)
    finally:
        for proc in jobs._procs.values():
            if proc.poll() is None:
                proc.kill()
    elapsed = time.monotonic() - t0
    runs = [store.get_run(r) for r in run_ids]
    assert [r["status"] for r in runs] == ["completed"] * 6, [(r["name"], r["status"], r["error"]) for r in runs]
    assert [r["spec"]["optimizer"] for r in runs] == ["sgd", "momentum", "adam", "adagrad", "rmsprop", "adadelta"]
    assert len({r["spec"]["seed"] for r in runs}) == 1 and all(r["spec"]["steps"] == 300 for r in runs)
    val = {r["spec"]["optimizer"]: _last(store, r["id"], "val/loss") for r in runs}
    train = {r["spec"]["optimizer"]: _last(store, r["id"], "train/loss", n=5) for r in runs}
    assert val["adam"] < 0.75 * val["sgd"] and train["adam"] < train["sgd"], (val, train)
    assert val["momentum"] < 0.75 * val["sgd"], val
    finals = sorted(val.values())
    assert min(np.diff(finals)) > 1e-4, val  # six different trajectories, not one run six times
    assert elapsed < 150


class _EvalGap(Hook):
    """At the end of training: loss on (the first 3,000) training inputs and on validation, both in
    eval mode (dropout off), so the gap compares the same model on seen and unseen data."""

    def __init__(self):
        self.train_loss = self.val_loss = float("nan")

    @torch.no_grad()
    def on_train_end(self, trainer, status):
        model, data = trainer.model, trainer.data
        model.eval()
        self.train_loss = F.cross_entropy(model(data.x_train[:3000]), data.y_train[:3000]).item()
        self.val_loss = F.cross_entropy(model(data.x_val), data.y_val).item()
        model.train()


@pytest.mark.timeout(150)
def test_dropout_preset_shrinks_the_train_validation_gap(store):
    # 600 steps (the preset runs 2,000). Measured (eval-mode loss, val - train): 1.84 without dropout,
    # 0.69 with dropout 0.5; from the logged curves (val/loss - mean of the last 10 train/loss) 1.45 vs 0.35.
    # At 1,000 steps 3.03 vs 0.94.
    gaps, logged = {}, {}
    for name, spec in PRESETS["dropout"].specs(steps=600):
        run_id = store.create_run(name, spec.task, spec.model_dump())
        hook = _EvalGap()
        assert run_training(store, run_id, extra_hooks=[hook]) == "completed"
        p = spec.model.dropout
        gaps[p] = hook.val_loss - hook.train_loss
        logged[p] = _last(store, run_id, "val/loss") - _last(store, run_id, "train/loss", n=10)
    assert gaps[0.0] > 0.5, gaps  # the wide MLP does overfit
    assert gaps[0.5] < 0.6 * gaps[0.0], gaps
    assert logged[0.5] < logged[0.0], logged  # the curves on the Training page tell the same story


@pytest.mark.timeout(150)
def test_gradient_flow_preset_rnn_gradient_vanishes_lstm_gru_keep_it(store):
    # 600 steps (the preset runs 3,000), recall-lstm, 64 units. Measured decay_ratio(norms, 1, 20)
    # at the last snapshot: rnn 2.0e9, lstm 4.2, gru 0.88; at step 0: rnn 7.9e4, lstm 1.7e4, gru 7.2e3.
    # (32 units, 400 steps: rnn 30, lstm 1.6, still 19x.)
    ratios, first = {}, {}
    for name, spec in PRESETS["gradient-flow"].specs(steps=600):
        run_id = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, run_id) == "completed"
        snaps = store.list_snapshots(run_id, GRADFLOW_KIND)
        assert snaps[0]["step"] == 0 and snaps[-1]["step"] == 600 and len(snaps) >= 3
        rec = latest_gradflow(store, run_id)
        assert rec.meta["family"] == spec.model.family and rec.meta["n_sequences"] == 64
        assert rec.norms.shape == (22,) and np.all(np.isfinite(rec.norms)) and rec.norms[-1] > 0
        ratios[spec.model.family] = decay_ratio(rec.norms, 1, 20)
        first[spec.model.family] = decay_ratio(latest_gradflow(store, run_id, step=0).norms, 1, 20)
    assert ratios["rnn"] >= 10 * ratios["lstm"], ratios
    assert ratios["rnn"] >= 10 * ratios["gru"], ratios
    assert ratios["lstm"] < first["lstm"] / 100, (ratios, first)  # the LSTM learnt to carry the gradient
    assert all(r["status"] in FINAL_STATUSES for r in store.list_runs())


@pytest.mark.timeout(120)
def test_activations_preset_relu_state_grows_past_the_bound_tanh_never_exceeds(store):
    # 400 steps (the preset runs 3,000), snapshots every 80. Measured here, mean ||h|| at the last time
    # step of the probe windows (32 when measured; 16 since) at steps 0, 80, ..., 400 (largest ||h_t|| in brackets), bound 5.66:
    #   relu: 2.29 (4.06), 8.8, 10.4, 11.4, 12.0, 12.1 (17.8); along the sequence at step 400 6.8 at t=0,
    #         12.2 at t=4, 12.1 at t=63 (at 3,000 steps: 13.5, largest 23.3)
    #   tanh: 2.82 (3.81), 4.77, 4.63, 4.64, 4.70, 4.72 (5.32)
    # Validation loss at step 400: relu 2.19, tanh 2.28. The two runs take ~15 s here.
    runs = {}
    for name, spec in PRESETS["activations"].specs(steps=400):
        run_id = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, run_id) == "completed"
        runs[spec.model.activation] = run_id
    bound = np.sqrt(PRESETS["activations"].runs[0][1].model.hidden_size)
    hist = {act: hidden_norm_history(store, rid) for act, rid in runs.items()}
    assert hist["relu"]["step"].tolist() == [0, 80, 160, 240, 320, 400] == hist["tanh"]["step"].tolist()

    tanh_recs = [latest_gradflow(store, runs["tanh"], step=s) for s in hist["tanh"]["step"]]
    assert all(r.hidden_max.max() <= bound + 1e-6 for r in tanh_recs)  # never, at any step of any window
    assert hist["tanh"]["last"][-1] > 0.75 * bound, hist["tanh"]  # and it saturates close to it

    relu = hist["relu"]
    assert relu["last"][-1] > 1.5 * bound and relu["max"][-1] > 2.5 * bound, relu
    assert relu["last"][-1] > 3 * relu["last"][0], relu  # grows through training
    assert relu["last"][-1] > 1.8 * hist["tanh"]["last"][-1]
    newest = latest_gradflow(store, runs["relu"])
    assert newest.hidden_norms[-1] > 1.2 * newest.hidden_norms[0], newest.hidden_norms  # and along the sequence
    for rid in runs.values():  # both learn: the comparison is between working models
        val = store.scalar_series(rid, ["val/loss"])[0]["val/loss"]["value"]
        assert np.all(np.isfinite(val)) and val[-1] < 2.6, val


@pytest.mark.timeout(120)
def test_clipping_preset_bounds_the_update_and_saves_the_run(store):
    # 300 steps (the preset runs 2,000), every step logged. Measured here: both runs see the same
    # gradients until step 3, where ||g|| = 2.0e10 (loss 4.4e8 at that step). Unclipped, that update
    # makes the weights non-finite: loss NaN at step 4, the run fails "training diverged at step 4".
    # Clipped at 1: after-clip norm <= 1.0000001 at every step, pre-clip above 1 at 15 of the 300 steps;
    # validation loss 2.06 at step 300 (1.86 at 1,000). ~10 s here.
    runs = {}
    for name, spec in PRESETS["clipping"].specs(steps=300):
        run_id = store.create_run(name, spec.task, spec.model_dump())
        runs[spec.clip_norm] = (run_id, run_training(store, run_id))
    (off, off_status), (on, on_status) = runs[None], runs[1.0]
    series = {rid: store.scalar_series(rid, [BEFORE_CLIP, AFTER_CLIP, "train/loss", "val/loss"])[0]
              for rid in (off, on)}

    run = store.get_run(off)
    assert off_status == "failed" and "training diverged at step" in run["error"], run["error"]
    assert "no gradient clipping" in run["error"] and run["step"] < 20
    loss = series[off]["train/loss"]["value"]
    assert np.isnan(loss[-1]) and np.all(np.isfinite(loss[:-1]))  # logged up to and including the NaN
    before_off = series[off][BEFORE_CLIP]["value"]
    assert np.nanmax(before_off) > 1e6 and AFTER_CLIP not in series[off]  # the explosion, on record

    assert on_status == "completed"
    before, after = series[on][BEFORE_CLIP], series[on][AFTER_CLIP]
    assert len(after["value"]) == 300 and np.array_equal(before["step"], after["step"])
    assert np.all(after["value"] <= 1.0 + 1e-3), after["value"].max()  # bounded at every logged step
    over = before["value"] > 1.0
    assert over.sum() >= 5 and before["value"].max() > 1e6  # clipping had real work to do
    np.testing.assert_allclose(after["value"][~over], before["value"][~over], rtol=1e-4)  # untouched below
    n = len(loss) - 1  # the same seed: the same gradients as the unclipped run until it broke
    np.testing.assert_allclose(before["value"][:n], before_off[:n], rtol=1e-4)
    val = series[on]["val/loss"]["value"]
    assert np.all(np.isfinite(val)) and val[-1] < 2.4, val
    assert np.all(np.isfinite(hidden_norm_history(store, on)["max"]))
