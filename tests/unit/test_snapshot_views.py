"""Pure pieces of the snapshot pages: the step slider's rules and the kernel mosaic."""
from __future__ import annotations

import numpy as np

from dashboard.views.kernels.figures import mosaic
from dashboard.snapshot_slider import keeps_following, slider_marks, slider_value, step_at


def test_slider_follows_the_newest_unless_told_otherwise():
    steps = [0, 100, 200, 300]
    assert slider_value(steps, known=None, index=None, follow=["on"], initial_step=None) == 3
    assert slider_value(steps, known=None, index=None, follow=[], initial_step=150) == 1  # shared URL: at/before
    assert slider_value(steps, known=None, index=None, follow=[], initial_step=-5) == 0
    assert slider_value(steps + [400], known=steps, index=1, follow=[], initial_step=None) == 1  # stays put
    assert slider_value(steps + [400], known=steps, index=1, follow=["on"], initial_step=None) == 4
    assert keeps_following(3, steps, ["on"]) and not keeps_following(1, steps, ["on"])
    assert step_at(steps, 2) == 200 and step_at(steps, 99) == 300 and step_at([], 0) is None
    marks = slider_marks(list(range(0, 5000, 100)))
    assert 0 in marks and 49 in marks and len(marks) <= 10


def test_mosaic_places_every_kernel_and_indexes_it():
    images = np.arange(5 * 3 * 3, dtype=float).reshape(5, 3, 3)
    tiles, index = mosaic(images, cols=3)
    assert tiles.shape == (2 * 4 - 1, 3 * 4 - 1)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(tiles[r * 4:r * 4 + 3, c * 4:c * 4 + 3], images[k])
        assert (index[r * 4:r * 4 + 3, c * 4:c * 4 + 3] == k).all()
    assert np.isnan(tiles[3, :]).all() and (index[3, :] == -1).all()  # gaps
    assert (index == -1).sum() == np.isnan(tiles).sum()


# -- hidden states: the direction choice of a bidirectional run ---------------------------------------
def test_side_by_side_choice_round_trips_through_the_url():
    from dashboard.views.hidden_states.view import View, parse_view

    v = View(run="ab12", dir="both", sel=(50, 55), match="bwd", thr=0.25)
    query = v.to_query()
    assert query["dir"] == "both" and query["match"] == "bwd"
    back = parse_view(query)
    assert back == v and back.keys == ["l0.fwd.h", "l0.bwd.h"] and back.key == "l0.fwd.h"
    for d in ("fwd", "bwd"):
        assert parse_view(View(dir=d, layer=1, state="c").to_query()).keys == [f"l1.{d}.c"]
    # no choice made: the run's default decides; junk falls back the same way
    assert parse_view({}).dir is None and "dir" not in View().to_query() and "match" not in View().to_query()
    junk = parse_view({"dir": "sideways", "match": "left"})
    assert junk.dir is None and junk.match == "both" and junk.keys == ["l0.fwd.h"]


def test_both_is_offered_and_the_default_only_for_bidirectional_runs():
    from dashboard.views.hidden_states.view import default_dir, dir_options, resolve_dir, run_directions

    uni, bi = {"directions": ["fwd"]}, {"directions": ["fwd", "bwd"]}
    assert [o["value"] for o in dir_options(uni)] == ["fwd"]
    assert [o["label"] for o in dir_options(uni)] == ["forward"]  # one-directional: as before
    assert [o["value"] for o in dir_options(bi)] == ["both", "fwd", "bwd"]
    assert dir_options(bi)[0]["label"] == "both, side by side"
    assert default_dir(["fwd", "bwd"]) == "both" and default_dir(["fwd"]) == "fwd"
    assert resolve_dir(None, ["fwd", "bwd"]) == "both" and resolve_dir("bwd", ["fwd", "bwd"]) == "bwd"
    assert resolve_dir("both", ["fwd"]) == "fwd" and resolve_dir("bwd", ["fwd"]) == "fwd"
    # before its first snapshot a run's spec says whether it is bidirectional
    assert run_directions({"spec": {"model": {"bidirectional": True}}}) == ["fwd", "bwd"]
    assert run_directions({"spec": {"model": {}}}) == ["fwd"] and run_directions(None) == ["fwd"]
    assert run_directions({"spec": {"model": {"bidirectional": True}}}, [{"meta": uni}]) == ["fwd"]


def test_backward_margins_are_mirrored_and_correlations_are_labelled_by_direction():
    from dashboard.views.hidden_states.panels import both_correlations
    from dashboard.views.hidden_states.select import margins

    assert margins("fwd", 2, 1) == (2, 1) and margins("bwd", 2, 1) == (1, 2)
    r, labels = both_correlations({"fwd": np.array([0.1, -0.8]), "bwd": np.array([0.95, 0.0, 0.2])})
    assert labels == ["fwd 0", "fwd 1", "bwd 0", "bwd 1", "bwd 2"]
    assert labels[int(np.argmax(np.abs(r)))] == "bwd 0"
