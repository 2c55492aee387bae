"""The attention record (backend.store.attention): what is written reads back equal, for an encoder-decoder's
maps and a transformer's self-attention alike; malformed input or meta gives a StoreError that says what."""
from __future__ import annotations

import numpy as np
import pytest

from backend.store import StoreError
from backend.store.attention import KIND, AttentionSnapshot, write_attention_snapshot


def _maps(rng, layers, heads, q, k):
    w = rng.random((layers, heads, q, k)).astype(np.float32)
    return w / w.sum(-1, keepdims=True)


@pytest.fixture
def run_id(store):
    return store.create_run("t", "dates-seq2seq", {})


def test_write_and_read_back_equal(store, run_id):
    rng = np.random.default_rng(0)
    items = [{"name": "5/3/21", "queries": list("2021-05-03") + ["</s>"], "keys": list("5/3/21"),
              "weights": _maps(rng, 1, 1, 11, 6), "extra": {"target": "2021-05-03", "spans": [[4, 6]] * 4}},
             {"name": "Monday 3rd of May 2021", "queries": list("2021-05-03"), "keys": list("Monday 3rd of May 2021"),
              "weights": _maps(rng, 1, 1, 10, 22)[0, 0]}]  # a 2-D map is one layer and head
    write_attention_snapshot(store, run_id, 250, items, {"layers": ["dec-enc"], "heads": ["h0"], "task": "x"})
    snap = AttentionSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    assert snap.step == 250 and snap.layers == ["dec-enc"] and snap.heads == ["h0"] and snap.meta["task"] == "x"
    got = snap.items()
    assert [g["name"] for g in got] == ["5/3/21", "Monday 3rd of May 2021"]
    assert got[0]["queries"] == items[0]["queries"] and got[0]["keys"] == items[0]["keys"]
    assert got[0]["extra"] == items[0]["extra"] and got[1]["extra"] == {}
    np.testing.assert_allclose(snap.weights("5/3/21", "dec-enc", "h0"), items[0]["weights"][0, 0], atol=1e-3)
    np.testing.assert_allclose(snap.weights(1), items[1]["weights"], atol=1e-3)  # float16 on disk
    summary = snap.summary()
    assert summary["items"][1]["queries"] == 10 and summary["items"][1]["keys"] == 22
    assert 0 < summary["items"][0]["entropy"][0][0] <= 1


def test_transformer_self_attention_fits(store, run_id):
    """Layers x heads x T x T over one probe text, queries and keys the same tokens, default names."""
    text = list("def f(x):\n    return x")
    w = _maps(np.random.default_rng(1), 2, 4, len(text), len(text))
    write_attention_snapshot(store, run_id, 0, [{"name": "probe", "queries": text, "keys": text, "weights": w}])
    snap = AttentionSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    assert snap.layers == ["l0", "l1"] and snap.heads == ["h0", "h1", "h2", "h3"]
    assert snap.all_weights("probe").shape == (2, 4, len(text), len(text))
    np.testing.assert_allclose(snap.weights("probe", "l1", "h3"), w[1, 3], atol=1e-3)
    with pytest.raises(StoreError, match="no head 'h9'"):
        snap.weights("probe", "l0", "h9")
    with pytest.raises(StoreError, match="no item 'other'"):
        snap.weights("other")


@pytest.mark.parametrize("items, meta, message", [
    ([], None, "needs 1 to 64 items"),
    (["junk"], None, "item 0 must be a mapping"),
    ([{"name": "a", "queries": "ab", "keys": ["x"], "weights": np.ones((2, 1))}], None, "lists of token strings"),
    ([{"name": "a", "queries": ["a", "b"], "keys": ["x"], "weights": np.ones((3, 1))}], None, "do not match"),
    ([{"name": "a", "queries": ["a"], "keys": ["x"], "weights": np.full((1, 1), np.nan)}], None, "NaN"),
    ([{"name": "a", "queries": ["a"], "keys": ["x"], "weights": np.ones((1, 1))}], {"heads": ["h0", "h1"]},
     "names 1 layers and 2 heads"),
    ([{"name": "a", "queries": ["a"], "keys": ["x"], "weights": np.ones((1, 1))},
      {"name": "b", "queries": ["a"], "keys": ["x"], "weights": np.ones((2, 1, 1, 1))}], None, "same layers and heads"),
])
def test_bad_items_are_refused_with_a_reason(store, run_id, items, meta, message):
    with pytest.raises(StoreError, match=message):
        write_attention_snapshot(store, run_id, 0, items, meta)
    assert store.list_snapshots(run_id, KIND) == []


def _good_row(store, run_id):
    item = {"name": "a", "queries": ["a", "b"], "keys": ["x", "y", "z"], "weights": np.full((2, 3), 1 / 3)}
    write_attention_snapshot(store, run_id, 5, [item])
    return store.list_snapshots(run_id, KIND)[-1]


@pytest.mark.parametrize("junk, message", [
    (lambda row: {**row, "meta": "junk"}, "no meta mapping"),
    (lambda row: {**row, "meta": {}}, "attention_version is None"),
    (lambda row: {**row, "meta": {**row["meta"], "attention_version": "1"}}, "attention_version is '1'"),
    (lambda row: {**row, "meta": {**row["meta"], "attention_version": 99}}, "newer deepscope"),
    (lambda row: {**row, "meta": {**row["meta"], "layers": None}}, r"meta\['layers'\] must be a non-empty list"),
    (lambda row: {**row, "meta": {**row["meta"], "heads": [1]}}, r"meta\['heads'\] must be a non-empty list"),
    (lambda row: {**row, "meta": {**row["meta"], "items": {"a": 1}}}, r"meta\['items'\] must be a non-empty list"),
    (lambda row: {**row, "meta": {**row["meta"], "items": [{"name": "a"}]}}, "item 0 needs a name and lists"),
    (lambda row: {**row, "arrays": {}}, "lacks an array"),
    (lambda row: {**row, "arrays": {"i0": "runs/nope.npy"}}, "not complete on disk"),
])
def test_malformed_records_give_a_clear_error(store, run_id, junk, message):
    row = _good_row(store, run_id)
    with pytest.raises(StoreError, match=message):
        AttentionSnapshot(store, junk(row))


def test_meta_that_disagrees_with_the_array_is_caught_on_read(store, run_id):
    row = _good_row(store, run_id)
    items = [dict(row["meta"]["items"][0], keys=["x"])]
    snap = AttentionSnapshot(store, {**row, "meta": {**row["meta"], "items": items}})
    with pytest.raises(StoreError, match=r"its array has shape \(1, 1, 2, 3\), its meta says \(1, 1, 2, 1\)"):
        snap.weights("a")
