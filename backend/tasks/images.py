"""Natural photographs that ship inside installed packages, whitened, and patches cut from them.

No downloads: the images are read straight from the files that scikit-image
(``skimage/data/*.png``) and scikit-learn (``sklearn/datasets/images/*.jpg``) install,
never through ``skimage.data``'s fetchers (some of which reach for the network).

Preprocessing, as in Olshausen & Field (1996) and the sparse-coding literature:
2x downsampling (block mean), per-image standardisation, then 1/f whitening, a filter
``R(f) = f * exp(-(f / f0)^4)`` that flattens the 1/f^2 power spectrum of natural images
(so no single frequency band dominates) and cuts the corner frequencies where sampling
noise lives. Whitened images are what makes oriented, localised edge detectors the
cheapest code for a sparse autoencoder.

Example::

    images = natural_images()                       # [(name, (h, w) float32 whitened), ...]
    x = sample_patches(images, 1000, 9, seed=0)     # (1000, 1, 9, 9), zero mean per patch
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

# (name, package, file): natural scenes and textures only (no binary silhouettes, text pages,
# star fields or motion blur, whose statistics are not those of natural images).
IMAGE_FILES: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("brick", "skimage", "data/brick.png"),
    ("camera", "skimage", "data/camera.png"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("coins", "skimage", "data/coins.png"),
    ("grass", "skimage", "data/grass.png"),
    ("gravel", "skimage", "data/gravel.png"),
    ("moon", "skimage", "data/moon.png"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("motorcycle", "skimage", "data/motorcycle_left.png"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
)
IMAGE_NAMES = tuple(name for name, _, _ in IMAGE_FILES)
WHITEN_F0 = 0.4  # cycles/pixel where the whitening filter rolls off (Nyquist is 0.5)


def image_path(package: str, rel: str) -> Path:
    """Where an installed package keeps one of its bundled images."""
    return Path(str(resources.files(package).joinpath(rel)))


def load_image(package: str, rel: str, gray: bool = True) -> np.ndarray:
    """One bundled image as float32 in [0, 1]: ``(h, w)`` when ``gray``, else ``(h, w, 3)``."""
    from PIL import Image

    path = image_path(package, rel)
    if not path.exists():
        raise FileNotFoundError(f"bundled image {rel} not found in the installed {package} package ({path}); "
                                f"reinstall it (`make setup`)")
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32) / 255.0
    return arr


def downsample2(img: np.ndarray) -> np.ndarray:
    """Half the size by 2x2 block means (first two axes)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    img = img[:h, :w]
    return img.reshape(h // 2, 2, w // 2, 2, *img.shape[2:]).mean(axis=(1, 3))


def whiten(img: np.ndarray, f0: float = WHITEN_F0) -> np.ndarray:
    """1/f-whitened copy of a 2-D image (or of each channel of ``(h, w, c)``), zero mean, unit sd."""
    if img.ndim == 3:
        return np.stack([whiten(img[..., c], f0) for c in range(img.shape[2])], axis=-1)
    x = (img - img.mean()) / (img.std() + 1e-8)
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.fftfreq(x.shape[1])[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    out = np.real(np.fft.ifft2(np.fft.fft2(x) * (f * np.exp(-(f / f0) ** 4))))
    return ((out - out.mean()) / (out.std() + 1e-8)).astype(np.float32)


def natural_images(gray: bool = True, names: tuple[str, ...] = IMAGE_NAMES) -> list[tuple[str, np.ndarray]]:
    """The bundled photographs, 2x downsampled and whitened: ``[(name, image), ...]``."""
    wanted = set(names)
    unknown = wanted - set(IMAGE_NAMES)
    if unknown:
        raise KeyError(f"unknown images {sorted(unknown)}; known: {', '.join(IMAGE_NAMES)}")
    return [(name, whiten(downsample2(load_image(pkg, rel, gray))))
            for name, pkg, rel in IMAGE_FILES if name in wanted]


def patch_corners(shape: tuple[int, int], n: int, size: int, rng: np.random.Generator,
                  cols: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``n`` random top-left corners of ``size`` patches inside columns ``cols`` (fractions of the width)."""
    h, w = shape
    lo, hi = int(cols[0] * w), int(cols[1] * w) - size
    if h < size or hi < lo:
        raise ValueError(f"a {h}x{w} image has no room for {size}x{size} patches in columns {cols}")
    return np.stack([rng.integers(0, h - size + 1, n), rng.integers(lo, hi + 1, n)], axis=1)


def cut(img: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Patches at ``corners``, channels first: ``(n, c, size, size)`` (c = 1 for a 2-D image)."""
    view = np.lib.stride_tricks.sliding_window_view(img, (size, size), axis=(0, 1))  # (H', W', [c,] s, s)
    out = view[corners[:, 0], corners[:, 1]]
    return (out[:, None] if img.ndim == 2 else out).astype(np.float32)


def sample_patches(images: list[tuple[str, np.ndarray]], n: int, size: int, seed: int,
                   cols: tuple[float, float] = (0.0, 1.0), centre: bool = True) -> np.ndarray:
    """``n`` random ``size``-square patches drawn evenly over ``images``: ``(n, c, size, size)``.

    ``centre`` subtracts each patch's mean (per channel): the DC component carries no
    shape, and leaving it in makes the first filters learn brightness blobs.
    """
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    first = images[0][1]
    out = np.empty((n, 1 if first.ndim == 2 else first.shape[2], size, size), np.float32)
    for i, (_, img) in enumerate(images):
        rows = np.flatnonzero(which == i)
        if len(rows):
            out[rows] = cut(img, patch_corners(img.shape[:2], len(rows), size, rng, cols), size)
    if centre:
        out -= out.mean(axis=(2, 3), keepdims=True)
    return out


def labelled_patches(images: list[tuple[str, np.ndarray]], per_image: int, size: int, seed: int,
                     cols: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``per_image`` patches of each image from columns ``cols``, with the image's index as label."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, (_, img) in enumerate(images):
        xs.append(cut(img, patch_corners(img.shape[:2], per_image, size, rng, cols), size))
        ys.append(np.full(per_image, label, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]
