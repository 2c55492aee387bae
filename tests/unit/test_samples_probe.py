"""The text-samples probe (backend/probes/samples.py) and its record (backend/store/samples.py)."""
from __future__ import annotations

import numpy as np
import pytest

from backend.models.generate import generate_many
from backend.probes.samples import TEMPERATURES, SamplesProbe, sample_prompt
from backend.models.build import RecurrentLM
from backend.spec import ModelSpec, RunSpec, spec_info
from backend.store.samples import KIND, decode, latest_samples, samples_history, write_samples_snapshot
from backend.tasks.data import load_task_data
from backend.tasks.registry import VOCABS
from backend.training.hooks import Hook
from backend.training.trainer import Trainer


class Reference(Hook):
    """Calls generate_many() itself at the probe's steps, on the very same model."""

    def __init__(self, probe: SamplesProbe, every: int):
        self.probe, self.every, self.out = probe, every, {}

    def _take(self, trainer):
        p = self.probe
        self.out[trainer.step] = generate_many(trainer.model, p._prompt, p.length, p.temperatures, seed=p.seed)

    def on_train_start(self, trainer):
        self._take(trainer)

    def on_step_end(self, trainer, out):
        if out.step % self.every == 0:
            self._take(trainer)

    def on_train_end(self, trainer, status):
        self._take(trainer)


def _brackets(steps=12, **model):
    spec = RunSpec.for_task("brackets-lstm", steps=steps, eval_every=1000, log_every=5, batch_size=8, seq_len=32,
                            model={"hidden_size": 16, "embedding_dim": 8, **model})
    return spec, load_task_data(spec_info(spec))


def test_samples_at_every_cadence_step_equal_generate_with_the_same_seed(store):
    spec, data = _brackets()
    run_id = store.create_run("s", spec.task, spec.model_dump())
    probe = SamplesProbe(store, run_id, every=5, adaptive=False, length=40)
    ref = Reference(probe, 5)
    trainer = Trainer(spec, data, hooks=[probe, ref], device="cpu")
    trainer.run()
    probe.flush()
    trainer.close()

    rows = store.list_snapshots(run_id, KIND)
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 12]  # start, every 5, end
    vocab = VOCABS["brackets-lstm"]
    for row in rows:
        arrays = store.load_arrays(row, mmap=False)
        assert arrays["samples"].shape == (len(TEMPERATURES), 40)
        np.testing.assert_array_equal(arrays["samples"], np.array(ref.out[int(row["step"])]))
        np.testing.assert_array_equal(arrays["prompt"], probe._prompt)
        assert row["meta"]["temperatures"] == list(TEMPERATURES)
        assert row["meta"]["texts"] == [decode(r, vocab) for r in ref.out[int(row["step"])]]
        assert row["meta"]["seed"] == 0 and row["meta"]["task"] == "brackets-lstm"

    history = samples_history(store, run_id)  # the torch-free reader
    assert [h.step for h in history] == [0, 5, 10, 12]
    assert history[0].prompt == decode(probe._prompt, vocab)
    assert history[-1].temperatures == TEMPERATURES
    assert history[-1].text(0.5) == decode(ref.out[12][1], vocab)
    assert history[-1].text(0) != history[0].text(0)  # the model changed, the seed did not
    assert latest_samples(store, run_id).step == 12
    with pytest.raises(KeyError, match="recorded"):
        history[0].text(0.7)


def test_a_bidirectional_model_gets_no_samples(store):
    """The spec refuses a bidirectional language model; one of the user's own (a model passed in) is
    trained, and the probe turns itself off."""
    spec, data = _brackets(steps=5)
    run_id = store.create_run("b", spec.task, spec.model_dump())
    probe = SamplesProbe(store, run_id, every=5, adaptive=False, length=5)
    bidi = RecurrentLM(ModelSpec(family="lstm", hidden_size=16, embedding_dim=8, bidirectional=True), data.info)
    trainer = Trainer(spec, data, hooks=[probe], device="cpu", model=bidi)
    trainer.run()
    trainer.close()
    assert not probe.enabled and store.list_snapshots(run_id, KIND) == []


