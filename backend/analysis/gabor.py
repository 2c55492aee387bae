"""Gabor fits of 2D conv kernels: parameters, R^2, orientation selectivity, "Gabor-like".

Pure numpy, off the training loop (the dashboard imports it; it never imports torch).

Model, on pixel coordinates ``x`` = column, ``y`` = row (row 0 at the top, as the kernel
is drawn)::

    x' =  (x - x0) cos(theta) + (y - y0) sin(theta)      # along the wave vector
    y' = -(x - x0) sin(theta) + (y - y0) cos(theta)      # along the stripes
    g  = amplitude * exp(-x'^2 / (2 sigma_x^2) - y'^2 / (2 sigma_y^2)) * cos(2 pi frequency x' + phase) + offset

``theta`` is the direction of the **wave vector** (across the stripes), in [0, pi), measured
from the +x (column) axis towards +y (down the rows): vertical stripes have theta 0, horizontal
stripes pi/2. ``frequency`` is in cycles per pixel, ``sigma_x`` is the envelope's width across
the stripes, ``sigma_y`` along them, ``amplitude`` >= 0 and ``phase`` in (-pi, pi].

Fit: least squares, by a batched Levenberg-Marquardt over all kernels x starts at once
(analytic Jacobian, per-problem damping and convergence, bounds by projection: centre within
the kernel, envelope widths 0.4 to 2 x its size, wave vector inside the Nyquist square, where
a sampled wave has one representation). Starts come from the peak of the kernel's zero-padded
power spectrum (orientation, frequency), its energy centroid and spread (centre, envelope),
with amplitude, phase and offset solved linearly for that geometry; the others jitter these.
The start with the least squared error wins. 64 kernels of 7x7 take 0.1-0.2 s on 2 cores
(``bench/gabor.py``); a kernel's fit does not depend on the other kernels of the batch.

R^2 alone does not tell a Gabor from noise (Gaussian-smoothed noise, sigma 1 pixel, fits 60%
of 7x7 kernels at R^2 >= 0.7), so a kernel is **Gabor-like** when ``r2 >= R2_MIN`` and its
orientation selectivity (:func:`orientation_selectivity`, from the power spectrum) is
``>= SELECTIVITY_MIN``; it is **localized** when ``frequency * sigma_x <= LOCALIZED_MAX``
(few cycles across the envelope, Ringach's n_x; meaningful for Gabor-like kernels).
Measured on 500 kernels each: Gabor-like are 0% of white noise, 0.6% / 4% / 12% of 7x7
smoothed noise with sigma 0.7 / 1 / 1.5 pixels (9x9: 0% / 1% / 8%), 0% of pixel-shuffled
Gabors. Strongly smoothed noise is a random ramp or blob, which no measure can tell from an
edge detector. Kernels smaller than 7x7 have too few pixels for the claim (random 3x3
kernels fit at R^2 >= 0.7): :func:`fit_gabors` refuses them; a page says so instead of a score.

Example::

    images = kernel_images(conv1_weight)          # (out, in, h, w) -> (out, h, w)
    fit = fit_gabors(images)
    share = fit.gabor_like.mean()
    shown = gabor(fit.params[0], images.shape[1:])   # the fitted kernel, beside the real one
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ._gabor_lm import _A, _C, _CHUNK, _F, _SX, _as_float, _canonical, _fit, _grid, _model

MIN_SIZE = 7           # smaller kernels: too few pixels to tell a Gabor from noise
R2_MIN = 0.7
SELECTIVITY_MIN = 0.4
LOCALIZED_MAX = 0.75   # frequency * sigma_x
PARAM_NAMES = ("amplitude", "x0", "y0", "theta", "frequency", "phase", "sigma_x", "sigma_y", "offset")


@dataclass(frozen=True)
class GaborFit:
    """Per-kernel fit results, one array entry per kernel (see the module docstring for the model)."""

    amplitude: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    theta: np.ndarray        # wave-vector direction, radians in [0, pi)
    frequency: np.ndarray    # cycles per pixel
    phase: np.ndarray        # radians in (-pi, pi]
    sigma_x: np.ndarray      # envelope width across the stripes, pixels
    sigma_y: np.ndarray      # envelope width along the stripes, pixels
    offset: np.ndarray
    r2: np.ndarray           # 1 - SS_res / SS_tot; 0 for constant kernels
    selectivity: np.ndarray  # orientation_selectivity of the kernel, 0..1
    localized: np.ndarray    # bool: frequency * sigma_x <= LOCALIZED_MAX
    gabor_like: np.ndarray   # bool: see gabor_like()

    def __len__(self) -> int:
        return len(self.r2)

    @property
    def params(self) -> np.ndarray:
        """``(n, 9)`` parameters in :data:`PARAM_NAMES` order, as :func:`gabor` takes them."""
        return np.stack([getattr(self, name) for name in PARAM_NAMES], axis=-1)

    def row(self, i: int) -> dict:
        """Kernel ``i``'s results as a dict of Python scalars (for a table or a JSON record)."""
        return {f.name: getattr(self, f.name)[i].item() for f in fields(self)}


