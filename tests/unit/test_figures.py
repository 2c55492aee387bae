"""Pure figure, smoothing and downsampling properties (no Dash server, no store)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dashboard.data import downsampled, group_rows
from dashboard.views.training.figures import PANELS, ema, metric_order, metric_trace, panel_figure, panel_of
from dashboard.series import downsample_indices, to_plot_list


def test_ema_weight_zero_is_identity():
    values = [3.0, 1.0, 4.0, 1.5]
    assert ema(values, 0.0)[0] == pytest.approx(values)


def test_ema_is_debiased_so_a_constant_stays_constant():
    smoothed, _ = ema([2.0] * 50, 0.9)
    assert smoothed == pytest.approx([2.0] * 50)


def test_ema_in_chunks_equals_ema_at_once():
    rng = np.random.default_rng(0)
    values = rng.normal(size=200).tolist()
    whole, _ = ema(values, 0.8)
    first, state = ema(values[:77], 0.8)
    second, _ = ema(values[77:], 0.8, state)
    assert first + second == pytest.approx(whole)


def test_ema_passes_non_finite_through_without_poisoning_later_values():
    smoothed, _ = ema([1.0, math.nan, None, 1.0], 0.5)
    assert math.isnan(smoothed[1]) and smoothed[2] is None
    assert smoothed[3] == pytest.approx(1.0)


def test_ema_reduces_noise():
    rng = np.random.default_rng(1)
    values = (1.0 + rng.normal(scale=0.5, size=2000)).tolist()
    smoothed, _ = ema(values, 0.95)
    assert np.std(smoothed[200:]) < 0.3 * np.std(values[200:])


def test_short_series_are_not_downsampled():
    assert downsample_indices(np.arange(50), np.ones(50), n_out=2000).tolist() == list(range(50))


def test_downsampling_keeps_first_last_and_spikes():
    n = 100_000
    x = np.arange(n)
    y = np.sin(x / 500.0)
    y[31_337] = 50.0  # a loss spike must survive
    idx = downsample_indices(x, y, n_out=2000)
    assert len(idx) <= 2002
    assert idx[0] == 0 and idx[-1] == n - 1
    assert 31_337 in idx
    assert np.all(np.diff(idx) > 0)


def test_downsampling_tolerates_nan_and_inf():
    y = np.linspace(3, 0, 10_000)
    y[5000:5010] = np.inf
    y[7000] = np.nan
    idx = downsample_indices(np.arange(10_000), y, n_out=500)
    assert idx[-1] == 9_999 and len(idx) <= 502


def test_downsampled_sorts_by_step_and_keeps_newest_point():
    steps = np.array([0, 10, 20, 15, 30])  # a resumed run can log an earlier step again
    out = downsampled(steps, np.array([1.0, 2.0, 3.0, 2.5, np.inf]), max_points=2000)
    assert out["x"] == [0, 10, 15, 20, 30]
    assert out["y"][-1] is None  # non-finite -> gap, still the newest x
    assert isinstance(out["x"], list) and isinstance(out["y"], list)


def test_to_plot_list_gives_json_safe_python_floats():
    assert to_plot_list(np.array([1.0, np.nan, -np.inf])) == [1.0, None, None]


def test_group_rows_groups_by_name_in_log_order():
    rows = [(1, "a", 0, 0.0, 1.0), (2, "b", 0, 0.0, 5.0), (3, "a", 10, 0.0, 0.5)]
    assert group_rows(rows) == {"a": {"x": [0, 10], "y": [1.0, 0.5]}, "b": {"x": [0], "y": [5.0]}}


@pytest.mark.parametrize("name,panel", [("train/loss", "loss"), ("val/acc", "accuracy"), ("val/f1", "quality"),
                                        ("lr", "lr"), ("grad_norm/lstm.weight_hh_l0", "grad"),
                                        ("time/step_ms", "speed"), ("my/custom", "other")])
def test_every_metric_has_a_panel(name, panel):
    assert panel_of(name) == panel and panel in PANELS


def test_metric_order_puts_train_before_val_and_global_grad_first():
    names = ["val/loss", "grad_norm/fc", "train/loss", "grad_norm/global", "lr"]
    assert metric_order(names) == ["train/loss", "val/loss", "lr", "grad_norm/global", "grad_norm/fc"]


def test_figures_keep_zoom_and_stream_lists():
    trace = metric_trace("train/loss", (1, 2), (2.0, 1.5), "#000")
    fig = panel_figure("loss", [trace], uirevision="loss:run1")
    assert fig["layout"]["uirevision"] == "loss:run1"
    assert isinstance(fig["data"][0]["x"], list) and isinstance(fig["data"][0]["y"], list)
    assert fig["layout"]["annotations"] == []


def test_empty_panel_explains_itself_and_hides_axes():
    fig = panel_figure("accuracy", [], uirevision="x")
    assert "accuracy" in fig["layout"]["annotations"][0]["text"].lower()
    assert fig["layout"]["xaxis"]["visible"] is False


def test_validation_curves_are_dashed_and_step_time_uses_right_axis():
    assert metric_trace("val/loss", [], [], "#000")["line"]["dash"] == "dash"
    assert metric_trace("time/step_ms", [], [], "#000")["yaxis"] == "y2"
    raw = metric_trace("train/loss", [], [], "#000", role="raw")
    assert raw["showlegend"] is False and raw["opacity"] < 0.5


def _pair(x0=200, n=40, cells=6, seed=0):
    rng = np.random.default_rng(seed)
    windows = {"fwd": rng.uniform(-1, 1, (n, cells)), "bwd": rng.uniform(-0.5, 2.5, (n, cells))}
    tokens = [chr(ord("a") + i % 26) for i in range(n)]
    return windows, tokens


def test_side_by_side_traces_put_each_token_at_the_same_place_in_both_panels():
    from dashboard.views.hidden_states.figures_pair import PANEL_TITLES, pair_traces_figure

    windows, tokens = _pair()
    fig = pair_traces_figure(windows, 200, tokens, {"fwd": [1, 4], "bwd": [0]}, threshold=0.3, brushed=(210, 213),
                             title="hidden state h")
    lay = fig.layout
    assert [a.text for a in lay.annotations] == [f"{PANEL_TITLES['fwd']} · 2 selected",
                                                 f"{PANEL_TITLES['bwd']} · 1 selected"]
    assert PANEL_TITLES == {"fwd": "forward (reads left to right)", "bwd": "backward (reads right to left)"}
    # same tokens, same range, same width: token t sits at the same fraction of each panel
    assert list(lay.xaxis.range) == list(lay.xaxis2.range) == [199.5, 239.5]
    assert list(lay.xaxis.ticktext) == list(lay.xaxis2.ticktext) == tokens
    assert list(lay.xaxis.tickvals) == list(lay.xaxis2.tickvals) == list(range(200, 240))
    w1, w2 = (lay.xaxis.domain[1] - lay.xaxis.domain[0]), (lay.xaxis2.domain[1] - lay.xaxis2.domain[0])
    assert w1 == pytest.approx(w2) and lay.xaxis.domain[1] < lay.xaxis2.domain[0]  # forward left, backward right
    # each panel colours its own direction's selection, from its own values
    named = {(t.name, t.xaxis): t for t in fig.data}
    assert set(named) == {("forward other cells", "x"), ("forward cell 1", "x"), ("forward cell 4", "x"),
                          ("backward other cells", "x2"), ("backward cell 0", "x2")}
    np.testing.assert_allclose(named[("backward cell 0", "x2")].y, windows["bwd"][:, 0], atol=1e-4)
    np.testing.assert_allclose(named[("forward cell 4", "x")].y, windows["fwd"][:, 4], atol=1e-4)
    # shapes 0 and 1: one draggable threshold line per panel; then the brushed tokens in both
    lines, bands = lay.shapes[:2], lay.shapes[2:]
    assert [(s.xref, s.yref, s.y0) for s in lines] == [("x domain", "y", 0.3), ("x2 domain", "y2", 0.3)]
    assert [(s.xref, s.x0, s.x1) for s in bands] == [("x", 209.5, 212.5), ("x2", 209.5, 212.5)]
    # one y scale that holds every value of both directions
    assert lay.yaxis.range[0] <= windows["fwd"].min() and lay.yaxis.range[1] >= windows["bwd"].max()
    assert list(lay.yaxis.range) == list(lay.yaxis2.range)


def test_side_by_side_gates_stack_the_directions_over_the_same_tokens():
    from dashboard.views.hidden_states.figures import saturation_figure
    from dashboard.views.hidden_states.figures_pair import pair_gate_heatmap

    windows, tokens = _pair(x0=0, n=30, cells=5)
    fig = pair_gate_heatmap(windows, 0, tokens, "forget gate")
    fwd, bwd = fig.data
    assert list(fwd.x) == list(bwd.x) == list(range(30))
    np.testing.assert_allclose(np.array(bwd.z), windows["bwd"].T, atol=1e-3)
    assert [a.text for a in fig.layout.annotations] == ["forward (reads left to right)",
                                                        "backward (reads right to left)"]
    sat = saturation_figure({"f.fwd": np.zeros((2, 5)), "f.bwd": np.ones((2, 5))},
                            {"f.fwd": "forget gate · forward", "f.bwd": "forget gate · backward"},
                            {"f.fwd": "circle", "f.bwd": "x-thin-open"})
    assert [(t.name, t.marker.symbol, t.marker.color) for t in sat.data] == [
        ("forget gate · forward", "circle", "#d62728"), ("forget gate · backward", "x-thin-open", "#d62728")]


def test_a_long_legend_grows_the_panel_and_the_lr_axis_keeps_few_ticks():
    # issue 17: two compared runs' per-layer gradient norms squeezed their plot into a strip; within one
    # decade every learning-rate tick got a label and they overlapped
    from dashboard.views.training.figures import LEGEND_ROW_PX, PANEL_HEIGHT, panel_figure

    one = panel_figure("grad", [{"name": "a · global", "x": [1], "y": [1]}], "u")
    many = panel_figure("grad", [{"name": f"{r} · layer{i}", "x": [1], "y": [1]} for r in "ab" for i in range(6)], "u")
    assert one["layout"]["height"] == PANEL_HEIGHT
    assert many["layout"]["height"] == PANEL_HEIGHT + 3 * LEGEND_ROW_PX  # 12 entries: 4 rows of 3
    assert panel_figure("lr", [{"name": "lr", "x": [1], "y": [0.003]}], "u")["layout"]["yaxis"]["nticks"] == 4
