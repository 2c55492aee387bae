"""dates-seq2seq end to end (issue 16): an encoder-decoder with additive attention learns to write dates in ISO
form within the task's default budget, its attention lands on the input field that determines each output
character, and the attention probe records it; without attention the same budget teaches far less.

One run of the default spec (400 steps) is shared by the tests of this module: about 30 s on one torch
thread on a quiet 2-core machine (55 s with a neighbour's benchmark), the run without attention 10-20 s.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.attention import KIND, AttentionSnapshot
from backend.tasks import get_task
from backend.tasks.data import load_task_data
from backend.training.trainer import Trainer
from backend.training.worker import run_training

pytestmark = pytest.mark.slow  # trains for 30-80 s (`make test-fast` leaves it out)
# An argmax drawn uniformly over the input lands in the determining span 24 % of the time (the spans' mean share
# of their input, validation set); untrained models measured 0.175, 0.26 and 0.30 (seeds 0, 1, 2).
NEAR_CHANCE_ALIGNMENT = 0.4


@pytest.fixture(scope="module")
def dates_run(tmp_path_factory):
    torch.set_num_threads(1)
    store = RunStore(tmp_path_factory.mktemp("dates") / "data")
    spec = RunSpec.for_task("dates-seq2seq")
    run_id = store.create_run("dates", spec.task, spec.model_dump())
    t0 = time.perf_counter()
    assert run_training(store, run_id) == "completed", store.get_run(run_id)["error"]
    series, _ = store.scalar_series(run_id)
    return store, run_id, spec, series, time.perf_counter() - t0


def _final(series, name):
    return float(series[name]["value"][-1])


def test_attention_learns_dates_and_aligns(dates_run):
    _, _, spec, series, _ = dates_run
    assert int(series["val/seq_acc"]["step"][-1]) == spec.steps
    assert _final(series, "val/seq_acc") >= 0.95
    assert _final(series, "val/alignment_share") >= 0.8
    for third in ("short", "middle", "long"):
        assert _final(series, f"val/seq_acc_{third}") >= 0.9
    entropy = series["val/attention_entropy"]["value"]
    assert entropy[-1] < 0.6 and entropy[-1] < entropy[0]  # from spread out to focused
    assert {"train/loss", "train/acc", "teacher_forcing"} <= set(series)


def test_untrained_attention_is_near_chance():
    torch.set_num_threads(1)
    spec = RunSpec.for_task("dates-seq2seq")
    metrics = Trainer(spec, load_task_data(get_task(spec.task)), device="cpu").evaluate()
    assert metrics["val/alignment_share"] < NEAR_CHANCE_ALIGNMENT
    assert metrics["val/attention_entropy"] > 0.95 and metrics["val/seq_acc"] == 0.0


def test_attention_snapshots_show_where_each_character_comes_from(dates_run):
    store, run_id, spec, _, _ = dates_run
    rows = store.list_snapshots(run_id, KIND)
    assert rows[0]["step"] == 0 and rows[-1]["step"] == spec.steps
    snap = AttentionSnapshot(store, rows[-1])
    items = snap.items()
    assert len(items) == 8 and snap.layers == ["dec-enc"] and snap.heads == ["h0"]
    right = sum(it["extra"]["output"] == it["extra"]["target"] for it in items)
    assert right >= 7
    hits = total = 0
    for n, it in enumerate(items):
        w = snap.weights(n)
        assert w.shape == (len(it["queries"]), len(it["keys"]))
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-2)
        for q, (start, end) in enumerate(it["extra"]["spans"]):
            if start >= 0:
                hits += start <= int(w[q].argmax()) < end
                total += 1
    assert hits / total >= 0.8


def test_without_attention_the_same_start_teaches_far_less(dates_run):
    """After 300 steps the model without attention writes almost no date right (0.2 % measured) while the
    attention model had 99 % at step 200. The length thirds, measured: no-attention models were *not* worse
    on long inputs here (2,000 steps, bidirectional: 0.961 short, 0.985 long): a date is too little
    information for a 64-unit state to lose, and the short numeric forms are the harder ones."""
    _, _, _, series, _ = dates_run
    at_200 = float(series["val/seq_acc"]["value"][list(series["val/seq_acc"]["step"]).index(200)])
    torch.set_num_threads(1)
    spec = RunSpec.for_task("dates-seq2seq", steps=300, eval_every=300, model={"attention": "none"})
    trainer = Trainer(spec, load_task_data(get_task(spec.task)), device="cpu")
    trainer.run()
    plain = trainer.evaluate()
    assert "val/alignment_share" not in plain
    assert plain["val/seq_acc"] < at_200 - 0.8
