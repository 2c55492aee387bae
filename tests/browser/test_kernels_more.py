"""Kernels page in headless Chromium: colour kernels of an RGB input, Play, comparing runs, 1-D kernels.

The runs are made by hand (the built-in tasks have no RGB or 1-D input): kernel snapshots
written with ``write_kernel_snapshot`` that turn from noise into Gabors over 4 steps.

    .venv/bin/python -m pytest --headless tests/browser/test_kernels_more.py
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder

from backend.analysis.gabor import gabor
from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.kernels import write_kernel_snapshot
from dashboard import ids
from tests.browser.test_training_flow import js_text, until

pytestmark = pytest.mark.browser
MOSAIC = f"#{ids.KN_MOSAIC} .js-plotly-plot"
CURVE = f"#{ids.KN_CURVE} .js-plotly-plot"
STEPS = (0, 10, 20, 30)


def _gabors(n: int, size: int, rng) -> np.ndarray:
    """``n`` Gabors of ``size`` x ``size``, varied orientation, frequency and phase (peak about 1)."""
    params = [[1.0, (size - 1) / 2, (size - 1) / 2, rng.uniform(0, np.pi), rng.uniform(0.15, 0.3),
               rng.uniform(-np.pi, np.pi), size / 4, size / 3, 0.0] for _ in range(n)]
    return gabor(np.array(params), size)


def _fake_run(store: RunStore, name: str, shape: tuple, kind: str, seed: int, power: float = 1.0) -> str:
    """A CNN run whose kernels of ``shape`` go from noise (step 0) to Gabors (step 30), or to smooth
    waves for 1-D kernels; RGB kernels get a colour per kernel, some colour-opponent."""
    spec = RunSpec.for_task("digits-cnn", model={"kernel_sizes": [shape[-1]]}).model_dump()
    run_id = store.create_run(name, "digits-cnn", spec, status="completed")
    rng = np.random.default_rng(seed)
    out, chans = shape[:2]
    noise = rng.normal(size=shape) * 0.3
    if len(shape) == 4:
        pattern = _gabors(out, shape[-1], rng)[:, None] * np.ones((1, chans, 1, 1))
        if chans == 3:
            colours = rng.normal(size=(out, 3, 1, 1))
            colours[::3] = np.abs(colours[::3])          # luminance-like
            pattern = pattern * colours
    else:
        t = np.linspace(0, 2 * np.pi, shape[-1])
        pattern = np.sin(t[None, None] * rng.uniform(0.5, 1.5, size=(out, chans, 1)) + rng.uniform(0, 6, (out, chans, 1)))
    meta = {"layers": [{"name": "features.0", "kind": kind, "kernel_size": list(shape[2:]), "in": chans,
                        "out": out}]}
    for step in STEPS:
        a = (step / STEPS[-1]) ** power
        weight = (a * pattern + (1 - a) * noise) * 0.2
        write_kernel_snapshot(store, run_id, step, {"features.0": weight.astype(np.float32)}, {}, None, meta)
    return run_id


def make_fake_runs(data_dir) -> dict[str, str]:
    """Runs over an RGB input (8 kernels 7x7), a grey input (8 kernels 7x7), 3x3 kernels, and 1-D kernels
    of one channel (100 x 5) and of 32 (100 x 32 x 3, as a text CNN over word embeddings)."""
    store = RunStore(data_dir)
    out = {}
    for key, name, shape, kind, power in (("rgb", "rgb7", (8, 3, 7, 7), "conv2d", 1.0),
                                          ("grey", "grey7", (8, 1, 7, 7), "conv2d", 0.4),
                                          ("k3", "grey3", (8, 1, 3, 3), "conv2d", 1.0),
                                          ("line", "wave1d", (100, 1, 5), "conv1d", 1.0),
                                          ("text", "textcnn", (100, 32, 3), "conv1d", 1.0)):
        out[key] = _fake_run(store, name, shape, kind, seed=len(out), power=power)
        time.sleep(0.01)
    return out


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("kn-more") / "data"
    return data_dir, make_fake_runs(data_dir)


def _trace_type(dash_duo, selector: str) -> str | None:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0]); return g && g.data && g.data.length ? g.data[0].type : null;",
        selector)


def _hover_text(dash_duo, xval: float, yval: float) -> str:
    dash_duo.driver.execute_script(
        "window.Plotly.Fx.hover(document.querySelector(arguments[0]), {xval: arguments[1], yval: arguments[2]});",
        MOSAIC, xval, yval)
    return dash_duo.driver.execute_script(
        "const h = document.querySelector(arguments[0] + ' .hovertext'); return h ? h.textContent : '';", MOSAIC)


def _click_pixel(dash_duo, row: int, col: int) -> None:
    """A real mouse click on the mosaic's pixel at ``row``, ``col``."""
    x, y = dash_duo.driver.execute_script("""
        const gd = document.querySelector(arguments[0]);
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const L = gd._fullLayout;
        return [r.left + L.xaxis.l2p(arguments[2]), r.top + L.yaxis.l2p(arguments[1])];
    """, MOSAIC, row, col)
    builder = ActionBuilder(dash_duo.driver)
    builder.pointer_action.move_to_location(int(x), int(y))
    builder.pointer_action.click()
    builder.perform()
    ActionChains(dash_duo.driver).reset_actions()


