"""The transformer language model: spec fields and sizes, causal attention, explicit maps equal to the fused path."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.models import build_model
from backend.models.transformer import TransformerLM, causal_attention_weights
from backend.probes.transformer_attention import attention_record, mean_entropy, probe_ids
from backend.spec import RunSpec, count_params, estimate, parse_spec
from backend.tasks import TASKS, get_task
from backend.tasks.registry import VOCABS

torch.set_num_threads(1)
LM_TASKS = [name for name, info in TASKS.items() if info.kind == "lm"]


def _model(task="brackets-lstm", seq_len=32, **model) -> TransformerLM:
    torch.manual_seed(0)
    spec = RunSpec.for_task(task, seq_len=seq_len,
                            model={"family": "transformer", "layers": 2, "hidden_size": 16, "heads": 4, **model})
    return build_model(spec).eval()


def test_every_language_model_task_offers_the_transformer():
    assert LM_TASKS and all("transformer" in TASKS[t].families for t in LM_TASKS)
    assert all("transformer" not in i.families for i in TASKS.values() if i.kind != "lm")


@pytest.mark.parametrize("task, model, seq_len", [
    ("brackets-lstm", {"layers": 1, "hidden_size": 8, "heads": 2}, 16),
    ("code-lstm", {"layers": 3, "hidden_size": 24, "heads": 6, "dropout": 0.1}, 50),
    ("recall-lstm", {"layers": 2, "hidden_size": 32, "heads": 1}, 48),
    ("code-lstm", {}, 64),
])
def test_estimate_counts_the_built_models_parameters(task, model, seq_len):
    spec = RunSpec.for_task(task, seq_len=seq_len, model={"family": "transformer", **model})
    real = sum(p.numel() for p in build_model(spec).parameters())
    assert count_params(spec)[0] == estimate(spec).params == real
    assert estimate(spec).memory_bytes > 0


def test_heads_must_divide_the_width_and_the_message_names_the_field():
    spec, errors = parse_spec({"task": "code-lstm", "model": {"family": "transformer", "hidden_size": 30, "heads": 4}})
    assert spec is None and errors[0].startswith("model.heads: hidden size 30")
    assert "divide" in errors[0]
    # other families ignore heads, as they ignore the fields they do not use
    assert parse_spec({"task": "code-lstm", "model": {"family": "lstm", "hidden_size": 30, "heads": 4}})[0]


def test_explicit_attention_equals_the_fused_path():
    model = _model()
    ids = torch.randint(1, 8, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast, slow = model(ids), model(ids, explicit=True)
    assert fast.shape == (3, 32, TASKS["brackets-lstm"].vocab_size)
    assert (fast - slow).abs().max() < 1e-5


def test_attention_is_causal_and_rows_sum_to_one():
    model = _model()
    ids = torch.randint(1, 8, (1, 20), generator=torch.Generator().manual_seed(2))
    maps = model.attention_maps(ids)
    assert maps.shape == (2, 4, 20, 20)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, 20), atol=1e-6)
    assert maps.triu(1).abs().max() == 0
    # a later token never changes what an earlier position predicts
    later = ids.clone()
    later[0, 15] = (later[0, 15] % 7) + 1
    with torch.no_grad():
        assert torch.allclose(model(ids)[0, :15], model(later)[0, :15], atol=1e-6)
        assert not torch.allclose(model(ids)[0, 15:], model(later)[0, 15:])


def test_causal_weights_match_sdpa_on_random_heads():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 9, 5, generator=g) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (causal_attention_weights(q, k) @ v - want).abs().max() < 1e-5


def test_a_text_longer_than_the_context_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="at most 32 tokens"):
        _model()(torch.ones(1, 33, dtype=torch.long))


def test_training_mode_keeps_dropout_and_attention_maps_leave_it_on():
    model = _model(dropout=0.5).train()
    ids = torch.randint(1, 8, (1, 10))
    model.attention_maps(ids)
    assert model.training  # the maps are taken in eval mode and the flag restored


def test_attention_record_is_ready_for_a_snapshot_writer():
    model = _model(seq_len=48)
    ids = probe_ids(get_task("brackets-lstm"), context=model.context)
    assert len(ids) == 48  # the probe text is cut to the context
    rec = attention_record(model, ids, VOCABS["brackets-lstm"], name="brackets probe")
    w = rec["weights"]
    assert rec["name"] == "brackets probe" and w.dtype == np.float16 and w.shape == (2, 4, 48, 48)
    assert rec["queries"] == rec["keys"] == [VOCABS["brackets-lstm"][i] for i in ids]
    assert np.allclose(w.astype(np.float32).sum(-1), 1.0, atol=2e-3)
    assert np.triu(w.astype(np.float32), 1).max() == 0
    ent = np.asarray(rec["extra"]["entropy"])
    mean_max = np.mean([math.log(i + 1) for i in range(48)])  # every row spread evenly over its past
    assert ent.shape == (2, 4) and (ent >= 0).all() and (ent <= mean_max + 1e-4).all()
    with torch.no_grad():  # the record is the model's own explicit attention
        direct = model.attention_maps(torch.as_tensor(ids)[None])
    assert np.allclose(w.astype(np.float32), direct.numpy(), atol=1e-3)


def test_attention_record_cuts_long_texts_and_refuses_models_without_attention():
    model = _model(seq_len=16)
    rec = attention_record(model, np.arange(1, 8).repeat(5), VOCABS["brackets-lstm"])
    assert rec["weights"].shape[-1] == 16 and len(rec["queries"]) == 16
    lstm = build_model(RunSpec.for_task("brackets-lstm", model={"hidden_size": 4}))
    with pytest.raises(ValueError, match="transformer models only"):
        attention_record(lstm, [1, 2, 3], VOCABS["brackets-lstm"])


def test_mean_entropy_of_one_hot_rows_is_zero():
    eye = torch.eye(5)[None, None]
    assert float(mean_entropy(eye)) == 0.0
