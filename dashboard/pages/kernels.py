"""Kernels page (``/kernels``): conv kernels as they train, how Gabor-like they are, what they detect.

A grid of each conv layer's kernels (diverging colours centred at zero) at the snapshot
the step slider points at (following the newest by default, live); hover a kernel for
its Gabor fit, click it to see the fitted Gabor beside it. For kernels of 7x7 or larger:
the fraction of Gabor-like kernels over training and a rose of their orientations.
Feature maps: a probe input and its maps after each conv and pooling layer.
"""
from __future__ import annotations

import dash
import numpy as np
from dash import Input, Output, State, callback, dcc, html, no_update

from backend.analysis.gabor import MIN_SIZE, gabor, kernel_images
from dashboard import ids
from dashboard.components import alert, blank_figure, no_runs_state
from dashboard.context import current
from dashboard.figures.hidden import heat_img
from dashboard.figures.kernels import gabor_curve_figure, kernel_mosaic, orientation_rose
from dashboard.hidden_data import ViewError, view_error_message
from dashboard.snapshot_slider import keeps_following, slider_marks, slider_value, step_at

dash.register_page(__name__, path="/kernels", name="Kernels", order=2, title="Kernels · deepscope")

WHAT = ("Kernels shows the filters of a convolutional network as it trains: what each first-layer kernel "
        "looks like, how many have become Gabor-like (oriented edge and grating detectors), and what each "
        "layer's feature maps make of an input.")
CONFIG = {"displaylogo": False, "displayModeBar": False}
MAX_MAPS = 16


def layout(run: str | None = None, **_query) -> html.Div:
    context = current()
    runs = context.data.list_runs()
    if not runs:
        return no_runs_state(WHAT)
    cnn = [r for r in runs if (r.get("spec") or {}).get("model", {}).get("family") == "cnn"]
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
                      dcc.Slider(id=ids.KN_STEP, min=0, max=0, step=1, value=0, marks=None, included=False,
                                 allow_direct_input=False),
                      html.Div([dcc.Checklist(id=ids.KN_FOLLOW, options=[{"label": " follow the newest",
                                                                           "value": "on"}], value=["on"], inline=True),
                                html.Span(id=ids.KN_INFO, className="muted")], className="step-info")],
                     className="field field-step"),
        ], className="toolbar kn-toolbar"),
        html.Div(id=ids.KN_NOTE, role="status"),
        html.Div([
            html.Section([dcc.Graph(id=ids.KN_MOSAIC, config=CONFIG)], className="card"),
            html.Section([html.H3("Kernel and its Gabor fit"), html.Div(id=ids.KN_DETAIL)], className="card"),
        ], className="two-col"),
        html.Div([html.Section([dcc.Graph(id=ids.KN_CURVE, config=CONFIG)], className="card"),
                  html.Section([dcc.Graph(id=ids.KN_ROSE, config=CONFIG)], className="card")], className="two-col"),
        html.Section([html.H3("Feature maps"),
                      html.Div([html.Label("Probe input", htmlFor=ids.KN_INPUT),
                                dcc.Dropdown(id=ids.KN_INPUT, value=0, clearable=False)], className="field-inline"),
                      html.Div(id=ids.KN_MAPS, className="maps")], className="card"),
        dcc.Store(id=ids.KN_STEPS),
        dcc.Interval(id=ids.KN_INTERVAL, interval=max(2000, 4 * context.poll_ms)),
    ], className="kernels-page")


@callback(Output(ids.KN_STEP, "max"), Output(ids.KN_STEP, "marks"), Output(ids.KN_STEP, "value"),
          Output(ids.KN_STEPS, "data"), Output(ids.KN_LAYER, "options"), Output(ids.KN_LAYER, "value"),
          Output(ids.KN_INPUT, "options"), Output(ids.KN_NOTE, "children"),
          Input(ids.KN_INTERVAL, "n_intervals"), Input(ids.KN_RUN, "value"), Input(ids.KN_FOLLOW, "value"),
          State(ids.KN_STEPS, "data"), State(ids.KN_STEP, "value"), State(ids.KN_LAYER, "value"))
