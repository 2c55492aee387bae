"""``Run.watch`` on the model shapes of issue 16 written the way a user writes them: an encoder-decoder of two
``nn.GRU``, a bidirectional ``nn.LSTM`` tagger (and one with ``proj_size``, which the replay cannot read) and
an ``nn.TransformerEncoder`` language model. Each trains a few steps in the user's own loop; nothing may raise
into it, what can be recorded is, and what cannot is said once as a warning.

Codes: cf0xx. ``pytest tests/integration/test_client_families.py -k cf002`` runs one. ~5 s on one thread.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from backend.store import RunStore
from dashboard.data import DashboardData
from dashboard.views.hidden_states.data import no_states_message

VOCAB = list("abcdefghijkl")
V = len(VOCAB)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Seq2Seq(nn.Module):
    """An encoder GRU hands its final state to a decoder GRU (teacher forcing: it reads the target shifted)."""

    def __init__(self, emb: int = 8, hid: int = 16):
        super().__init__()
        self.src_embedding = nn.Embedding(V, emb)
        self.encoder = nn.GRU(emb, hid, batch_first=True)
        self.tgt_embedding = nn.Embedding(V, emb)
        self.decoder = nn.GRU(emb, hid, batch_first=True)
        self.head = nn.Linear(hid, V)

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.src_embedding(src))
        return self.head(self.decoder(self.tgt_embedding(tgt_in), h)[0])


class Tagger(nn.Module):
    def __init__(self, tags: int = 4, proj: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(V, 8)
        self.rnn = nn.LSTM(8, 16, batch_first=True, bidirectional=True, proj_size=proj)
        self.head = nn.Linear(2 * (proj or 16), tags)

    def forward(self, x):
        return self.head(self.rnn(self.embedding(x))[0])


class TransformerLM(nn.Module):
    def __init__(self, d: int = 16, context: int = 32):
        super().__init__()
        self.embedding = nn.Embedding(V, d)
        self.position = nn.Parameter(torch.zeros(1, context, d))
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, V)

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.head(self.encoder(self.embedding(x) + self.position[:, :x.shape[1]], mask=mask, is_causal=True))


def _train(run, model, step_fn, steps: int = 12) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(1, steps + 1):
        loss = step_fn(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        run.log({"train/loss": loss.detach()}, step=step)
    return losses


def _seq2seq_step(model):
    src = torch.randint(1, V, (8, 10))
    tgt = src.flip(1)  # reverse the input
    logits = model(src, torch.cat([torch.zeros(8, 1, dtype=torch.long), tgt[:, :-1]], 1))
    return nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))


def _tag_step(model):
    x = torch.randint(0, V, (8, 10))
    return nn.functional.cross_entropy(model(x).reshape(-1, 4), (x % 4).reshape(-1))


def _lm_step(model):
    x = torch.randint(0, V, (8, 17))
    return nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, V), x[:, 1:].reshape(-1))


def _watched(tmp_path, model, step_fn, **watch) -> tuple[RunStore, dict, list[str]]:
    """Train ``model`` under ``run.watch(model, **watch)``; the store, the run and the warnings given."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with deepscope.init(data_dir=tmp_path, total_steps=12) as run:
            run.watch(model, every=6, **watch)
            _train(run, model, step_fn)
    said = [str(w.message) for w in caught if issubclass(w.category, deepscope.DeepscopeWarning)]
    store = RunStore(tmp_path)
    return store, store.get_run(run.id), said


