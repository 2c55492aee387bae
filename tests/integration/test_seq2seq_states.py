"""Hidden states of the new families (issue 16, item 8): an encoder-decoder's encoder and decoder layers over its
probe items, read back by the Hidden states page's data layer; what the pages say for a transformer run; the
Projections sources of the sequence runs.

Two short runs through the store (dates-seq2seq default spec, 60 steps: ~7 s; numbers-seq2seq with a 2-layer
LSTM without attention, 40 steps: ~4 s) and a 20-step transformer (~2 s), on one torch thread.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.build import build_model
from backend.models.seq2seq import encode_packed
from backend.probes.seq_states import capture_seq2seq
from backend.spec import RunSpec
from backend.store import RunStore
from backend.tasks.seq_probe import seq_probe_set
from backend.training.worker import run_training
from dashboard.data import DashboardData
from dashboard.views.hidden_states.data import ViewError, no_states_message
from dashboard.views.hidden_states.view import for_layer, layer_options, no_state_note

F16 = 2e-3  # a float16 record of values within (-1, 1): half a unit in the last place is under 5e-4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("seqstates") / "data")


def _train(store: RunStore, task: str, steps: int, **overrides) -> str:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    spec = RunSpec.for_task(task, steps=steps, eval_every=steps, probe_every=steps // 2, seed=0, **overrides)
    run_id = store.create_run(f"{task} {overrides}", task, spec.model_dump())
    try:
        assert run_training(store, run_id, device="cpu") == "completed", store.get_run(run_id)["error"]
    finally:
        torch.set_num_threads(before)
    return run_id


@pytest.fixture(scope="module")
def dates_run(store):
    return _train(store, "dates-seq2seq", 60)  # GRU, bidirectional encoder, additive attention


@pytest.fixture(scope="module")
def numbers_run(store):
    return _train(store, "numbers-seq2seq", 40, model={"family": "lstm", "layers": 2, "bidirectional": False,
                                                       "attention": "none", "hidden_size": 32})


# -- the capture against the fused modules ------------------------------------------------------------------
@pytest.mark.parametrize("task,model", [
    ("dates-seq2seq", {"family": "gru", "bidirectional": True, "attention": "additive"}),
    ("dates-seq2seq", {"family": "lstm", "layers": 2, "bidirectional": True, "attention": "multiplicative"}),
    ("numbers-seq2seq", {"family": "rnn", "bidirectional": False, "attention": "none", "hidden_size": 24}),
], ids=["gru-bidir-additive", "lstm2-bidir-mult", "rnn-none"])
def test_states_are_the_fused_encoders_and_the_greedy_decoders(task, model):
    torch.manual_seed(0)
    net = build_model(RunSpec.for_task(task, model=model)).eval()
    probe = seq_probe_set(task)
    states, written = capture_seq2seq(net, probe)
    x = torch.as_tensor(probe.x)
    with torch.no_grad():
        enc_out = encode_packed(net.embedding, net.rnn, x)[0].numpy()
        fed = []
        hook = net.decoder.register_forward_hook(lambda _m, _a, out: fed.append(out[0]))
        ids, _ = net.greedy(x, probe.y.shape[1])
        hook.remove()
    dec_out = torch.cat(fed, 1).numpy()
    top, dirs = net.rnn.num_layers - 1, ["fwd", "bwd"] if net.rnn.bidirectional else ["fwd"]
    enc = np.concatenate([states[(top, d, "h")] for d in dirs], 1).astype(np.float32)
    dec = states[(2 * net.rnn.num_layers - 1, "fwd", "h")].astype(np.float32)
    for i, (e, d) in enumerate(zip(probe.enc_pos, probe.dec_pos)):
        np.testing.assert_allclose(enc[e], enc_out[i, :len(e)], atol=F16)  # packed: backward from the last char
        np.testing.assert_allclose(dec[d], dec_out[i, :len(d)], atol=F16)
    assert (written == ids.numpy()).all()
    enc_at, dec_at = np.concatenate(probe.enc_pos), np.concatenate(probe.dec_pos)
    for (layer, _, _), arr in states.items():  # a layer has a state only in its own part of the stream
        own, other = (enc_at, dec_at) if layer < net.rnn.num_layers else (dec_at, enc_at)
        assert np.isfinite(arr[own]).all() and np.isnan(arr[other]).all()


# -- through the store and the page's data layer ---------------------------------------------------------
def test_a_dates_run_records_encoder_and_decoder_layers_with_tracks(store, dates_run):
    data = DashboardData(store)
    assert [int(s["step"]) for s in data.hidden.snapshots(dates_run)] == [0, 30, 60]
    snap, note = data.hidden.open(dates_run)
    assert note is None and snap.step == 60
    assert [o["label"] for o in layer_options(snap.meta)] == ["encoder layer 0", "decoder layer 0"]
    assert snap.meta["directions"] == ["fwd", "bwd"] and snap.meta["layer_directions"] == [["fwd", "bwd"], ["fwd"]]
    assert {"l0.fwd.h", "l0.bwd.h", "l0.fwd.z", "l1.fwd.h", "l1.fwd.r"} <= set(snap.keys)
    assert not snap.has("l1.bwd.h")  # the decoder reads forward only: the page shows it forward
    assert for_layer("both", snap.meta, 1) == "fwd" and for_layer("both", snap.meta, 0) == "both"
    assert {"field=year", "field=month", "field=day", "digit", "letter", "separator", "correct"} <= \
        set(snap.track_names)
    probe = seq_probe_set("dates-seq2seq")
    assert snap.n_tokens == probe.n_tokens
    first = probe.enc_pos[0][0], probe.dec_pos[0][-1] + 1  # "5/3/21→" and what the decoder wrote for 2021-05-03
    text = "".join(snap.tokens(*first))
    assert text.startswith("5/3/21→") and len(text) == 6 + 1 + 11
    tracks, names = snap.tracks(*first), snap.track_names
    assert tracks[names.index("field=year")].tolist() == [0, 0, 0, 0, 1, 1, 0] + [1] * 4 + [0] * 7
    assert tracks[names.index("field=month")][:7].tolist() == [1, 0, 0, 0, 0, 0, 0]
    window = snap.window("l1.fwd.h", *first)
    assert np.isnan(window[:7]).all() and np.isfinite(window[7:]).all()  # the decoder's part only
    # a brush over the other part's tokens is told why it selects nothing
    assert "encoder layer 0 has no state at tokens 7–10: it runs over the input" in no_state_note(snap.meta, 0, (7, 11))


def test_the_page_reads_select_match_and_summary_over_one_part(store, dates_run):
    hidden = DashboardData(store).hidden
    snap, _ = hidden.open(dates_run)
    probe = seq_probe_set("dates-seq2seq")
    year = probe.dec_pos[0][:4]  # the decoder writing "2021"
    sel = hidden.select(snap, "l1.fwd.h", int(year[0]), int(year[-1]) + 1, threshold=0.0, off_before=0)
    assert sel.cells  # some decoder cells are above 0 while it writes the year (60 steps are enough)
    found = hidden.match(dates_run, snap, "l1.fwd.h", sel.cells, 0.0, query_len=4)
    dec_at = set(np.concatenate(probe.dec_pos).tolist())
    assert found and all(set(range(m["start"], m["stop"])) <= dec_at for m in found)  # never on a gap
    hint = hidden.suggest(snap, {"l0.fwd.h": (1, 0)}, *map(int, probe.enc_pos[1][[0, 2]]))
    assert hint is None or 0 <= hint.threshold
    for key in ("l0.fwd.h", "l0.bwd.h", "l1.fwd.h"):
        r = np.asarray(hidden.summary(dates_run, snap, key)["r"])
        assert np.isfinite(r).all() and np.abs(r).max() > 0.3  # r over the part's own tokens, not zeros
    sat = hidden.saturation(dates_run, snap, "l1.fwd.z")
    assert sat is not None and np.all(sat.sum(0) <= 1.0 + 1e-6) and sat.max() > 0
    assert hidden.find_text(snap, "→1987") is not None


def test_a_numbers_run_without_attention_has_lstm_layers_of_both_parts(store, numbers_run):
    snap, _ = DashboardData(store).hidden.open(numbers_run)
    assert [o["label"] for o in layer_options(snap.meta)] == ["encoder layer 0", "encoder layer 1",
                                                              "decoder layer 0", "decoder layer 1"]
    assert {f"l{i}.fwd.{s}" for i in range(4) for s in ("h", "c", "i", "f", "g", "o")} == set(snap.keys)
    assert "place" in snap.track_names and snap.n_cells == 32
    assert store.list_snapshots(numbers_run, "attention") == []  # attention 'none': that probe is off


def test_sequence_runs_feed_projections_with_their_token_embeddings(store, dates_run):
    sources = DashboardData(store).projections.sources(dates_run)
    assert sources["tokens"]["what"] == "character embeddings" and sources["tokens"]["n"] == 70  # no padding


# -- a transformer: no recurrent state, and the page says so -----------------------------------------------
def test_a_transformer_run_says_why_it_has_no_hidden_states(store):
    run_id = _train(store, "brackets-lstm", 20, batch_size=8, seq_len=32, log_every=5,
                    model={"family": "transformer", "layers": 1, "hidden_size": 16, "heads": 2})
    data = DashboardData(store)
    assert data.hidden.snapshots(run_id) == []
    with pytest.raises(ViewError):
        data.hidden.open(run_id)
    message, colour = no_states_message(data.get_run(run_id))
    assert colour == "warning" and "transformer" in message and "no recurrent layer" in message
    assert "Attention page" in message
    assert store.list_snapshots(run_id, "attention")  # where the message sends the reader
    # a recurrent tagger or encoder-decoder before its first snapshot: it is coming, not "no probe text"
    for task in ("tags-bidir", "dates-seq2seq"):
        waiting = {"id": "x", "name": "n", "task": task, "status": "running", "spec": {"model": {"family": "gru"}}}
        assert no_states_message(waiting)[0].startswith("No hidden-state snapshot yet")
    classifier = {"id": "x", "name": "n", "task": "sentiment-lstm", "status": "running",
                  "spec": {"model": {"family": "lstm"}}}
    assert "has no probe text" in no_states_message(classifier)[0]
