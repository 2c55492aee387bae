"""The Lab's activations / gradient-clipping view: its pure figures, and its callbacks on a real store.

    .venv/bin/python -m pytest -q tests/unit/test_lab_activations.py
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from dash import no_update

from backend.lab.presets import PRESETS
from backend.lab.records import AFTER_CLIP, BEFORE_CLIP, KIND
from backend.spec import RunSpec
from backend.store import RunStore
from dashboard.views.lab.figures_activations import (ACT_COLORS, CLIP_COLORS, clip_figure, first_nonfinite,
                                               hidden_time_figure, hidden_training_figure, plot_values, run_colors,
                                               tanh_bound)
from dashboard.views.lab.runs import recurrent_lm_options

# -- figures -------------------------------------------------------------------------------------


def _hlines(fig) -> list[float]:
    return [s.y0 for s in fig.layout.shapes if s.y0 == s.y1 and s.xref.endswith("domain")]


def test_hidden_time_figure_draws_both_panels_on_log_axes_with_the_tanh_bound():
    relu = {"name": "relu", "step": 300, "activation": "relu", "hidden_size": 32,
            "hidden_norms": [2.0, 9.0, 12.0, 13.0], "grad_norms": [1e-6, 1e-4, 1e-2, 2e-2]}
    tanh = {"name": "tanh", "step": 300, "activation": "tanh", "hidden_size": 32,
            "hidden_norms": [2.0, 4.5, 5.0, 5.1], "grad_norms": [1e-5, 1e-3, 1e-2, 3e-2]}
    fig = hidden_time_figure([relu, tanh, {"name": "gru", "note": "no snapshot yet (queued)"}])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert len(fig.data) == 4 and [t.xaxis for t in fig.data] == ["x", "x2", "x", "x2"]
    assert fig.data[0].line.color == ACT_COLORS["relu"] != fig.data[2].line.color == ACT_COLORS["tanh"]
    assert fig.data[0].name == "relu (step 300)" and list(fig.data[0].x) == [0, 1, 2, 3]
    assert _hlines(fig) == [pytest.approx(math.sqrt(32))]  # one bound for one hidden size
    label = next(a for a in fig.layout.annotations if "sqrt(32) = 5.66" in a.text)
    assert label.y == pytest.approx(math.log10(math.sqrt(32)))  # a log axis places annotations at log10(y)
    assert "gru: no snapshot yet" in fig.layout.legend.title.text


def test_hidden_time_figure_leaves_gaps_where_a_run_diverged():
    fig = hidden_time_figure([{"name": "x", "activation": "relu", "hidden_size": 4,
                               "hidden_norms": [1.0, 1e30, math.inf, math.nan], "grad_norms": [0.0, 1.0, 1.0, 1.0]}])
    assert list(fig.data[0].y) == [1.0, 1e30, None, None] and fig.data[1].y[0] is None  # log axis: no 0
    assert fig.data[0].name.endswith("not finite (diverged)")
    assert plot_values(None) == [] and tanh_bound(None) is None and tanh_bound(64) == 8.0


def test_hidden_training_figure_draws_mean_and_largest_per_run():
    series = [{"name": "relu", "activation": "relu", "hidden_size": 16, "x": [0, 100, 200],
               "last": [2.0, 8.0, 11.0], "max": [3.0, 14.0, 20.0]},
              {"name": "tanh", "activation": "tanh", "hidden_size": 64, "x": [0, 100], "last": [2.0, 7.0]},
              {"name": "lstm", "note": "no hidden-state norms yet (running)"}]
    fig = hidden_training_figure(series)
    assert [t.name for t in fig.data] == ["relu: mean at the last step", "relu: largest", "tanh: mean at the last step"]
    assert fig.data[1].line.dash == "dot" and fig.layout.yaxis.type == "log"
    assert sorted(_hlines(fig)) == [4.0, 8.0]  # sqrt(16), sqrt(64)
    assert "lstm: no hidden-state norms yet" in fig.layout.legend.title.text


def test_clip_figure_draws_before_after_threshold_and_where_the_loss_broke():
    clipped = {"name": "clip 1", "clip_norm": 1.0, "activation": "relu",
               "before": {"x": [1, 2, 3], "y": [0.7, 2e10, 0.5]}, "after": {"x": [1, 2, 3], "y": [0.7, 1.0, 0.5]},
               "loss": {"x": [1, 2, 3], "y": [4.6, 4e8, 3.9]}}
    off = {"name": "off", "clip_norm": None, "activation": "relu",
           "before": {"x": [1, 2, 3], "y": [0.7, 2e10, None]}, "loss": {"x": [1, 2, 3], "y": [4.6, 4e8, None]}}
    fig = clip_figure([clipped, off])
    names = [t.name for t in fig.data]
    assert names == ["clip 1", "clip 1: after clipping", "clip 1", "off (no clipping): loss NaN from step 3",
                     "off (no clipping): loss NaN from step 3"]
    assert fig.data[1].line.dash == "dot" and fig.data[0].line.color == CLIP_COLORS[True]
    assert fig.data[3].line.color == CLIP_COLORS[False] and list(fig.data[3].y) == [0.7, 2e10, None]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert _hlines(fig) == [1.0] and any(a.text == "clipping threshold 1" for a in fig.layout.annotations)
    assert [s.x0 for s in fig.layout.shapes if s.x0 == s.x1] == [3, 3]  # the break, in both panels


def test_runs_of_one_activation_are_coloured_by_clipping_and_never_share_a_colour():
    relu_off, relu_on = {"activation": "relu"}, {"activation": "relu", "clip_norm": 1.0}
    assert run_colors([relu_off, relu_on]) == [CLIP_COLORS[False], CLIP_COLORS[True]]
    assert run_colors([relu_on, {"activation": "tanh", "clip_norm": 1.0}]) == [ACT_COLORS["relu"], ACT_COLORS["tanh"]]
    three = run_colors([relu_off, relu_off, {}])
    assert len(set(three)) == 3 and three[0] == ACT_COLORS["relu"]


def test_clip_figure_of_unclipped_runs_colours_by_activation():
    runs = [{"name": n, "clip_norm": None, "activation": n, "before": {"x": [10], "y": [0.3]},
             "loss": {"x": [10], "y": [2.0]}} for n in ("relu", "tanh")]
    fig = clip_figure(runs + [{"name": "new", "clip_norm": None, "note": "nothing logged yet (queued)"}])
    assert [t.line.color for t in fig.data] == [ACT_COLORS["relu"]] * 2 + [ACT_COLORS["tanh"]] * 2
    assert _hlines(fig) == [] and "new: nothing logged yet" in fig.layout.legend.title.text
    assert first_nonfinite([1, 2], [1.0, 2.0]) is None and first_nonfinite([5, 6], [1.0, math.inf]) == 6


# -- the view's functions and callbacks on a real store ---------------------------------------------


@pytest.fixture()
def app_store(tmp_path):
    from dashboard.app import create_app

    app = create_app(tmp_path / "data")
    return app, app.server.extensions["deepscope"].data.store


def _run(store: RunStore, preset: str, i: int, snapshots: list[int], hidden: bool = True,
         status: str = "running") -> str:
    name, spec = PRESETS[preset].runs[i]
    rid = store.create_run(name, spec.task, spec.model_dump(), status=status)
    h = spec.model.hidden_size
    for step in snapshots:
        arrays = {"norms": np.geomspace(1e-6, 1e-2, 64)}
        if hidden:
            grow = 1 + step / 100 if spec.model.activation == "relu" else 0.9
            mean = grow * math.sqrt(h)
            arrays.update(hidden_norms=np.full(64, mean), hidden_max=np.full(64, 2 * mean))
        store.add_snapshot(rid, KIND, step, arrays, {"family": "rnn", "activation": spec.model.activation,
                                                     "hidden_size": h})
    wall = time.time()
    rows = [(BEFORE_CLIP, s, 0.5 if s != 3 else 2e10, wall) for s in range(1, 6)] + [
        ("train/loss", s, 4.0 - 0.1 * s, wall) for s in range(1, 6)]
    if spec.clip_norm:
        rows += [(AFTER_CLIP, s, min(0.5 if s != 3 else 2e10, spec.clip_norm), wall) for s in range(1, 6)]
    store.log_scalars(rid, rows, step=5)
    return rid


def test_default_runs_are_the_newest_launch_of_either_preset(app_store):
    from dashboard.views.lab import activations as v
    _app, store = app_store
    old = [_run(store, "activations", i, [0]) for i in (0, 1)]
    time.sleep(0.01)
    new = [_run(store, "clipping", i, [0]) for i in (0, 1)]
    runs = store.list_runs()
    known = {o["value"] for o in recurrent_lm_options(runs)}
    assert known == set(old + new) and v.default_runs(runs, known) == new
    assert v.default_runs(runs, set(old)) == old and v.default_runs([], set()) == []


def test_view_draws_chosen_snapshot_and_nothing_when_nothing_changed(app_store):
    from dashboard.views.lab import activations as v
    app, store = app_store
    relu, tanh = (_run(store, "activations", i, [0, 150, 300]) for i in (0, 1))
    with app.server.test_request_context():
        _max, marks, index, data = v.steps_view([relu, tanh], None, None, polled=False)
        assert data["steps"] == [0, 150, 300] and index == 2 and len(marks) == 3
        fig, note, shown, info = v.time_view(index, data, None)
        assert [t.name for t in fig.data][::2] == ["lab · activations · relu (step 300)",
                                                   "lab · activations · tanh (step 300)"]
        assert fig.data[0].y[0] == pytest.approx(4 * math.sqrt(32), rel=1e-5) and "newest" in info and note is None
        assert v.time_view(index, data, shown)[:3] == (no_update,) * 3
        fig0, *_ = v.time_view(0, data, shown)
        assert fig0.data[0].name.endswith("(step 0)")

        store.add_snapshot(relu, KIND, 450, {"norms": np.ones(64), "hidden_norms": np.ones(64)}, {})
        _max, _marks, index1, data1 = v.steps_view([relu, tanh], data, 1, polled=True)
        assert data1["steps"] == [0, 150, 300, 450] and index1 == 1  # the slider stays at step 150
        assert v.steps_view([relu, tanh], data1, index1, polled=True) == (no_update,) * 4

        hidden, grads, key = v.training_view(0, [relu, tanh], None)
        assert [t.name for t in hidden.data][0] == "lab · activations · relu: mean at the last step"
        assert list(hidden.data[0].x) == [0, 150, 300, 450]
        assert len(grads.data) == 4 and _hlines(grads) == []  # no clipping: no threshold
        assert v.training_view(1, [relu, tanh], key) == (no_update,) * 3
        blank, _, none = v.training_view(1, [], key)
        assert none is None and "Choose runs" in blank.layout.annotations[0].text


def test_view_says_why_a_run_stopped_and_reads_old_snapshots(app_store):
    from dashboard.views.lab import activations as v
    app, store = app_store
    off = _run(store, "clipping", 0, [0], status="failed")
    store.set_status(off, "failed", error="Traceback (most recent call last):\n  File ...\n"
                     "backend.training.store_hooks.TrainingDiverged: training diverged at step 4: the loss became nan")
    clip = _run(store, "clipping", 1, [0, 100])
    old = _run(store, "activations", 1, [0], hidden=False)  # snapshots from before hidden norms
    with app.server.test_request_context():
        _max, _marks, index, data = v.steps_view([off, clip, old], None, None, polled=False)
        fig, note, _shown, _info = v.time_view(index, data, None)
        text = str(note)
        assert "lab · clipping · off stopped: training diverged at step 4: the loss became nan" in text
        assert "predate hidden-state norms" in text and "Traceback" not in text
        assert len(fig.data) == 4  # off at step 0, clip at step 100 (two panels each); the old run only noted

        _hidden, grads, _key = v.training_view(0, [off, clip, old], None)
        clip_after = [t for t in grads.data if t.name.endswith("after clipping")]
        assert len(clip_after) == 1 and max(y for y in clip_after[0].y if y is not None) == 1.0
        assert _hlines(grads) == [1.0]

        only_old = v.steps_view([old], None, None, polled=False)[3]
        blank, msg, *_ = v.time_view(0, only_old, None)
        assert "No hidden-state norms yet" in blank.layout.annotations[0].text and msg is not None

    assert v.stop_reason({"status": "completed", "error": "x"}) is None
    assert v.stop_reason({"status": "failed", "error": "ValueError: bad spec"}) == "bad spec"
    assert v.pick_step([0, 100, 200], 150) == 100 and v.pick_step([100], 50) is None
    assert v.slider_index([0, 50, 100], [0, 100], 1) == 2 and v.slider_index([], None, None) == 0


def test_clip_series_reads_before_after_and_loss(app_store):
    from dashboard.views.lab.activations import clip_series

    _app, store = app_store
    rid = _run(store, "clipping", 1, [0])
    (item,) = clip_series(store, [rid], max_points=3)
    assert item["clip_norm"] == 1.0 and item["activation"] == "relu"
    assert item["before"]["x"][-1] == 5 and max(item["before"]["y"]) == 2e10  # the spike survives downsampling
    assert max(item["after"]["y"]) == 1.0 and item["loss"]["y"][0] == pytest.approx(3.9)
    empty = store.create_run("e", "code-lstm", RunSpec.for_task("code-lstm").model_dump())
    assert clip_series(store, [empty])[0]["note"] == "nothing logged yet (queued)"
