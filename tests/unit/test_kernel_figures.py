"""Pure figures of the kernels page: colour mosaics, 1-D line grids, Gabor-like curves of several runs."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from dashboard.views.kernels.figures import (GAP_GREY, gabor_curve_figure, kernel_mosaic, line_grid, mosaic, rgb_kernels,
                                       rgb_mosaic, rgb_tiles)


def _rgb_weight(n: int = 5, size: int = 3, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=(n, 3, size, size)) * 0.1
    w[0] = 0.0                  # kernel 0: all zeros -> mid-grey
    w[1, 0, 0, 0] = 0.5         # the layer's largest |weight| (red channel) -> 255
    w[2, 2, 1, 1] = -0.5        # as large, negative (blue channel) -> 0
    return w


def test_rgb_composite_maps_zero_to_mid_grey_and_the_extreme_weight_to_0_and_255():
    w = _rgb_weight()
    colours = rgb_kernels(w)
    assert colours.shape == (5, 3, 3, 3)
    assert np.allclose(colours[0], 0.5)
    assert colours[1, 0, 0, 0] == 1.0 and colours[2, 1, 1, 2] == 0.0
    assert colours.min() >= 0 and colours.max() <= 1

    rgb, index = rgb_tiles(w, cols=5)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 5 * 4 - 1, 3)
    assert set(np.unique(rgb[index == 0])) <= {127, 128}            # zero weight: mid-grey
    assert rgb[0, 4, 0] == 255                                       # kernel 1's top-left pixel, red channel
    assert rgb[1, 2 * 4 + 1, 2] == 0                                 # kernel 2's centre pixel, blue channel


def test_rgb_composite_gaps_are_grey_and_the_channels_are_scaled_jointly():
    w = _rgb_weight()
    rgb, index = rgb_tiles(w, cols=3)                                 # 2 rows: a row gap and column gaps
    gaps = rgb[index < 0]
    assert len(gaps) and (gaps == GAP_GREY).all()                    # R = G = B: grey
    # the same weight in two channels gives the same value (one scale for all three)
    w2 = np.zeros((1, 3, 2, 2))
    w2[0, 0, 0, 0] = w2[0, 1, 0, 0] = 0.25
    w2[0, 2, 1, 1] = 1.0
    c = rgb_kernels(w2)[0]
    assert c[0, 0, 0] == c[0, 0, 1] == 0.625 and c[1, 1, 2] == 1.0


def test_rgb_mosaic_is_one_image_whose_hover_label_lands_on_that_kernels_pixels():
    w = _rgb_weight(n=4, size=3)
    labels = [f"kernel {k}: Gabor-like<br>R² 0.{k}" for k in range(4)]
    fig = rgb_mosaic(w, labels, "conv1")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Image)
    img = fig.data[0]
    z = np.array(img.z)
    text = np.array(img.text, dtype=object)
    custom = np.array(img.customdata)
    _, index = mosaic(np.zeros((4, 3, 3)))
    assert z.shape == index.shape + (3,) and text.shape == index.shape and custom.shape == index.shape
    for k in range(4):
        assert all(t.startswith(labels[k] + "<br>weights R ") for t in text[index == k])
        assert (custom[index == k] == k).all()
    assert set(text[index < 0]) == {""} and (custom[index < 0] == -1).all()
    # hover also shows the pixel's three weights
    r, c = np.argwhere(index == 1)[0]
    red, green, blue = w[1, :, 0, 0]
    assert text[r, c].endswith(f"weights R {red:.3f} · G {green:.3f} · B {blue:.3f}")


def test_heatmap_mosaic_of_1d_kernels_over_several_channels_has_one_tile_per_kernel():
    w = np.random.default_rng(1).normal(size=(100, 32, 3))
    fig = kernel_mosaic(w, [f"kernel {k}" for k in range(100)], "conv1d")
    index = np.array(fig.data[0].customdata)
    assert set(np.unique(index)) == set(range(-1, 100))
    rows, cols = np.argwhere(index == 7).T
    assert rows.max() - rows.min() + 1 == 32 and cols.max() - cols.min() + 1 == 3


def test_line_grid_has_one_line_per_kernel_in_one_trace():
    w = np.random.default_rng(2).normal(size=(100, 5))
    labels = [f"kernel {k}" for k in range(100)]
    fig = line_grid(w, labels, "conv1d")
    lines = [t for t in fig.data if t.name == "kernels"]
    assert len(lines) == 1
    y = [math.nan if v is None else v for v in lines[0].y]
    custom = list(lines[0].customdata)
    segments, current = [], []
    for v, k in zip(y, custom):
        if math.isnan(v):
            segments.append(current)
            current = []
        else:
            current.append(k)
    assert len(segments) == 100 and all(seg == [k] * 5 for k, seg in enumerate(segments))
    assert all(f"kernel {k}<br>" in lines[0].text[k * 6] for k in range(100))
    # each kernel stays inside its own cell (cells are 1 tall, rows going down from 0)
    for k, seg in enumerate(np.split(np.array(y), np.flatnonzero(np.isnan(y)) + 1)[:100]):
        seg = seg[~np.isnan(seg)]
        row = math.floor(-seg.mean())
        assert (seg < -row).all() and (seg > -row - 1).all(), k
    lo, hi = fig.layout.yaxis.range
    assert lo <= np.nanmin(y) and np.nanmax(y) <= hi


def test_gabor_curve_of_several_runs_has_one_trace_per_run_and_dashed_initial_values():
    series = [{"name": "run A", "steps": [0, 10, 20], "fractions": [0.1, 0.3, 0.5]},
              {"name": "run B", "steps": [0, 15], "fractions": [0.2, 0.6]}]
    fig = gabor_curve_figure(series=series)
    solid = [t for t in fig.data if (t.line.dash or "solid") == "solid"]
    dashed = [t for t in fig.data if t.line.dash == "dash"]
    assert [t.name for t in solid] == ["run A", "run B"]
    assert [t.y for t in dashed] == [(0.1, 0.1), (0.2, 0.2)]
    assert all("initialisation" in t.name for t in dashed)
    assert all(t.x == (0, 20) for t in dashed)           # across the whole step range


def test_gabor_curve_names_a_run_without_a_score_and_keeps_the_single_series_call():
    fig = gabor_curve_figure(series=[{"name": "run A", "steps": [0, 10], "fractions": [0.1, 0.4]},
                                     {"name": "run X", "note": "3x3 kernels, no Gabor score"}])
    names = [t.name for t in fig.data]
    assert "run X: 3x3 kernels, no Gabor score" in names
    assert any("3x3 kernels, no Gabor score" in a.text for a in fig.layout.annotations)

    old = gabor_curve_figure([0, 10, 20], [0.0, 0.25, 0.5], "features.0")
    assert "features.0" in old.layout.title.text
    assert [t.y for t in old.data if t.line.dash == "dash"] == [(0.0, 0.0)]
    assert len([t for t in old.data if (t.line.dash or "solid") == "solid"]) == 1
