"""Pure pieces of the snapshot pages: the step slider's rules and the kernel mosaic."""
from __future__ import annotations

import numpy as np

from dashboard.figures.kernels import mosaic
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
