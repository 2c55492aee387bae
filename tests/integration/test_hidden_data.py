"""The dashboard's hidden-state reads on a synthetic snapshot written through the real store."""
from __future__ import annotations

import numpy as np
import pytest

import backend.store.hidden as hidden_record
from backend.store.hidden import KIND, HiddenSnapshot, write_hidden_snapshot
from dashboard.hidden_data import HiddenStates, ViewError

N, CELLS = 5000, 24
PLANTED = [(400, 406), (1700, 1706), (3300, 3306)]  # cells 3, 5, 8 on exactly here


def _synthetic(store, run_id, step=0):
    rng = np.random.default_rng(1)
    values = rng.uniform(-1, 0.2, size=(N, CELLS)).astype(np.float16)
    for s, e in PLANTED:
        values[s:e, [3, 5, 8]] = 0.9
    values[2500:2503, [3, 5]] = 0.9  # a partial match: two of the three cells
    ids = rng.integers(1, 5, size=N)
    depth = np.cumsum(rng.choice([-1, 1], size=N)).astype(np.float32)
    values[:, 11] = (depth / np.abs(depth).max()).astype(np.float16)
    return write_hidden_snapshot(store, run_id, step, {(0, "fwd", "h"): values}, ids, ["?", "a", "b", "(", ")"],
                                 {"depth": depth}, {"family": "lstm"})


@pytest.fixture(params=["index", "no-index"])
def snap_store(request, store, monkeypatch):
    if request.param == "index":
        monkeypatch.setattr(hidden_record, "INDEX_MIN_BYTES", 0)
    run_id = store.create_run("synthetic", "brackets-lstm", {})
    _synthetic(store, run_id)
    row = store.list_snapshots(run_id, KIND)[-1]
    assert ("l0.fwd.h.T" in row["arrays"]) == (request.param == "index")
    return store, run_id


def test_select_then_match_finds_the_planted_pattern_first(snap_store):
    store, run_id = snap_store
    hs = HiddenStates(store)
    snap, note = hs.open(run_id)
    assert note is None
    sel = hs.select(snap, "l0.fwd.h", 400, 406, threshold=0.5, off_before=1, off_after=1, window=(380, 460))
    assert sel.cells == [3, 5, 8]
    assert sel.on_count[20:26].tolist() == [3] * 6 and sel.on_count[19] == 0
    found = hs.match(run_id, snap, "l0.fwd.h", sel.cells, 0.5, query_len=6)
    top = [(m["start"], m["stop"], m["common"]) for m in found[:3]]
    assert top == [(s, e, 3) for s, e in PLANTED]
    assert (2500, 2503, 2) in [(m["start"], m["stop"], m["common"]) for m in found]
    assert np.array(found[0]["cells"]).shape == (3, 6 + 2 * 4)


def test_summary_names_the_cell_that_tracks_the_track(snap_store):
    store, run_id = snap_store
    hs = HiddenStates(store)
    snap, _ = hs.open(run_id)
    summ = hs.summary(run_id, snap, "l0.fwd.h")
    r = np.array(summ["r"][summ["tracks"].index("depth")])
    assert int(np.argmax(np.abs(r))) == 11 and r[11] > 0.99


def test_bad_requests_say_what_to_do(snap_store):
    store, run_id = snap_store
    hs = HiddenStates(store)
    snap, _ = hs.open(run_id)
    with pytest.raises(ViewError, match="outside the probe text"):
        hs.select(snap, "l0.fwd.h", N - 2, N + 3, 0.5)
    with pytest.raises(ViewError, match="Select cells first"):
        hs.match(run_id, snap, "l0.fwd.h", [], 0.5, 3)
    assert hs.find_text(snap, "zzz") is None
    with pytest.raises(ViewError, match="no-snapshot"):
        hs.open("no-such-run")


def test_open_falls_back_past_a_snapshot_still_being_written(store):
    run_id = store.create_run("synthetic", "brackets-lstm", {})
    _synthetic(store, run_id, step=0)
    _synthetic(store, run_id, step=10)
    newest = store.list_snapshots(run_id, KIND)[-1]
    (store.data_dir / newest["arrays"]["tokens"]).unlink()
    snap, note = HiddenStates(store).open(run_id)
    assert snap.step == 0 and "still being written" in note


def test_reads_stay_windows(store, monkeypatch):
    """A window read touches only its rows: the reader never loads the whole array."""
    run_id = store.create_run("synthetic", "brackets-lstm", {})
    _synthetic(store, run_id)
    snap = HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    calls = []
    real = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: calls.append(k.get("count")) or real(*a, **k))
    snap.window("l0.fwd.h", 100, 180)
    assert calls == [80 * CELLS]
