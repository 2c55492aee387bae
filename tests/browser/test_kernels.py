"""Kernels page in headless Chromium: the grid follows new snapshots live, hover and click show fits.

    .venv/bin/python -m pytest --headless tests/browser/test_kernels.py
"""
from __future__ import annotations

import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.kernels import KIND, KernelSnapshot, write_kernel_snapshot
from backend.training.worker import run_training
from dashboard import ids
from tests.browser.test_training_flow import js_text, until

pytestmark = pytest.mark.browser
MOSAIC = f"#{ids.KN_MOSAIC} .js-plotly-plot"


@pytest.fixture(scope="module")
def cnn_runs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("kn") / "data"
    store = RunStore(data_dir)
    out = {}
    for name, model in (("k7", {"kernel_sizes": [7], "channels": [8, 8]}), ("k3", {"channels": [8, 8]})):
        spec = RunSpec.for_task("digits-cnn", steps=60, probe_every=30, model=model)
        out[name] = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, out[name], device="cpu") == "completed"
    mlp = RunSpec.for_task("digits-cnn", steps=5, model={"family": "mlp"})
    out["mlp"] = store.create_run("an mlp", mlp.task, mlp.model_dump(), status="completed")
    return data_dir, out


@pytest.mark.timeout(240)
def test_kn001_grid_follows_new_snapshots_hover_and_click_show_the_fit(dash_duo, cnn_runs):
    from dashboard.app import create_app

    data_dir, runs = cnn_runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={runs['k7']}", timeout=30)
    info = f"#{ids.KN_INFO}"
    until(lambda: "snapshot at step 60" in (js_text(dash_duo, info) or ""), timeout=30,
          msg=lambda: f"info: {js_text(dash_duo, info)!r}")
    until(lambda: dash_duo.driver.execute_script(
        f"const g = document.querySelector('{MOSAIC}'); return !!g && !!g.data && g.data.length === 1;"),
        timeout=20, msg="the kernel grid never drew")
    # opened by link, the probe-input dropdown of the feature-maps card is filled and shows its choice
    until(lambda: "input 1" in (js_text(dash_duo, f"#{ids.KN_INPUT}") or ""), timeout=20,
          msg=lambda: f"probe input dropdown: {js_text(dash_duo, f'#{ids.KN_INPUT}')!r}")

    # live: a new snapshot arrives while the page is open
    store = RunStore(data_dir)
    snap = KernelSnapshot(store, store.list_snapshots(runs["k7"], KIND)[-1])
    weights = {name: snap.weights(name) * 1.5 for name in snap.conv_layers}
    write_kernel_snapshot(store, runs["k7"], 90, weights, {}, None, {"layers": snap.meta["layers"]})
    until(lambda: "snapshot at step 90" in (js_text(dash_duo, info) or ""), timeout=20,
          msg=lambda: f"the page did not follow the new snapshot: {js_text(dash_duo, info)!r}")
    assert dash_duo.driver.execute_script(f"return document.querySelector('#{ids.KN_STEP}') !== null;")

    # hover over kernel 0's centre pixel shows its Gabor fit
    dash_duo.driver.execute_script(f"""
        window.Plotly.Fx.hover(document.querySelector('{MOSAIC}'), {{xval: 3, yval: 3}});""")
    until(lambda: "R²" in (dash_duo.driver.execute_script(
        f"const h = document.querySelector('{MOSAIC} .hovertext'); return h ? h.textContent : '';") or ""),
        timeout=10, msg="hovering a kernel did not show its fit")
    hover = dash_duo.driver.execute_script(f"return document.querySelector('{MOSAIC} .hovertext').textContent;")
    assert "kernel 0" in hover and "Gabor-like" in hover

    # click a kernel: its fitted Gabor appears beside it
    dash_duo.driver.execute_script(f"""
        const gd = document.querySelector('{MOSAIC}');
        gd.emit('plotly_click', {{points: [{{curveNumber: 0, customdata: 2, pointNumber: [3, 11]}}]}});""")
    until(lambda: "kernel 2" in (js_text(dash_duo, f"#{ids.KN_DETAIL}") or ""), timeout=10,
          msg=lambda: f"detail: {js_text(dash_duo, f'#{ids.KN_DETAIL}')!r}")
    assert "fitted Gabor" in js_text(dash_duo, f"#{ids.KN_DETAIL}")
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_kn002_no_conv_layer_and_small_kernels_say_why(dash_duo, cnn_runs):
    from dashboard.app import create_app

    data_dir, runs = cnn_runs
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={runs['mlp']}", timeout=30)
    until(lambda: "no conv layer" in (js_text(dash_duo, f"#{ids.KN_NOTE}") or ""), timeout=20,
          msg=lambda: f"MLP run: {js_text(dash_duo, f'#{ids.KN_NOTE}')!r}")

    dash_duo.driver.get(f"{dash_duo.server_url}/kernels?run={runs['k3']}")
    until(lambda: "too few pixels" in (dash_duo.driver.execute_script(
        f"const g = document.querySelector('#{ids.KN_CURVE} .js-plotly-plot');"
        "return g ? JSON.stringify(g.layout.annotations || []) : '';") or ""), timeout=20,
        msg="3x3 kernels: the curve card does not explain why there is no Gabor score")
    assert dash_duo.get_logs() == []
