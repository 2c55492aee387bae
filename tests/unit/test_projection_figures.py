"""Pure figures of the projections page: WebGL maps coloured by class or frequency, 3-D, analogy arrows,
neighbour highlights and axes that stay still."""
from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard.views.projections.figures import (CORRECT, NONE_GREY, class_names, display_texts, hover_texts, map_figure,
                                           marker_size, message_figure)
from dashboard.views.projections.data import fixed_ranges

CLASSES = ["neg", "neu", "pos"]


def _points(m: int = 60, dims: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(m, dims)).astype(np.float32)
    rows = np.arange(100, 100 + m)
    texts = np.array([f"word{i}" for i in range(m)])
    label = np.arange(m) % 3
    label[:4] = -1                                    # four points without a label
    pred = (np.arange(m) + (np.arange(m) % 4 == 0)) % 3
    return coords, rows, texts, label.astype(np.int32), pred.astype(np.int32)


def _member_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.meta == "points"]


def test_2d_map_is_scattergl_with_a_trace_and_colour_per_class():
    coords, rows, texts, label, pred = _points()
    fig = map_figure(coords, rows, texts, colour_by="label", label=label, pred=pred, classes=CLASSES,
                     uirevision="run:key")
    traces = _member_traces(fig)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert [t.name for t in traces] == ["no label", "neg", "neu", "pos"]
    assert sum(len(t.x) for t in traces) == len(coords)
    assert traces[0].marker.color == NONE_GREY and len({t.marker.color for t in traces}) == 4
    assert fig.layout.showlegend and fig.layout.legend.title.text == "label"
    assert fig.layout.uirevision == "run:key" and fig.layout.dragmode == "zoom"

    neu = traces[2]
    i = int(np.flatnonzero(label == 1)[0])
    assert neu.customdata[0] == rows[i]                              # the source row, for clicks and lassos
    assert isinstance(neu.customdata, (list, tuple))                 # not a typed array (see the module docstring)
    hover = neu.hovertext[0]
    assert "<b>word%d</b>" % i in hover and "label: neu" in hover and "predicted:" in hover
    assert neu.x.dtype == np.float32
    data = fig.to_dict()["data"][2]
    assert data["x"]["dtype"] == "f4" and "bdata" in data["x"]      # plotly 7: a base64 typed array

    by_pred = map_figure(coords, rows, texts, colour_by="prediction", label=label, pred=pred, classes=CLASSES)
    assert [t.name for t in _member_traces(by_pred)] == CLASSES and by_pred.layout.legend.title.text == "predicted"


def test_correct_colours_right_wrong_and_unknown():
    coords, rows, texts, label, pred = _points()
    fig = map_figure(coords, rows, texts, colour_by="correct", label=label, pred=pred, classes=CLASSES)
    traces = {t.name: t for t in _member_traces(fig)}
    assert set(traces) == {"correct", "wrong", "unknown"}
    known = label >= 0
    assert len(traces["correct"].x) == int(((label == pred) & known).sum())
    assert len(traces["wrong"].x) == int(((label != pred) & known).sum())
    assert len(traces["unknown"].x) == 4 and traces["wrong"].marker.color == CORRECT["wrong"]


def test_frequency_is_one_trace_on_a_log_colour_scale():
    coords, rows, texts, *_ = _points()
    freq = np.geomspace(1, 50_000, len(coords)).astype(np.int64)
    fig = map_figure(coords, rows, texts, colour_by="frequency", freq=freq)
    (trace,) = fig.data
    assert np.allclose(trace.marker.color, np.log10(freq), atol=1e-5)
    bar = trace.marker.colorbar
    assert list(bar.tickvals) == [0, 1, 2, 3, 4, 5] and list(bar.ticktext) == ["1", "10", "100", "1k", "10k", "100k"]
    assert not fig.layout.showlegend and "frequency: 50000" in trace.hovertext[-1]


def test_many_classes_use_a_colour_scale_and_none_is_one_colour():
    coords, rows, texts, *_ = _points(m=120)
    label = np.arange(120) % 40
    fig = map_figure(coords, rows, texts, colour_by="label", label=label)
    assert len(fig.data) == 1 and fig.data[0].marker.colorscale and "label: class 39" in fig.data[0].hovertext[39]
    plain = map_figure(coords, rows, texts, colour_by="none", label=label)
    assert len(plain.data) == 1 and isinstance(plain.data[0].marker.color, str)
    # a colouring the source cannot do falls back to one colour
    assert len(map_figure(coords, rows, texts, colour_by="label").data) == 1


def test_3d_map_is_scatter3d_in_a_cube_with_fixed_ranges():
    coords, rows, texts, label, pred = _points(dims=3)
    ranges = [[-5.0, 5.0], [-4.0, 4.0], [-3.0, 3.0]]
    fig = map_figure(coords, rows, texts, colour_by="label", label=label, classes=CLASSES, ranges=ranges,
                     uirevision="r:k3")
    assert all(isinstance(t, go.Scatter3d) for t in fig.data)
    assert sum(len(t.z) for t in _member_traces(fig)) == len(coords)
    scene = fig.layout.scene
    assert list(scene.xaxis.range) == [-5, 5] and list(scene.zaxis.range) == [-3, 3] and scene.aspectmode == "cube"
    fig = map_figure(coords, rows, texts, highlight={"query": 0, "neighbours": [1, 2], "texts": ["q", "a", "b"]},
                     analogy={"a": 3, "b": 4, "c": 5, "answer": 6, "texts": {"a": "k", "b": "m", "c": "w", "answer": "q"}})
    assert len(fig.layout.scene.annotations) == 5 and not fig.layout.annotations    # labels in the scene
    lines = [t for t in fig.data if t.meta == "analogy" and t.mode == "lines"]
    assert len(lines) == 2                                                           # b -> a, c -> answer


