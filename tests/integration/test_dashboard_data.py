"""The Training page's live update against a real store, and the app factory, without a browser."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dash import Patch, no_update
from dash.exceptions import PreventUpdate

from backend.store import RunStore
from dashboard.data import DashboardData
from dashboard.views.training.live import apply_state_update
from dashboard.views.training.figures import PANELS, ema
from dashboard.views.training.live import build_figures, live_update, stream_delta

REPO = Path(__file__).resolve().parents[2]


def _log(store, run_id, names, steps):
    store.log_scalars(run_id, [(n, s, 1.0 / (s + 1), time.time()) for s in steps for n in names], step=max(steps))


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path / "data")


@pytest.fixture()
def run_id(store):
    rid = store.create_run("demo", "digits-cnn", {"model": {"family": "cnn"}}, status="running")
    _log(store, rid, ["train/loss", "lr"], range(0, 50, 10))
    return rid


def _trace(figs, panel, name):
    return next(t for t in figs[panel]["data"] if t["name"] == name)


def test_build_draws_history_and_remembers_the_cursor(store, run_id):
    figs, state = build_figures(DashboardData(store), [run_id], 0.0)
    _, cursor = store.scalars_after(run_id, 0)
    assert state["cursors"][run_id] == cursor
    assert _trace(figs, "loss", "train/loss")["x"] == [0, 10, 20, 30, 40]
    assert figs["accuracy"]["data"] == [] and figs["accuracy"]["layout"]["annotations"]
    assert all(figs[p]["layout"]["uirevision"].endswith(run_id) for p in PANELS)


def test_stream_sends_only_points_after_the_cursor(store, run_id):
    data = DashboardData(store)
    _, state = build_figures(data, [run_id], 0.0)
    _log(store, run_id, ["train/loss"], [50, 60])
    delta, new_state = stream_delta(data, state)
    raw = state["traces"][f"{run_id}|train/loss"]["raw"]
    assert delta == {"loss": {"extend": [(raw, [50, 60], pytest.approx([1 / 51, 1 / 61], rel=1e-5))],
                              "append": []}}
    assert new_state["cursors"][run_id] == store.scalars_after(run_id, 0)[1]
    assert state["cursors"][run_id] < new_state["cursors"][run_id]  # input state untouched
    again, _ = stream_delta(data, new_state)
    assert again == {}


def test_new_series_are_appended_as_new_traces(store, run_id):
    data = DashboardData(store)
    _, state = build_figures(data, [run_id], 0.0)
    _log(store, run_id, ["val/loss", "grad_norm/global", "grad_norm/conv1"], [100])
    delta, new_state = stream_delta(data, state)
    assert [t["name"] for t in delta["loss"]["append"]] == ["val/loss"]
    assert [t["name"] for t in delta["grad"]["append"]] == ["grad_norm/global", "grad_norm/conv1"]
    # the trace-index map now points at the appended traces, so the next rows extend them
    assert new_state["traces"][f"{run_id}|val/loss"]["raw"] == state["counts"]["loss"]
    assert new_state["traces"][f"{run_id}|grad_norm/conv1"]["raw"] == 1
    _log(store, run_id, ["grad_norm/conv1"], [110])
    delta2, _ = stream_delta(data, new_state)
    assert delta2["grad"]["extend"] == [(1, [110], pytest.approx([1 / 111], rel=1e-5))]


def test_streamed_smoothing_continues_the_history(store, run_id):
    data = DashboardData(store)
    _, state = build_figures(data, [run_id], 0.6)
    _log(store, run_id, ["train/loss"], [50, 60])
    delta, _ = stream_delta(data, state)
    entry = state["traces"][f"{run_id}|train/loss"]
    smooth_ops = [op for op in delta["loss"]["extend"] if op[0] == entry["smooth"]]
    whole, _ = ema([1 / (s + 1) for s in range(0, 70, 10)], 0.6)
    assert smooth_ops[0][2] == pytest.approx(whole[-2:], rel=1e-5)  # sent with 6 significant digits
    assert "lr" not in delta  # nothing new there, and lr is never smoothed


def test_live_update_patches_and_rebuilds_on_new_selection(store, run_id):
    data = DashboardData(store)
    figs, state = live_update(data, [run_id], 0, None)
    assert isinstance(figs[0], dict) and len(figs) == len(PANELS)
    with pytest.raises(PreventUpdate):
        live_update(data, [run_id], 0, state)
    _log(store, run_id, ["train/loss"], [70])
    patches, state_patch = live_update(data, [run_id], 0, state)
    assert isinstance(patches[PANELS.index("loss")], Patch)
    assert patches[PANELS.index("lr")] is no_update
    state2 = apply_state_update(state, state_patch)  # what the browser's dcc.Store does with it
    assert state2["cursors"][run_id] == store.scalars_after(run_id, 0)[1]
    other = store.create_run("second", "digits-cnn", {}, status="running")
    rebuilt, state3 = live_update(data, [run_id, other], 0, state2)
    assert isinstance(rebuilt[0], dict) and state3["key"]["runs"] == [run_id, other]


def test_overlaid_runs_are_named_and_coloured_by_run(store, run_id):
    other = store.create_run("second", "digits-cnn", {}, status="running")
    _log(store, other, ["train/loss"], [0, 10])
    figs, _ = build_figures(DashboardData(store), [run_id, other], 0.0)
    names = [t["name"] for t in figs["loss"]["data"]]
    assert names == ["demo · train/loss", "second · train/loss"]
    assert figs["loss"]["data"][0]["line"]["color"] != figs["loss"]["data"][1]["line"]["color"]


def test_long_series_start_downsampled_but_end_at_the_newest_point(store):
    rid = store.create_run("long", "digits-cnn", {}, status="running")
    store.log_scalars(rid, [("train/loss", s, float(s % 97), 0.0) for s in range(20_000)], step=19_999)
    series, _ = DashboardData(store, max_points=1000).initial_series(rid)
    assert len(series["train/loss"]["x"]) <= 1002 and series["train/loss"]["x"][-1] == 19_999


def test_create_app_serves_pages_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from dashboard.app import create_app\n"
        f"app = create_app({str(tmp_path / 'd')!r})\n"
        "c = app.server.test_client()\n"
        "assert c.get('/').status_code == 200\n"
        "assert c.get('/_dash-layout').status_code == 200\n"
        "deps = c.get('/_dash-dependencies').json\n"
        "assert any('train-state.data' in d['output'] for d in deps), deps\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "deepscope.sqlite").exists()


def test_app_caches_reads_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPSCOPE_CACHE_TYPE", raising=False)
    from dashboard.app import create_app
    from dashboard.context import EXTENSION

    app = create_app(tmp_path / "d")
    data = app.server.extensions[EXTENSION].data
    rid = data.store.create_run("r", "digits-cnn", {}, status="running")
    with app.server.app_context():
        assert data.list_runs()[0]["id"] == rid
    assert any((tmp_path / "d" / "cache").iterdir())


def test_streamed_state_is_a_small_patch_unless_series_appear(store, run_id):
    from dashboard.views.training.live import live_update

    data = DashboardData(store)
    _, state = live_update(data, [run_id], 0.6, None)
    _log(store, run_id, ["train/loss"], [50])
    figures, patch = live_update(data, [run_id], 0.6, state)
    ops = patch.to_plotly_json()["operations"]
    assert {tuple(op["location"][:1]) for op in ops} == {("cursors",), ("traces",)}
    assert len(json.dumps(patch.to_plotly_json())) < 400
    _log(store, run_id, ["val/loss"], [60])  # a new series: the whole state goes back
    _, whole = live_update(data, [run_id], 0.6, state)
    assert isinstance(whole, dict) and f"{run_id}|val/loss" in whole["traces"]


def test_a_resume_rebuilds_the_curves_from_the_checkpoint_and_marks_it(store, run_id):
    """Killed at 40 and resumed from a checkpoint at 20: an open page redraws instead of drawing back."""
    data = DashboardData(store)
    _, state = live_update(data, [run_id], 0, None)
    store.supersede_after(run_id, 20)  # what the resumed trainer does first
    _log(store, run_id, ["train/loss", "lr"], range(30, 60, 10))
    figs, state2 = live_update(data, [run_id], 0, state)
    loss = figs[PANELS.index("loss")]
    assert isinstance(loss, dict)  # whole figures, not an extension of the old curve
    xs = _trace(dict(zip(PANELS, figs)), "loss", "train/loss")["x"]
    assert xs == [0, 10, 20, 30, 40, 50] and all(a < b for a, b in zip(xs, xs[1:]))
    assert [s["x0"] for s in loss["layout"]["shapes"]] == [20]
    assert any("resumed from step 20" in a["text"] for a in loss["layout"]["annotations"])
    assert state2["attempts"] == {run_id: 1}
    _log(store, run_id, ["train/loss"], [60])
    patches, _ = live_update(data, [run_id], 0, state2)  # then it streams again
    assert isinstance(patches[PANELS.index("loss")], Patch)
