"""Bundled natural images: found offline, whitened, cut into patches reproducibly."""
from __future__ import annotations

import numpy as np
import pytest

from backend.tasks import images


def radial_power(img: np.ndarray, bands: list[tuple[float, float]]) -> list[float]:
    p = np.abs(np.fft.fft2(img - img.mean())) ** 2
    f = np.sqrt(np.fft.fftfreq(img.shape[0])[:, None] ** 2 + np.fft.fftfreq(img.shape[1])[None, :] ** 2)
    return [float(p[(f >= lo) & (f < hi)].mean()) for lo, hi in bands]


def test_every_image_loads_from_its_installed_package():
    loaded = images.natural_images(gray=True)
    assert [name for name, _ in loaded] == list(images.IMAGE_NAMES)
    for name, img in loaded:
        assert img.ndim == 2 and min(img.shape) >= 150, name
        assert abs(img.mean()) < 1e-3 and abs(img.std() - 1) < 1e-3
    rgb = images.natural_images(gray=False, names=("astronaut", "camera"))
    assert [im.shape[2] for _, im in rgb] == [3, 3]


def test_whitening_flattens_the_power_spectrum():
    raw = images.downsample2(images.load_image("skimage", "data/camera.png"))
    bands = [(0.02, 0.05), (0.15, 0.25)]
    low_raw, mid_raw = radial_power(raw, bands)
    low_w, mid_w = radial_power(images.whiten(raw), bands)
    # natural images have ~1/f^2 power: low frequencies dominate by orders of magnitude (73x here);
    # whitened, only a little (2.4x: the camera image falls slightly faster than 1/f^2)
    assert low_raw / mid_raw > 20
    assert low_w / mid_w < 0.1 * low_raw / mid_raw and low_w / mid_w < 4


def test_patches_are_reproducible_zero_mean_and_from_the_asked_columns():
    imgs = images.natural_images(names=("camera", "moon"))
    a = images.sample_patches(imgs, 500, 9, seed=3)
    b = images.sample_patches(imgs, 500, 9, seed=3)
    assert a.shape == (500, 1, 9, 9) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, images.sample_patches(imgs, 500, 9, seed=4))
    assert np.abs(a.mean(axis=(2, 3))).max() < 1e-5
    rng = np.random.default_rng(0)
    corners = images.patch_corners((100, 200), 1000, 8, rng, cols=(0.75, 1.0))
    assert corners[:, 1].min() >= 150 and corners[:, 1].max() <= 192
    x, y = images.labelled_patches(images.natural_images(gray=False, names=("astronaut", "coffee")), 30, 16, 0,
                                   (0.0, 0.75))
    assert x.shape == (60, 3, 16, 16) and sorted(np.bincount(y).tolist()) == [30, 30]


def test_unknown_image_and_missing_file_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="unknown images"):
        images.natural_images(names=("lena",))
    monkeypatch.setattr(images, "image_path", lambda package, rel: tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="reinstall it"):
        images.load_image("skimage", "data/camera.png")
    with pytest.raises(ValueError, match="no room"):
        images.patch_corners((5, 5), 1, 9, np.random.default_rng(0))
