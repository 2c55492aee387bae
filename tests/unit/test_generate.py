"""Sampling and teacher forcing on a small recurrent language model (backend/models/generate.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.build import RecurrentLM, build_model
from backend.models.generate import generate, teacher_forced
from backend.spec import ModelSpec, RunSpec
from backend.tasks import TASKS


def _model(family="lstm", **model):
    torch.manual_seed(0)
    spec = RunSpec.for_task("brackets-lstm", model={"family": family, "hidden_size": 16, "embedding_dim": 8, **model})
    return build_model(spec)


def test_greedy_generation_follows_the_argmax_of_the_full_forward_pass():
    model = _model()
    prompt = [1, 2, 1]
    ids = generate(model, prompt, length=6, temperature=0)
    # the stateful loop must equal re-running the whole sequence each time
    seq = list(prompt)
    for _ in range(6):
        logits = model(torch.tensor([seq]))[0, -1]
        logits[0] = -float("inf")
        seq.append(int(logits.argmax()))
    assert ids == seq[len(prompt):]
    assert model.training  # left as it was


def test_sampling_is_seeded_and_temperature_changes_it():
    model = _model("gru")
    a = generate(model, [1], 200, temperature=1.0, seed=3)
    b = generate(model, [1], 200, temperature=1.0, seed=3)
    assert a == b and 0 not in a
    cold = generate(model, [1], 200, temperature=0.05, seed=3)
    hot = generate(model, [1], 200, temperature=5.0, seed=3)
    # a cold sampler repeats the likeliest tokens; a hot one spreads over the vocabulary
    def top_share(ids):
        return np.bincount(ids).max() / len(ids)
    assert top_share(cold) > top_share(hot) + 0.2


def test_teacher_forced_guesses_and_probabilities():
    model = _model("rnn")
    ids = [1, 2, 3, 2, 1, 3]
    guess, p_true = teacher_forced(model, ids)
    assert guess.shape == p_true.shape == (5,)
    probs = torch.softmax(model.eval()(torch.tensor([ids[:-1]]))[0], -1)
    np.testing.assert_allclose(p_true, probs[torch.arange(5), torch.tensor(ids[1:])].detach().numpy(), rtol=1e-5)
    np.testing.assert_array_equal(guess, probs.argmax(-1).numpy())


def test_refusals():
    # the spec refuses a bidirectional language model (it would see the token it must predict): build one directly
    bidi = RecurrentLM(ModelSpec(family="lstm", hidden_size=16, embedding_dim=8, bidirectional=True),
                       TASKS["brackets-lstm"])
    with pytest.raises(ValueError, match="one-directional model: a bidirectional one reads the future"):
        generate(bidi, [1], 3)
    with pytest.raises(ValueError, match="needs a recurrent language model"):
        generate(_model("transformer", heads=4), [1], 3)
    with pytest.raises(ValueError, match="temperature"):
        generate(_model(), [1], 3, temperature=-1)
    with pytest.raises(ValueError, match="two tokens"):
        teacher_forced(_model(), [1])


def test_generate_many_samples_a_row_per_temperature_in_one_batch():
    from backend.models.generate import generate_many

    model = _model("lstm")
    rows = generate_many(model, [1, 2], 150, temperatures=[0, 0.05, 5.0], seed=1)
    assert [len(r) for r in rows] == [150, 150, 150] and all(0 not in r for r in rows)
    assert rows[0] == generate(model, [1, 2], 150, temperature=0)  # greedy rows are exact
    assert rows == generate_many(model, [1, 2], 150, temperatures=[0, 0.05, 5.0], seed=1)  # seeded
    top = [np.bincount(r).max() / len(r) for r in rows]
    assert top[1] > top[2] + 0.2  # cold row repeats the likeliest tokens; the hot row spreads out
    with pytest.raises(ValueError, match="temperatures"):
        generate_many(model, [1], 3, temperatures=[])
    assert model.training
