"""The unrolled replay equals the fused nn.LSTM / nn.GRU / nn.RNN it reads its weights from."""
import numpy as np
import pytest
import torch
from torch import nn

from backend.probes.hidden import capture, segment_windows
from backend.probes.replay import STATES
from backend.probes.replay import replay as _replay

TOL = 1e-5
CASES = [(cls, layers, bidir) for cls in (nn.LSTM, nn.GRU, nn.RNN) for layers in (1, 2) for bidir in (False, True)]


def replay(*args):
    """Batch-first view of the replay (it returns time-first arrays)."""
    return {k: {n: v.transpose(0, 1) for n, v in st.items()} for k, st in _replay(*args).items()}


def _module(cls, layers, bidir, seed=0):
    torch.manual_seed(seed)
    return cls(5, 7, num_layers=layers, bidirectional=bidir, batch_first=True)


@pytest.mark.parametrize("cls,layers,bidir", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_replay_equals_fused_outputs_and_final_states(cls, layers, bidir):
    rnn = _module(cls, layers, bidir)
    x = torch.randn(3, 40, 5)
    with torch.no_grad():
        out, final = rnn(x)
    states = replay(rnn, x)
    dirs = ("fwd", "bwd") if bidir else ("fwd",)
    last = torch.cat([states[(layers - 1, d)]["h"] for d in dirs], -1)
    torch.testing.assert_close(last, out, atol=TOL, rtol=0)
    h_n, c_n = final if cls is nn.LSTM else (final, None)
    for layer in range(layers):
        for k, d in enumerate(dirs):
            t_end = -1 if d == "fwd" else 0  # the backward direction ends at the first token
            torch.testing.assert_close(states[(layer, d)]["h"][:, t_end], h_n[layer * len(dirs) + k], atol=TOL, rtol=0)
            if c_n is not None:
                torch.testing.assert_close(states[(layer, d)]["c"][:, t_end], c_n[layer * len(dirs) + k],
                                           atol=TOL, rtol=0)
    family = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}[cls]
    assert set(states[(0, "fwd")]) == set(STATES[family])


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
def test_every_step_of_every_layer_matches_stepping_the_fused_module(cls, layers):
    """h and c of all layers at every step: step the fused module one token at a time."""
    rnn = _module(cls, layers, False, seed=1)
    x = torch.randn(2, 25, 5)
    states = replay(rnn, x)
    state = None
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = rnn(x[:, t:t + 1], state)
            h_n, c_n = state if cls is nn.LSTM else (state, None)
            for layer in range(layers):
                torch.testing.assert_close(states[(layer, "fwd")]["h"][:, t], h_n[layer], atol=TOL, rtol=0)
                if c_n is not None:
                    torch.testing.assert_close(states[(layer, "fwd")]["c"][:, t], c_n[layer], atol=TOL, rtol=0)


def test_lstm_gates_reproduce_the_cell_update():
    rnn = _module(nn.LSTM, 1, False, seed=2)
    s = replay(rnn, torch.randn(2, 30, 5))[(0, "fwd")]
    c_prev = torch.cat([torch.zeros_like(s["c"][:, :1]), s["c"][:, :-1]], 1)
    torch.testing.assert_close(s["c"], s["f"] * c_prev + s["i"] * s["g"], atol=TOL, rtol=0)
    torch.testing.assert_close(s["h"], s["o"] * s["c"].tanh(), atol=TOL, rtol=0)
    assert float(s["i"].min()) >= 0 and float(s["i"].max()) <= 1


def test_gru_gates_reproduce_the_update():
    rnn = _module(nn.GRU, 1, True, seed=3)
    s = replay(rnn, torch.randn(2, 30, 5))[(0, "bwd")]
    h_prev = torch.cat([s["h"][:, 1:], torch.zeros_like(s["h"][:, :1])], 1)  # backward: previous = later token
    torch.testing.assert_close(s["h"], (1 - s["z"]) * s["n"] + s["z"] * h_prev, atol=TOL, rtol=0)


@pytest.mark.parametrize("bidir", [False, True])
def test_reset_masks_start_rows_mid_window(bidir):
    """A row reset before step k equals the replay of that row's tail alone."""
    rnn = _module(nn.LSTM, 2, bidir, seed=4)
    x = torch.randn(2, 20, 5)
    reset = {6: torch.tensor([False, True])}
    reset_bwd = {15: torch.tensor([True, False])}
    s = replay(rnn, x, reset, reset_bwd if bidir else None)
    tail = replay(rnn, x[1:, 6:])
    torch.testing.assert_close(s[(1, "fwd")]["c"][1, 6:], tail[(1, "fwd")]["c"][0], atol=TOL, rtol=0)
    if bidir:
        head = replay(rnn, x[:1, :16])
        torch.testing.assert_close(s[(1, "bwd")]["h"][0, :16], head[(1, "bwd")]["h"][0], atol=TOL, rtol=0)


@pytest.mark.parametrize("bidir", [False, True])
def test_segmented_capture_equals_one_long_replay_when_warmup_covers_the_text(bidir):
    """With a warm-up as long as the text, segments see exactly the states of one pass."""
    torch.manual_seed(5)
    emb = nn.Embedding(11, 4)
    rnn = nn.LSTM(4, 6, num_layers=2, bidirectional=bidir, batch_first=True)
    ids = torch.randint(0, 11, (90,))
    whole = replay(rnn, emb(ids)[None])
    got = capture(rnn, emb, ids, segment=16, warmup=96)
    for (layer, d), states in whole.items():
        for name, arr in states.items():
            np.testing.assert_allclose(got[(layer, d, name)].astype(np.float32), arr[0].numpy(), atol=2e-3)


def test_segment_windows_cover_every_token_once():
    pos, reset_fwd, _ = segment_windows(1000, 256, 64, False)
    kept = pos[:, 64:64 + 256].reshape(-1)
    assert kept[:1000].tolist() == list(range(1000)) and (kept[1000:] == -1).all()
    assert list(reset_fwd) == [64] and reset_fwd[64].tolist() == [True, False, False, False]


@pytest.mark.parametrize("cls,layers,bidir", [(nn.LSTM, 2, True), (nn.GRU, 2, False), (nn.RNN, 1, True)],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_replay_from_an_initial_state_equals_the_fused_module_given_it(cls, layers, bidir):
    """A decoder starts from its encoder's state: ``hx`` as the fused module takes it."""
    rnn = _module(cls, layers, bidir, seed=2)
    x = torch.randn(3, 20, 5)
    shape = (layers * (2 if bidir else 1), 3, 7)
    hx = (torch.randn(shape), torch.randn(shape)) if cls is nn.LSTM else torch.randn(shape)
    with torch.no_grad():
        out, _ = rnn(x, hx)
    states = replay(rnn, x, None, None, hx)
    dirs = ("fwd", "bwd") if bidir else ("fwd",)
    torch.testing.assert_close(torch.cat([states[(layers - 1, d)]["h"] for d in dirs], -1), out, atol=TOL, rtol=0)
