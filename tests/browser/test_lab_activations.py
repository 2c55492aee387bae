"""The Lab's activations / gradient-clipping view in headless Chromium, with real trainer processes.

Each preset at a reduced budget (300 steps) is launched as two trainer processes; on the Lab page the
view must draw, by itself while they train. Clipping: both runs' hidden-state norms against the time
step, the unclipped run's stop ("training diverged at step N") as a warning, the gradient norm before
and after clipping (after <= the threshold, before far above it once) with the threshold drawn, and
the hidden norm over training. Activations: the ReLU run's hidden norm above the tanh bound sqrt(32),
the tanh run's under it. Screenshots: /tmp/shots/lab_clipping.png, /tmp/shots/lab_activations.png.

    .venv/bin/python -m pytest --headless tests/browser/test_lab_activations.py
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.lab.presets import PRESETS, launch
from backend.store import RunStore
from dashboard.views.lab import activations as view
from tests.browser.test_training_flow import js_text, stop_processes, until

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")


def _traces(dash_duo, graph: str) -> list[dict] | None:
    """``[{name, y}]`` of a graph's traces as the browser holds them (None: not drawn yet)."""
    return dash_duo.driver.execute_script(
        f"const gd = document.querySelector('#{graph} .js-plotly-plot');"
        "return gd && gd.data ? gd.data.map(d => ({name: d.name, y: d.y})) : null;")


def _finite(ys) -> list[float]:
    return [y for y in (ys or []) if y is not None]


def _screenshot(dash_duo, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    dash_duo.driver.set_window_size(1400, 2600)
    dash_duo.driver.execute_script(f"document.getElementById('{view.ACT_RUNS}').scrollIntoView();")
    time.sleep(0.8)
    dash_duo.driver.save_screenshot(str(SHOTS / f"lab_{name}.png"))
    dash_duo.driver.set_window_size(1400, 1000)


@pytest.mark.timeout(240)
def test_clipping_preset_view_draws_norms_live_and_says_why_a_run_stopped(dash_duo, tmp_path):
    from backend.jobs import JobManager
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = JobManager(RunStore(data_dir), launch=True)
    try:
        app = create_app(data_dir, jobs=jobs)
        key = "clipping"  # lands on the view it shares with the activations preset
        run_ids = launch(jobs, "clipping", steps=300)
        dash_duo.start_server(app)
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab?preset={key}&run={','.join(run_ids)}", timeout=30)
        off_name, clip_name = (name for name, _ in PRESETS["clipping"].runs)
        landed = until(lambda: dash_duo.driver.execute_script(
            "const e = document.querySelector('.lab-view-landed'); return e && e.id"), timeout=30,
            msg="no landed view on the Lab page")
        assert landed == "lab-view-activations"

        # The unclipped run diverges within a few steps: the view says so, in words.
        until(lambda: "training diverged at step" in (js_text(dash_duo, f"#{view.ACT_NOTE}") or ""), timeout=90,
              msg=lambda: f"note: {js_text(dash_duo, '#' + view.ACT_NOTE)!r}")
        note = js_text(dash_duo, f"#{view.ACT_NOTE}")
        assert f"{off_name} stopped: training diverged at step" in note and "Traceback" not in note

        # The clipped run trains on; the view follows it to its last snapshot (step 300) by itself.
        names = until(lambda: (t := _traces(dash_duo, view.ACT_TIME)) and any(
            d["name"] == f"{clip_name} (step 300)" for d in t) and [d["name"] for d in t], timeout=120,
            msg=lambda: f"time-step curves: {[d['name'] for d in _traces(dash_duo, view.ACT_TIME) or []]!r}")
        assert f"{off_name} (step 0)" in names  # its only snapshot, from before it diverged
        assert "sqrt(64)" in js_text(dash_duo, f"#{view.ACT_TIME}")

        # Before and after clipping: after never above the threshold, before far above it once.
        def clip_ready():
            t = _traces(dash_duo, view.ACT_CLIP) or []
            after = [d for d in t if d["name"].endswith("after clipping")]
            return after and len(_finite(after[0]["y"])) > 100 and t

        traces = until(clip_ready, timeout=60, msg=lambda: f"clip traces: {_traces(dash_duo, view.ACT_CLIP)!r}")
        after = next(d for d in traces if d["name"].endswith("after clipping"))
        before = [d for d in traces if d["name"] == clip_name][0]
        assert max(_finite(after["y"])) <= 1.0 + 1e-3 and max(_finite(before["y"])) > 1e6
        assert any(d["name"].startswith(off_name) and "loss NaN from step" in d["name"] for d in traces)
        assert "clipping threshold 1" in js_text(dash_duo, f"#{view.ACT_CLIP}")
        until(lambda: len(_traces(dash_duo, view.ACT_TRAINING) or []) >= 3, timeout=30,
              msg=lambda: f"training curves: {_traces(dash_duo, view.ACT_TRAINING)!r}")

        _screenshot(dash_duo, "clipping")
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)


@pytest.mark.timeout(300)
def test_activations_preset_view_puts_relu_above_the_tanh_bound(dash_duo, tmp_path):
    from backend.jobs import JobManager
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = JobManager(RunStore(data_dir), launch=True)
    try:
        app = create_app(data_dir, jobs=jobs)
        key = "activations"
        run_ids = launch(jobs, "activations", steps=300)
        dash_duo.start_server(app)
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab?preset={key}&run={','.join(run_ids)}", timeout=30)
        relu_name, tanh_name = (name for name, _ in PRESETS["activations"].runs)
        bound = 32 ** 0.5

        # Both runs reach their last snapshot (step 300); the view follows them there by itself.
        def at_end():
            named = {}
            for d in _traces(dash_duo, view.ACT_TIME) or []:
                named.setdefault(d["name"], d)  # the hidden-norm trace; its gradient twin comes second
            return all(f"{n} (step 300)" in named for n in (relu_name, tanh_name)) and named

        traces = until(at_end, timeout=200, msg=lambda: "time-step curves: "
                       f"{[d['name'] for d in _traces(dash_duo, view.ACT_TIME) or []]!r}")
        relu, tanh = traces[f"{relu_name} (step 300)"], traces[f"{tanh_name} (step 300)"]
        assert len(relu["y"]) == 64 and max(_finite(tanh["y"])) <= bound < 1.5 * bound < relu["y"][-1]
        assert f"sqrt(32) = {bound:.2f}" in js_text(dash_duo, f"#{view.ACT_TIME}")
        until(lambda: len(_traces(dash_duo, view.ACT_TRAINING) or []) == 4, timeout=30,  # mean and largest, each
              msg=lambda: f"training curves: {_traces(dash_duo, view.ACT_TRAINING)!r}")
        grads = until(lambda: len(_traces(dash_duo, view.ACT_CLIP) or []) == 4 and _traces(dash_duo, view.ACT_CLIP),
                      timeout=30, msg=lambda: f"gradient curves: {_traces(dash_duo, view.ACT_CLIP)!r}")
        assert not any("after clipping" in d["name"] for d in grads)  # no clipping in this preset
        assert js_text(dash_duo, f"#{view.ACT_NOTE}") in ("", None)  # nobody stopped
        _screenshot(dash_duo, "activations")
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)