@pytest.mark.timeout(240)
def test_kn003_rgb_play_and_compare(dash_duo, fake_runs):
    from dashboard.app import create_app

    data_dir, runs = fake_runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={runs['rgb']}", timeout=30)
    info = f"#{ids.KN_INFO}"
    until(lambda: "snapshot at step 30" in (js_text(dash_duo, info) or ""), timeout=30,
          msg=lambda: f"info: {js_text(dash_duo, info)!r}")

    # the grid is one colour image; hover names the kernel and its fit, a click shows it in colour
    until(lambda: _trace_type(dash_duo, MOSAIC) == "image", timeout=20,
          msg=lambda: f"the kernel grid is a {_trace_type(dash_duo, MOSAIC)!r}, not an RGB image")
    assert dash_duo.driver.execute_script(
        "const z = document.querySelector(arguments[0]).data[0].z; return z[3][3].length;", MOSAIC) == 3
    until(lambda: "R²" in _hover_text(dash_duo, 3, 3), timeout=10, msg="hovering a colour kernel shows no fit")
    hover = _hover_text(dash_duo, 3, 3)
    assert "kernel 0" in hover and "Gabor-like" in hover and "weights R" in hover
    _click_pixel(dash_duo, row=3, col=2 * 8 + 3)  # a real click on kernel 2's centre (7x7 kernels, 1-pixel gaps)
    detail = f"#{ids.KN_DETAIL}"
    until(lambda: "kernel 2 in colour" in (js_text(dash_duo, detail) or ""), timeout=10,
          msg=lambda: f"detail: {js_text(dash_duo, detail)!r}")
    assert "fitted Gabor" in js_text(dash_duo, detail) and "principal component" in js_text(dash_duo, detail)

    # Colour / Principal component
    dash_duo.driver.execute_script(
        "document.querySelector(arguments[0] + ' input[value=\"principal\"]').click();", f"#{ids.KN_COLOUR}")
    until(lambda: _trace_type(dash_duo, MOSAIC) == "heatmap", timeout=10, msg="principal mode is not a heatmap")
    dash_duo.driver.execute_script(
        "document.querySelector(arguments[0] + ' input[value=\"rgb\"]').click();", f"#{ids.KN_COLOUR}")
    until(lambda: _trace_type(dash_duo, MOSAIC) == "image", timeout=10, msg="back to colour")

    # Play from the newest: starts at the first snapshot, steps to the newest, stops; following is off
    play = f"#{ids.KN_PLAY}"
    seen = []
    dash_duo.find_element(play).click()
    until(lambda: "Pause" in (js_text(dash_duo, play) or ""), timeout=5, poll=0.02,
          msg="Play did not start (the button still says Play)")

    def finished():
        text = js_text(dash_duo, info) or ""
        if not seen or seen[-1] != text:
            seen.append(text)
        return "Play" in (js_text(dash_duo, play) or "") and "step 30" in text
    until(finished, timeout=20, poll=0.05, msg=lambda: f"Play did not step to the newest: {seen}")
    shown = [int(s.split("snapshot at step ")[1].split()[0].replace(",", "")) for s in seen
             if "snapshot at step" in s]
    firsts = [shown[0]] + [b for a, b in zip(shown, shown[1:]) if b != a]
    assert firsts[-4:] == [0, 10, 20, 30], seen
    assert dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0] + ' input[type=checkbox]').checked;", f"#{ids.KN_FOLLOW}") is False
    time.sleep(1.2)  # stopped: no more ticks move it
    assert "step 30" in js_text(dash_duo, info) and "Play" in js_text(dash_duo, play)

    # Pause while playing stops it where it is
    dash_duo.find_element(play).click()
    until(lambda: "step 10" in (js_text(dash_duo, info) or ""), timeout=10, msg="Play did not restart")
    dash_duo.find_element(play).click()
    until(lambda: "Play" in (js_text(dash_duo, play) or ""), timeout=5, msg="Pause did not stop")
    paused = js_text(dash_duo, info)
    time.sleep(1.2)
    assert js_text(dash_duo, info) == paused and "step 30" not in paused

    # Compare with: a second curve, labelled by run name; a run of 3x3 kernels says it has no score
    def curve_names():
        return dash_duo.driver.execute_script(
            "const g = document.querySelector(arguments[0]); return g && g.data ? g.data.map(t => t.name) : [];",
            CURVE)
    until(lambda: len(curve_names()) == 2, timeout=10, msg=lambda: f"curve: {curve_names()}")
    dash_duo.select_dcc_dropdown(f"#{ids.KN_COMPARE}", value=f"grey7 ({runs['grey']})")
    until(lambda: any(str(n).startswith("grey7") for n in curve_names()), timeout=20,
          msg=lambda: f"no second curve: {curve_names()}")
    names = curve_names()
    assert any(str(n).startswith("rgb7") for n in names) and len([n for n in names if "initialisation" in n]) == 2
    dash_duo.select_dcc_dropdown(f"#{ids.KN_COMPARE}", value=f"grey3 ({runs['k3']})")
    until(lambda: "grey3: 3x3 kernels, no Gabor score" in curve_names(), timeout=20,
          msg=lambda: f"3x3 run: {curve_names()}")
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_kn004_one_dimensional_kernels(dash_duo, fake_runs):
    from dashboard.app import create_app

    data_dir, runs = fake_runs
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={runs['line']}", timeout=30)
    until(lambda: _trace_type(dash_duo, MOSAIC) == "scatter", timeout=30,
          msg=lambda: f"1-D kernels of one channel: {_trace_type(dash_duo, MOSAIC)!r}, not line plots")
    assert "apply to 2D kernels" in dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0]); return JSON.stringify(g.layout.annotations || []);", CURVE)
    assert not dash_duo.driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e.offsetParent !== null;", ids.KN_COLOUR_FIELD)

    dash_duo.driver.get(f"{dash_duo.server_url}/kernels?run={runs['text']}")
    until(lambda: _trace_type(dash_duo, MOSAIC) == "heatmap" and "32 input channels" in dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0]).layout.title.text;", MOSAIC), timeout=30,
        msg="1-D kernels of 32 channels are not (channels x taps) tiles")
    until(lambda: "32 input channels" in (js_text(dash_duo, f"#{ids.KN_DETAIL}") or ""), timeout=10,
          msg=lambda: f"detail: {js_text(dash_duo, f'#{ids.KN_DETAIL}')!r}")
    assert dash_duo.get_logs() == []