def _snapshots(_n, run_id, follow, known, index, layer):
    context = current()
    run = context.data.get_run(run_id) if run_id else None
    if run is None:
        return 0, {}, 0, [], [], None, [], alert("Choose a run with a convolutional model.", "warning")
    snaps = context.data.kernels.snapshots(run_id)
    if not snaps:
        family = (run.get("spec") or {}).get("model", {}).get("family")
        if family != "cnn":
            msg = (f"Run {run['name']} ({run['id']}) is a {family or 'non-convolutional'} model: it has no conv layer, "
                   "so it has no kernels. Choose a CNN run, or start one on New run (family cnn).")
            return 0, {}, 0, [], [], None, [], alert(msg, "warning")
        return 0, {}, 0, [], [], None, [], alert(
            f"No kernel snapshot yet (run status: {run['status']}); this page updates by itself.", "info")
    steps = [int(s["step"]) for s in snaps]
    if steps == known:
        return (no_update,) * 8
    meta = snaps[-1]["meta"]
    layers = meta.get("conv_layers", [])
    sizes = {entry["name"]: entry.get("kernel_size") for entry in meta.get("layers", []) if entry.get("kind") != "pool"}
    layer_opts = [{"label": f"{name} ({'x'.join(map(str, sizes.get(name) or []))})", "value": name} for name in layers]
    value = slider_value(steps, known, index, follow, None)
    inputs = [{"label": f"input {i}", "value": i} for i in range(int(meta.get("n_inputs", 0)))]
    return (len(steps) - 1, slider_marks(steps), value, steps, layer_opts, layer if layer in layers else
            (layers[0] if layers else None), inputs, None)


@callback(Output(ids.KN_FOLLOW, "value"), Input(ids.KN_STEP, "value"), State(ids.KN_STEPS, "data"),
          State(ids.KN_FOLLOW, "value"), prevent_initial_call=True)
def _stop_following(index, steps, follow):
    return no_update if keeps_following(index, steps, follow) else []


@callback(Output(ids.KN_MOSAIC, "figure"), Output(ids.KN_CURVE, "figure"), Output(ids.KN_ROSE, "figure"),
          Output(ids.KN_INFO, "children"),
          Input(ids.KN_RUN, "value"), Input(ids.KN_STEP, "value"), Input(ids.KN_STEPS, "data"),
          Input(ids.KN_LAYER, "value"))
def _kernels_view(run_id, index, steps, layer):
    if not steps or not layer:
        return blank_figure("No kernels to show yet."), blank_figure(""), blank_figure(""), ""
    kd = current().data.kernels
    try:
        snap, note = kd.open(run_id, step_at(steps, index))
        weight = snap.weights(layer)
    except ViewError as exc:
        msg = view_error_message(exc)
        return blank_figure(msg), blank_figure(""), blank_figure(""), ""
    info = f"snapshot at step {snap.step:,}" + (f" · {note}" if note else "")
    if weight.ndim == 4 and weight.shape[2] * weight.shape[3] == 1:
        msg = f"{layer} has 1x1 kernels: they mix channels and have no spatial pattern to show or fit."
        return blank_figure(msg), blank_figure(""), blank_figure(""), info
    images = kernel_images(weight) if weight.ndim == 4 else weight.reshape(-1, 1, weight.shape[-1])[:, 0][:, None, :]
    fit = kd.fits(run_id, snap, layer)
    labels = _labels(len(images), fit)
    title = f"{layer}: {len(images)} kernels {'x'.join(map(str, weight.shape[2:]))} at step {snap.step:,}"
    mosaic = kernel_mosaic(images, labels, title)
    if "too_small" in fit:
        size = fit["too_small"]
        msg = (f"{size}x{size} kernels have too few pixels to tell a Gabor from noise (random 3x3 kernels fit one); "
               f"the Gabor score needs kernels of {MIN_SIZE}x{MIN_SIZE} or larger.") if size else fit.get("reason", "")
        return mosaic, blank_figure(msg), blank_figure(""), info
    steps_curve, fractions = kd.gabor_curve(run_id, layer) or ([], [])
    rose = orientation_rose([np.radians(stripes_deg(t)) for t in fit["theta"]], fit["gabor_like"]) if any(fit["gabor_like"]) else \
        blank_figure("No Gabor-like kernels at this step yet: their orientations will show here.")
    return mosaic, gabor_curve_figure(steps_curve, fractions, layer), rose, info