def gabor_like(fit: GaborFit) -> np.ndarray:
    """The one criterion: ``r2 >= R2_MIN`` and ``selectivity >= SELECTIVITY_MIN`` (bool per kernel)."""
    return (np.asarray(fit.r2) >= R2_MIN) & (np.asarray(fit.selectivity) >= SELECTIVITY_MIN)


def gabor(params, size) -> np.ndarray:
    """Render kernels from parameters: ``(9,)`` -> ``(h, w)``, ``(n, 9)`` -> ``(n, h, w)``.

    ``size`` is ``h`` (square) or ``(h, w)``; parameters in :data:`PARAM_NAMES` order.

    >>> k = gabor([1, 3, 3, 0, 0.25, 0, 2, 2, 0], 7)   # vertical stripes, 4 pixels a cycle
    >>> k.shape, float(k[3, 3]), round(float(k[3, 5]), 6)
    ((7, 7), 1.0, -0.606531)
    """
    p = np.asarray(params, dtype=np.float64)
    h, w = (size, size) if np.isscalar(size) else tuple(size)
    x, y = _grid(h, w)
    return _model(p.reshape(-1, 9), x, y)[0].reshape(p.shape[:-1] + (h, w)).copy()


def orientation_selectivity(kernels: np.ndarray, pad: int | None = None) -> np.ndarray:
    """How much of a kernel's gradient power lies at one orientation: 0 isotropic, 1 a single orientation.

    From the power spectrum ``P(k)`` of the mean-removed kernel, zero-padded to an odd
    ``pad`` x ``pad`` grid (default ``4 * max(h, w) + 1``: symmetric under 90 degree turns, so
    white noise averages 0). Each frequency ``k``, at angle ``a``, is a unit vector at ``2a``
    (``k`` and ``-k`` are one orientation), weighted by ``|k|^2 P(k)``, the power spectrum of
    the kernel's gradient; the selectivity is the length of the weighted mean vector,
    ``|sum |k|^2 P e^{2ia}| / sum |k|^2 P``: 1 - the circular variance of the doubled angles,
    the same number as the coherence ``(l1 - l2) / (l1 + l2)`` of the kernel's structure tensor.
    The ``|k|^2`` weight keeps the few, poorly resolved frequencies next to DC, where smoothed
    noise has most of its power, from deciding: with plain ``P`` weights twice as many 7x7
    smoothed-noise kernels pass ``SELECTIVITY_MIN``, and Gabors score the same.

    Constant kernels give 0; a derivative-of-Gaussian edge detector 0.5, its second derivative 2/3.

    >>> x = np.arange(9)
    >>> stripes = np.cos(2 * np.pi * 0.25 * x)[None, :].repeat(9, 0)
    >>> round(float(orientation_selectivity(stripes[None])[0]), 2)   # < 1: the kernel's edges leak
    0.78
    >>> float(orientation_selectivity(np.ones((1, 9, 9)))[0])
    0.0
    """
    k = _as_float(kernels)
    h, w = k.shape[-2:]
    m = pad or 4 * max(h, w) + 1
    k = k - k.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(k, s=(m, m))) ** 2
    f = np.fft.fftfreq(m)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    weighted = power * (fx ** 2 + fy ** 2)
    rot = (fx ** 2 - fy ** 2) + 2j * fx * fy        # |k|^2 e^{2ia}
    total = weighted.sum(axis=(-2, -1))
    res = np.abs((power * rot).sum(axis=(-2, -1)))
    return np.where(total > 1e-300, res / np.where(total > 1e-300, total, 1), 0.0).clip(0, 1)


def kernel_images(weight: np.ndarray, mode: str = "principal") -> np.ndarray:
    """One 2D image per output channel of a conv weight: ``(out, in, h, w)`` -> ``(out, h, w)``.

    ``mode``:

    * ``"principal"`` (default): the spatial pattern shared best by the input channels, the
      first singular vector of the ``(in, h*w)`` matrix scaled by its singular value, signed to
      agree with the channel mean (or, when that is ~0, the strongest channel). Equals the
      channel mean x sqrt(in) for a luminance kernel (all channels alike) and still shows a
      colour-opponent kernel, whose channel mean cancels.
    * ``"mean"``: the mean over input channels (what a grey input sees).
    * ``"strongest"``: the input channel with the most energy (sum of squares).

    One input channel, or an already 3D ``(out, h, w)`` array, comes back as it is (as floats).
    Callers that want every channel fitted pass ``weight.reshape(-1, h, w)`` instead.

    >>> w = np.zeros((2, 3, 7, 7)); w[0, :, 3, 3] = 1; w[1, 2] = 1
    >>> float(kernel_images(w, "strongest")[1].sum()), float(kernel_images(w, "mean")[0, 3, 3])
    (49.0, 1.0)
    """
    w = _as_float(weight)
    if w.ndim == 3:
        return w
    if w.ndim != 4:
        raise ValueError(f"expected a conv weight (out, in, h, w) or kernels (n, h, w), got shape {w.shape}")
    if w.shape[1] == 1:
        return w[:, 0]
    if mode == "mean":
        return w.mean(axis=1)
    if mode == "strongest":
        best = (w ** 2).sum(axis=(2, 3)).argmax(axis=1)
        return w[np.arange(len(w)), best]
    if mode != "principal":
        raise ValueError(f"mode must be 'principal', 'mean' or 'strongest', not {mode!r}")
    out, c, h, wd = w.shape
    _, s, vt = np.linalg.svd(w.reshape(out, c, h * wd), full_matrices=False)
    img = (s[:, :1] * vt[:, 0]).reshape(out, h, wd)         # all zeros for an all-zero weight
    ref = w.mean(axis=1)
    strongest = w[np.arange(out), (w ** 2).sum(axis=(2, 3)).argmax(axis=1)]
    use_mean = np.abs(ref).sum(axis=(1, 2)) * np.sqrt(c) > 1e-3 * np.abs(w).sum(axis=(1, 2, 3))
    ref = np.where(use_mean[:, None, None], ref, strongest)
    return img * np.where((img * ref).sum(axis=(1, 2)) < 0, -1.0, 1.0)[:, None, None]