def test_default_hooks_attach_the_probe_to_unidirectional_language_models_only(store):
    from backend.training.worker import default_hooks

    def has_probe(spec):
        hooks = default_hooks(store, "r", spec)
        for hook in hooks:  # stop the probes' writer threads
            hook.close()
        return any(isinstance(h, SamplesProbe) for h in hooks)

    assert has_probe(RunSpec.for_task("code-lstm"))
    assert has_probe(RunSpec.for_task("recall-lstm", model={"family": "rnn"}))
    assert not has_probe(RunSpec.for_task("code-lstm", model={"family": "transformer"}))
    assert not has_probe(RunSpec.for_task("digits-cnn"))
    assert not has_probe(RunSpec.for_task("sentiment-lstm"))


def test_prompts_come_from_the_validation_text():
    from backend.tasks.annotations import BRACKET_SEEDS, generate_brackets
    from backend.tasks.recall import RECALL_GAP, RECALL_SEEDS, generate_recall
    from backend.tasks.text import encode_chars

    vocab = VOCABS["recall-lstm"]
    text = "abc?B\n" + generate_recall(500, RECALL_SEEDS["val"])  # starts mid-episode: skipped
    ids, _ = sample_prompt("recall-lstm", encode_chars(text, vocab), vocab)
    prompt = decode(ids, vocab)
    assert len(prompt) == RECALL_GAP + 2 and prompt[0] in "ABCD" and prompt.endswith("?")
    assert prompt == text[6:6 + RECALL_GAP + 2]

    vocab = VOCABS["brackets-lstm"]
    text = generate_brackets(2000, BRACKET_SEEDS["val"])
    ids, _ = sample_prompt("brackets-lstm", encode_chars(text, vocab), vocab)
    prompt = decode(ids, vocab)
    assert len(prompt) == 32 and prompt in text and prompt[0] != "\n"

    vocab = VOCABS["code-lstm"]
    text = "import os\n\n\ndef f(x):\n    return x + 1  # and more text here\n"
    ids, _ = sample_prompt("code-lstm", encode_chars(text), vocab)
    assert decode(ids, vocab) == "def f(x):\n    return x + 1  # an"
    with pytest.raises(ValueError, match="no prompt"):
        sample_prompt("brackets-lstm", encode_chars("ab\ncd", VOCABS["brackets-lstm"]), VOCABS["brackets-lstm"])


def test_the_record_checks_its_shape(store):
    from backend.store import StoreError

    run_id = store.create_run("x", "brackets-lstm", {})
    vocab = VOCABS["brackets-lstm"]
    with pytest.raises(StoreError, match="one row per temperature"):
        write_samples_snapshot(store, run_id, 0, [1, 2], np.ones((2, 3), dtype=np.int64), [0.0], vocab)
    write_samples_snapshot(store, run_id, 0, [2, 3], np.array([[4, 5, 1]]), [0.0], vocab)
    (rec,) = samples_history(store, run_id)
    assert rec.prompt == "()" and rec.texts == {0.0: "ab\n"} and rec.meta["length"] == 3


def test_a_diverged_model_writes_no_samples_and_raises_nothing(tmp_path):
    """A NaN weight (training diverged between log steps) must not crash the probe inside sampling."""
    from types import SimpleNamespace

    import torch

    from backend.models.build import build_model
    from backend.probes.samples import SamplesProbe
    from backend.spec import RunSpec
    from backend.store import RunStore

    store = RunStore(tmp_path)
    spec = RunSpec.for_task("brackets-lstm", model={"family": "rnn", "hidden_size": 8, "embedding_dim": 4})
    run_id = store.create_run("nan", spec.task, spec.model_dump())
    model = build_model(spec)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    probe = SamplesProbe(store, run_id)
    payload, meta = probe.take(SimpleNamespace(model=model))
    assert payload is None
    probe.write(5, payload, meta)
    assert store.list_snapshots(run_id, "samples") == []
