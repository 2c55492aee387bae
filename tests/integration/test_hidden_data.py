"""The dashboard's hidden-state reads on a synthetic snapshot written through the real store."""
from __future__ import annotations

import numpy as np
import pytest

import backend.store.hidden as hidden_record
from backend.store.hidden import KIND, HiddenSnapshot, write_hidden_snapshot
from dashboard.views.hidden_states.data import HiddenStates, ViewError

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


# -- bidirectional layers: forward and backward side by side --------------------------------------------------
BOTH_ON = [(600, 604), (2200, 2204)]   # forward cells 2, 4 and backward cell 6 on together only here
FWD_ONLY = [(900, 904), (3900, 3904)]  # the forward cells alone


def _bidirectional(store, run_id):
    rng = np.random.default_rng(2)
    fwd = rng.uniform(-1, 0.2, size=(N, CELLS)).astype(np.float16)
    bwd = rng.uniform(-1, 0.2, size=(N, CELLS)).astype(np.float16)
    for s, e in BOTH_ON:
        fwd[s:e, [2, 4]] = 0.9
        bwd[s:e, 6] = 0.9
    for s, e in FWD_ONLY:
        fwd[s:e, [2, 4]] = 0.9
    # a backward cell that switches on where 1300-1304 starts *for a right-to-left reader*: on to its left
    bwd[1298:1304, 9] = 0.9
    ids = rng.integers(1, 5, size=N)
    return write_hidden_snapshot(store, run_id, 0, {(0, "fwd", "h"): fwd, (0, "bwd", "h"): bwd}, ids,
                                 ["?", "a", "b", "(", ")"], {"depth": np.zeros(N, np.float32)}, {"family": "lstm"})


def test_matching_both_directions_needs_both_directions_cells_on(store):
    run_id = store.create_run("bidir", "brackets-lstm", {})
    _bidirectional(store, run_id)
    hs = HiddenStates(store)
    snap, _ = hs.open(run_id)
    assert snap.meta["directions"] == ["fwd", "bwd"]
    fwd_only = hs.match(run_id, snap, "l0.fwd.h", [2, 4], 0.5, query_len=4)
    assert {(m["start"], m["stop"]) for m in fwd_only if m["common"] == 2} == set(BOTH_ON + FWD_ONLY)
    assert hs.match_groups(run_id, snap, [("l0.fwd.h", [2, 4])], 0.5, 4) == fwd_only
    both = hs.match_groups(run_id, snap, [("l0.fwd.h", [2, 4]), ("l0.bwd.h", [6])], 0.5, query_len=4)
    full = [(m["start"], m["stop"]) for m in both if m["common"] == 3]
    assert sorted(full) == BOTH_ON  # where the backward cell is off too, only 2 of 3 are on
    assert both[0]["common"] == 3 and {(m["start"], m["stop"]) for m in both[:2]} == set(BOTH_ON)
    assert np.array(both[0]["cells"]).shape == (3, 4 + 2 * 4)  # forward rows, then the backward row
    assert np.array(both[0]["cells"])[2, 4:8].min() > 0.8
    with pytest.raises(ViewError, match="Select cells first"):
        hs.match_groups(run_id, snap, [("l0.fwd.h", []), ("l0.bwd.h", [])], 0.5, 4)


def test_side_by_side_select_mirrors_the_margins_for_the_backward_direction(store):
    from dashboard.views.hidden_states.select import render_select
    from dashboard.views.hidden_states.view import parse_view

    run_id = store.create_run("bidir", "brackets-lstm", {})
    _bidirectional(store, run_id)
    hs = HiddenStates(store)
    snap, _ = hs.open(run_id)
    # backward cell 9 is on at 1298-1303: reading right to left, it was off before 1300-1304 (at 1304)
    view = parse_view({"run": run_id, "dir": "both", "sel": "1300-1304", "pos": "1280", "thr": "0.5", "ob": "1"})
    fig, strip, parts, payload = render_select(hs, snap, view, 0.5, x0=1280)
    (key, cells), = payload["groups"]  # no forward cell is on there: only the backward cells are matched
    assert key == "l0.bwd.h" and 9 in cells and "no forward cell is selected" in payload["note"]
    bwd_sel = hs.select(snap, "l0.bwd.h", 1300, 1304, 0.5, off_before=1, off_after=0)
    assert 9 not in bwd_sel.cells  # the unmirrored rule would miss it: it is on just left of the range
    assert [a.text for a in fig.layout.annotations] == ["forward (reads left to right) · 0 selected",
                                                        f"backward (reads right to left) · {len(cells)} selected"]
    assert "Forward: " in str(parts) and "Backward: " in str(parts)
    # matching on a direction that has no selected cells says so instead of doing nothing
    view.match = "fwd"
    *_, payload = render_select(hs, snap, view, 0.5, x0=1280)
    assert "No forward cell is selected" in payload["empty"]
    # one direction at a time: the single chart, as before
    view.dir = "fwd"
    fig, *_ = render_select(hs, snap, view, 0.5, x0=1280)
    assert "xaxis2" not in fig.to_plotly_json()["layout"] and "layer 0 fwd" in fig.layout.title.text


def test_suggested_threshold_selects_the_planted_cells(snap_store):
    store, run_id = snap_store
    hs = HiddenStates(store)
    snap, _ = hs.open(run_id)
    hint = hs.suggest(snap, {"l0.fwd.h": (1, 0)}, 1700, 1706)
    assert hint is not None and hint.cells == 3 and hint.contrast == 1.0
    assert hs.select(snap, "l0.fwd.h", 1700, 1706, hint.threshold).cells == [3, 5, 8]
    assert hs.suggest(snap, {"l0.fwd.h": (1, 0)}, N - 2, N + 5) is None  # outside the text: nothing to suggest
