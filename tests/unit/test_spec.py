"""Spec validation: clear messages for bad input, exact parameter counts for good input."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.models import build_model
from backend.spec import MAX_MEMORY_BYTES, MAX_PARAMS, RunSpec, count_params, estimate, parse_spec
from backend.tasks import TASKS


@pytest.mark.parametrize("data, expected", [
    ({"task": "nope"}, "unknown task 'nope'"),
    ({"task": "code-lstm", "model": {"family": "cnn"}}, "does not fit task 'code-lstm'"),
    ({"task": "digits-cnn", "lr": 0}, "lr: Input should be greater than 0"),
    ({"task": "digits-cnn", "model": {"kernel_sizes": [4]}}, "kernel sizes must be odd"),
    ({"task": "digits-cnn", "model": {"channels": [4, 4], "kernel_sizes": [3, 3, 3]}}, "one per conv layer (2)"),
    ({"task": "digits-cnn", "model": {"family": "cnn", "bidirectional": True}}, "recurrent families"),
    ({"task": "code-lstm", "model": {"family": "gru", "bidirectional": True}},
     "model.bidirectional: a bidirectional language model would see the token it must predict"),
    ({"task": "code-lstm", "model": {"family": "transformer", "hidden_size": 30, "heads": 4}},
     "model.heads: hidden size 30 (d_model) does not divide among 4 heads"),
    ({"task": "digits-cnn", "model": {"channels": [4, 4, 4, 4, 4]}}, "too small to pool"),
    ({"task": "code-lstm", "model": {"family": "lstm", "hidden_size": 4096, "layers": 8}}, "parameters, more than"),
    ({"task": "code-lstm", "model": {"family": "lstm", "hidden_size": 512}, "batch_size": 4096, "seq_len": 2048},
     "GiB, more than the limit"),
    ({"task": "digits-cnn", "optimizer": "lion"}, "optimizer: Input should be"),
    ({"task": "digits-cnn", "bogus": 1}, "bogus: Extra inputs are not permitted"),
    ({"task": "natural-patches", "model": {"family": "sparse-ae", "channels": [32], "kernel_sizes": [11]}}, "larger than the task's 9x9 patches"),
    ({"task": "natural-patches", "model": {"family": "sparse-ae", "channels": [4], "kernel_sizes": [9], "top_k": 5}}, "top_k 5 keeps more responses than the 4"),
    ({"task": "natural-patches", "model": {"family": "sparse-ae", "channels": [8, 8]}}, "a sparse autoencoder has one layer of filters"),
    ({"task": "natural-patches", "model": {"family": "cnn"}}, "does not fit task 'natural-patches'"),
    ({"task": "digits-cnn", "lr": float("nan")}, "lr: Input should be a finite number"),
    ({"task": "digits-cnn", "model": {"dropout": float("inf")}}, "model.dropout: Input should be a finite number"),
    ({"task": "nope", "data_file": "x.csv"}, "unknown task 'nope'"),
    ({"task": "sentiment-lstm", "data_file": "/dev/zero"}, "data_file: /dev/zero: not a regular file"),
    ({"task": "digits-cnn", "model": "junk"}, "model: Input should be a valid dictionary"),
])
def test_bad_specs_get_a_readable_message(data, expected):
    spec, errors = parse_spec(data)
    assert spec is None
    assert any(expected in e for e in errors), errors


def test_task_defaults_are_valid_and_small():
    for name in TASKS:
        spec = RunSpec.for_task(name)
        cost = estimate(spec)
        assert 0 < cost.params < 1_000_000
        assert cost.memory_bytes < 256 * 2**20


FAMILIES = {name: list(info.families) for name, info in TASKS.items()}


@st.composite
def form_values(draw):
    """What the New-run form can send: in-range and out-of-range values alike."""
    task = draw(st.sampled_from(sorted(TASKS)))
    family = draw(st.sampled_from(FAMILIES[task] + ["cnn", "transformer"]))
    model = {
        "family": family,
        "layers": draw(st.integers(-1, 4)),
        "hidden_size": draw(st.integers(0, 96)),
        "channels": draw(st.lists(st.integers(0, 24), min_size=0, max_size=4)),
        "kernel_sizes": draw(st.lists(st.integers(0, 9), min_size=1, max_size=3)),
        "pooling": draw(st.sampled_from(["max", "avg", "none", "sum"])),
        "dropout": draw(st.one_of(st.floats(-0.5, 1.5), st.just(float("nan")))),
        "embedding_dim": draw(st.integers(0, 32)),
        "bidirectional": draw(st.booleans()),
        "top_k": draw(st.integers(0, 40)),
        "noise": draw(st.floats(-1, 2)),
    }
    return {"task": task, "model": model,
            "optimizer": draw(st.sampled_from(["sgd", "momentum", "adam", "adagrad", "rmsprop", "adadelta", "x"])),
            "lr": draw(st.one_of(st.floats(-1, 20), st.just(float("nan")), st.just(float("inf")), st.just("abc"))),
            "batch_size": draw(st.integers(-5, 5000)),
            "clip_norm": draw(st.one_of(st.none(), st.floats(-1, 10))),
            "steps": draw(st.integers(-1, 100))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form_values())
def test_fuzzed_form_values_validate_or_explain(data):
    spec, errors = parse_spec(data)
    if spec is None:
        assert errors and all(isinstance(e, str) and e for e in errors)
        return
    assert errors == []
    cost = estimate(spec)
    assert cost.params <= MAX_PARAMS and cost.memory_bytes <= MAX_MEMORY_BYTES
    # a spec that validates builds, and the announced size is the real size
    model = build_model(spec)
    assert cost.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("task, model", [
    ("digits-cnn", {"family": "mlp", "layers": 3, "hidden_size": 17}),
    ("digits-cnn", {"family": "cnn", "channels": [3, 5, 7], "kernel_sizes": [5, 3, 1], "pooling": "none"}),
    ("digits-cnn", {"family": "gru", "layers": 2, "hidden_size": 9, "bidirectional": True}),
    ("code-lstm", {"family": "lstm", "layers": 2, "hidden_size": 12, "embedding_dim": 5}),
    ("code-lstm", {"family": "transformer", "layers": 2, "hidden_size": 12, "heads": 3}),
    ("code-lstm", {"family": "rnn", "layers": 1, "hidden_size": 7, "activation": "relu"}),
    ("natural-patches", {"family": "sparse-ae", "channels": [12], "kernel_sizes": [5], "top_k": 4}),
    ("patches-cnn", {"family": "cnn", "channels": [6, 5], "kernel_sizes": [9, 3]}),
    ("sentiment-cnn", {"family": "textcnn", "channels": [5], "kernel_sizes": [2, 4], "embedding_dim": 7}),
    ("sentiment-lstm", {"family": "gru", "hidden_size": 9, "embedding_dim": 5, "bidirectional": True}),
    ("prose-word2vec", {"family": "skipgram", "embedding_dim": 12}),
])
def test_parameter_count_matches_torch(task, model):
    spec = RunSpec.for_task(task, model=model)
    params, _ = count_params(spec)
    assert params == sum(p.numel() for p in build_model(spec).parameters())


def test_model_shapes():
    lm = build_model(RunSpec.for_task("code-lstm", model={"hidden_size": 8, "embedding_dim": 4}))
    assert lm(torch.zeros(3, 11, dtype=torch.long)).shape == (3, 11, TASKS["code-lstm"].vocab_size)
    for fam in FAMILIES["digits-cnn"]:
        m = build_model(RunSpec.for_task("digits-cnn", model={"family": fam, "hidden_size": 8}))
        assert m(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_plain_rnn_defaults_to_tanh_and_accepts_relu():
    tanh = build_model(RunSpec.for_task("code-lstm", model={"family": "rnn", "hidden_size": 4}))
    relu = build_model(RunSpec.for_task("code-lstm", model={"family": "rnn", "hidden_size": 4, "activation": "relu"}))
    assert tanh.rnn.nonlinearity == "tanh" and relu.rnn.nonlinearity == "relu"


def test_text_models_read_only_the_real_tokens():
    """Padding never changes a text model's output: TextCNN masks windows in the padding, the
    recurrent classifier reads its output at the last real token."""
    torch.manual_seed(0)
    for task, model in (("sentiment-cnn", {}), ("sentiment-lstm", {"family": "lstm", "hidden_size": 8}),
                        ("sentiment-lstm", {"family": "gru", "hidden_size": 8, "bidirectional": True})):
        net = build_model(RunSpec.for_task(task, model=model)).eval()
        ids = torch.tensor([[5, 6, 7, 8, 9] + [0] * 27])
        longer = ids.clone()
        longer[0, 5] = 10  # a sixth word
        with torch.no_grad():
            alone = net(ids[:, :5]) if task == "sentiment-lstm" else None
            padded = net(ids)
            assert not torch.allclose(padded, net(longer)), task
            if alone is not None:
                assert torch.allclose(padded, alone, atol=1e-6), task


def test_skipgram_loss_prefers_observed_pairs():
    spec = RunSpec.for_task("prose-word2vec", model={"embedding_dim": 8})
    sg = build_model(spec)
    assert torch.count_nonzero(sg.context.weight) == 0  # word2vec's initialisation
    center, context = torch.tensor([3, 4]), torch.tensor([5, 6])
    negatives = torch.tensor([[7, 8], [9, 10]])
    start = float(sg.loss(center, context, negatives).detach())
    assert abs(start - 3 * float(torch.log(torch.tensor(2.0)))) < 1e-5  # all dot products 0: 3 x log 2
    opt = torch.optim.SGD(sg.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        sg.loss(center, context, negatives).backward()
        opt.step()
    assert float(sg.loss(center, context, negatives).detach()) < 0.1 * start


def test_sparse_autoencoder_keeps_top_k_and_unit_filters():
    spec = RunSpec.for_task("natural-patches", model={"channels": [16], "kernel_sizes": [5], "top_k": 3, "noise": 0.5})
    ae = build_model(spec)
    norms = ae.encoder.weight.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.ones(16), atol=1e-5)
    x = torch.randn(4, 1, 9, 9)
    ae.eval()  # no input noise: deterministic
    codes = ae.codes(x)
    assert codes.shape == (4, 16, 5, 5)
    assert ((codes > 0).flatten(1).sum(1) <= 3).all() and (codes >= 0).all()
    assert torch.equal(ae(x), ae(x)) and ae(x).shape == x.shape
    # the decoder is the encoder transposed: one kept response paints its filter at its position
    single = torch.zeros(1, 16, 5, 5)
    single[0, 7, 2, 3] = 2.0
    painted = torch.nn.functional.conv_transpose2d(single, ae.encoder.weight)
    assert torch.allclose(painted[0, 0, 2:7, 3:8], 2.0 * ae.encoder.weight[7, 0])
    with torch.no_grad():
        ae.encoder.weight.mul_(3.0)
    ae.after_step()
    assert torch.allclose(ae.encoder.weight.flatten(1).norm(dim=1), torch.ones(16), atol=1e-5)
