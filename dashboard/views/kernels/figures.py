"""Figures of the kernels page: kernel mosaics with hover fits, Gabor-like curves, orientation rose.

Pure: arrays in, figures out. A mosaic is one trace (kernels side by side with one-pixel
gaps), so 64 kernels are one trace, not 64 subplots:

- :func:`kernel_mosaic`: one heatmap, diverging colours centred at zero (one 2D image per
  kernel, or a 1-D kernel's ``(in, k)`` weights as a small tile);
- :func:`rgb_mosaic`: kernels of an RGB input as colour images (0 is mid-grey, the layer's
  largest |weight| is 0 or 255), one ``go.Image`` trace;
- :func:`line_grid`: 1-D kernels of a one-channel input as small line plots on a grid, one
  scatter trace with NaN breaks.

Hover names the kernel and its fit; a click's ``customdata`` is the kernel's index (-1 on a gap).

Example::

    fig = kernel_mosaic(weights_as_images, labels=["kernel 0: R²=0.91", ...], title="features.0")
    fig = gabor_curve_figure(series=[{"name": "run A", "steps": [0, 10], "fractions": [0.1, 0.4]},
                                     {"name": "run B", "note": "3x3 kernels, no Gabor score"}], layer="conv 1")
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from dashboard.images import rgb_png  # noqa: F401 - shared with Attention

GAP_GREY = 224          # gaps between colour kernels: light grey, lighter than a zero weight (128)
CURVE_COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]


def mosaic(images: np.ndarray, cols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tile ``(n, h, w)`` images into one array with NaN gaps; also the index of the image under each cell.

    ``(n, h, w, c)`` images (colour) tile the same way, the gaps NaN in every channel."""
    n, h, w = images.shape[:3]
    cols = cols or grid_cols(n, h, w)
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, *images.shape[3:]), np.nan)
    index = np.full(out.shape[:2], -1, dtype=int)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = images[k]
        index[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = k
    return out, index


def grid_cols(n: int, h: int, w: int) -> int:
    """Columns that make ``n`` tiles of ``h`` x ``w`` about square overall, the rows filled evenly."""
    rows = max(1, min(n, round(math.sqrt(n * w / h))))
    return max(1, math.ceil(n / rows))


def _mosaic_layout(fig: go.Figure, title: str, height: int, shape: tuple) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=height, uirevision=f"mosaic:{shape}",
                      margin={"l": 10, "r": 10, "t": 36, "b": 10}, plot_bgcolor="white",
                      xaxis={"visible": False, "constrain": "domain"},
                      yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"})
    return fig


def _hover_text(index: np.ndarray, labels: list[str]) -> list:
    return np.where(index >= 0, np.array(list(labels) + [""], dtype=object)[index], "").tolist()


def kernel_mosaic(images: np.ndarray, labels: list[str], title: str, symmetric: bool = True,
                  height: int = 420) -> go.Figure:
    """Kernels as one heatmap, diverging colours centred at zero; hover names the kernel and its fit."""
    tiles, index = mosaic(images)
    bound = float(np.nanmax(np.abs(tiles))) if np.isfinite(tiles).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=np.where(np.isfinite(tiles), np.round(tiles, 4), None).tolist(), text=_hover_text(index, labels),
        customdata=index.tolist(), colorscale="RdBu_r" if symmetric else "Greys",
        zmid=0 if symmetric else None, zmin=-bound if symmetric else None, zmax=bound if symmetric else None,
        hovertemplate="%{text}<br>weight %{z}<extra></extra>", colorbar={"thickness": 10},
        xgap=0, ygap=0))
    return _mosaic_layout(fig, title, height, tiles.shape)


