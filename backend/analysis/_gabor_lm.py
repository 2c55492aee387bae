"""The Gabor fit's engine: a batched Levenberg-Marquardt over kernels x starts (private).

Split from :mod:`backend.analysis.gabor`, which holds the public API and the criterion;
see its docstring for the parametrisation. Preallocated buffers (``_Work``) and float32
exp/sin/cos keep the fit fast: fresh numpy temporaries cost ~3/4 of the time here.
"""
from __future__ import annotations

import numpy as np

SIGMA_MIN = 0.4        # pixels
_CHUNK = 2048          # problems (kernels x starts) fitted together
_A, _X0, _Y0, _TH, _F, _PH, _SX, _SY, _C = range(9)  # columns of a parameter row (see gabor.PARAM_NAMES)

def _fit(z: np.ndarray, starts: int, iters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Best parameters and squared error of each standardised ``(n, h, w)`` kernel over its starts."""
    n, h, w = z.shape
    x, y = _grid(h, w)
    p0 = _starts(z, x, y, starts, np.random.default_rng(seed))              # (n, starts, 9)
    zz = np.repeat(z.reshape(n, -1), starts, axis=0)
    p, sse = _levenberg_marquardt(p0.reshape(-1, 9), zz, x, y, iters, (h, w))
    best = sse.reshape(n, starts).argmin(axis=1)
    return p.reshape(n, starts, 9)[np.arange(n), best], sse.reshape(n, starts)[np.arange(n), best]


def _as_float(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype != np.float64 else a


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x.ravel(), y.ravel()


class _Work:
    """Arrays reused by every model evaluation of a fit: ``(P, N)`` scratch and the ``(P, 9, N)`` Jacobian.

    Fresh numpy temporaries of this size (0.1-1 MB) come from mmap or a trimmed heap, and
    their page faults took three quarters of the fit time; reused buffers take none.
    """

    def __init__(self, problems: int, pixels: int):
        self.f64 = np.empty((12, problems, pixels))
        self.f32 = np.empty((3, problems, pixels), dtype=np.float32)
        self.jac = np.empty((problems, 9, pixels))
        self.hess = np.empty((problems, 9, 9))

    def take(self, n: int):
        return [a[:n] for a in self.f64], [a[:n] for a in self.f32], self.jac[:n]


def _model(p: np.ndarray, x: np.ndarray, y: np.ndarray, work: _Work | None = None, jac: bool = False):
    """Model values ``(P, N)`` of ``P`` parameter rows on the ``N`` pixels, and the Jacobian ``(P, 9, N)``.

    Both are views into ``work``, valid until its next use. Written with ``out=`` throughout
    (see :class:`_Work`); the plain formulas are in the comments.
    """
    n = len(p)
    work = work or _Work(n, len(x))
    (u, v, xp, yp, xs, ys, g, wc, ws, t, gx, gy), (e32, a32, b32), j = work.take(n)
    a, x0, y0, th, f, ph, sx, sy, c = (p[:, i:i + 1] for i in range(9))
    cos, sin, k = np.cos(th), np.sin(th), 2 * np.pi * f
    np.subtract(x, x0, out=u)
    np.subtract(y, y0, out=v)
    np.multiply(u, cos, out=xp)
    xp += np.multiply(v, sin, out=t)                       # x' = u cos + v sin
    np.multiply(v, cos, out=yp)
    yp -= np.multiply(u, sin, out=t)                       # y' = v cos - u sin
    np.divide(xp, sx ** 2, out=xs)
    np.divide(yp, sy ** 2, out=ys)
    np.multiply(xp, xs, out=t)
    t += np.multiply(yp, ys, out=gx)
    t *= -0.5
    # exp, cos and sin in float32: 4-6x faster than float64 here, errors ~1e-7 (the fit's are far larger)
    e32[...] = t
    np.exp(e32, out=e32)                                   # envelope
    np.multiply(xp, k, out=t)
    t += ph
    a32[...] = t                                           # 2 pi f x' + phase
    np.sin(a32, out=b32)
    np.cos(a32, out=a32)
    wc[...] = np.multiply(a32, e32, out=a32)               # envelope * cos
    ws[...] = np.multiply(b32, e32, out=b32)               # envelope * sin
    np.multiply(wc, a, out=g)
    g += c
    if not jac:
        return g, None
    awc, aws = np.multiply(wc, a, out=u), np.multiply(ws, a, out=v)
    j[:, _A] = wc
    np.negative(aws, out=j[:, _PH])
    np.multiply(aws, xp, out=j[:, _F])
    j[:, _F] *= -2 * np.pi                                  # -a ws 2 pi x'
    np.multiply(np.multiply(awc, xs, out=gx), xp, out=j[:, _SX])
    j[:, _SX] /= sx                                        # a wc x'^2 / sx^3
    np.multiply(np.multiply(awc, ys, out=gy), yp, out=j[:, _SY])
    j[:, _SY] /= sy
    gx += np.multiply(aws, k, out=t)
    np.negative(gx, out=gx)                                # dg/dx' = -(a wc x'/sx^2 + 2 pi f a ws)
    np.negative(gy, out=gy)                                # dg/dy' = -a wc y'/sy^2
    np.multiply(gy, sin, out=j[:, _X0])
    j[:, _X0] -= np.multiply(gx, cos, out=t)               # dx'/dx0 = -cos, dy'/dx0 = sin
    np.multiply(gx, sin, out=j[:, _Y0])
    j[:, _Y0] += np.multiply(gy, cos, out=t)
    np.negative(j[:, _Y0], out=j[:, _Y0])                  # dx'/dy0 = -sin, dy'/dy0 = -cos
    np.multiply(gx, yp, out=j[:, _TH])
    j[:, _TH] -= np.multiply(gy, xp, out=t)                # dx'/dtheta = y', dy'/dtheta = -x'
    j[:, _C] = 1.0
    return g, j


def _starts(z: np.ndarray, x: np.ndarray, y: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, s, 9)`` starting points: spectral peak + energy centroid, then jittered copies."""
    n, h, w = z.shape
    m = 4 * max(h, w) + 1
    power = np.abs(np.fft.fft2(z, s=(m, m))) ** 2
    power[:, 0, 0] = 0
    peak = power.reshape(n, -1).argmax(axis=1)
    freq = np.fft.fftfreq(m)
    fy, fx = freq[peak // m], freq[peak % m]
    e = z.reshape(n, -1) ** 2 + 1e-12
    e = e / e.sum(axis=1, keepdims=True)
    cx, cy = e @ x, e @ y
    spread = np.sqrt(np.maximum(e @ x ** 2 - cx ** 2 + e @ y ** 2 - cy ** 2, 0))  # envelope^2: sd sigma/sqrt(2)
    p = np.zeros((n, s, 9))
    p[..., _TH] = np.arctan2(fy, fx)[:, None]
    p[..., _F] = np.hypot(fx, fy)[:, None]
    p[..., _X0], p[..., _Y0] = cx[:, None], cy[:, None]
    p[..., _SX] = p[..., _SY] = np.clip(spread, 1.0, max(h, w) / 2)[:, None]
    if s > 1:
        p[:, 1, _X0], p[:, 1, _Y0] = (w - 1) / 2, (h - 1) / 2
    if s > 2:  # the same jitters for every kernel: a kernel's fit does not depend on the others
        d = rng.normal(0, 1, (s - 2, 6)) * [0.35, 0.35, 1.0, 1.0, 0.35, 0.35]
        p[:, 2:, _TH] += d[:, 0]
        p[:, 2:, _F] = np.clip(p[:, 2:, _F] * np.exp(d[:, 1]), 0.03, 0.5)
        p[:, 2:, _X0] += d[:, 2]
        p[:, 2:, _Y0] += d[:, 3]
        p[:, 2:, _SX] *= np.exp(d[:, 4])
        p[:, 2:, _SY] *= np.exp(d[:, 5])
    p = p.reshape(n * s, 9)
    _linear_part(p, np.repeat(z.reshape(n, -1), s, axis=0), x, y)
    return p.reshape(n, s, 9)


def _linear_part(p: np.ndarray, z: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Set amplitude, phase, offset of each row of ``p`` to their least-squares values for its geometry."""
    q = p.copy()
    q[:, _A], q[:, _PH], q[:, _C] = 1.0, 0.0, 0.0
    work = _Work(len(q), len(x))
    wc = _model(q, x, y, work)[0].copy()
    q[:, _PH] = -np.pi / 2
    ws = _model(q, x, y, work)[0]                    # env * sin(2 pi f x')
    basis = np.stack([wc, ws, np.ones_like(wc)], axis=-1)
    gram = basis.transpose(0, 2, 1) @ basis + 1e-9 * np.eye(3)
    a, b, c = np.linalg.solve(gram, (basis.transpose(0, 2, 1) @ z[..., None]))[..., 0].T
    p[:, _A], p[:, _PH], p[:, _C] = np.hypot(a, b), np.arctan2(-b, a), c   # a cos t + b sin t = A cos(t + phase)


def _project(p: np.ndarray, h: int, w: int) -> np.ndarray:
    p[:, _X0] = p[:, _X0].clip(-0.5, w - 0.5)
    p[:, _Y0] = p[:, _Y0].clip(-0.5, h - 0.5)
    neg = p[:, _F] < 0                           # frequency -f: the same wave as f with phase -phase
    p[neg, _PH] *= -1
    # wave vector inside the Nyquist square |kx|, |ky| <= 0.5: outside it, a wave sampled on the
    # pixels is the same as one inside (f 0.65 along x reads as 0.35), so a fit could land on either
    nyquist = 0.5 / np.maximum(np.abs(np.cos(p[:, _TH])), np.abs(np.sin(p[:, _TH])))
    p[:, _F] = np.minimum(np.abs(p[:, _F]), nyquist)
    p[:, _SX] = np.abs(p[:, _SX]).clip(SIGMA_MIN, 2 * max(h, w))
    p[:, _SY] = np.abs(p[:, _SY]).clip(SIGMA_MIN, 2 * max(h, w))
    return p


def _levenberg_marquardt(p, z, x, y, iters, shape, tol=1e-5):
    """Batched LM: each problem has its own damping and stops on its own when it converges.

    Converged problems leave the working set once they are a third of it (so the arrays are
    copied a few times per fit, not every step). Returns the parameters and squared errors.
    """
    h, w = shape
    p = _project(p.copy(), h, w)
    work = _Work(len(p), len(x))
    cost = _sse(_model(p, x, y, work)[0], z)
    lam = np.full(len(p), 1e-2)
    idx = np.arange(len(p))                                  # the working set
    pw, zw, cw, lw = p, z, cost, lam
    done = np.zeros(len(p), dtype=bool)
    for _ in range(iters):
        better, gain = _lm_step(pw, zw, cw, lw, done, x, y, work, h, w)
        lw[:] = np.where(better, lw / 3, lw * 4).clip(1e-9, 1e9)
        done |= (better & (gain <= tol * (cw + 1e-12))) | (lw >= 1e9)
        if done.all() or done.sum() * 3 >= len(done):
            p[idx], cost[idx], lam[idx] = pw, cw, lw
            keep = ~done
            idx, pw, zw, cw, lw, done = idx[keep], pw[keep], zw[keep], cw[keep], lw[keep], done[keep]
            if not len(idx):
                break
    p[idx], cost[idx] = pw, cw
    return p, cost


def _lm_step(p, z, cost, lam, done, x, y, work, h, w):
    """One damped Gauss-Newton step of every problem; ``p`` and ``cost`` take the steps that help.

    Problems already ``done`` stay as they are: a problem's result must not depend on when the
    working set is next compacted (that depends on the other problems in the batch).
    """
    n = len(p)
    g, j = _model(p, x, y, work, jac=True)
    r = np.subtract(g, z, out=g)
    hess = np.matmul(j, j.transpose(0, 2, 1), out=work.hess[:n])
    grad = np.matmul(j, r[..., None])
    diag = hess.reshape(n, 81)[:, ::10]                      # a view: adding to it damps hess in place
    diag += lam[:, None] * (diag + 1e-6 * diag.mean(axis=1, keepdims=True) + 1e-12)
    new = _project(p - np.linalg.solve(hess, grad)[..., 0], h, w)
    new_cost = _sse(_model(new, x, y, work)[0], z)
    better = (new_cost < cost) & ~done
    gain = np.where(better, cost - new_cost, 0.0)
    p[better], cost[better] = new[better], new_cost[better]
    return better, gain


def _sse(g: np.ndarray, z: np.ndarray) -> np.ndarray:
    r = np.subtract(g, z, out=g)
    return np.einsum("pn,pn->p", r, r)


def _canonical(p: np.ndarray) -> np.ndarray:
    """One parameter set per Gabor: amplitude >= 0, theta in [0, pi), phase in (-pi, pi]."""
    p = p.copy()
    neg = p[:, _A] < 0
    p[neg, _A] *= -1
    p[neg, _PH] += np.pi
    turns = np.floor(p[:, _TH] / np.pi)           # theta + pi: x' -> -x', the same wave with -phase
    p[:, _TH] -= turns * np.pi
    odd = (turns % 2) != 0
    p[odd, _PH] *= -1
    p[:, _PH] = np.pi - np.mod(np.pi - p[:, _PH], 2 * np.pi)
    return p
