"""The Kernels page's feature-maps card: what each layer makes of a probe input.

For image models: the chosen probe input, then one row per conv and pooling layer with a small
map per channel (the first :data:`MAX_MAPS`), each on its own scale, and above each 2-D conv
map the kernel that made it. For text models (layers with n-grams): each filter of the chosen
layer with the n-grams of the probe texts that excite it most. :func:`register` adds the card's
callback to the app being built; the page module calls it (Dash runs a page module once per
app, while a plain module's ``@callback`` would reach only the first app a process builds, and
tests build several).

Example::

    register()        # in dashboard/views/kernels/page.py, once per app
    # then, while a request of that app is served (the store behind dashboard.context.current()):
    _maps("a1b2", 1, [0, 100], "0", "conv1")   # [H3, hint, the input's row, one row per layer]
"""
from __future__ import annotations

import numpy as np
from dash import Input, Output, callback, html

from backend.analysis.gabor import kernel_images
from backend.store import StoreError
from dashboard import ids
from dashboard.components import alert
from dashboard.context import current
from dashboard.images import heat_img
from dashboard.snapshots import ViewError, view_error_message
from dashboard.inputs import MAX_INDEX, as_int, as_run_id, as_steps, as_str
from dashboard.snapshot_slider import step_at

MAX_MAPS = 16  # channels shown per layer


def _maps(run_id, index, steps, which, layer):
    """The card's content at the slider's snapshot: feature maps, or the n-gram table of a text model."""
    run_id, index, steps = as_run_id(run_id), as_int(index, 0, 0, MAX_INDEX), as_steps(steps, [])
    which, layer = as_int(which, 0, 0, MAX_INDEX), as_str(layer, 200)
    if not steps:
        return html.H3("Feature maps")
    try:
        snap, _ = current().data.kernels.open(run_id, step_at(steps, index))
    except (ViewError, StoreError) as exc:  # StoreError: a snapshot this version cannot read
        return [html.H3("Feature maps"), alert(view_error_message(exc), "warning")]
    if snap.ngram_layers:
        return _ngram_table(snap, layer if layer in snap.ngram_layers else snap.ngram_layers[0])
    inputs = snap.inputs()
    title = html.H3("Feature maps")
    if inputs is None or not len(inputs):
        return [title, html.P("This run has no probe inputs.", className="hint")]
    i = min(which, len(inputs) - 1)
    x = inputs[i].astype(np.float32)
    rows = [html.Div([html.Strong("input"), heat_img(x.mean(0), float(x.min()), float(x.max()), diverging=False,
                                                     px=max(2, 192 // max(x.shape[1:])))], className="map-row")]
    kinds = {entry["name"]: entry["kind"] for entry in snap.meta.get("layers", [])}
    for name in snap.map_layers:
        m = snap.maps(name)[i].astype(np.float32)
        if m.ndim != 3:
            continue
        px = max(2, 48 // max(m.shape[1:]))
        made_by = _kernel_thumbs(snap, name, px * m.shape[2]) if kinds.get(name) == "conv2d" else {}
        cells = []
        for c in range(min(MAX_MAPS, len(m))):
            lo, hi = float(m[c].min()), float(m[c].max())
            tip = f"{name} channel {c}: {lo:.2f} to {hi:.2f}" + (" (all the same: a silent channel)" if hi - lo < 1e-6
                                                                 else "")
            img = heat_img(m[c], lo, hi + 1e-6, diverging=False, px=px, title=tip)
            cells.append(html.Div([made_by[c], img], className="map-cell") if c in made_by else img)
        label = f"{name} ({'conv' if kinds.get(name, '').startswith('conv') else 'pool'}, {len(m)} maps)"
        # the maps wrap within their own column, never under the row's label
        rows.append(html.Div([html.Strong(label), html.Div(cells, className="map-cells")], className="map-row"))
    return [title, html.P("A probe input, then what each layer makes of it: one small map per channel (the "
                          f"first {MAX_MAPS}), dark where the channel responds most, each map on its own scale "
                          "(hover for its range). Above each conv map, the kernel that made it.", className="hint"),
            *rows]


def _kernel_thumbs(snap, layer: str, width: int) -> dict[int, html.Img]:
    """Small images of a 2-D conv layer's kernels (red/blue around 0), by output channel, ``width`` px wide."""
    if layer not in snap.conv_layers:
        return {}
    weight = snap.weights(layer)
    if weight.ndim != 4 or weight.shape[2] * weight.shape[3] == 1:
        return {}
    images = kernel_images(weight)[:MAX_MAPS]
    bound = float(np.abs(images).max()) or 1.0
    px = max(1, width // images.shape[2])
    return {c: heat_img(images[c], -bound, bound, px=px, title=f"kernel {c} of {layer}")
            for c in range(len(images))}


def _ngram_table(snap, layer: str) -> list:
    """Text models: each filter of ``layer`` with the n-grams of the probe texts that excite it most."""
    grams = snap.top_ngrams(layer)
    width = next((e["kernel_size"][0] for e in snap.meta.get("layers", []) if e["name"] == layer), "?")
    rows = [html.Tr([html.Td(f"filter {f}", className="muted"),
                     html.Td([html.Span(text, className="ngram", title=f"activation {value:.2f}")
                              for text, value in g])]) for f, g in enumerate(grams)]
    return [html.H3(f"What each filter of {layer} detects: its top {width}-grams"),
            html.P(f"For every filter, the distinct {width}-word windows of {len(snap.top_tokens())} probe "
                   "reviews that excite it most, strongest first (hover for the activation). Filters that "
                   "have learnt something read like a theme: negated praise, 'would recommend', intensified "
                   "complaints.", className="hint"),
            html.Table(html.Tbody(rows), className="ngram-table")]


def register() -> None:
    """Register the feature-maps card's callback with the app being built (the page module calls it)."""
    callback(Output(ids.KN_MAPS, "children"), Input(ids.KN_RUN, "value"), Input(ids.KN_STEP, "value"),
             Input(ids.KN_STEPS, "data"), Input(ids.KN_INPUT, "value"), Input(ids.KN_LAYER, "value"))(_maps)