def rgb_kernels(weight: np.ndarray) -> np.ndarray:
    """A conv weight over 3 input channels ``(out, 3, h, w)`` as colours ``(out, h, w, 3)`` in [0, 1]:
    ``0.5 + 0.5 * w / max|w|`` (channels scaled jointly over the layer, 0 is mid-grey)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"expected a conv weight over 3 input channels (out, 3, h, w), got shape {w.shape}")
    peak = float(np.abs(w).max()) or 1.0
    return 0.5 + 0.5 * np.moveaxis(w, 1, -1) / peak


def rgb_tiles(weight: np.ndarray, cols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The colour mosaic as uint8 ``(H, W, 3)`` (gaps ``GAP_GREY``) and the kernel index under each pixel."""
    tiles, index = mosaic(rgb_kernels(weight), cols)
    rgb = np.clip(np.rint(np.nan_to_num(tiles, nan=GAP_GREY / 255) * 255), 0, 255).astype(np.uint8)
    return rgb, index


def rgb_mosaic(weight: np.ndarray, labels: list[str], title: str, height: int = 420) -> go.Figure:
    """Kernels of an RGB input as colour images (0 mid-grey, the layer's largest |weight| black or full
    colour), grey gaps between them; hover names the kernel, its fit and the pixel's three weights."""
    rgb, index = rgb_tiles(weight)
    w_tiles, _ = mosaic(np.moveaxis(np.asarray(weight, dtype=np.float64), 1, -1))
    base = np.array(list(labels) + [""], dtype=object)[index]
    text = [[f"{base[r, c]}<br>weights R {w_tiles[r, c, 0]:.3f} · G {w_tiles[r, c, 1]:.3f} · B {w_tiles[r, c, 2]:.3f}"
             if index[r, c] >= 0 else "" for c in range(index.shape[1])] for r in range(index.shape[0])]
    # customdata: the kernel index, a number (dcc.Graph passes array customdata of a click on as nothing)
    fig = go.Figure(go.Image(z=rgb.tolist(), colormodel="rgb", text=text, customdata=index.tolist(),
                             hovertemplate="%{text}<extra></extra>"))
    return _mosaic_layout(fig, title, height, rgb.shape)