def test_fixed_ranges_keep_the_axes_still():
    coords, rows, texts, *_ = _points()
    ranges = fixed_ranges([-10, -20], [10, 0])
    assert ranges == [[-11.0, 11.0], [-21.0, 1.0]]                     # 5% of the span on each side
    a = map_figure(coords, rows, texts, ranges=ranges, uirevision="u")
    b = map_figure(coords * 0.5, rows, texts, ranges=ranges, uirevision="u")
    assert list(a.layout.xaxis.range) == list(b.layout.xaxis.range) == [-11, 11]
    assert list(a.layout.yaxis.range) == [-21, 1]
    own = map_figure(coords, rows, texts)                               # no ranges: its own, padded
    lo, hi = coords[:, 0].min(), coords[:, 0].max()
    assert own.layout.xaxis.range[0] == pytest.approx(lo - 0.05 * (hi - lo), abs=1e-4)
    assert fixed_ranges([2.0, np.nan], [2.0, np.nan]) == [[1.0, 3.0], [-1.0, 1.0]]


def test_analogy_arrows_go_from_b_to_a_and_from_c_to_the_answer():
    coords, rows, texts, *_ = _points()
    analogy = {"a": 1, "b": 2, "c": 3, "answer": 4, "texts": {"a": "king", "b": "man", "c": "woman", "answer": "queen"}}
    fig = map_figure(coords, rows, texts, analogy=analogy)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 2
    ba, cx = arrows
    assert (ba.ax, ba.ay) == pytest.approx(tuple(coords[2]), abs=1e-3)      # tail at b
    assert (ba.x, ba.y) == pytest.approx(tuple(coords[1]), abs=1e-3)        # head at a
    assert (cx.ax, cx.ay, cx.x, cx.y) == pytest.approx((*coords[3], *coords[4]), abs=1e-3)
    assert ba.axref == "x" and ba.ayref == "y" and ba.arrowhead
    labels = [a.text for a in fig.layout.annotations if not a.showarrow]
    assert labels == ["<b>king</b>", "<b>man</b>", "<b>woman</b>", "<b>queen</b>"]
    marks = [t for t in fig.data if t.meta == "analogy"]
    assert len(marks) == 1 and list(marks[0].customdata) == [rows[1], rows[2], rows[3], rows[4]]
    # a word that is not drawn (-1) gets no marker and no arrow
    fig = map_figure(coords, rows, texts, analogy={**analogy, "answer": -1})
    assert len([a for a in fig.layout.annotations if a.showarrow]) == 1


def test_neighbours_are_ringed_and_the_query_starred():
    coords, rows, texts, *_ = _points()
    fig = map_figure(coords, rows, texts, highlight={"query": 5, "neighbours": [6, -1, 8],
                                                     "texts": ["apple", "pear", "plum", "fig"]})
    rings, star = [t for t in fig.data if t.meta == "highlight"]
    assert list(rings.customdata) == [rows[6], rows[8]] and rings.marker.symbol == "circle-open"
    assert "neighbour 1: <b>pear</b>" in rings.text[0] and "neighbour 3: <b>fig</b>" in rings.text[1]
    assert list(star.customdata) == [rows[5]] and star.marker.symbol == "star"
    assert [a.text for a in fig.layout.annotations] == ["<b>apple</b>"]


def test_hover_and_display_texts():
    assert display_texts(["a<b>&", " ", "x\ny", ""]).tolist() == ["a&lt;b&gt;&amp;", "␣", "x⏎y", "∅"]
    assert class_names(np.array([0, 2, -1, 4]), ["a", "b", "c"]).tolist() == ["a", "c", "none", "class 4"]
    h = hover_texts(np.array(["cat"]), label=np.array([1]), pred=np.array([0]), classes=["x", "y"], freq=np.array([7]))
    assert h.tolist() == ["<b>cat</b><br>label: y, predicted: x<br>frequency: 7"]
    assert marker_size(300) > marker_size(5000) > marker_size(100_000) >= 2


def test_five_thousand_points_are_quick():
    coords, rows, texts, label, pred = _points(m=5000)
    t0 = time.perf_counter()
    fig = map_figure(coords, rows, texts, colour_by="label", label=label, pred=pred, classes=CLASSES)
    fig.to_json()
    assert time.perf_counter() - t0 < 1.0
    assert sum(len(t.x) for t in _member_traces(fig)) == 5000


def test_message_figure_keeps_the_maps_height():
    fig = message_figure("The map is not ready yet.")
    assert fig.layout.height == 640 and fig.layout.annotations[0].text == "The map is not ready yet."


def test_small_maps_write_each_points_text_and_large_ones_do_not():
    """A character map (98 points) is read without hovering: every point's text is drawn beside it; a map
    of thousands stays markers only. Hover texts are the same either way."""
    coords, rows, _, *_ = _points(m=98)
    chars = ["\n", " ", "e", "<", "&"] + [f"c{i}" for i in range(93)]
    (small,) = map_figure(coords, rows, chars).data
    assert small.mode == "markers+text" and list(small.text[:5]) == ["⏎", "␣", "e", "<", "&"]  # drawn as typed
    assert "<b>␣</b>" in small.hovertext[1] and "<b>&lt;</b>" in small.hovertext[3]  # hover is HTML: escaped
    coords, rows, texts, *_ = _points(m=500)
    (large,) = map_figure(coords, rows, texts).data
    assert large.mode == "markers" and large.text is None and large.hovertext is not None
