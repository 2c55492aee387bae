"""Replay a fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` step by step to expose what it hides.

Training keeps the fast fused module (cuDNN on a GPU). The fused kernels return
only the last layer's ``h`` per step and the final ``c``; a probe needs ``h``,
``c`` and every gate of every layer and direction at every token, so it replays
the sequence through an unrolled cell built from the module's own weights. The
time loop does one ``addmm`` and a few element-wise ops per step and writes every
activation straight into preallocated buffers. ``tests/unit/test_replay.py`` checks the result against
the fused module to 1e-5.

``replay_stream`` is what the probe uses on its one long text: the states of one continuous
pass, from the fused kernels' own recurrence (``h`` at every step, ``c`` where a chunk starts)
with the gates computed for all steps at once, so the time loop of 20,000 tokens runs in C++
(tests/integration/test_probe_continuity.py checks it against stepping ``nn.LSTM``/``nn.GRU``).

Example::

    lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
    states = replay(lstm, torch.randn(4, 50, 8))
    states[(1, "fwd")]["c"].shape   # (50, 4, 16): layer 1's cell state at every step, time first
    replay_stream(lstm, torch.randn(5000, 8))[(1, "fwd")]["c"].shape   # (5000, 16): one continuous pass
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
           reset_at_bwd: Mapping[int, torch.Tensor] | None = None,
           hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[Key, dict[str, torch.Tensor]]:
    """Every state of every layer and direction of ``rnn`` over ``x``, from a zero initial state or ``hx``.

    ``x`` is ``(batch, time, features)`` (``batch_first`` or not, the module's flag is
    ignored). ``reset_at[t]`` is a bool mask of batch rows whose forward state is zeroed
    just before step ``t`` (``reset_at_bwd`` likewise, for the backward direction going
    down in time): it lets rows start mid-window, so parallel segments can be padded.
    ``hx`` is the initial state as the module takes it (``h0``, or ``(h0, c0)`` for an LSTM, each
    ``(layers * directions, batch, hidden)``): a decoder starts from what its encoder hands it.
    Returns ``{(layer, direction): {state: (time, batch, hidden)}}`` in float32 (time first:
    that is the layout the loop writes, and slicing time first keeps later copies contiguous).
    """
    family = family_of(rnn)
    dirs = ("fwd", "bwd") if rnn.bidirectional else ("fwd",)
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
    out: dict[Key, dict[str, torch.Tensor]] = {}
    layer_in = x.float().transpose(0, 1)  # time first from here on
    for layer in range(rnn.num_layers):
        for k, d in enumerate(dirs):
            w = _weights(rnn, layer, d)
            resets = (reset_at if d == "fwd" else reset_at_bwd) or {}
            i = layer * len(dirs) + k  # PyTorch's order of the states: layer by layer, forward then backward
            start = (None if h0 is None else h0[i].float(), None if c0 is None else c0[i].float())
            out[(layer, d)] = _run_direction(family, rnn, w, layer_in, d == "bwd", resets, start)
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
                   reverse: bool, resets: Mapping[int, torch.Tensor],
                   start: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)) -> dict[str, torch.Tensor]:
    """One layer in one direction. Gate activations are written into preallocated
    ``(time, batch, ...)`` buffers as the loop computes them: no second pass, no big temporaries."""
    t_len, b, _ = x.shape  # time first: each step's slice of xp is contiguous
    hid = rnn.hidden_size
    bias = w["b_ih"] if family == "gru" else w["b_ih"] + w["b_hh"]  # GRU keeps b_hn inside r * (...)
    xp = torch.addmm(bias, x.reshape(t_len * b, -1), w["w_ih"].t()).view(t_len, b, -1)
    w_hh_t = w["w_hh"].t().contiguous()
    hs = x.new_empty(t_len, b, hid)
    h = x.new_zeros(b, hid) if start[0] is None else start[0].clone()
    if family == "lstm":
        cs = x.new_empty(t_len, b, hid)
        acts = x.new_empty(t_len, b, 4 * hid)  # i, f, g, o after their nonlinearities
        c = x.new_zeros(b, hid) if start[1] is None else start[1].clone()
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


_FUSED = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}


@torch.no_grad()
def replay_stream(rnn: nn.RNNBase, x: torch.Tensor, chunk: int = 256) -> dict[Key, dict[str, torch.Tensor]]:
    """Every state of every layer and direction of ``rnn`` over one continuous sequence ``x``
    (``(time, features)``), from a zero state at its first step (its last, going backward).

    Exact continuity needs one sequential pass over the whole text; the fused kernel does it (cuDNN
    on a GPU, TF32 off) in chunks of ``chunk`` steps, handing each chunk's final state to the next.
    The gates then follow from ``h`` of the step before for all steps at once, and the LSTM's ``c``
    from a scan over the chunks in parallel, each starting from the ``c`` the fused pass carried in.
    Returns ``{(layer, direction): {state: (time, hidden)}}`` in float32.
    """
    family = family_of(rnn)
    dirs = ("fwd", "bwd") if rnn.bidirectional else ("fwd",)
    out: dict[Key, dict[str, torch.Tensor]] = {}
    layer_in = x.float()
    for layer in range(rnn.num_layers):
        for d in dirs:
            w = _weights(rnn, layer, d)
            seq = layer_in.flip(0) if d == "bwd" else layer_in  # backward: run forward over the reversed text
            states = _stream_direction(family, rnn, w, seq, chunk)
            out[(layer, d)] = {k: v.flip(0) for k, v in states.items()} if d == "bwd" else states
        layer_in = torch.cat([out[(layer, d)]["h"] for d in dirs], dim=-1)
    return out


def _stream_direction(family: str, rnn: nn.RNNBase, w: dict[str, torch.Tensor], x: torch.Tensor,
                      chunk: int) -> dict[str, torch.Tensor]:
    hs, c_in = _fused_pass(family, rnn, w, x, chunk)
    if family == "rnn":
        return {"h": hs}
    hid = rnn.hidden_size
    h_prev = torch.cat([hs.new_zeros(1, hid), hs[:-1]])
    if family == "lstm":
        acts = torch.addmm(w["b_ih"] + w["b_hh"], x, w["w_ih"].t()).addmm_(h_prev, w["w_hh"].t())
        acts[:, 2 * hid:3 * hid].tanh_()
        acts[:, :2 * hid].sigmoid_()
        acts[:, 3 * hid:].sigmoid_()
        i, f, g, o = acts.chunk(4, 1)
        return {"h": hs, "c": _scan_cell(f, i * g, c_in, chunk), "i": i, "f": f, "g": g, "o": o}
    gx = torch.addmm(w["b_ih"], x, w["w_ih"].t())
    gh = torch.addmm(w["b_hh"], h_prev, w["w_hh"].t())
    r = torch.sigmoid(gx[:, :hid] + gh[:, :hid])
    z = torch.sigmoid(gx[:, hid:2 * hid] + gh[:, hid:2 * hid])
    n = torch.tanh(torch.addcmul(gx[:, 2 * hid:], r, gh[:, 2 * hid:]))
    return {"h": hs, "r": r, "z": z, "n": n}


def _fused_pass(family: str, rnn: nn.RNNBase, w: dict[str, torch.Tensor], x: torch.Tensor,
                chunk: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``h`` at every step of one layer and direction, by the fused kernel in chunks carrying the state;
    for an LSTM also the ``c`` each chunk starts from, ``(n_chunks, hidden)``."""
    if family == "rnn":
        family = "rnn_relu" if getattr(rnn, "nonlinearity", "tanh") == "relu" else "rnn_tanh"
    fused = _FUSED[family]
    params = [w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"]]
    h = x.new_zeros(1, 1, rnn.hidden_size)
    c = x.new_zeros(1, 1, rnn.hidden_size)
    hs, c_in = [], []
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):  # TF32 would cost ~3 digits
        for start in range(0, x.shape[0], chunk):
            part = x[start:start + chunk, None]  # (time, batch 1, features)
            if family == "lstm":
                c_in.append(c[0, 0])
                y, h, c = fused(part, (h, c), params, True, 1, 0.0, False, False, False)
            else:
                y, h = fused(part, h, params, True, 1, 0.0, False, False, False)
            hs.append(y[:, 0])
    return torch.cat(hs), (torch.stack(c_in) if c_in else None)


def _scan_cell(f: torch.Tensor, u: torch.Tensor, c_in: torch.Tensor, chunk: int) -> torch.Tensor:
    """``c[t] = f[t] * c[t-1] + u[t]`` for all ``t`` of ``(time, hidden)`` arrays: the chunks side by side
    as a batch, each from its carried ``c_in`` row, so the loop is ``chunk`` steps long, not ``time``."""
    t_len, hid = f.shape
    n_chunks = c_in.shape[0]
    pad = n_chunks * chunk - t_len
    f = torch.cat([f, f.new_ones(pad, hid)]).view(n_chunks, chunk, hid).transpose(0, 1)
    u = torch.cat([u, u.new_zeros(pad, hid)]).view(n_chunks, chunk, hid).transpose(0, 1)
    cs = f.new_empty(chunk, n_chunks, hid)
    c = c_in
    for t in range(chunk):
        c = torch.addcmul(u[t], f[t], c, out=cs[t])
    return cs.transpose(0, 1).reshape(n_chunks * chunk, hid)[:t_len]
