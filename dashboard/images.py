"""Small images and labels the snapshot pages share: heatmaps and RGB arrays as PNG data URIs (one
pixel per value, scaled up in CSS), and tokens with their whitespace made visible.

Example::

    html.Img(src=heat_png(cells_by_tokens, -1, 1))   # or heat_img(values, -1, 1, px=6)
    rgb_png(kernel_colours)                          # (h, w, 3) in [0, 1]
    visible("a b\\n")                                 # "a␣b⏎"
"""
from __future__ import annotations

import base64
import io

import numpy as np
from dash import html

VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥"}


def visible(token: str) -> str:
    """A token as printed under a chart: whitespace made visible."""
    return "".join(VISIBLE.get(ch, ch) for ch in token) or "∅"


def heat_png(values: np.ndarray, lo: float, hi: float, diverging: bool = True) -> str:
    """A small heatmap as a PNG data URI, one pixel per value (scale it up in CSS, pixelated).

    Not resized and barely compressed: ~0.1 ms an image, where ``optimize=True`` with a 6x
    resize took 2.4 ms (bench/match.py renders 150 of them per query)."""
    from PIL import Image

    v = np.asarray(values, dtype=np.float32)
    if v.size == 0:
        v = np.zeros((1, 1), np.float32)
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    t = np.nan_to_num(t, nan=0.5 if diverging else 0.0)
    if diverging:  # blue (low) - white - red (high)
        r = np.where(t < 0.5, 2 * t, 1.0)
        g = np.where(t < 0.5, 2 * t, 2 * (1 - t))
        b = np.where(t < 0.5, 1.0, 2 * (1 - t))
    else:  # white to dark green
        r, g, b = 1 - 0.85 * t, 1 - 0.55 * t, 1 - 0.8 * t
    rgb = (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def heat_img(values: np.ndarray, lo: float, hi: float, diverging: bool = True, px: int = 6, **kwargs) -> html.Img:
    """:func:`heat_png` as an image element, each value ``px`` pixels square."""
    rows, cols = np.atleast_2d(values).shape
    return html.Img(src=heat_png(values, lo, hi, diverging), className="heat",
                    style={"width": f"{cols * px}px", "height": f"{rows * px}px"}, **kwargs)


def rgb_png(colours: np.ndarray) -> str:
    """An ``(h, w, 3)`` image in [0, 1] as a PNG data URI (scale it up in CSS, pixelated)."""
    from PIL import Image

    rgb = np.clip(np.rint(np.asarray(colours, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
