"""The Attention page's pure parts: the address bar's view, which runs have attention, entropy and alignment
share of a map, the per-snapshot summary read from a store, the figures and the run card's link.

    .venv/bin/python -m pytest tests/unit/test_attention_view.py
"""
from __future__ import annotations

import numpy as np
import pytest
from dash import dcc

from backend.store import RunStore
from backend.store.attention import KIND, AttentionSnapshot, write_attention_snapshot
from dashboard.views.attention.data import (AttentionData, View, alignment_hits, attention_runs, has_attention, parse_view,
                                      row_entropy, run_kind, snapshot_summary)
from dashboard.views.attention.figures import grid_image, heads_grid, output_line, self_attention_map, seq2seq_matrix
from dashboard.views.attention.layout import snapshot_choices
from dashboard.components import view_links
from dashboard.inputs import Query

S2S = {"id": "s", "task": "dates-seq2seq", "spec": {"model": {"family": "gru", "attention": "additive"}}}
S2S_NONE = {"id": "n", "task": "dates-seq2seq", "spec": {"model": {"family": "gru", "attention": "none"}}}
TF = {"id": "t", "task": "code-lstm", "spec": {"model": {"family": "transformer"}}}
LSTM = {"id": "l", "task": "code-lstm", "spec": {"model": {"family": "lstm"}}}


def test_the_address_bar_reads_good_values_and_falls_back_on_junk():
    assert parse_view(Query({"run": "a1", "item": "3", "layer": "1", "head": "2", "step": "200"})) == \
        View("a1", 3, 1, 2, 200)
    q = Query({"run": "../x", "item": "x", "layer": "1e999", "head": "-4", "step": "NaN", "zoom": "2"})
    view = parse_view(q)
    assert view == View(None, 0, 0, 0, None)
    assert len(q.problems) == 6  # each said in the page's notice, none an error
    assert View("a1", 9, 5, 7).clamp(n_items=8, n_layers=2, n_heads=8) == View("a1", 0, 0, 7)
    assert View("a1", 2, 1, 3, None).to_query("seq2seq") == {"run": "a1", "item": "2"}
    assert View("a1", 2, 1, 3, 40).to_query("transformer") == {"run": "a1", "layer": "1", "head": "3", "step": "40"}
    assert parse_view(Query({"run": "a1b2c3d4e5"})) == View("a1b2c3d4e5")  # the Lab's preset link


def test_which_runs_have_attention():
    assert [run_kind(r) for r in (S2S, S2S_NONE, TF, LSTM, None)] == ["seq2seq", "seq2seq", "transformer", None, None]
    assert [has_attention(r) for r in (S2S, S2S_NONE, TF, LSTM)] == [True, False, True, False]
    assert attention_runs([LSTM, S2S, S2S_NONE, TF]) == [S2S, TF]


def test_entropy_and_alignment_share_of_a_map():
    causal = np.array([[1, 0, 0], [0.5, 0.5, 0], [1, 0, 0]], dtype=np.float32)
    ent = row_entropy(causal)
    assert np.isnan(ent[0]) and ent[1] == pytest.approx(1.0) and ent[2] == pytest.approx(0.0, abs=1e-6)
    full = np.full((2, 4), 0.25)  # a cross-attention map: every row over all 4 keys
    assert row_entropy(full) == pytest.approx([1.0, 1.0])
    w = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    assert alignment_hits(w, [[1, 2], [1, 3], [2, 3], [-1, -1]]) == (2, 3)
    assert alignment_hits(w, None) == (0, 0) and alignment_hits(w, [["x"], None, 7]) == (0, 0)


def _dates_snapshot(store: RunStore, run_id: str, step: int, focused: float) -> None:
    rest = (1 - focused) / 3
    w = np.full((3, 4), rest, np.float32)
    w[[0, 1, 2], [2, 3, 0]] = focused  # output 0 and 1 read the year (2-4), output 2 the month (0-1)
    write_attention_snapshot(store, run_id, step, [
        {"name": "1/20", "queries": ["2", "0", "</s>"], "keys": list("1/20"), "weights": w,
         "extra": {"target": "20", "format": "m/yy", "output": "20", "spans": [[2, 4], [2, 4], [-1, -1]]}}],
        meta={"layers": ["dec-enc"], "heads": ["h0"]})


