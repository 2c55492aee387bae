"""Kernels page (``/kernels``): conv kernels as they train, how Gabor-like they are, what they detect.

A grid of each conv layer's kernels at the snapshot the step slider points at (following
the newest by default, live; Play steps through the snapshots): diverging colours centred
at zero, or colour images for a layer over an RGB input (0 mid-grey), small line plots for
1-D kernels of one channel, small (channels x taps) tiles for 1-D kernels of several.
Hover a kernel for its Gabor fit, click it to see the fitted Gabor beside it. For 2D
kernels of 7x7 or larger: the fraction of Gabor-like kernels over training (optionally
beside another run's first conv layer) and a rose of their orientations. Feature maps: a
probe input and its maps after each conv and pooling layer.

This module holds the layout and the callbacks of the snapshots, the mosaic and rose, and the
Gabor-like curve; the clicked kernel's card lives in :mod:`dashboard.views.kernels.detail` and the
feature-maps card in :mod:`dashboard.views.kernels.maps`. Their callbacks are registered from here at
import, since Dash runs a page module once per app and tests build several apps.

Example::

    layout(run="a1b2")   # the page for run a1b2 (its kernels, Gabor curve and feature maps)
"""
from __future__ import annotations

import dash
import numpy as np
from dash import Input, Output, State, callback, dcc, html, no_update

from backend.analysis.gabor import MIN_SIZE, kernel_images
from backend.store import StoreError
from dashboard import ids
from dashboard.views.kernels import detail as kernel_detail
from dashboard.views.kernels import maps as kernel_maps
from dashboard.components import alert, blank_figure, no_runs_state
from dashboard.context import current
from dashboard.views.kernels.figures import gabor_curve_figure, kernel_mosaic, line_grid, orientation_rose, rgb_mosaic
from dashboard.snapshots import ViewError, view_error_message
from dashboard.inputs import (MAX_INDEX, Query, as_choice, as_flags, as_int, as_run_id, as_steps, as_str,
                              trigger_id)
from dashboard.views.kernels.detail import kernel_labels, stripes_deg
from dashboard.snapshot_slider import PLAY, keeps_following, register_play, slider_marks, slider_value, step_at

dash.register_page(__name__, path="/kernels", name="Kernels", order=2, title="Kernels · deepscope")
kernel_detail.register()  # here: Dash runs this module once per app, so every app gets the cards' callbacks
kernel_maps.register()

WHAT = ("Kernels shows the filters of a convolutional network as it trains: what each first-layer kernel "
        "looks like, how many have become Gabor-like (oriented edge and grating detectors), and what each "
        "layer's feature maps make of an input.")
CONFIG = {"displaylogo": False, "displayModeBar": False}
LAYER_LEN = 200  # characters of a layer name (module paths such as "features.0")
PLAY_MS = 500  # Play: about 2 snapshots a second
HIDDEN = {"display": "none"}