def test_cf001_a_users_encoder_decoder_records_the_encoder_and_says_the_decoder_is_not(tmp_path):
    torch.manual_seed(0)
    model = Seq2Seq()
    probe = torch.randint(1, V, (200,))
    store, run, said = _watched(tmp_path, model, _seq2seq_step, probe=probe, vocab=VOCAB)
    assert run["status"] == "completed" and run["step"] == 12
    assert any("2 recurrent layers chosen (encoder, decoder)" in m and "first only, encoder" in m for m in said), said
    data = DashboardData(store)
    assert [int(s["step"]) for s in data.hidden.snapshots(run["id"])] == [0, 6, 12]
    snap, _ = data.hidden.open(run["id"])
    with torch.no_grad():  # the encoder's own states over the probe text
        h = model.encoder(model.src_embedding(probe[None]))[0][0].numpy()
    assert np.allclose(snap.window("l0.fwd.h", 0, 200), h, atol=2e-3)
    assert {"l0.fwd.h", "l0.fwd.r", "l0.fwd.z", "l0.fwd.n"} == set(snap.keys)
    assert "tokens" in data.projections.sources(run["id"])  # the source characters' embeddings
    assert run["spec"]["model"]["family"] == "gru"


def test_cf002_a_bidirectional_lstm_tagger_records_both_directions(tmp_path):
    torch.manual_seed(0)
    model = Tagger()
    probe = torch.randint(0, V, (300,))
    store, run, said = _watched(tmp_path, model, _tag_step, probe=probe, vocab=VOCAB)
    assert run["status"] == "completed" and said == []
    snap, _ = DashboardData(store).hidden.open(run["id"])
    assert snap.meta["directions"] == ["fwd", "bwd"]
    with torch.no_grad():  # one pass over the whole probe text: forward from its first token, backward its last
        out = model.rnn(model.embedding(probe[None]))[0][0].numpy()
    assert np.allclose(snap.window("l0.fwd.h", 0, 300), out[:, :16], atol=2e-3)
    assert np.allclose(snap.window("l0.bwd.h", 0, 300), out[:, 16:], atol=2e-3)
    assert {"l0.bwd.c", "l0.bwd.f"} <= set(snap.keys)
    assert run["spec"]["model"]["bidirectional"] is True


def test_cf003_an_lstm_the_replay_cannot_read_is_skipped_and_the_rest_recorded(tmp_path):
    """``proj_size`` changes the LSTM's recurrence: its states are not recorded, its embedding still is."""
    torch.manual_seed(0)
    model = Tagger(proj=6)
    store, run, said = _watched(tmp_path, model, _tag_step, probe=torch.randint(0, V, (300,)), vocab=VOCAB)
    assert run["status"] == "completed" and run["step"] == 12
    assert any("proj_size" in m and "hidden states are not recorded" in m for m in said), said
    data = DashboardData(store)
    assert data.hidden.snapshots(run["id"]) == []
    assert "tokens" in data.projections.sources(run["id"])


def test_cf004_a_transformer_lm_records_its_embeddings_and_says_why_no_hidden_states(tmp_path):
    torch.manual_seed(0)
    model = TransformerLM()
    before = _lm_step(model).item()
    store, run, said = _watched(tmp_path, model, _lm_step, probe=torch.randint(0, V, (300,)), vocab=VOCAB)
    assert run["status"] == "completed" and run["step"] == 12
    assert any("no recurrent layer" in m and "TransformerEncoder" in m for m in said), said
    # its learned positions bound the text's length, which the export for Try it cannot follow: said once
    assert len(said) == 2 and "Try it will not be able to run this model" in said[1], said
    with warnings.catch_warnings(record=True) as caught:  # an LSTM left out by layers= is not "no recurrent layer"
        warnings.simplefilter("always")
        with deepscope.init(data_dir=tmp_path) as other:
            other.watch(Tagger(), probe=torch.randint(0, V, (50,)), vocab=VOCAB, layers="embedding")
    assert not [w for w in caught if "no recurrent layer" in str(w.message)]
    data = DashboardData(store)
    assert data.hidden.snapshots(run["id"]) == []
    sources = data.projections.sources(run["id"])
    assert sources["tokens"]["n"] == V and sources["tokens"]["what"] == "character embeddings"
    # not "transformer": that family names built-in runs, whose attention the Attention page shows
    assert run["spec"]["model"]["family"] == "custom"
    message, _ = no_states_message(data.get_run(run["id"]))
    assert "no recurrent layer" in message
    assert np.isfinite(before)