def test_the_summary_reads_every_snapshot_once(tmp_path):
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("dates", "dates-seq2seq", {"task": "dates-seq2seq"})
    _dates_snapshot(store, run_id, 0, 0.25)
    _dates_snapshot(store, run_id, 10, 0.9)
    calls = []

    def cached(key, _ttl, compute, memo={}):
        if key not in memo:
            calls.append(key)
            memo[key] = compute()
        return memo[key]
    ad = AttentionData(store, cached)
    series = ad.summary_series(run_id)
    assert series["steps"] == [0, 10] and series["layers"] == ["dec-enc"]
    assert series["entropy"]["dec-enc"][0] == pytest.approx(1.0) and series["entropy"]["dec-enc"][1] < 0.5
    assert series["alignment"][1] == 1.0  # both outputs with a span look inside it
    n = len(calls)
    ad.summary_series(run_id)
    assert len([c for c in calls[n:] if "summary" in c]) == 0  # each snapshot's summary is cached
    snap, note = ad.open(run_id, 5)
    assert snap.step == 0 and note is None
    assert snapshot_summary(snap)["entropy"] == [pytest.approx(1.0)]


def test_choices_and_figures(tmp_path):
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("dates", "dates-seq2seq", {"task": "dates-seq2seq"})
    _dates_snapshot(store, run_id, 0, 0.9)
    row = store.list_snapshots(run_id, KIND)[-1]
    c = snapshot_choices(row["meta"])
    assert c["item"] == [{"label": "1/20   (m/yy)", "value": "0"}] and c["layer"][0]["value"] == "0"
    assert snapshot_choices(None) == {"item": [], "layer": [], "head": []}
    snap = AttentionSnapshot(store, row)
    item = snap.items()[0]
    fig = seq2seq_matrix(snap.weights(0), item["queries"], item["keys"], item["extra"]["spans"])
    assert np.asarray(fig.data[0].z).shape == (3, 4) and len(fig.layout.shapes) == 2  # two outputs have a span
    assert list(fig.layout.xaxis.ticktext) == list("1/20") and fig.layout.yaxis.ticktext[-1] == "⏎"
    causal = np.tril(np.ones((5, 5), np.float32)) / np.arange(1, 6)[:, None]
    big = self_attention_map(causal, list("ab cd"))
    assert np.isnan(np.asarray(big.data[0].z, dtype=float)[0, 1]) and big.layout.xaxis.ticktext[2] == "␣"
    all_w = np.broadcast_to(causal, (2, 3, 5, 5))
    assert grid_image(all_w).shape == (2 * 5 + 4, 3 * 5 + 2 * 4, 3)
    grid = heads_grid(all_w, ["l0", "l1"], ["h0", "h1", "h2"], chosen=(1, 2))
    assert grid.data[0].type == "image" and grid.layout.meta["tile"] == 5
    assert grid.layout.shapes[0].x0 == 2 * 9 - 1.5 and list(grid.layout.xaxis.ticktext) == ["head 0", "head 1", "head 2"]
    wrong = output_line("2021-05-04", "2021-05-03")
    assert "tok-wrong" in str(wrong) and "badge-failed" in str(wrong)


def test_the_run_card_links_to_attention_for_runs_that_have_it():
    def links(run):
        return {c.children for c in view_links(run) if isinstance(c, dcc.Link)}
    assert "Attention" in links(S2S) and "Attention" in links(TF)
    assert "Attention" not in links(S2S_NONE) and "Attention" not in links(LSTM)
    href = next(c.href for c in view_links(S2S) if isinstance(c, dcc.Link) and c.children == "Attention")
    assert href == "/attention?run=s"
