"""Figures of the kernels page: kernel mosaics with hover fits, Gabor-like curve, orientation rose.

Pure: arrays in, figures out. A mosaic is one heatmap trace (kernels side by side with
one-pixel gaps), so 64 kernels are one trace, not 64 subplots.

Example::

    fig = kernel_mosaic(weights_as_images, labels=["kernel 0: R²=0.91", ...])
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go


def mosaic(images: np.ndarray, cols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tile ``(n, h, w)`` images into one array with NaN gaps; also the index of the image under each cell."""
    n, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n * h / w)))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    index = np.full(out.shape, -1, dtype=int)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[k]
        index[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = k
    return out, index


def kernel_mosaic(images: np.ndarray, labels: list[str], title: str, symmetric: bool = True,
                  height: int = 420) -> go.Figure:
    """Kernels as one heatmap, diverging colours centred at zero; hover names the kernel and its fit."""
    tiles, index = mosaic(images)
    bound = float(np.nanmax(np.abs(tiles))) if np.isfinite(tiles).any() else 1.0
    text = np.where(index >= 0, np.array(labels + [""], dtype=object)[index], "")
    fig = go.Figure(go.Heatmap(
        z=np.where(np.isfinite(tiles), np.round(tiles, 4), None).tolist(), text=text.tolist(),
        customdata=index.tolist(), colorscale="RdBu_r" if symmetric else "Greys",
        zmid=0 if symmetric else None, zmin=-bound if symmetric else None, zmax=bound if symmetric else None,
        hovertemplate="%{text}<br>weight %{z}<extra></extra>", colorbar={"thickness": 10},
        xgap=0, ygap=0))
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=height, uirevision="mosaic",
                      margin={"l": 10, "r": 10, "t": 36, "b": 10}, plot_bgcolor="white",
                      xaxis={"visible": False, "constrain": "domain"},
                      yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x"})
    return fig


def gabor_curve_figure(steps: list[int], fractions: list[float], layer: str) -> go.Figure:
    """Fraction of Gabor-like kernels over training, the value at initialisation dashed."""
    fig = go.Figure(go.Scatter(x=steps, y=fractions, mode="lines+markers", name="Gabor-like",
                               hovertemplate="step %{x}: %{y:.0%}<extra></extra>", line={"color": "#d62728"}))
    if fractions:
        fig.add_hline(y=fractions[0], line={"dash": "dash", "color": "#98a2b3"},
                      annotation_text=f"at initialisation {fractions[0]:.0%}", annotation_position="top left")
    fig.update_layout(title={"text": f"Gabor-like kernels of {layer} over training", "font": {"size": 13}},
                      height=260, margin={"l": 50, "r": 10, "t": 36, "b": 40}, uirevision="curve",
                      xaxis={"title": "training step"}, yaxis={"title": "fraction", "range": [0, 1.02],
                                                                "tickformat": ".0%"})
    return fig


def orientation_rose(theta: list[float], like: list[bool], bins: int = 12) -> go.Figure:
    """Stripe orientations (radians, 0 = horizontal; 0-180 degrees mirrored to a full circle) of the
    Gabor-like kernels, clockwise as in image coordinates (y down)."""
    deg = np.degrees(np.asarray(theta, dtype=float)[np.asarray(like, dtype=bool)]) % 180
    counts, edges = np.histogram(deg, bins=bins, range=(0, 180))
    centres = (edges[:-1] + edges[1:]) / 2
    width = 180 / bins
    fig = go.Figure(go.Barpolar(r=np.concatenate([counts, counts]).tolist(),
                                theta=np.concatenate([centres, centres + 180]).tolist(), width=[width] * (2 * bins),
                                marker={"color": "#1f77b4"}, hovertemplate="%{theta:.0f}°: %{r}<extra></extra>"))
    fig.update_layout(title={"text": f"Stripe orientations of the {int(np.sum(like))} Gabor-like kernels",
                             "font": {"size": 13}}, height=260, margin={"l": 30, "r": 30, "t": 40, "b": 20},
                      uirevision="rose", showlegend=False, polar={"angularaxis": {"direction": "clockwise"}})
    return fig