def layout(**query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    q = Query(query)
    run = q.run_id("run")
    if not runs:
        return html.Div([q.notice(), no_runs_state(WHAT)])
    cnn = _cnn_runs(runs)
    chosen = run or (cnn[0]["id"] if cnn else runs[0]["id"])
    options = [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in cnn]
    if chosen not in {o["value"] for o in options}:
        known = {r["id"]: r for r in runs}
        if chosen in known:
            options.append({"label": f"{known[chosen]['name']}  ({chosen}, no conv layer)", "value": chosen})
    return html.Div([
        html.P(WHAT, className="page-intro"),
        html.Div([
            html.Div([html.Label("Run", htmlFor=ids.KN_RUN),
                      dcc.Dropdown(id=ids.KN_RUN, options=options, value=chosen, clearable=False)], className="field"),
            html.Div([html.Label("Layer", htmlFor=ids.KN_LAYER),
                      dcc.Dropdown(id=ids.KN_LAYER, clearable=False)], className="field"),
            html.Div([html.Label("Training step", htmlFor=ids.KN_STEP),
                      html.Div([html.Button(PLAY, id=ids.KN_PLAY, className="btn kn-play", n_clicks=0,
                                            title="step through the snapshots up to the newest, 2 a second"),
                                html.Div(dcc.Slider(id=ids.KN_STEP, min=0, max=0, step=1, value=0, marks=None,
                                                    included=False, allow_direct_input=False),
                                         className="kn-slider")], className="kn-step-row"),
                      html.Div([dcc.Checklist(id=ids.KN_FOLLOW, options=[{"label": " follow the newest",
                                                                           "value": "on"}], value=["on"], inline=True),
                                html.Span(id=ids.KN_INFO, className="muted")], className="step-info")],
                     className="field field-step"),
        ], className="toolbar kn-toolbar"),
        q.notice(),
        html.Div(id=ids.KN_NOTE, role="status"),
        html.Div([
            html.Section([
                html.Div([html.Span("Show kernels as", className="field-label"),
                          dcc.RadioItems(id=ids.KN_COLOUR, value="rgb", inline=True, options=[
                              {"label": " Colour", "value": "rgb"},
                              {"label": " Principal component", "value": "principal"}])],
                         id=ids.KN_COLOUR_FIELD, className="kn-colour", style=HIDDEN,
                         title="Colour: each kernel's red, green and blue input weights (0 is grey). Principal "
                               "component: the spatial pattern its three channels share best, red/blue around 0."),
                dcc.Graph(id=ids.KN_MOSAIC, config=CONFIG)], className="card"),
            html.Section([html.H3("Kernel and its Gabor fit"), html.Div(id=ids.KN_DETAIL)], className="card"),
        ], className="two-col"),
        html.Div([html.Section([
            html.Div([html.Label("Compare with", htmlFor=ids.KN_COMPARE),
                      dcc.Dropdown(id=ids.KN_COMPARE, clearable=True,
                                   placeholder="another CNN run (its first conv layer)")],
                     className="field-inline kn-compare"),
            dcc.Graph(id=ids.KN_CURVE, config=CONFIG)], className="card"),
                  html.Section([dcc.Graph(id=ids.KN_ROSE, config=CONFIG)], className="card")], className="two-col"),
        html.Section([html.Div([html.Label("Probe input", htmlFor=ids.KN_INPUT),
                                dcc.Dropdown(id=ids.KN_INPUT, value="0", clearable=False)], id=ids.KN_INPUT_FIELD,
                               className="field-inline", style=HIDDEN),
                      html.Div(id=ids.KN_MAPS, className="maps")], className="card"),
        dcc.Store(id=ids.KN_STEPS),
        dcc.Interval(id=ids.KN_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
        dcc.Interval(id=ids.KN_PLAY_TICK, interval=PLAY_MS, disabled=True),
    ], className="kernels-page")


CONV_FAMILIES = ("cnn", "sparse-ae", "textcnn")


def _cnn_runs(runs: list[dict]) -> list[dict]:
    """Runs of a family with conv layers (image CNNs, the sparse autoencoder, text CNNs)."""
    return [r for r in runs if (r.get("spec") or {}).get("model", {}).get("family") in CONV_FAMILIES]


@callback(Output(ids.KN_STEP, "max"), Output(ids.KN_STEP, "marks"), Output(ids.KN_STEP, "value"),
          Output(ids.KN_STEPS, "data"), Output(ids.KN_LAYER, "options"), Output(ids.KN_LAYER, "value"),
          Output(ids.KN_INPUT, "options"), Output(ids.KN_INPUT, "value"), Output(ids.KN_INPUT_FIELD, "style"),
          Output(ids.KN_NOTE, "children"),
          Input(ids.KN_INTERVAL, "n_intervals"), Input(ids.KN_RUN, "value"), Input(ids.KN_FOLLOW, "value"),
          State(ids.KN_STEPS, "data"), State(ids.KN_STEP, "value"), State(ids.KN_LAYER, "value"),
          State(ids.KN_INPUT, "value"))
def _snapshots(_n, run_id, follow, known, index, layer, which):
    run_id, follow, known = as_run_id(run_id), as_flags(follow), as_steps(known)
    index = as_int(index, None, 0, MAX_INDEX)
    layer, which = as_str(layer, LAYER_LEN), as_str(which, 12)
    context = current()
    run = context.data.get_run(run_id) if run_id else None
    if run is None:
        return 0, {}, 0, [], [], None, [], None, HIDDEN, alert("Choose a run with a convolutional model.", "warning")
    snaps = context.data.kernels.snapshots(run_id)
    if not snaps:
        family = (run.get("spec") or {}).get("model", {}).get("family")
        if family not in CONV_FAMILIES:
            msg = (f"Run {run['name']} ({run['id']}) is a {family or 'non-convolutional'} model: it has no conv layer, "
                   "so it has no kernels. Choose a CNN run, or start one on New run (task natural-patches, "
                   "patches-cnn, digits-cnn with family cnn, or sentiment-cnn).")
            return 0, {}, 0, [], [], None, [], None, HIDDEN, alert(msg, "warning")
        return 0, {}, 0, [], [], None, [], None, HIDDEN, alert(
            f"No kernel snapshot yet (run status: {run['status']}); this page updates by itself.", "info")
    steps = [int(s["step"]) for s in snaps]
    if steps == known and trigger_id() != ids.KN_RUN:  # another run with the same steps still updates
        return (no_update,) * 10
    meta = snaps[-1]["meta"]
    layers = meta.get("conv_layers", [])
    sizes = {entry["name"]: entry.get("kernel_size") for entry in meta.get("layers", []) if entry.get("kind") != "pool"}
    layer_opts = [{"label": f"{name} ({'x'.join(map(str, sizes.get(name) or []))})", "value": name} for name in layers]
    value = slider_value(steps, known, index, follow, None)
    # string values: Dash 4's dropdown shows a numeric 0 as empty
    inputs = [{"label": f"input {i + 1}", "value": str(i)} for i in range(int(meta.get("n_inputs", 0)))]
    which = which if which in {o["value"] for o in inputs} else (inputs[0]["value"] if inputs else None)
    return (len(steps) - 1, slider_marks(steps), value, steps, layer_opts, layer if layer in layers else
            (layers[0] if layers else None), inputs, which, {} if inputs else HIDDEN, None)


@callback(Output(ids.KN_FOLLOW, "value"), Input(ids.KN_STEP, "value"), State(ids.KN_STEPS, "data"),
          State(ids.KN_FOLLOW, "value"), prevent_initial_call=True)
def _stop_following(index, steps, follow):
    index, steps, follow = as_int(index, None, 0, MAX_INDEX), as_steps(steps), as_flags(follow)
    return no_update if keeps_following(index, steps, follow) else []


@callback(Output(ids.KN_MOSAIC, "figure"), Output(ids.KN_ROSE, "figure"), Output(ids.KN_INFO, "children"),
          Output(ids.KN_COLOUR_FIELD, "style"),
          Input(ids.KN_RUN, "value"), Input(ids.KN_STEP, "value"), Input(ids.KN_STEPS, "data"),
          Input(ids.KN_LAYER, "value"), Input(ids.KN_COLOUR, "value"))
def _kernels_view(run_id, index, steps, layer, colour):
    run_id, index, steps = as_run_id(run_id), as_int(index, 0, 0, MAX_INDEX), as_steps(steps, [])
    layer, colour = as_str(layer, LAYER_LEN), as_choice(colour, ("rgb", "principal"), "rgb")
    if not steps or not layer:
        return blank_figure("No kernels to show yet."), blank_figure(""), "", HIDDEN
    kd = current().data.kernels
    try:
        snap, note = kd.open(run_id, step_at(steps, index))
        weight = snap.weights(layer)
    except (ViewError, StoreError) as exc:  # StoreError: a layer this snapshot lacks (another run's)
        msg = view_error_message(exc)
        return blank_figure(msg), blank_figure(""), "", HIDDEN
    info = f"snapshot at step {snap.step:,}" + (f" · {note}" if note else "")
    if weight.ndim == 4 and weight.shape[2] * weight.shape[3] == 1:
        msg = f"{layer} has 1x1 kernels: they mix channels and have no spatial pattern to show or fit."
        return blank_figure(msg), blank_figure(""), info, HIDDEN
    fit = kd.fits(run_id, snap, layer)
    n = len(weight)
    labels = kernel_labels(n, fit)
    rgb = weight.ndim == 4 and weight.shape[1] == 3
    if weight.ndim == 3:
        out, chans, taps = weight.shape
        if chans == 1:
            title = f"{layer}: {out} kernels of {taps} taps (1 input channel) at step {snap.step:,}"
            mosaic = line_grid(weight[:, 0], labels, title)
        else:
            title = (f"{layer}: {out} kernels, each {chans} input channels (rows) x {taps} taps at "
                     f"step {snap.step:,}")
            mosaic = kernel_mosaic(weight, labels, title)
    else:
        size = "x".join(map(str, weight.shape[2:]))
        if rgb and colour != "principal":
            mosaic = rgb_mosaic(weight, labels, f"{layer}: {n} kernels {size} over RGB, in colour, "
                                                f"at step {snap.step:,}")
        else:
            what = " (principal component of R, G, B)" if rgb else ""
            mosaic = kernel_mosaic(kernel_images(weight), labels, f"{layer}: {n} kernels {size}{what} at "
                                                                  f"step {snap.step:,}")
    colour_style = None if rgb else HIDDEN
    if "too_small" in fit:
        msg = ("Stripe orientations need a Gabor fit,<br>which applies to 2D kernels only." if weight.ndim == 3
               else f"Stripe orientations need a Gabor fit,<br>which needs kernels of {MIN_SIZE}x{MIN_SIZE} or larger.")
        return mosaic, blank_figure(msg), info, colour_style
    rose = orientation_rose([np.radians(stripes_deg(t)) for t in fit["theta"]], fit["gabor_like"]) if any(fit["gabor_like"]) else \
        blank_figure("No Gabor-like kernels at this step yet: their orientations will show here.")
    return mosaic, rose, info, colour_style


@callback(Output(ids.KN_COMPARE, "options"), Output(ids.KN_COMPARE, "value"), Input(ids.KN_RUN, "value"),
          State(ids.KN_COMPARE, "value"))
def _compare_options(run_id, compare):
    run_id, compare = as_run_id(run_id), as_run_id(compare)
    runs = [r for r in _cnn_runs(current().data.list_runs()) if r["id"] != run_id]
    options = [{"label": f"{r['name']} ({r['id']})", "value": r["id"]} for r in runs]
    return options, compare if compare in {o["value"] for o in options} else None


@callback(Output(ids.KN_CURVE, "figure"), Input(ids.KN_RUN, "value"), Input(ids.KN_STEPS, "data"),
          Input(ids.KN_LAYER, "value"), Input(ids.KN_COMPARE, "value"))
def _curve(run_id, steps, layer, compare):
    run_id, steps, layer, compare = as_run_id(run_id), as_steps(steps, []), as_str(layer, LAYER_LEN), as_run_id(compare)
    if not steps or not layer or not run_id:
        return blank_figure("")
    data = current().data
    run = data.get_run(run_id) or {"name": run_id}
    main = _curve_series(run_id, run["name"], layer)
    other = None
    if compare and compare != run_id:
        other_run = data.get_run(compare)
        if other_run is not None:
            snaps = data.kernels.snapshots(compare)
            other_layer = (snaps[-1]["meta"].get("conv_layers") or [None])[0] if snaps else None
            other = _curve_series(compare, other_run["name"], other_layer) if other_layer else \
                {"name": other_run["name"], "note": "no kernel snapshot yet"}
    if other is None:
        if "note" in main:
            return blank_figure(main["why"])
        return gabor_curve_figure(main["steps"], main["fractions"], layer)
    series = [main, other]
    for s in series:
        if "steps" in s:
            s["name"] = f"{s['name']} · {s['layer']}"
    return gabor_curve_figure(series=series)


def _curve_series(run_id: str, name: str, layer: str) -> dict:
    """A run's Gabor-like curve for ``layer`` as a series, or a note on why it has none."""
    kd = current().data.kernels
    snaps = kd.snapshots(run_id)
    shape = _kernel_size(kd, run_id, snaps, layer)
    if len(shape) == 1:
        return {"name": name, "layer": layer, "note": f"1-D kernels ({layer}), no Gabor score",
                "why": (f"Gabor fits apply to 2D kernels: {layer} has 1-D kernels ({shape[0]} taps),<br>"
                        "so it has no Gabor-like score.")}
    if shape and min(shape) < MIN_SIZE:
        size = "x".join(map(str, shape))
        return {"name": name, "layer": layer, "note": f"{size} kernels, no Gabor score",
                "why": (f"{size} kernels have too few pixels to tell a Gabor from noise<br>(random 3x3 kernels fit "
                        f"one); the Gabor score needs<br>kernels of {MIN_SIZE}x{MIN_SIZE} or larger.")}
    curve = kd.gabor_curve(run_id, layer)
    if not curve or not curve[0]:
        return {"name": name, "layer": layer, "note": "no Gabor score", "why": "No Gabor score for this layer yet."}
    return {"name": name, "layer": layer, "steps": curve[0], "fractions": curve[1]}


def _kernel_size(kd, run_id: str, snaps: list[dict], layer: str) -> list[int]:
    """A layer's kernel size from the newest snapshot's meta (or its weights): [k] or [kh, kw]; [] if unknown."""
    if not snaps:
        return []
    for entry in snaps[-1]["meta"].get("layers", []):
        if entry.get("name") == layer and entry.get("kernel_size"):
            return [int(v) for v in entry["kernel_size"]]
    try:
        snap, _ = kd.open(run_id)
        return list(snap.weights(layer).shape[2:])
    except Exception:  # noqa: BLE001 - unknown size: the curve decides
        return []


# Play through the snapshots (dashboard/snapshot_slider.py)
register_play(ids.KN_PLAY, ids.KN_PLAY_TICK, ids.KN_STEP, ids.KN_FOLLOW, ids.KN_STEPS,
              Input(ids.KN_RUN, "value"))
