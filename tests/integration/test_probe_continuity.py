"""Probe states are continuous where the text is: the stored h and c at every token, chunk boundaries
included, equal one independent pass of ``nn.LSTM``/``nn.GRU`` over the whole text to float16 precision.

The reference steps single-layer torch modules (weights copied from the probed one) token by token,
layer by layer, the backward direction over the reversed text: nothing of ``backend.probes.replay``.
The models get slow cells (forget / update gate biased open), so a state that restarts at a chunk
boundary cannot hide: the former segmented probe (``continuous=False``) is shown to fail the same check.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from backend.probes.hidden import capture
from backend.probes.states import STATES

TOKENS, SEGMENT, WARMUP = 1000, 64, 16
CASES = [(cls, layers, bidir) for cls in (nn.LSTM, nn.GRU) for layers, bidir in ((1, False), (2, True))]


def _slow_model(cls, layers: int, bidir: bool):
    torch.manual_seed(0)
    emb = nn.Embedding(13, 6)
    rnn = cls(6, 8, num_layers=layers, bidirectional=bidir)
    hid = rnn.hidden_size
    with torch.no_grad():
        for name, b in rnn.named_parameters():
            if name.startswith("bias_ih"):  # LSTM chunk 1 = forget gate, GRU chunk 1 = update gate
                b[hid:2 * hid] += 5.0
    return emb, rnn


def _reference(emb, rnn) -> dict[tuple[int, str, str], np.ndarray]:
    """h (and c) at every token, from stepping one-layer torch modules over the whole text."""
    ids = torch.randint(0, 13, (TOKENS,), generator=torch.Generator().manual_seed(1))
    dirs = ("fwd", "bwd") if rnn.bidirectional else ("fwd",)
    out, layer_in = {}, emb(ids).detach()
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            for d in dirs:
                sfx = f"_l{layer}" + ("_reverse" if d == "bwd" else "")
                one = type(rnn)(layer_in.shape[1], rnn.hidden_size)
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(one, p + "_l0").copy_(getattr(rnn, p + sfx))
                seq = layer_in.flip(0) if d == "bwd" else layer_in
                state, hs, cs = None, [], []
                for t in range(TOKENS):
                    _, state = one(seq[t:t + 1], state)
                    h, c = state if isinstance(one, nn.LSTM) else (state, None)
                    hs.append(h.reshape(-1).clone())  # unbatched input: state (1, hidden)
                    if c is not None:
                        cs.append(c.reshape(-1).clone())
                for name, vals in (("h", hs), ("c", cs)):
                    if vals:
                        arr = torch.stack(vals)
                        out[(layer, d, name)] = (arr.flip(0) if d == "bwd" else arr).numpy()
            layer_in = torch.cat([torch.as_tensor(out[(layer, d, "h")]) for d in dirs], dim=1)
    return ids, out


def _errors(got: np.ndarray, ref: np.ndarray):
    """Max |stored - reference| at chunk boundaries (a chunk's first token and the token before it)
    and inside chunks, and the largest in float16 ULPs of the reference (rounding a float32 that differs
    from the reference by float32 noise lands within one ULP)."""
    err = np.abs(got.astype(np.float32) - ref)
    ulps = err / np.maximum(np.abs(ref) * 2.0 ** -10, 2.0 ** -24)  # at least one ULP at every magnitude
    starts = np.arange(SEGMENT, TOKENS, SEGMENT)
    at = np.zeros(TOKENS, bool)
    at[starts] = at[starts - 1] = True
    return err[at].max(), err[~at].max(), ulps.max()


@pytest.mark.parametrize("cls,layers,bidir", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_states_at_chunk_boundaries_match_one_continuous_pass_to_float16(cls, layers, bidir):
    emb, rnn = _slow_model(cls, layers, bidir)
    ids, ref = _reference(emb, rnn)
    got = capture(rnn, emb, ids, segment=SEGMENT)
    family = "lstm" if cls is nn.LSTM else "gru"
    dirs = ("fwd", "bwd") if bidir else ("fwd",)
    assert set(got) == {(layer, d, s) for layer in range(layers) for d in dirs for s in STATES[family]}
    assert all(a.dtype == np.float16 and a.shape == (TOKENS, 8) for a in got.values())
    for key, expected in ref.items():
        boundary, inside, ulps = _errors(got[key], expected)
        assert ulps <= 1.05, (key, ulps)  # float16 rounding of the reference, nothing more
        assert boundary <= max(inside, 1e-4) * 1.5, (key, boundary, inside)  # no step where chunks meet


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_gates_follow_from_the_continuous_states(cls):
    """The stored gates reproduce the reference's update at every token, chunk boundaries included."""
    emb, rnn = _slow_model(cls, 1, False)
    ids, ref = _reference(emb, rnn)
    got = {k[2]: v.astype(np.float32) for k, v in capture(rnn, emb, ids, segment=SEGMENT).items()}
    h, h_prev = ref[(0, "fwd", "h")], np.vstack([np.zeros((1, 8), np.float32), ref[(0, "fwd", "h")][:-1]])
    if cls is nn.LSTM:
        c = ref[(0, "fwd", "c")]
        c_prev = np.vstack([np.zeros((1, 8), np.float32), c[:-1]])
        np.testing.assert_allclose(got["f"] * c_prev + got["i"] * got["g"], c, atol=5e-3 * (1 + np.abs(c).max()))
        np.testing.assert_allclose(got["o"] * np.tanh(c), h, atol=2e-3)
    else:
        np.testing.assert_allclose((1 - got["z"]) * got["n"] + got["z"] * h_prev, h, atol=2e-3)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_the_former_segmented_probe_jumps_at_boundaries(cls):
    """The check above has teeth: segments restarted from zero after a warm-up miss the slow cells."""
    emb, rnn = _slow_model(cls, 1, False)
    ids, ref = _reference(emb, rnn)
    key = (0, "fwd", "c" if cls is nn.LSTM else "h")
    boundary, inside, _ = _errors(capture(rnn, emb, ids, segment=SEGMENT, warmup=WARMUP, continuous=False)[key],
                                  ref[key])
    continuous, _, _ = _errors(capture(rnn, emb, ids, segment=SEGMENT)[key], ref[key])
    assert boundary > 0.05 and boundary > 50 * continuous, (boundary, continuous)