def fit_gabors(kernels: np.ndarray, starts: int = 8, iters: int = 60, seed: int = 0) -> GaborFit:
    """Least-squares Gabor fit of each ``(n, h, w)`` kernel (float16/32/64; both sides >= 7).

    ``starts`` per kernel (the spectral start, the same at the kernel's middle, then jittered
    ones drawn from ``seed``: same inputs and seed, same results); at most ``iters``
    Levenberg-Marquardt steps. Noise-like kernels have many local minima: with 8 starts, 9% of
    7x7 smoothed-noise kernels end over 0.02 of R^2 below a 64-start fit, with 16, 5% (at twice
    the time); Gabors are found from the first start.

    Multi-channel kernels: pass one image per kernel (:func:`kernel_images`) or every channel
    (``weight.reshape(-1, h, w)``). Constant kernels, and kernels with non-finite values, are
    not fitted: amplitude 0, r2 0 (not NaN), selectivity 0, not Gabor-like. Raises
    ``ValueError`` for kernels smaller than 7x7 (the caller shows "too few pixels" instead).

    >>> k = gabor([2, 4, 4, 0.5, 0.2, 1.0, 2, 3, 0.1], 9)
    >>> fit = fit_gabors(k[None])
    >>> round(float(fit.theta[0]), 3), round(float(fit.frequency[0]), 3), bool(fit.gabor_like[0])
    (0.5, 0.2, True)
    """
    k = _as_float(kernels)
    if k.ndim != 3:
        raise ValueError(f"expected kernels of shape (n, h, w), got {k.shape}; see kernel_images()")
    n, h, w = k.shape
    if starts < 1 or iters < 0:
        raise ValueError(f"starts must be >= 1 and iters >= 0, not {starts} and {iters}")
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"{h}x{w} kernels have too few pixels to tell a Gabor from noise: "
                         f"fit kernels of {MIN_SIZE}x{MIN_SIZE} or larger")
    flat = k.reshape(n, h * w)
    finite = np.isfinite(flat).all(axis=1)
    flat = np.where(finite[:, None], flat, 0.0)
    mean, sd = flat.mean(axis=1), flat.std(axis=1)
    ok = finite & (sd > 1e-12 * np.maximum(np.abs(flat).max(axis=1), 1e-300))
    z = np.where(ok[:, None], (flat - mean[:, None]) / np.where(ok, sd, 1)[:, None], 0.0)

    p, sse = np.zeros((n, 9)), np.zeros(n)
    step = max(1, _CHUNK // starts)                   # bounds the work arrays (~40 MB at 11x11)
    for i in range(0, n, step):
        p[i:i + step], sse[i:i + step] = _fit(z[i:i + step].reshape(-1, h, w), starts, iters, seed)
    r2 = np.where(ok, 1 - sse / (h * w), 0.0).clip(0, 1)   # z has unit variance: SS_tot = h * w

    p = _canonical(p)
    p[:, _A] *= sd                         # back from the standardised kernel
    p[:, _C] = p[:, _C] * sd + mean
    p[~ok] = [0, (w - 1) / 2, (h - 1) / 2, 0, 0, 0, w / 4, h / 4, 0]
    p[~ok, _C] = np.where(finite, mean, 0)[~ok]
    sel = orientation_selectivity(np.where(ok[:, None], z, 0).reshape(n, h, w))
    fit = GaborFit(**dict(zip(PARAM_NAMES, p.T)), r2=r2, selectivity=sel,
                   localized=ok & (p[:, _F] * p[:, _SX] <= LOCALIZED_MAX), gabor_like=np.zeros(n, dtype=bool))
    return replace(fit, gabor_like=gabor_like(fit))


# -- fitting -----------------------------------------------------------------------------------------
