"""Lab presets, the recall-lstm task, the gradient-flow record (with hidden-state norms) and figure,
and the metrics hook's after-clip norm and divergence stop (no trainer processes, no server)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.lab.presets import CLIP_NORM, NO_JOBS, OPTIMIZER_LRS, PRESETS, get_preset, launch, start_preset
from backend.lab.records import AFTER_CLIP, BEFORE_CLIP, KIND, GradFlow, hidden_norm_history, latest_gradflow
from backend.models import build_model
from backend.probes.gradflow import gradient_through_time, probe_sequences, through_time
from backend.models.build import RecurrentLM
from backend.spec import ModelSpec, RunSpec
from backend.tasks import TASKS, get_task
from backend.tasks.data import load_task_data
from backend.tasks.recall import (RECALL_GAP, RECALL_KEYS, RECALL_VOCAB, episode_length, generate_recall,
                                  recall_probe_batch, recall_tracks)
from backend.tasks.registry import VOCABS
from dashboard.views.lab.figures import gradflow_figure, ratio_text


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

def _differences(a: RunSpec, b: RunSpec) -> dict:
    """Fields (``model.x`` for the model's) where two specs differ, the run name aside."""
    da, db = a.model_dump(), b.model_dump()
    out = {f"model.{k}": (v, db["model"][k]) for k, v in da.pop("model").items() if v != db["model"][k]}
    db.pop("model")
    out.update({k: (v, db[k]) for k, v in da.items() if v != db[k] and k != "name"})
    return out


def test_presets_are_valid_and_compare_one_thing_each():
    assert list(PRESETS) == ["optimizers", "dropout", "gradient-flow", "activations", "clipping", "attention",
                             "bidirectional-tagging", "teacher-forcing"]
    att, tag = PRESETS["attention"], PRESETS["bidirectional-tagging"]  # issue 16: one setting differs each
    assert [s.model.attention for _, s in att.runs] == ["additive", "none"] and att.runs[0][1].task == "numbers-seq2seq"
    assert [s.model.bidirectional for _, s in tag.runs] == [False, True]
    tf = PRESETS["teacher-forcing"]
    assert [s.teacher_forcing_schedule for _, s in tf.runs] == ["constant", "constant", "linear"]
    for p in PRESETS.values():
        names = [n for n, _ in p.runs]
        assert len(names) == len(set(names)) >= 2 and p.explanation and "\n" not in p.explanation
        assert len({s.seed for _, s in p.runs}) == 1 and len({s.task for _, s in p.runs}) == 1
        for name, spec in p.runs:
            assert RunSpec.model_validate(spec.model_dump()) == spec and spec.name == name
        assert set(p.diverges) <= set(names)
    # only the unclipped run is meant to diverge; the bench and the view expect it to end failed
    assert {p.id: p.diverges for p in PRESETS.values() if p.diverges} == {"clipping": ("lab · clipping · off",)}
    assert PRESETS["clipping"].expected_status("lab · clipping · off") == "failed"
    assert PRESETS["clipping"].expected_status("lab · clipping · clip 1") == "completed"

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

    act = PRESETS["activations"]
    (_, relu), (_, tanh) = act.runs
    assert _differences(relu, tanh) == {"model.activation": ("relu", "tanh")} and act.page == "/lab"
    assert relu.model.family == "rnn" and relu.clip_norm is None  # nothing caps the ReLU state's gradients

    clip = PRESETS["clipping"]
    (_, off), (_, on) = clip.runs
    assert _differences(off, on) == {"clip_norm": (None, CLIP_NORM)} and clip.page == "/lab"
    assert off.model.activation == "relu" and off.optimizer == "sgd" and off.log_every == 1  # every spike logged


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
        assert s2.probe_every is None  # adaptive cadence stays adaptive
    for (_, s1), (_, s2) in zip(PRESETS["activations"].specs(), PRESETS["activations"].specs(steps=400)):
        assert s1.probe_every == 150 and s2.probe_every == 80  # a fixed cadence: still five snapshots or more
        assert _differences(s1, s2).keys() == {"steps", "eval_every", "probe_every", "checkpoint_every"}


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
    arrays, meta = probe.take(t)
    tokens, targets = (torch.as_tensor(a) for a in recall_probe_batch(64))
    np.testing.assert_allclose(arrays["norms"], gradient_through_time(t.model, tokens, targets))
    assert sorted(arrays) == ["hidden_max", "hidden_norms", "norms"]
    assert all(v.shape == (RECALL_GAP + 2,) for v in arrays.values())
    assert meta["family"] == "lstm" and meta["n_sequences"] == 64 and "activation" not in meta
    assert meta["hidden_size"] == 8
    # the spec refuses a bidirectional language model; the user's own may still be one
    t.model = RecurrentLM(ModelSpec(family="gru", bidirectional=True, hidden_size=4), TASKS["recall-lstm"])
    with pytest.raises(ValueError, match="one-directional"):
        probe.setup(t)
    probe.close()


# -- hidden-state norms: probe and record --------------------------------------------------------

@pytest.mark.parametrize("family, activation, layers", [("rnn", "relu", 1), ("rnn", "tanh", 2), ("lstm", None, 1),
                                                       ("gru", None, 2)])
def test_hidden_norms_are_those_of_the_fused_module(family, activation, layers):
    """The unrolled forward pass gives the top layer's ||h_t|| as the fused nn.RNN/LSTM/GRU computes it."""
    torch.manual_seed(0)
    model = build_model(RunSpec.for_task("brackets-lstm", model={"family": family, "layers": layers,
                                                                 "hidden_size": 12, "activation": activation}))
    tokens = torch.randint(1, 8, (6, 25))
    rec = through_time(model, tokens, torch.randint(1, 8, (6,)))
    with torch.no_grad():
        model.eval()
        out, _ = model.rnn(model.embedding(tokens))
    want = out.norm(dim=2)  # (batch, T)
    np.testing.assert_allclose(rec["hidden_norms"], want.mean(dim=0).double().numpy(), rtol=1e-5)
    np.testing.assert_allclose(rec["hidden_max"], want.max(dim=0).values.double().numpy(), rtol=1e-5)
    assert rec["norms"].shape == (25,) and all(p.grad is None for p in model.parameters())


def test_tanh_states_stay_within_sqrt_hidden_size_relu_states_do_not():
    """The bound the activations preset draws: with large recurrent weights a tanh state saturates just
    under sqrt(H), a ReLU state grows step after step without limit."""
    h = 16
    out = {}
    for act in ("tanh", "relu"):
        torch.manual_seed(0)
        model = build_model(RunSpec.for_task("brackets-lstm", model={"family": "rnn", "hidden_size": h,
                                                                     "activation": act}))
        with torch.no_grad():
            model.rnn.weight_hh_l0.copy_(1.5 * torch.eye(h))  # an expanding recurrence
            model.rnn.bias_hh_l0.fill_(0.5)
        out[act] = through_time(model, torch.randint(1, 8, (4, 30)), torch.randint(1, 8, (4,)))
    assert out["tanh"]["hidden_max"].max() <= np.sqrt(h) and out["tanh"]["hidden_norms"][-1] > 0.9 * np.sqrt(h)
    relu = out["relu"]["hidden_norms"]
    assert relu[-1] > 1e4 * np.sqrt(h) and np.all(np.diff(relu[5:]) > 0)  # x1.5 a step: 1.5^25 ~ 2.5e4


def test_reader_reads_hidden_norms_and_old_snapshots_without_them(store):
    run_id = store.create_run("r", "code-lstm", RunSpec.for_task("code-lstm").model_dump())
    assert hidden_norm_history(store, run_id)["step"].tolist() == []
    store.add_snapshot(run_id, KIND, 0, {"norms": np.ones(4)}, {"family": "rnn"})  # written before hidden norms
    old = latest_gradflow(store, run_id)
    assert old.hidden_norms is None and old.hidden_max is None and old.norms.tolist() == [1.0] * 4
    assert hidden_norm_history(store, run_id)["step"].tolist() == []  # nothing to draw, no error
    store.add_snapshot(run_id, KIND, 10, {"norms": np.ones(4), "hidden_norms": np.array([1.0, 3.0, 2.0, 2.5]),
                                          "hidden_max": np.array([2.0, 9.0, 4.0, 5.0])}, {"family": "rnn"})
    store.add_snapshot(run_id, KIND, 20, {"norms": np.ones(4), "hidden_norms": np.array([1.0, np.inf, np.nan, np.nan]),
                                          "hidden_max": np.full(4, np.nan)}, {"family": "rnn"})
    rec = latest_gradflow(store, run_id, step=10)
    assert rec.hidden_norms.tolist() == [1.0, 3.0, 2.0, 2.5] and rec.hidden_max[1] == 9.0
    hist = hidden_norm_history(store, run_id)
    assert hist["step"].tolist() == [10, 20] and hist["last"][0] == 2.5 and np.isnan(hist["last"][1])
    assert hist["peak"].tolist() == [3.0, np.inf] and hist["max"][0] == 9.0 and np.isnan(hist["max"][1])


# -- metrics: the norm after clipping, and a diverged run ---------------------------------------------

def _metrics_trainer(clip_norm: float | None, lr: float = 0.1):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    return SimpleNamespace(model=model, spec=SimpleNamespace(clip_norm=clip_norm),
                           optimizer=torch.optim.SGD(model.parameters(), lr=lr))


def _step(hook, trainer, step: int, scale: float = 1.0, loss: float | None = None):
    from backend.training.hooks import StepOutput

    trainer.optimizer.zero_grad()
    out = trainer.model(torch.randn(16, 4))
    (scale * out.pow(2).mean()).backward()
    hook.on_after_backward(trainer, step)
    if trainer.spec.clip_norm:
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.spec.clip_norm)
    trainer.optimizer.step()
    value = torch.tensor(loss if loss is not None else 1.0)
    hook.on_step_end(trainer, StepOutput(step=step, loss=value, correct=torch.tensor(0), count=1, samples=16))


