"""Lab presets, the recall-lstm task and the gradient-flow figure (no trainer processes, no server)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.lab.presets import NO_JOBS, OPTIMIZER_LRS, PRESETS, get_preset, launch, start_preset
from backend.lab.records import KIND, GradFlow, latest_gradflow
from backend.models import build_model
from backend.probes.gradflow import gradient_through_time, probe_sequences
from backend.spec import RunSpec
from backend.tasks import get_task
from backend.tasks.data import load_task_data
from backend.tasks.recall import (RECALL_GAP, RECALL_KEYS, RECALL_VOCAB, episode_length, generate_recall,
                                  recall_probe_batch, recall_tracks)
from backend.tasks.registry import VOCABS
from dashboard.figures.lab import gradflow_figure, ratio_text


class FakeJobs:
    """Records what would have started; ``fail_at`` raises on that start (0-based)."""

    def __init__(self, fail_at: int | None = None):
        self.started: list[tuple[str, RunSpec, int | None]] = []
        self.fail_at = fail_at

    def start(self, spec, name=None, threads=None):
        if self.fail_at is not None and len(self.started) == self.fail_at:
            raise ValueError("the machine is full")
        self.started.append((name, spec, threads))
        return f"run{len(self.started)}"


# -- recall-lstm ---------------------------------------------------------------------------

def test_recall_text_is_episodes_whose_answer_is_the_key():
    text = generate_recall(10 * episode_length(), seed=5)
    lines = text.split("\n")[:-1]
    assert len(lines) == 10
    for line in lines:
        assert re.fullmatch(rf"[{RECALL_KEYS}][abcd]{{{RECALL_GAP}}}\?[{RECALL_KEYS}]", line), line
        assert line[0] == line[-1]
    assert len({line[0] for line in lines}) > 1  # keys vary
    assert generate_recall(1234, seed=5)[:100] == generate_recall(100, seed=5)  # a prefix, whatever the length
    assert generate_recall(100, seed=6) != generate_recall(100, seed=5)
    with pytest.raises(ValueError):
        generate_recall(-1, seed=0)


def test_recall_tracks_follow_the_key():
    text = generate_recall(3 * episode_length() + 5, seed=1)
    tr = recall_tracks(text)
    assert all(v.shape == (len(text),) and v.dtype == np.float32 for v in tr.values())
    for start in range(0, len(text), episode_length()):
        assert tr["key"][start] == RECALL_KEYS.index(text[start]) + 1 and tr["since key"][start] == 0
        marker = start + RECALL_GAP + 1
        if marker < len(text):
            assert text[marker] == "?" and tr["recall"][marker] == 1 and tr["since key"][marker] == RECALL_GAP + 1
    assert tr["recall"].sum() == text.count("?")


def test_recall_probe_batch_answers_are_the_first_tokens():
    tokens, targets = recall_probe_batch(16)
    assert tokens.shape == (16, RECALL_GAP + 2) and targets.shape == (16,)
    np.testing.assert_array_equal(tokens[:, 0], targets)
    assert all(RECALL_VOCAB[t] in RECALL_KEYS for t in targets)
    assert all(RECALL_VOCAB[t] == "?" for t in tokens[:, -1])
    np.testing.assert_array_equal(recall_probe_batch(16)[0], tokens)  # fixed


def test_recall_task_loads_and_trains_a_recurrent_lm():
    info = get_task("recall-lstm")
    assert info.kind == "lm" and info.vocab_size == len(RECALL_VOCAB) == len(VOCABS["recall-lstm"])
    data = load_task_data(info)
    assert data.train_ids.max() < info.vocab_size and data.train_ids.min() > 0  # no unknown characters
    assert len(data.val_ids) > 10_000
    spec = RunSpec.for_task("recall-lstm", model={"family": "gru", "hidden_size": 8})
    assert build_model(spec)(data.val_ids[:40].view(2, 20)).shape == (2, 20, info.vocab_size)


def test_probe_sequences_of_recall_and_of_other_language_models():
    tokens, targets, source = probe_sequences(get_task("recall-lstm"), None)
    assert tokens.shape == (64, RECALL_GAP + 2) and torch.equal(tokens[:, 0], targets) and "recall" in source
    ids = torch.arange(1000) % 7 + 1
    tokens, targets, _ = probe_sequences(get_task("brackets-lstm"), ids, n=4, length=30)
    assert tokens.shape == (4, 30) and torch.equal(targets, (tokens[:, -1] % 7) + 1)
    with pytest.raises(ValueError, match="too short"):
        probe_sequences(get_task("brackets-lstm"), ids[:20])
    with pytest.raises(ValueError, match="language-model"):
        probe_sequences(get_task("digits-cnn"), None)


# -- presets -------------------------------------------------------------------------------

def test_presets_are_valid_and_compare_one_thing_each():
    assert list(PRESETS) == ["optimizers", "dropout", "gradient-flow"]
    for p in PRESETS.values():
        names = [n for n, _ in p.runs]
        assert len(names) == len(set(names)) >= 2 and p.explanation and "\n" not in p.explanation
        assert len({s.seed for _, s in p.runs}) == 1 and len({s.task for _, s in p.runs}) == 1
        for name, spec in p.runs:
            assert RunSpec.model_validate(spec.model_dump()) == spec and spec.name == name

    opt = PRESETS["optimizers"]
    assert [s.optimizer for _, s in opt.runs] == list(OPTIMIZER_LRS) and len(opt.runs) == 6
    assert len({s.model.model_dump_json() for _, s in opt.runs}) == 1  # the same model
    assert len({s.steps for _, s in opt.runs}) == 1 and opt.page == "/"

    drop = PRESETS["dropout"]
    assert [s.model.dropout for _, s in drop.runs] == [0.0, 0.5]
    a, b = (s.model_dump() for _, s in drop.runs)
    a["model"].pop("dropout"), b["model"].pop("dropout"), a.pop("name"), b.pop("name")
    assert a == b  # nothing else differs

    gf = PRESETS["gradient-flow"]
    assert [s.model.family for _, s in gf.runs] == ["rnn", "lstm", "gru"]
    assert gf.runs[0][1].model.activation == "tanh" and {s.task for _, s in gf.runs} == {"recall-lstm"}
    assert gf.page == "/lab"


def test_landing_addresses():
    assert PRESETS["optimizers"].landing(["a", "b"]) == "/?run=a,b"
    assert PRESETS["gradient-flow"].landing(["a", "b", "c"]) == "/lab?preset=gradient-flow&run=a,b,c"
    with pytest.raises(KeyError, match="presets: optimizers"):
        get_preset("nope")


def test_reduced_budget_changes_steps_and_cadences_only():
    full, small = PRESETS["dropout"].specs(), PRESETS["dropout"].specs(steps=50)
    for (n1, s1), (n2, s2) in zip(full, small):
        assert n1 == n2 and s2.steps == 50 and s2.eval_every <= 10 and s2.checkpoint_every <= 50
        assert s2.model == s1.model and s2.lr == s1.lr and s2.optimizer == s1.optimizer


def test_launch_starts_every_run_with_one_thread_in_order():
    jobs = FakeJobs()
    ids = launch(jobs, "optimizers", steps=20)
    assert ids == [f"run{i}" for i in range(1, 7)]
    assert [t for _, _, t in jobs.started] == [1] * 6
    assert [n for n, _, _ in jobs.started] == [n for n, _ in PRESETS["optimizers"].runs]
    assert all(s.steps == 20 for _, s, _ in jobs.started)


def test_start_preset_says_why_nothing_started():
    assert start_preset(None, "dropout") == (False, NO_JOBS, [])
    ok, msg, ids = start_preset(FakeJobs(), "nope")
    assert not ok and "no preset 'nope'" in msg and ids == []
    ok, msg, ids = start_preset(FakeJobs(fail_at=1), "gradient-flow")
    assert not ok and "started 1 of 3: run1" in msg and "the machine is full" in msg and ids == ["run1"]
    ok, href, ids = start_preset(FakeJobs(), "gradient-flow")
    assert ok and ids == ["run1", "run2", "run3"] and href == "/lab?preset=gradient-flow&run=run1,run2,run3"


# -- the gradient-flow record and figure -------------------------------------------------------

def test_gradflow_record_reads_back_newest_or_asked_step(store):
    run_id = store.create_run("r", "recall-lstm", RunSpec.for_task("recall-lstm").model_dump())
    assert latest_gradflow(store, run_id) is None
    store.add_snapshot(run_id, KIND, 0, {"norms": np.array([1e-6, 1e-3, 1.0])}, {"family": "rnn"})
    store.add_snapshot(run_id, KIND, 10, {"norms": np.array([0.5, 0.7, 1.0])}, {"family": "rnn"})
    rec = latest_gradflow(store, run_id)
    assert isinstance(rec, GradFlow) and rec.step == 10 and rec.meta["family"] == "rnn"
    np.testing.assert_array_equal(rec.norms_by_distance, [1.0, 0.7, 0.5])
    assert latest_gradflow(store, run_id, step=0).norms[0] == 1e-6
    assert latest_gradflow(store, run_id, step=5) is None


def test_gradflow_figure_draws_runs_on_a_log_axis():
    decay = 0.5 ** np.arange(25)
    fig = gradflow_figure([{"name": "rnn", "family": "rnn", "step": 300, "norms_by_distance": decay},
                           {"name": "lstm", "family": "lstm", "step": 300, "norms_by_distance": np.ones(25)},
                           {"name": "gru", "note": "no snapshot yet (queued)"}])
    assert fig.layout.yaxis.type == "log" and len(fig.data) == 2
    rnn, lstm = fig.data
    assert rnn.name.startswith("rnn (step 300): d1/d20 = ") and rnn.name.endswith(f"{2 ** 19:.3g}x")
    assert lstm.name.endswith("= 1x") and rnn.line.color != lstm.line.color
    assert list(rnn.x) == list(range(25)) and rnn.y[0] == 1.0
    assert "gru: no snapshot yet" in fig.layout.legend.title.text
    zero = gradflow_figure([{"name": "x", "norms_by_distance": [1.0, 0.0, 0.1]}]).data[0]
    assert zero.y[1] is None  # an underflowed gradient is left out, not drawn at log(0)
    assert ratio_text(np.ones(10)) == ""  # too short for distance 20


def test_recorded_norms_are_gradient_through_time_of_the_model():
    """What the probe records for recall-lstm is exactly the function the tests of gradflow.py check."""
    from backend.probes.gradflow import GradientFlowProbe

    spec = RunSpec.for_task("recall-lstm", model={"family": "lstm", "hidden_size": 8})
    torch.manual_seed(0)
    t = SimpleNamespace(model=build_model(spec), info=get_task("recall-lstm"), device=torch.device("cpu"),
                        data=SimpleNamespace(val_ids=None))  # what the probe reads of a trainer
    probe = GradientFlowProbe(store=None, run_id="x")
    assert probe.setup(t)
    norms, meta = probe.take(t)
    tokens, targets = (torch.as_tensor(a) for a in recall_probe_batch(64))
    np.testing.assert_allclose(norms, gradient_through_time(t.model, tokens, targets))
    assert meta["family"] == "lstm" and meta["n_sequences"] == 64 and "activation" not in meta
    t.model = build_model(RunSpec.for_task("recall-lstm", model={"family": "gru", "bidirectional": True,
                                                                 "hidden_size": 4}))
    with pytest.raises(ValueError, match="one-directional"):
        probe.setup(t)
    probe.close()
