"""A small transformer learns code-lstm's text; a transformer run goes through the store's hooks and probes.

The learning test trains one model (module fixture, one torch thread: ~15-25 s on this 2-core machine,
longer under load) and compares its validation loss with the unigram entropy of the training text:
the loss a model that ignores context entirely can reach. Both are in nats (``F.cross_entropy``'s
natural log). Measured for this spec: unigram 3.15 nats, validation 2.0-2.1 after 400 steps (1.87 after
600), so the margin asserted, 0.8 nats, leaves room without letting a context-blind model pass.

    .venv/bin/python -m pytest tests/integration/test_transformer_lm.py
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.probes.transformer_attention import attention_record, probe_ids
from backend.spec import RunSpec
from backend.store.hidden import KIND as HIDDEN_KIND
from backend.store.projections import SOURCE_KIND
from backend.tasks import get_task
from backend.tasks.data import load_task_data
from backend.tasks.registry import VOCABS
from backend.training.trainer import Trainer
from backend.training.worker import run_training

TASK = "code-lstm"
MODEL = {"family": "transformer", "layers": 2, "hidden_size": 64, "heads": 4}
STEPS = 400
MARGIN = 0.8  # nats below the unigram entropy (measured: 1.0-1.3)


def unigram_entropy(ids: np.ndarray) -> float:
    """Entropy in nats of the token frequencies of ``ids``: the best loss without context."""
    p = np.bincount(np.asarray(ids)) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    spec = RunSpec.for_task(TASK, steps=STEPS, eval_every=10 * STEPS, model=MODEL)
    data = load_task_data(get_task(TASK), seed=spec.seed)
    trainer = Trainer(spec, data, device="cpu")
    before = trainer.evaluate()["val/loss"]
    trainer.run()
    return trainer, before, trainer.evaluate(), unigram_entropy(data.train_ids.cpu().numpy())


def test_validation_loss_falls_below_the_unigram_entropy(trained):
    trainer, before, after, unigram = trained
    vocab = get_task(TASK).vocab_size
    assert 2.5 < unigram < math.log(vocab)  # code is far from uniform over 98 characters
    assert before > unigram  # untrained: about log(vocab)
    assert after["val/loss"] < unigram - MARGIN, (after, unigram)
    assert after["val/acc"] > 0.35


def test_trained_attention_maps_are_causal_distributions(trained):
    trainer, *_ = trained
    model = trainer.model
    ids = probe_ids(get_task(TASK), model.context)
    rec = attention_record(model, ids, VOCABS[TASK])
    w = rec["weights"].astype(np.float32)
    assert w.shape == (2, 4, 64, 64)
    assert np.allclose(w.sum(-1), 1.0, atol=2e-3) and np.triu(w, 1).max() == 0
    ent = np.asarray(rec["extra"]["entropy"])
    # trained heads focus: their rows are far from spread evenly over the past (mean log(i + 1) = 3.2 nats)
    assert ent.min() < 2.0
    with torch.no_grad():  # the fast path and the explicit one agree on the trained weights too
        x = torch.as_tensor(ids)[None]
        model.eval()
        assert (model(x) - model(x, explicit=True)).abs().max() < 1e-5


def test_a_transformer_run_records_metrics_and_projections_and_skips_hidden_states(store):
    """The store's hooks and the probes of a language-model run: nothing crashes, hidden-state
    snapshots are skipped (they replay recurrent cells), the character embeddings are recorded."""
    torch.set_num_threads(1)
    spec = RunSpec.for_task(TASK, steps=20, batch_size=8, seq_len=32, log_every=5, eval_every=10,
                            model={**MODEL, "hidden_size": 16})
    run_id = store.create_run("tf", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed"
    assert store.get_run(run_id)["status"] == "completed"
    assert "val/loss" in set(store.scalar_names(run_id))
    assert store.list_snapshots(run_id, HIDDEN_KIND) == []
    assert store.list_snapshots(run_id, SOURCE_KIND)
