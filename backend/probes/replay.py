"""Replay a fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` step by step to expose what it hides.

Training keeps the fast fused module (cuDNN on a GPU). The fused kernels return
only the last layer's ``h`` per step and the final ``c``; a probe needs ``h``,
``c`` and every gate of every layer and direction at every token, so it replays
the sequence through an unrolled cell built from the module's own weights. The
time loop does one ``addmm`` and a few element-wise ops per step and writes every
activation straight into preallocated buffers. ``tests/unit/test_replay.py`` checks the result against
the fused module to 1e-5.

Example::

    lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
    states = replay(lstm, torch.randn(4, 50, 8))
    states[(1, "fwd")]["c"].shape   # (50, 4, 16): layer 1's cell state at every step, time first
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .states import GATE_NAMES, STATES  # noqa: F401  (re-exported)

Key = tuple[int, str]  # (layer, "fwd" | "bwd")


def family_of(rnn: nn.Module) -> str:
    """``lstm``, ``gru`` or ``rnn`` for a fused recurrent module; ValueError otherwise."""
    if isinstance(rnn, nn.LSTM):
        if getattr(rnn, "proj_size", 0):
            raise ValueError("LSTMs with proj_size are not supported by the replay")
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN):
        return "rnn"
    raise ValueError(f"{type(rnn).__name__} is not an nn.LSTM, nn.GRU or nn.RNN")


@torch.no_grad()
def replay(rnn: nn.RNNBase, x: torch.Tensor, reset_at: Mapping[int, torch.Tensor] | None = None,
           reset_at_bwd: Mapping[int, torch.Tensor] | None = None) -> dict[Key, dict[str, torch.Tensor]]:
    """Every state of every layer and direction of ``rnn`` over ``x``, zero initial state.

    ``x`` is ``(batch, time, features)`` (``batch_first`` or not, the module's flag is
    ignored). ``reset_at[t]`` is a bool mask of batch rows whose forward state is zeroed
    just before step ``t`` (``reset_at_bwd`` likewise, for the backward direction going
    down in time): it lets rows start mid-window, so parallel segments can be padded.
    Returns ``{(layer, direction): {state: (time, batch, hidden)}}`` in float32 (time first:
    that is the layout the loop writes, and slicing time first keeps later copies contiguous).
    """
    family = family_of(rnn)
    dirs = ("fwd", "bwd") if rnn.bidirectional else ("fwd",)
    out: dict[Key, dict[str, torch.Tensor]] = {}
    layer_in = x.float().transpose(0, 1)  # time first from here on
    for layer in range(rnn.num_layers):
        for d in dirs:
            w = _weights(rnn, layer, d)
            resets = (reset_at if d == "fwd" else reset_at_bwd) or {}
            out[(layer, d)] = _run_direction(family, rnn, w, layer_in, d == "bwd", resets)
        layer_in = torch.cat([out[(layer, d)]["h"] for d in dirs], dim=-1)
    return out


def _weights(rnn: nn.RNNBase, layer: int, direction: str) -> dict[str, torch.Tensor]:
    sfx = f"_l{layer}" + ("_reverse" if direction == "bwd" else "")
    w_ih = getattr(rnn, "weight_ih" + sfx).float()
    w_hh = getattr(rnn, "weight_hh" + sfx).float()
    zeros = torch.zeros(w_ih.shape[0], device=w_ih.device)
    b_ih = getattr(rnn, "bias_ih" + sfx).float() if rnn.bias else zeros
    b_hh = getattr(rnn, "bias_hh" + sfx).float() if rnn.bias else zeros
    return {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}


def _run_direction(family: str, rnn: nn.RNNBase, w: dict[str, torch.Tensor], x: torch.Tensor,
                   reverse: bool, resets: Mapping[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One layer in one direction. Gate activations are written into preallocated
    ``(time, batch, ...)`` buffers as the loop computes them: no second pass, no big temporaries."""
    t_len, b, _ = x.shape  # time first: each step's slice of xp is contiguous
    hid = rnn.hidden_size
    bias = w["b_ih"] if family == "gru" else w["b_ih"] + w["b_hh"]  # GRU keeps b_hn inside r * (...)
    xp = torch.addmm(bias, x.reshape(t_len * b, -1), w["w_ih"].t()).view(t_len, b, -1)
    w_hh_t = w["w_hh"].t().contiguous()
    hs = x.new_empty(t_len, b, hid)
    h = x.new_zeros(b, hid)
    if family == "lstm":
        cs = x.new_empty(t_len, b, hid)
        acts = x.new_empty(t_len, b, 4 * hid)  # i, f, g, o after their nonlinearities
        c = x.new_zeros(b, hid)
    elif family == "gru":
        acts = x.new_empty(t_len, b, 3 * hid)  # r, z, n
    act = torch.relu if family == "rnn" and getattr(rnn, "nonlinearity", "tanh") == "relu" else torch.tanh
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        if t in resets:
            keep = (~resets[t]).to(h.dtype)[:, None]
            h = h * keep
            if family == "lstm":
                c = c * keep
        if family == "lstm":
            pre = torch.addmm(xp[t], h, w_hh_t)
            a = acts[t]
            torch.sigmoid(pre, out=a)
            torch.tanh(pre[:, 2 * hid:3 * hid], out=a[:, 2 * hid:3 * hid])
            i, f, g, o = a.chunk(4, 1)
            c = torch.addcmul(f * c, i, g, out=cs[t])
            h = torch.mul(o, c.tanh(), out=hs[t])
        elif family == "gru":
            gh = torch.addmm(w["b_hh"], h, w_hh_t)
            r_x, z_x, n_x = xp[t].chunk(3, 1)
            r_h, z_h, n_h = gh.chunk(3, 1)
            r, z, n = acts[t].chunk(3, 1)
            torch.sigmoid(r_x + r_h, out=r)
            torch.sigmoid(z_x + z_h, out=z)
            torch.tanh(torch.addcmul(n_x, r, n_h), out=n)
            h = torch.addcmul(n, z, h - n, out=hs[t])
        else:
            h = hs[t].copy_(act(torch.addmm(xp[t], h, w_hh_t)))
    states = {"h": hs}
    if family == "lstm":
        states["c"] = cs
        states.update(zip("ifgo", acts.chunk(4, 2)))
    elif family == "gru":
        states.update(zip("rzn", acts.chunk(3, 2)))
    return states