def stripes_deg(theta: float) -> float:
    """Direction of a Gabor's stripes in degrees (0 = horizontal), from its wave-vector angle."""
    return (float(np.degrees(theta)) + 90.0) % 180.0


def _labels(n: int, fit: dict) -> list[str]:
    if "too_small" in fit:
        return [f"kernel {k}" for k in range(n)]
    out = []
    for k in range(n):
        verdict = "Gabor-like" if fit["gabor_like"][k] else "not Gabor-like"
        out.append(f"kernel {k}: {verdict}<br>R² {fit['r2'][k]:.2f} · orientation selectivity "
                   f"{fit['selectivity'][k]:.2f}<br>stripes at {stripes_deg(fit['theta'][k]):.0f}° · "
                   f"{fit['frequency'][k]:.2f} cycles/px")
    return out


@callback(Output(ids.KN_DETAIL, "children"), Input(ids.KN_MOSAIC, "clickData"), Input(ids.KN_RUN, "value"),
          Input(ids.KN_STEP, "value"), Input(ids.KN_STEPS, "data"), Input(ids.KN_LAYER, "value"))
def _detail(click, run_id, index, steps, layer):
    if not steps or not layer:
        return None
    k = 0
    if click and click.get("points"):
        k = max(0, int(click["points"][0].get("customdata", 0) or 0))
    kd = current().data.kernels
    try:
        snap, _ = kd.open(run_id, step_at(steps, index))
        weight = snap.weights(layer)
    except ViewError as exc:
        return alert(view_error_message(exc), "warning")
    if weight.ndim != 4:
        return html.P("1-D kernels: see the grid.", className="hint")
    images = kernel_images(weight)
    k = min(k, len(images) - 1)
    bound = float(np.abs(images[k]).max()) or 1.0
    parts = [html.Figure([heat_img(images[k], -bound, bound, px=18), html.Figcaption(f"kernel {k}")])]
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


@callback(Output(ids.KN_MAPS, "children"), Input(ids.KN_RUN, "value"), Input(ids.KN_STEP, "value"),
          Input(ids.KN_STEPS, "data"), Input(ids.KN_INPUT, "value"))
def _maps(run_id, index, steps, which):
    if not steps:
        return None
    try:
        snap, _ = current().data.kernels.open(run_id, step_at(steps, index))
    except ViewError as exc:
        return alert(view_error_message(exc), "warning")
    inputs = snap.inputs()
    if inputs is None or not len(inputs):
        return html.P("This run has no probe inputs.", className="hint")
    i = min(int(which or 0), len(inputs) - 1)
    x = inputs[i].astype(np.float32)
    rows = [html.Div([html.Strong("input"), heat_img(x.mean(0), float(x.min()), float(x.max()), diverging=False,
                                                     px=8)], className="map-row")]
    kinds = {entry["name"]: entry["kind"] for entry in snap.meta.get("layers", [])}
    for name in snap.map_layers:
        m = snap.maps(name)[i].astype(np.float32)
        if m.ndim != 3:
            continue
        lo, hi = float(m.min()), float(m.max())
        imgs = [heat_img(m[c], lo, hi, diverging=False, px=max(2, 48 // max(m.shape[1:])),
                         title=f"{name} channel {c}") for c in range(min(MAX_MAPS, len(m)))]
        label = f"{name} ({'conv' if kinds.get(name, '').startswith('conv') else 'pool'}, {len(m)} maps)"
        rows.append(html.Div([html.Strong(label), *imgs], className="map-row"))
    return rows
