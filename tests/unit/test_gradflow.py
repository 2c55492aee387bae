"""Gradient flow through time: the unrolled recurrence gives the gradients the fused module gives."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.models import build_model
from backend.probes.gradflow import decay_ratio, gradient_through_time
from backend.spec import RunSpec


@pytest.mark.parametrize("family, layers", [("lstm", 1), ("gru", 2), ("rnn", 1), ("lstm", 2)])
def test_input_gradients_match_autograd_through_the_fused_module(family, layers):
    torch.manual_seed(0)
    model = build_model(RunSpec.for_task("brackets-lstm", model={"family": family, "layers": layers,
                                                                 "hidden_size": 12}))
    tokens = torch.randint(1, 8, (5, 17))
    targets = torch.randint(1, 8, (5,))
    ours = gradient_through_time(model, tokens, targets, wrt="input")
    assert all(p.grad is None for p in model.parameters())  # the model is left as it was

    model.eval()
    x = model.embedding(tokens).detach().requires_grad_(True)
    out, _ = model.rnn(x)
    F.cross_entropy(model.head(out[:, -1]), targets).backward()
    want = x.grad.norm(dim=2).mean(dim=0).double().numpy()
    np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-9)


def test_hidden_state_gradients_vanish_with_distance_in_a_small_weight_rnn():
    torch.manual_seed(0)
    model = build_model(RunSpec.for_task("brackets-lstm", model={"family": "rnn", "hidden_size": 16}))
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.3)  # contracting recurrence: each step scales the gradient down
    norms = gradient_through_time(model, torch.randint(1, 8, (8, 30)), torch.randint(1, 8, (8,)))
    assert norms.shape == (30,) and norms[-1] > 0 and np.all(np.diff(norms[-20:]) > 0)
    assert decay_ratio(norms, 1, 20) > 1e3
    with pytest.raises(ValueError, match="needs at least 41 steps"):
        decay_ratio(norms, 1, 40)
