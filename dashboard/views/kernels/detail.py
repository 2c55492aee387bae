"""The Kernels page's per-kernel views: hover labels of the mosaic and the clicked kernel's card.

The card ("Kernel and its Gabor fit") shows the kernel clicked in the mosaic (kernel 0 before
any click) at the slider's snapshot: for 2D kernels the kernel (in colour and as its principal
component over RGB inputs), its fitted Gabor and the verdict with R², selectivity, stripe
orientation and frequency; for 1-D kernels its taps and, for text models, the n-grams its
filter fires on most. :func:`register` adds the card's callback to the app being built; the
page module calls it (Dash runs a page module once per app, while a plain module's
``@callback`` would reach only the first app a process builds, and tests build several).

Example::

    register()                                # in dashboard/views/kernels/page.py, once per app
    stripes_deg(0.0)                          # 90.0: a horizontal wave vector draws vertical stripes
    kernel_labels(2, {"too_small": True})     # ["kernel 0", "kernel 1"]
    clicked_kernel({"points": [{"customdata": [5]}]})   # 5
"""
from __future__ import annotations

import numpy as np
from dash import Input, Output, callback, html

from backend.analysis.gabor import MIN_SIZE, gabor, kernel_images
from backend.store import StoreError
from dashboard import ids
from dashboard.components import alert
from dashboard.context import current
from dashboard.images import heat_img
from dashboard.views.kernels.figures import rgb_kernels, rgb_png
from dashboard.snapshots import ViewError, view_error_message
from dashboard.inputs import MAX_INDEX, as_int, as_run_id, as_steps, as_str, first_point_int
from dashboard.snapshot_slider import step_at


def stripes_deg(theta: float) -> float:
    """Direction of a Gabor's stripes in degrees (0 = horizontal), from its wave-vector angle."""
    return (float(np.degrees(theta)) + 90.0) % 180.0


def kernel_labels(n: int, fit: dict) -> list[str]:
    """Hover labels of ``n`` kernels: each one's Gabor verdict, fit quality, stripes and frequency
    (just "kernel k" where the layer's kernels are too small for a fit)."""
    if "too_small" in fit:
        return [f"kernel {k}" for k in range(n)]
    out = []
    for k in range(n):
        verdict = "Gabor-like" if fit["gabor_like"][k] else "not Gabor-like"
        out.append(f"kernel {k}: {verdict}<br>R² {fit['r2'][k]:.2f} · orientation selectivity "
                   f"{fit['selectivity'][k]:.2f}<br>stripes at {stripes_deg(fit['theta'][k]):.0f}° · "
                   f"{fit['frequency'][k]:.2f} cycles/px")
    return out


def _detail(click, run_id, index, steps, layer):
    """The clicked kernel's card at the slider's snapshot; a warning where the snapshot cannot be read."""
    run_id, index, steps, layer = as_run_id(run_id), as_int(index, 0, 0, MAX_INDEX), as_steps(steps, []), \
        as_str(layer, 200)
    if not steps or not layer:
        return None
    k = clicked_kernel(click)
    kd = current().data.kernels
    try:
        snap, _ = kd.open(run_id, step_at(steps, index))
        weight = snap.weights(layer)
    except (ViewError, StoreError) as exc:  # StoreError: a layer this snapshot lacks (another run's)
        return alert(view_error_message(exc), "warning")
    k = max(0, min(k, len(weight) - 1))
    if weight.ndim != 4:
        chans, taps = weight.shape[1:]
        bound = float(np.abs(weight[k]).max()) or 1.0
        px = max(4, min(18, 260 // max(chans, taps)))
        what = (f"{taps} taps: " + ", ".join(f"{v:.3f}" for v in weight[k, 0])) if chans == 1 else \
            f"{chans} input channels (rows) x {taps} taps"
        parts = [html.Figure([heat_img(weight[k], -bound, bound, px=px), html.Figcaption(f"kernel {k}: {what}")])]
        if layer in snap.ngram_layers:
            grams = snap.top_ngrams(layer)[k]
            parts.append(html.Div([html.Strong(f"Filter {k} fires most on:"),
                                   html.Ol([html.Li(f"{text}  ({value:.2f})") for text, value in grams])]))
        parts.append(html.P("Gabor fits apply to 2D kernels; this layer's kernels are 1-D, so there is no fit to "
                            "show.", className="hint"))
        return html.Div(parts, className="kernel-detail")
    images = kernel_images(weight)
    bound = float(np.abs(images[k]).max()) or 1.0
    parts = []
    if weight.shape[1] == 3:
        h, w = weight.shape[2:]
        parts.append(html.Figure([html.Img(src=rgb_png(rgb_kernels(weight)[k]), className="heat",
                                           style={"width": f"{w * 18}px", "height": f"{h * 18}px"}),
                                  html.Figcaption(f"kernel {k} in colour")]))
        parts.append(html.Figure([heat_img(images[k], -bound, bound, px=18), html.Figcaption("principal component")]))
    else:
        parts.append(html.Figure([heat_img(images[k], -bound, bound, px=18), html.Figcaption(f"kernel {k}")]))
    fit = kd.fits(run_id, snap, layer)
    if "too_small" in fit:
        parts.append(html.P(f"Kernels of {MIN_SIZE}x{MIN_SIZE} or larger get a Gabor fit.", className="hint"))
        return html.Div(parts, className="kernel-detail")
    params = [fit[name][k] for name in ("amplitude", "x0", "y0", "theta", "frequency", "phase", "sigma_x",
                                        "sigma_y", "offset")]
    fitted = gabor(np.array(params), images[k].shape)
    parts.append(html.Figure([heat_img(fitted, -bound, bound, px=18), html.Figcaption("fitted Gabor")]))
    verdict = "Gabor-like" if fit["gabor_like"][k] else "not Gabor-like"
    parts.append(html.Ul([
        html.Li([html.Strong(verdict), f": R² {fit['r2'][k]:.2f} (needs ≥ 0.7), orientation selectivity "
                 f"{fit['selectivity'][k]:.2f} (needs ≥ 0.4)"]),
        html.Li(f"stripes at {stripes_deg(fit['theta'][k]):.0f}° (0° horizontal), frequency {fit['frequency'][k]:.2f} "
                f"cycles/pixel, envelope {fit['sigma_x'][k]:.1f} x {fit['sigma_y'][k]:.1f} px"
                + (" (localized)" if fit["localized"][k] else "")),
    ]))
    return html.Div(parts, className="kernel-detail")


def clicked_kernel(click: dict | None) -> int:
    """The kernel a click landed on (its customdata, or the customdata's first entry); 0 before any click
    (or for a click that names no kernel)."""
    return first_point_int(click, "customdata", 0)


def register() -> None:
    """Register the detail card's callback with the app being built (the page module calls it)."""
    callback(Output(ids.KN_DETAIL, "children"), Input(ids.KN_MOSAIC, "clickData"), Input(ids.KN_RUN, "value"),
             Input(ids.KN_STEP, "value"), Input(ids.KN_STEPS, "data"), Input(ids.KN_LAYER, "value"))(_detail)
