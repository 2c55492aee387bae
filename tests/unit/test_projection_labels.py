"""Readable word maps: labels that never overlap, points that can glide (SVG), restructured maps said so."""
from __future__ import annotations

import time

import numpy as np

from dashboard.views.projections.figures import map_figure
from dashboard.views.projections.glide import GLIDE_MAX, glide, label_points
from dashboard.views.projections.labels import label_boxes, overlapping, pick_labels
from dashboard.views.projections.map_view import restructured_note

RANGES = [[-30.0, 30.0], [-30.0, 30.0]]


def _words(n: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    coords = np.r_[rng.normal(scale=8, size=(n // 2, 2)), rng.normal(scale=2, size=(n - n // 2, 2)) + 10]
    texts = np.array([f"w{i}" + "x" * int(rng.integers(0, 9)) for i in range(n)])
    freq = rng.zipf(1.5, size=n).astype(np.float64)
    return coords, texts, freq


def test_shown_label_boxes_never_overlap():
    coords, texts, freq = _words()
    keep = pick_labels(coords, texts, freq, RANGES)
    assert 30 < len(keep) < len(coords)  # a readable subset, not all and not none
    assert len(set(keep.tolist())) == len(keep)
    assert not overlapping(label_boxes(coords[keep], texts[keep], RANGES))
    # smaller plot or bigger font: fewer labels, still apart
    fewer = pick_labels(coords, texts, freq, RANGES, plot_px=(300, 300))
    assert len(fewer) < len(keep) and not overlapping(label_boxes(coords[fewer], texts[fewer], RANGES, (300, 300)))


def test_the_most_frequent_words_are_labelled_first_and_reserved_room_is_kept():
    coords = np.array([[0.0, 0.0], [0.05, 0.0], [0.1, 0.0], [20.0, 20.0]])
    texts = np.array(["the", "of", "and", "far"])
    freq = np.array([10.0, 50.0, 1.0, 2.0])
    assert pick_labels(coords, texts, freq, RANGES).tolist() == [1, 3]  # "of" wins the crowded spot
    # the searched word (drawn by the figure) reserves its place: nothing else is written over it
    assert pick_labels(coords, texts, freq, RANGES, reserved=[2]).tolist() == [3]


def test_points_outside_the_ranges_and_empty_texts_are_not_labelled():
    coords = np.array([[0.0, 0.0], [100.0, 0.0], [10.0, 10.0]])
    assert pick_labels(coords, np.array(["a", "b", ""]), None, RANGES).tolist() == [0]


def test_overlapping_detects_overlap():
    assert overlapping([[0, 0, 2, 2], [1, 1, 3, 3]])
    assert not overlapping([[0, 0, 1, 1], [1, 0, 2, 1]])  # touching edges are fine


def test_five_thousand_points_are_labelled_quickly():
    coords, texts, freq = _words(5000)
    t0 = time.perf_counter()
    keep = pick_labels(coords, texts, freq, RANGES)
    assert time.perf_counter() - t0 < 1.0 and len(keep) > 30


def test_word_map_glides_and_writes_a_non_overlapping_subset():
    coords, texts, freq = _words(800)
    rows = np.arange(1, 801)
    fig = map_figure(coords, rows, texts, colour_by="frequency", freq=freq, ranges=RANGES)
    fig = label_points(glide(fig), coords, rows, texts, priority=freq, ranges=RANGES, first=[5])
    (points,) = [t for t in fig.data if t.meta == "points"]
    assert points.type == "scatter" and points.mode == "markers+text"  # SVG: it can transition
    written = np.array([bool(t) for t in points.text])
    assert written[5] and 30 < written.sum() < 800  # the neighbour asked first is written
    assert not overlapping(label_boxes(coords[written], texts[written], RANGES))
    assert points.hovertext is not None and len(points.hovertext) == 800  # the rest: on hover


def test_big_maps_stay_webgl():
    coords, texts, _ = _words(GLIDE_MAX + 1)
    fig = glide(map_figure(coords, np.arange(len(coords)), texts))
    assert {t.type for t in fig.data} == {"scattergl"}


def test_restructured_note():
    assert restructured_note({"restructured": False}, 500, "tokens") is None
    assert restructured_note({}, 500, "tokens") is None
    note = restructured_note({"restructured": True, "neighbourhood_overlap": 0.2}, 1500, "tokens")
    assert note.startswith("the layout changed a lot at step 1,500: the words moved to new places")
    assert "points moved" in restructured_note({"restructured": True}, 0, "penultimate")
