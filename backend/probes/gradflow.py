"""Gradient flow through time: how much a loss at the last step reaches each earlier hidden state.

For a recurrent model (``embedding`` -> fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` ``rnn`` -> ``head``)
the fused module hides its intermediate states from autograd, so this unrolls the recurrence
step by step from the module's own weights (the same equations as ``replay.py``, with gradients),
puts the loss at the last step only (the next token of a language model, the label of a
classifier) and returns the mean over the batch of ``||dL / dh_t||`` for every step ``t`` of the
top layer's forward direction. Plotted against the distance ``T - 1 - t``, it is the lecture's
picture of backpropagation through time: a plain tanh RNN's gradient vanishes within a few steps,
an LSTM's cell state carries it much further.

Example::

    norms = gradient_through_time(model, ids)       # (T,) float64, norms[-1] is distance 0
    ratio = decay_ratio(norms, 1, 20)              # ||dL/dh|| at distance 1 over distance 20
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .replay import family_of


def _cell(family: str, rnn: nn.RNNBase, layer: int):
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    b_ih = getattr(rnn, f"bias_ih_l{layer}", None)
    b_hh = getattr(rnn, f"bias_hh_l{layer}", None)
    b_ih = b_ih if b_ih is not None else torch.zeros(w_ih.shape[0], device=w_ih.device)
    b_hh = b_hh if b_hh is not None else torch.zeros(w_hh.shape[0], device=w_hh.device)
    act = torch.relu if getattr(rnn, "nonlinearity", "tanh") == "relu" else torch.tanh

    def step(x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
        gi, gh = F.linear(x_t, w_ih, b_ih), F.linear(h, w_hh, b_hh)
        if family == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if family == "gru":
            ir, iz, in_ = gi.chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(in_ + r * hn)
            return (1 - z) * n + z * h, None
        return act(gi + gh), None
    return step


def gradient_through_time(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                          wrt: str = "h") -> np.ndarray:
    """Mean ``||dL/dh_t||`` of the top layer at every step for a loss at the last step.

    ``tokens`` ``(batch, time)``: token ids. ``targets``: the class of each sequence (classifiers)
    or, for a language model, the token after the last one; None takes a language model's own
    prediction target as ``tokens[:, -1]`` shifted (the last input predicts nothing known, so pass
    ``tokens[:, :-1]`` and ``tokens[:, -1]`` for real text). The model is left unchanged.
    """
    rnn, embedding, head = model.rnn, model.embedding, model.head
    family = family_of(rnn)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = embedding(tokens).detach().requires_grad_(wrt == "input")
            hs: list[torch.Tensor] = []
            layer_in = [x[:, t] for t in range(x.shape[1])]
            for layer in range(rnn.num_layers):
                step = _cell(family, rnn, layer)
                h = x.new_zeros(len(tokens), rnn.hidden_size)
                c = x.new_zeros(len(tokens), rnn.hidden_size) if family == "lstm" else None
                outs = []
                for x_t in layer_in:
                    h, c = step(x_t, h, c)
                    outs.append(h)
                layer_in = outs
            hs = layer_in
            logits = head(hs[-1])
            if targets is None:
                targets = tokens[:, -1]
            loss = F.cross_entropy(logits.float(), targets)
            if wrt == "input":
                (grad,) = torch.autograd.grad(loss, x)
                norms = grad.norm(dim=2).mean(dim=0)
            else:
                grads = torch.autograd.grad(loss, hs)
                norms = torch.stack([g.norm(dim=1).mean() for g in grads])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return norms.detach().cpu().double().numpy()


def decay_ratio(norms: np.ndarray, near: int = 1, far: int = 20) -> float:
    """``||dL/dh||`` at distance ``near`` from the loss over that at distance ``far`` (steps back)."""
    t = len(norms) - 1
    if far > t:
        raise ValueError(f"distance {far} needs at least {far + 1} steps; the sequence has {len(norms)}")
    return float(norms[t - near] / max(norms[t - far], 1e-30))
