"""Cell selection and matching agree with brute force; correlations with numpy; view state round-trips."""
from __future__ import annotations

import numpy as np
import pytest

from backend.analysis.cells import (SelectionError, candidate_ranges, correlations, extra_cells, rank_candidates,
                                    saturation, select_cells)
from dashboard.views.hidden_states.view import View, parse_view

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("seed", range(20))
def test_select_cells_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    w = (rng.random((30, 40)) > 0.4).astype(np.float32) * rng.random((30, 40))
    start = int(rng.integers(0, 25))
    stop = int(rng.integers(start + 1, 30))
    ob, oa, thr = int(rng.integers(0, 3)), int(rng.integers(0, 3)), 0.2
    got = select_cells(w, start, stop, thr, ob, oa).tolist()
    want = [c for c in range(40)
            if all(w[t, c] > thr for t in range(start, stop))
            and all(w[t, c] <= thr for t in range(max(0, start - ob), start))
            and all(w[t, c] <= thr for t in range(stop, min(30, stop + oa)))]
    assert got == want


def test_select_rejects_empty_or_outside_ranges():
    w = np.zeros((10, 3))
    for start, stop in [(5, 5), (-1, 3), (8, 12)]:
        with pytest.raises(SelectionError, match="outside"):
            select_cells(w, start, stop, 0.5)


def _brute_candidates(cols, thr, need):
    on = cols > thr
    count = on.sum(0)
    runs, t = [], 0
    while t < cols.shape[1]:
        if count[t] >= need:
            s = t
            while t < cols.shape[1] and count[t] >= need:
                t += 1
            runs.append((s, t, int(on[:, s:t].all(1).sum())))
        else:
            t += 1
    return runs


@pytest.mark.parametrize("seed", range(20))
def test_candidate_ranges_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    cols = (rng.random((k, 300)) > 0.3).astype(np.float16)
    need = int(rng.integers(1, k + 1))
    c = candidate_ranges(cols, 0.5, min_common=need)
    assert list(zip(c.start.tolist(), c.stop.tolist(), c.common.tolist())) == _brute_candidates(cols, 0.5, need)


def test_candidates_drop_runs_longer_than_max_len_and_need_a_selection():
    cols = np.array([[1, 1, 1, 1, 0, 1, 1, 0]], dtype=np.float16)
    c = candidate_ranges(cols, 0.5, max_len=2)
    assert c.start.tolist() == [5] and c.stop.tolist() == [7]
    with pytest.raises(SelectionError, match="no cells are selected"):
        candidate_ranges(np.zeros((0, 8), np.float16), 0.5)


def test_ranking_is_common_then_fewest_extra_then_closest_length_then_position():
    from backend.analysis.cells import Candidates
    c = Candidates(np.array([0, 10, 20, 30, 40]), np.array([3, 13, 25, 33, 43]), np.array([2, 3, 3, 3, 3]))
    extra = np.array([0, 5, 0, 0, 1])
    order = rank_candidates(c, query_len=3, extra=extra).tolist()
    assert order == [3, 2, 4, 1, 0]  # 30: 3 common, 0 extra, length 3; 20: length 5; 40: 1 extra; ...


def test_extra_cells_counts_unselected_cells_on_throughout():
    rows = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float32)
    assert extra_cells(rows, np.array([0]), 0.5) == 1  # cell 1 (cell 2 is off at the second token)


def test_correlations_match_numpy_and_constant_cells_give_zero():
    values = RNG.normal(size=(500, 130)).astype(np.float16)
    values[:, 7] = 0.25  # constant
    tracks = np.stack([values[:, 3].astype(np.float64) * 2 + 1, RNG.normal(size=500)])
    r = correlations(values, tracks)
    with np.errstate(invalid="ignore", divide="ignore"):  # the constant cell: numpy gives nan
        want = np.array([[np.corrcoef(tracks[i], values[:, c].astype(np.float64))[0, 1] for c in range(130)]
                         for i in range(2)])
    want[:, 7] = 0.0
    np.testing.assert_allclose(r, want, atol=1e-5)
    assert r[0, 3] == pytest.approx(1.0, abs=1e-6)


def test_saturation_fractions():
    gate = np.array([[0.05, 0.5], [0.95, 0.5], [0.02, 0.99], [0.5, 0.5]])
    np.testing.assert_allclose(saturation(gate), [[0.5, 0.0], [0.25, 0.25]])


def test_view_round_trips_through_the_url_and_ignores_garbage():
    v = View(run="ab12", step=300, layer=1, dir="bwd", state="c", pos=40, thr=0.25, sel=(50, 55), ob=2, oa=1,
             track="depth", gate="f", win=160)
    assert parse_view(v.to_query()) == v
    assert parse_view({}) == View()
    junk = parse_view({"pos": "-7", "thr": "abc", "sel": "9-3", "layer": "x", "ob": "999"})
    assert (junk.pos, junk.thr, junk.sel, junk.layer, junk.ob) == (0, 0.3, None, 0, 50)


@pytest.mark.parametrize("seed", range(10))
def test_above_on_float16_bits_equals_float_comparison(seed):
    from backend.analysis.cells import above

    rng = np.random.default_rng(seed)
    values = (rng.normal(size=5000) * 10.0 ** rng.integers(-3, 4, size=5000)).astype(np.float16)
    values[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    for threshold in [0.0, 0.3, 1 / 3, 0.1, 2.5, 1e-6, 70000.0, float(rng.random()), -0.2]:
        np.testing.assert_array_equal(above(values, threshold), values.astype(np.float64) > threshold)


def test_suggested_threshold_keeps_the_selected_cells_off_around_the_range():
    from backend.analysis.cells import Brushed, suggest_threshold

    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 0.2, size=(90, 16)).astype(np.float32)  # noise: rarely above 0.2
    w[40:45, [2, 7]] = 0.8                                       # two cells fire over the brushed range only
    w[:, 9] = 0.95                                               # one is on everywhere
    s = suggest_threshold([Brushed(w, 40, 45, off_before=1)])  # off before 1 (the default) leaves it out
    assert s is not None and s.contrast == 1.0 and 0.2 <= s.threshold < 0.8
    assert select_cells(w, 40, 45, s.threshold, 1, 0).tolist() == [2, 7] and s.cells == 2
    # off before 0: one threshold cannot leave it out, so the best contrast is lower
    assert suggest_threshold([Brushed(w, 40, 45, off_before=0)]).contrast < 1
    # both directions share one threshold; their cells add up
    both = suggest_threshold([Brushed(w, 40, 45, 1, 0), Brushed(w[::-1], 45, 50, 1, 0)])
    assert both.cells == 4 and both.threshold == s.threshold
    # nothing stays above 0 over the range: no suggestion
    assert suggest_threshold([Brushed(-np.abs(w), 40, 45)]) is None