def test_metrics_hook_logs_the_norm_after_clipping_from_the_clipped_gradients(store):
    from backend.training.store_hooks import MetricsHook

    run_id = store.create_run("r", "digits-cnn", {})
    trainer, hook = _metrics_trainer(clip_norm=0.5), MetricsHook(store, run_id, every=2)
    for step, scale in enumerate([1.0, 100.0, 0.001, 1e4], start=1):
        _step(hook, trainer, step, scale)
    hook.close()
    s, _ = store.scalar_series(run_id, [BEFORE_CLIP, AFTER_CLIP])
    assert s[BEFORE_CLIP]["step"].tolist() == s[AFTER_CLIP]["step"].tolist() == [2, 4]  # log steps only
    before, after = s[BEFORE_CLIP]["value"], s[AFTER_CLIP]["value"]
    assert np.all(before > 0.5) and np.allclose(after, 0.5, rtol=1e-5)  # cut to the threshold

    unclipped = store.create_run("u", "digits-cnn", {})
    trainer, hook = _metrics_trainer(clip_norm=None), MetricsHook(store, unclipped, every=1)
    _step(hook, trainer, 1)
    hook.close()
    assert AFTER_CLIP not in store.scalar_names(unclipped) and BEFORE_CLIP in store.scalar_names(unclipped)


def test_metrics_hook_stops_a_diverged_run_with_a_message_after_logging_it(store):
    from backend.training.store_hooks import MetricsHook, TrainingDiverged

    run_id = store.create_run("r", "digits-cnn", {})
    trainer, hook = _metrics_trainer(clip_norm=None, lr=2.0), MetricsHook(store, run_id, every=2)
    _step(hook, trainer, 1, loss=float("nan"))  # not a log step: nothing checked yet
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2: the training loss became nan "
                                               r"\(learning rate 2, no gradient clipping\).*clip_norm"):
        _step(hook, trainer, 2, loss=3.0)  # the log step's mean includes step 1's NaN
    hook.close()
    loss = store.scalar_series(run_id, ["train/loss"])[0]["train/loss"]
    assert loss["step"].tolist() == [2] and np.isnan(loss["value"][0])  # the NaN is on record

    quiet = MetricsHook(store, run_id, every=1, stop_on_divergence=False)
    _step(quiet, _metrics_trainer(clip_norm=1.0), 3, loss=float("inf"))  # logged, not raised
    quiet.close()