def line_grid(kernels: np.ndarray, labels: list[str], title: str, height: int = 420) -> go.Figure:
    """1-D kernels ``(n, k)`` as small line plots on a grid (one trace, NaN breaks between kernels).

    Every kernel is drawn on the same scale (the layer's largest |weight| fills half a cell), with a
    dotted zero line; its points hover with the kernel's label, tap and weight."""
    w = np.asarray(kernels, dtype=np.float64)
    n, k = w.shape
    cols = grid_cols(n, 1, 1)
    peak = float(np.abs(w).max()) or 1.0
    xs, ys, zx, zy, text, custom = [], [], [], [], [], []
    taps = np.linspace(0.1, 0.9, k) if k > 1 else np.array([0.5])
    for i in range(n):
        r, c = divmod(i, cols)
        x = c + taps
        y = -r - 0.5 + 0.42 * w[i] / peak
        xs += [*x.tolist(), None]
        ys += [*np.round(y, 5).tolist(), None]
        zx += [c + 0.05, c + 0.95, None]
        zy += [-r - 0.5, -r - 0.5, None]
        text += [f"{labels[i]}<br>tap {t}: weight {w[i, t]:.3f}" for t in range(k)] + [""]
        custom += [i] * k + [-1]
    rows = math.ceil(n / cols)
    fig = go.Figure([
        go.Scatter(x=zx, y=zy, mode="lines", line={"color": "#c8ccd4", "width": 1, "dash": "dot"},
                   hoverinfo="skip", showlegend=False, name="zero"),
        go.Scatter(x=xs, y=ys, mode="lines+markers" if k <= 9 else "lines", line={"color": "#1f4e99", "width": 1.5},
                   marker={"size": 3}, text=text, customdata=custom, hovertemplate="%{text}<extra></extra>",
                   showlegend=False, name="kernels"),
    ])
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=height, uirevision=f"lines:{w.shape}",
                      margin={"l": 10, "r": 10, "t": 36, "b": 10}, plot_bgcolor="white", hovermode="closest",
                      xaxis={"visible": False, "range": [-0.05, cols + 0.05], "fixedrange": True},
                      yaxis={"visible": False, "range": [-rows - 0.05, 0.05], "fixedrange": True},
                      shapes=[{"type": "rect", "x0": i % cols + 0.02, "x1": i % cols + 0.98, "y0": -(i // cols) - 0.04,
                               "y1": -(i // cols) - 0.96, "line": {"color": "#eef0f4", "width": 1}, "layer": "below"}
                              for i in range(n)])
    return fig


def gabor_curve_figure(steps: list[int] | None = None, fractions: list[float] | None = None, layer: str = "",
                       series: list[dict] | None = None) -> go.Figure:
    """Fraction of Gabor-like kernels over training, each series' value at initialisation dashed.

    One series: ``gabor_curve_figure(steps, fractions, layer)``. Several (runs to compare):
    ``series=[{"name", "steps", "fractions"}, ...]``; a series with ``"note"`` instead of steps (its
    kernels have no Gabor score) is named in the legend with that note, and says so in an annotation."""
    if series is None:
        series = [{"name": "Gabor-like", "steps": steps or [], "fractions": fractions or []}]
    fig = go.Figure()
    drawn = [s for s in series if s.get("steps")]
    all_steps = [x for s in drawn for x in s["steps"]]
    lo, hi = (min(all_steps), max(all_steps)) if all_steps else (0, 1)
    notes = []
    for i, s in enumerate(series):
        color = CURVE_COLORS[i % len(CURVE_COLORS)]
        if not s.get("steps"):
            label = f"{s['name']}: {s.get('note') or 'no Gabor score'}"
            notes.append(label)
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label, line={"color": color},
                                     hoverinfo="skip"))
            continue
        fig.add_trace(go.Scatter(x=s["steps"], y=s["fractions"], mode="lines+markers", name=s["name"],
                                 line={"color": color},
                                 hovertemplate=f"{s['name']}<br>step %{{x}}: %{{y:.0%}}<extra></extra>"))
        first = s["fractions"][0]
        fig.add_trace(go.Scatter(x=[lo, hi], y=[first, first], mode="lines", hoverinfo="skip",
                                 name=f"{s['name']} at initialisation: {first:.0%}" if len(series) > 1
                                 else f"at initialisation: {first:.0%}",
                                 line={"color": color, "dash": "dash", "width": 1.2}, opacity=0.6))
    title = f"Gabor-like kernels of {layer} over training" if len(series) == 1 else \
        f"Gabor-like kernels over training{': ' + layer if layer else ''}"
    fig.update_layout(title={"text": title, "font": {"size": 13}},
                      height=300 + 22 * len(series), margin={"l": 50, "r": 10, "t": 36, "b": 50 + 22 * len(series)},
                      uirevision="curve", legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0,
                                                  "font": {"size": 11.5}},
                      xaxis={"title": {"text": "training step", "standoff": 4}},
                      yaxis={"title": "fraction", "range": [-0.03, 1.03], "tickformat": ".0%"})
    if notes and not drawn:
        fig.add_annotation(text="<br>".join(notes), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font={"size": 12.5, "color": "#555"})
    elif notes:
        fig.add_annotation(text="<br>".join(notes), showarrow=False, xref="paper", yref="paper", x=0.99, y=0.97,
                           xanchor="right", yanchor="top", align="right", font={"size": 11.5, "color": "#555"},
                           bgcolor="rgba(255,255,255,0.8)")
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
                      uirevision="rose", showlegend=False,
                      polar={"angularaxis": {"direction": "clockwise"},
                             "radialaxis": {"tickfont": {"size": 9, "color": "#667085"}, "angle": 90, "tickangle": 90,
                                            "dtick": max(1, math.ceil(int(counts.max(initial=0)) / 3))}})
    return fig
