"""A transformer language-model run records attention snapshots: every layer and head over the start of the
probe text, causal maps whose rows sum to 1 (backend/probes/lm_attention.py). A tiny run: ~3-6 s.

    .venv/bin/python -m pytest tests/integration/test_transformer_attention_probe.py
"""
from __future__ import annotations

import numpy as np
import torch

from backend.probes.lm_attention import PROBE_TOKENS
from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.attention import KIND, AttentionSnapshot
from backend.tasks.probe import probe_corpus
from backend.tasks import get_task
from backend.training.worker import run_training

MODEL = {"family": "transformer", "layers": 2, "hidden_size": 16, "heads": 2}


def test_a_transformer_run_records_causal_attention_maps(tmp_path):
    torch.set_num_threads(1)
    store = RunStore(tmp_path / "data")
    spec = RunSpec.for_task("code-lstm", steps=20, batch_size=8, seq_len=96, log_every=5, eval_every=10,
                            probe_every=10, model=MODEL)
    run_id = store.create_run("tf", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed", store.get_run(run_id)["error"]
    rows = store.list_snapshots(run_id, KIND)
    assert [r["step"] for r in rows] == [0, 10, 20]
    snap = AttentionSnapshot(store, rows[-1])
    assert snap.layers == ["l0", "l1"] and snap.heads == ["h0", "h1"]
    (item,) = snap.items()
    text = probe_corpus(get_task("code-lstm"), n_tokens=PROBE_TOKENS).text
    assert "".join(item["queries"]) == text[:PROBE_TOKENS] and item["keys"] == item["queries"]
    w = snap.all_weights(0)
    assert w.shape == (2, 2, PROBE_TOKENS, PROBE_TOKENS)
    assert np.allclose(w.sum(-1), 1.0, atol=5e-3) and np.triu(w, 1).max() == 0  # causal distributions
    assert np.asarray(item["extra"]["entropy"]).shape == (2, 2)
    assert "probe text" in snap.meta["source"]


def test_a_short_context_cuts_the_probe_text(tmp_path):
    torch.set_num_threads(1)
    store = RunStore(tmp_path / "data")
    spec = RunSpec.for_task("brackets-lstm", steps=4, batch_size=4, seq_len=24, log_every=2, eval_every=4,
                            model={**MODEL, "layers": 1})
    run_id = store.create_run("tf-short", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed", store.get_run(run_id)["error"]
    snap = AttentionSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    assert snap.all_weights(0).shape == (1, 2, 24, 24)
