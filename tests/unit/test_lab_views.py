"""The Lab page's views: step picking of the gradient-flow slider, its figures (initialisation overlay,
per-layer gradient norms), the page's section order, and the view's callbacks on a real store.

    .venv/bin/python -m pytest -q tests/unit/test_lab_views.py
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from dash import no_update

from backend.lab.presets import PRESETS
from backend.lab.records import KIND
from backend.spec import RunSpec
from backend.store import RunStore
from dashboard.views.lab.figures import (FAMILY_COLORS, grad_norm_figure, gradflow_figure, layer_order,
                                   running_median, step_marker_shapes)
from dashboard.views.lab.gradflow import follow_index, pick_steps, union_steps

# -- step picking ------------------------------------------------------------------------------


def test_pick_steps_is_each_runs_newest_snapshot_at_or_before_the_step():
    by_run = {"a": [0, 100, 200, 300], "b": [0, 150], "c": [250, 50], "d": []}
    assert pick_steps(by_run, 160) == {"a": 100, "b": 150, "c": 50, "d": None}
    assert pick_steps(by_run, 150) == {"a": 100, "b": 150, "c": 50, "d": None}  # "at" counts
    assert pick_steps(by_run, 10) == {"a": 0, "b": 0, "c": None, "d": None}  # c starts later
    assert pick_steps(by_run, 10_000) == {"a": 300, "b": 150, "c": 250, "d": None}
    assert pick_steps(by_run, None) == {"a": 300, "b": 150, "c": 250, "d": None}  # newest
    assert union_steps(by_run) == [0, 50, 100, 150, 200, 250, 300]
    assert union_steps({}) == []


def test_follow_index_follows_the_newest_or_keeps_the_chosen_step():
    assert follow_index([], None, None, ["on"]) == 0
    assert follow_index([0, 100, 200], None, None, []) == 2  # first draw: the newest
    assert follow_index([0, 100, 200, 300], [0, 100, 200], 2, ["on"]) == 3  # live: moves on
    # moved back to step 100 (index 1); another run's snapshot at 50 is inserted before it: still step 100
    assert follow_index([0, 50, 100, 200], [0, 100, 200], 1, []) == 2
    # the runs changed and step 100 is gone: the newest step at or before it
    assert follow_index([0, 80, 300], [0, 100, 200], 1, []) == 1
    assert follow_index([500, 600], [0, 100], 0, []) == 0  # nothing at or before: the first


# -- figures -----------------------------------------------------------------------------------


def test_gradflow_figure_overlays_each_runs_initialisation_faint_and_dotted():
    now, init = 0.9 ** np.arange(25), 0.5 ** np.arange(25)
    fig = gradflow_figure([{"name": "lstm", "family": "lstm", "step": 600, "norms_by_distance": now,
                            "init_step": 0, "init_norms": init},
                           {"name": "rnn", "family": "rnn", "step": 0, "norms_by_distance": init}],
                          title_step=600)
    names = [t.name for t in fig.data]
    assert names[0] == "lstm at step 0" and names[1].startswith("lstm (step 600)") and names[2].startswith("rnn")
    assert names[-1].startswith("dotted")  # one legend entry explains every dotted line
    overlay, lstm = fig.data[0], fig.data[1]
    assert overlay.line.dash == "dot" and overlay.opacity < 1 and overlay.showlegend is False
    assert overlay.line.color == lstm.line.color == FAMILY_COLORS["lstm"]
    assert overlay.legendgroup == lstm.legendgroup == "lstm"  # clicking the run hides both
    np.testing.assert_allclose(overlay.y, init)
    assert "at step 600" in fig.layout.title.text
    # no overlay asked for: one trace per run and no "dotted" entry
    plain = gradflow_figure([{"name": "rnn", "family": "rnn", "step": 0, "norms_by_distance": init}])
    assert len(plain.data) == 1 and "at step" not in plain.layout.title.text


def _norms(steps, scale):
    return {"x": list(steps), "y": [scale / (1 + s / 100) for s in steps]}


def test_grad_norm_figure_has_a_panel_per_layer_and_a_colour_per_run():
    steps = range(0, 300, 10)
    series = [{"name": "rnn", "family": "rnn", "layers": {"global": _norms(steps, 1), "head": _norms(steps, .5),
                                                         "embedding": _norms(steps, .01), "rnn.l0": _norms(steps, .1)}},
              {"name": "lstm", "family": "lstm", "layers": {"embedding": _norms(steps, .02), "rnn.l0": _norms(steps, .4),
                                                           "head": _norms(steps, .3), "global": _norms(steps, .6)}},
              {"name": "gru", "note": "no gradient norms logged yet (queued)"}]
    fig = grad_norm_figure(series, marker_step=120)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["embedding", "rnn.l0", "head", "all layers together (global)"]
    assert len(fig.data) == 16  # per run and layer: as logged (faint) and its running median
    assert {t.line.color for t in fig.data if t.name == "rnn"} == {FAMILY_COLORS["rnn"]}
    assert {t.line.color for t in fig.data if t.name == "lstm"} == {FAMILY_COLORS["lstm"]}
    assert [t.name for t in fig.data if t.showlegend] == ["rnn", "lstm"]  # one legend entry per run
    raw, trend = [t for t in fig.data if t.name == "rnn" and "rnn.l0" in t.hovertemplate]
    assert raw.xaxis == trend.xaxis == "x2" and raw.y[0] == pytest.approx(0.1)
    assert raw.opacity < 0.5 and trend.line.width > raw.line.width
    assert all(getattr(fig.layout, f"yaxis{i}").type == "log" for i in ("", "2", "3", "4"))
    assert fig.layout.yaxis2.matches == "y"  # one scale for every panel
    assert "gru: no gradient norms" in fig.layout.legend.title.text
    assert [s.x0 for s in fig.layout.shapes] == [120] * 4
    assert [s.xref for s in fig.layout.shapes] == ["x", "x2", "x3", "x4"]
    assert not grad_norm_figure(series).layout.shapes
    # non-positive norms are left out (log axis)
    zero = grad_norm_figure([{"name": "x", "layers": {"global": {"x": [0, 10], "y": [0.0, 1.0]}}}])
    assert list(zero.data[0].y) == [None, 1.0]


def test_running_median_follows_the_trend_not_the_spikes():
    y = np.full(50, 0.1)
    y[::7] = 10.0  # a spike every 7 points
    smooth = running_median(y, 5)
    assert smooth.shape == y.shape and np.allclose(smooth, 0.1)
    with_gap = running_median([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, np.nan], 3)
    assert with_gap[:3].tolist() == [1.0, 2.0, 3.0] and np.isnan(with_gap[-1])
    np.testing.assert_array_equal(running_median([1.0, 5.0], 9), [1.0, 5.0])  # too short to smooth


def test_gradflow_legend_bounds_the_ratio_when_the_far_gradient_underflowed():
    norms = np.r_[10.0 ** -np.arange(11), np.zeros(11)]  # 0 past distance 10, as a trained RNN's
    label = gradflow_figure([{"name": "rnn", "step": 3000, "norms_by_distance": norms}]).data[0].name
    assert label == "rnn (step 3,000): d1/d20 > 1e+09x (0 past distance 10)"
    short = gradflow_figure([{"name": "rnn", "norms_by_distance": [1.0, 0.0, 0.0]}]).data[0].name
    assert short == "rnn"  # too short to say anything about distance 20


def test_layer_order_and_marker_shapes():
    assert layer_order(["global", "embedding", "head", "rnn.l0", "embedding"]) == ["embedding", "rnn.l0", "head",
                                                                                  "global"]
    assert layer_order([]) == []
    assert step_marker_shapes(3, None) == []
    shapes = step_marker_shapes(3, 50)
    assert [s["yref"] for s in shapes] == ["y domain", "y2 domain", "y3 domain"] and shapes[2]["x1"] == 50


# -- the page and the view's callbacks on a real store -----------------------------------------


@pytest.fixture()
def app_store(tmp_path):
    from dashboard.app import create_app

    app = create_app(tmp_path / "data")
    return app, app.server.extensions["deepscope"].data.store


def _recurrent_run(store: RunStore, family: str, steps: list[int], name: str | None = None) -> str:
    spec = RunSpec.for_task("recall-lstm", model={"family": family, "hidden_size": 8})
    rid = store.create_run(name or f"lab · gradient flow · {family}", spec.task, spec.model_dump(), status="running")
    for step in steps:
        norms = (0.5 if family == "rnn" else 0.97) ** np.arange(22)[::-1] * (1 + step / 100)
        store.add_snapshot(rid, KIND, step, {"norms": norms}, {"family": family})
    wall = time.time()
    store.log_scalars(rid, [(f"grad_norm/{k}", s, v * (1 + s), wall) for s in range(10, 110, 10)
                            for k, v in (("embedding", 0.01), ("rnn.l0", 0.1), ("head", 0.3), ("global", 0.4))]
                      + [("train/loss", 10, 1.0, wall), ("grad_norm/after_clip", 10, 0.4, wall)], step=100)
    return rid


def test_page_puts_the_landed_view_after_the_cards_and_scrolls_to_it(app_store):
    app, store = app_store
    lab = sys.modules["views.lab.page"]
    assert lab.view_order("b", ["a", "b", "c"]) == ["b", "a", "c"]
    assert lab.view_order(None, ["a", "b"]) == ["a", "b"] == lab.view_order("nope", ["a", "b"])
    rnn = _recurrent_run(store, "rnn", [0, 100])
    with app.server.test_request_context():
        page = lab.layout(preset="gradient-flow", run=rnn)
        plain = lab.layout()
        unknown = lab.layout(preset="no-such-preset")
    child_ids = [getattr(c, "id", None) for c in page.children]
    cards = next(i for i, c in enumerate(page.children) if getattr(c, "className", "") == "lab-grid")
    assert child_ids[cards + 1] == "lab-view-gradient-flow"
    landed = next(c for c in page.children if getattr(c, "id", None) == lab.LAB_LANDED)
    assert landed.data == "gradient-flow"
    assert next(c for c in plain.children if getattr(c, "id", None) == lab.LAB_LANDED).data is None
    assert "no-such-preset" in str(unknown) and "alert-warning" in str(unknown)
    assert f"'value': ['{rnn}']" in str(page) or f"value=['{rnn}']" in str(page)


def test_view_callbacks_pick_steps_per_run_and_draw_nothing_when_nothing_changed(app_store):
    from dashboard.views.lab import gradflow as g
    app, store = app_store
    rnn = _recurrent_run(store, "rnn", [0, 100])
    lstm = _recurrent_run(store, "lstm", [0, 50])
    with app.server.test_request_context():
        _max, marks, index, data = g.steps_view([rnn, lstm], ["on"], None, 0, polled=False)
        assert data["steps"] == [0, 50, 100] and index == 2 and len(marks) == 3
        assert [r[0] for r in data["runs"]] == [rnn, lstm]

        fig, note, shown, info = g._gradflow(index, data, ["on"], None)
        names = [t.name for t in fig.data]
        assert any(n.startswith("lab · gradient flow · rnn (step 100)") for n in names)
        assert any(n.startswith("lab · gradient flow · lstm (step 50)") for n in names)  # newest at or before 100
        assert sum(n.endswith("at step 0") for n in names) == 2 and "newest" in info
        assert g._gradflow(index, data, ["on"], shown)[:3] == (no_update,) * 3  # same picture: nothing sent

        fig0, *_ = g._gradflow(0, data, ["on"], shown)  # back to step 0: both at 0, no overlay of itself
        assert [t.name.split(":")[0] for t in fig0.data] == ["lab · gradient flow · rnn (step 0)",
                                                            "lab · gradient flow · lstm (step 0)"]
        fig50, *_ = g._gradflow(1, data, [], None)  # step 50, no initialisation overlay
        assert [t.name.split(":")[0] for t in fig50.data] == ["lab · gradient flow · rnn (step 0)",
                                                             "lab · gradient flow · lstm (step 50)"]
        assert "at step 50" in fig50.layout.title.text

        # following off at step 50; the LSTM records step 75: the slider stays at step 50
        store.add_snapshot(lstm, KIND, 75, {"norms": np.ones(22)}, {"family": "lstm"})
        _max, _marks, index, data2 = g.steps_view([rnn, lstm], [], data, 1, polled=False)
        assert data2["steps"] == [0, 50, 75, 100] and data2["steps"][index] == 50

        assert g.steps_view([rnn, lstm], [], data2, index, polled=True) == (no_update,) * 4  # nothing new
        norms, norms_shown = g.norms_view([rnn, lstm], index, data2, None, moved=False)
        assert [a.text for a in norms.layout.annotations][-1] == "all layers together (global)"
        assert len(norms.data) == 16 and [s.x0 for s in norms.layout.shapes] == [50] * 4
        assert norms_shown["panels"] == 4 and norms_shown["marker"] == 50
        assert g.norms_view([rnn, lstm], index, data2, norms_shown, moved=False) == (no_update, no_update)
        patch, moved = g.norms_view([rnn, lstm], 3, data2, norms_shown, moved=True)  # to the newest: no mark
        assert moved["marker"] is None and patch.to_plotly_json()["operations"] == [
            {"operation": "Assign", "location": ["layout", "shapes"], "params": {"value": []}}]
        empty, _ = g.norms_view([], 0, data2, None, moved=False)
        assert "Choose runs" in empty.layout.annotations[0].text


def test_grad_norm_series_reads_only_gradient_norms(app_store):
    from dashboard.views.lab.gradflow import grad_norm_series

    _app, store = app_store
    rid = _recurrent_run(store, "gru", [0])
    layers = grad_norm_series(store, rid)
    assert sorted(layers) == ["embedding", "global", "head", "rnn.l0"]
    assert layers["head"]["x"] == list(range(10, 110, 10)) and layers["head"]["y"][0] == pytest.approx(0.3 * 11)
    assert grad_norm_series(store, rid, max_points=4)["head"]["x"][-1] == 100  # downsampled, newest kept
    assert grad_norm_series(store, store.create_run("x", "digits", {})) == {}


def test_gradient_flow_preset_still_lands_on_this_view():
    assert PRESETS["gradient-flow"].page == "/lab"


def test_every_app_of_a_process_gets_the_views_callbacks(tmp_path):
    """Dash runs page modules once per app; the view's callbacks must reach the second app too."""
    from dashboard.app import create_app

    for i in range(2):
        app = create_app(tmp_path / f"data{i}")
        deps = app.server.test_client().get("/_dash-dependencies").get_json()
        outputs = " ".join(d["output"] for d in deps)
        assert "lab-gf-norms.figure" in outputs and "lab-gf-graph.figure" in outputs, (i, outputs[:500])


def test_lab_run_choices_keep_chosen_runs_and_send_nothing_unchanged():
    from dashboard.views.lab.runs import recurrent_lm_options, refreshed_options

    lm = {"id": "a", "name": "lstm", "status": "running", "task": "code-lstm", "spec": {"model": {"family": "lstm"}}}
    cnn = {"id": "b", "name": "cnn", "status": "running", "task": "digits-cnn", "spec": {"model": {"family": "cnn"}}}
    options = recurrent_lm_options([lm, cnn])
    assert [o["value"] for o in options] == ["a"]
    assert refreshed_options([lm, cnn], options, ["a"]) is None
    assert refreshed_options([cnn], options, ["a"]) is None  # a chosen run missing from the list stays listed
    assert refreshed_options([cnn], options, []) == []
    done = refreshed_options([dict(lm, status="completed")], options, ["a"])
    assert done[0]["label"].endswith("completed)")
