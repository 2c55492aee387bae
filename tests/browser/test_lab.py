"""Lab page in headless Chromium: the presets are listed, Launch lands on each preset's view.

The first test uses a job manager that only records runs in the store (and, for recurrent runs,
writes gradient-flow snapshots at steps 0 and 100 and per-layer gradient norms as the trainer
would), so it checks the page without training: the landed view placed after the cards and
scrolled to, the step slider moving the curves to step 0 and back, Play, the per-layer
gradient-norm panels. The second launches the gradient-flow preset for real: three trainer
processes, whose first gradient-flow snapshots (step 0) must appear as curves on the Lab page.
Screenshots go to /tmp/shots/lab_*.png.

    .venv/bin/python -m pytest --headless tests/browser/test_lab.py
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.keys import Keys

from backend.lab.presets import PRESETS
from backend.lab.records import KIND
from backend.store import RunStore
from dashboard import ids
from dashboard.views.lab.gradflow import GF_FOLLOW, GF_INFO, GF_NORMS, GF_PLAY, GF_STEP
from tests.browser.test_training_flow import click, css_id, js_text, stop_processes, until

pytestmark = pytest.mark.browser
GF_GRAPH = f"#{ids.LAB_GF_GRAPH} .js-plotly-plot"
TRACE_NAMES_JS = f"""
const gd = document.querySelector('{GF_GRAPH}');
return gd && gd.data ? gd.data.filter(d => d.showlegend !== false && d.x[0] !== null).map(d => d.name) : null;
"""
NORMS_GRAPH = f"#{GF_NORMS} .js-plotly-plot"
VIEW = "lab-view-gradient-flow"
SHOTS = Path("/tmp/shots")
LAYERS = (("embedding", 0.01), ("rnn.l0", 0.1), ("head", 0.3), ("global", 0.4))


class RecordingJobs:
    """Creates the runs a JobManager would start, without processes; a recurrent run gets two
    gradient-flow snapshots at once (a plain RNN's norms decaying 0.5 per step, the others' 0.97)."""

    def __init__(self, store: RunStore):
        self.store, self.started = store, []

    def start(self, spec, name=None, threads=None):
        run_id = self.store.create_run(name, spec.task, spec.model_dump(), status="running")
        self.started.append((run_id, threads))
        family = spec.model.family
        if family in ("rnn", "lstm", "gru"):
            rate = 0.5 if family == "rnn" else 0.97
            for step in (0, 100):
                norms = rate ** np.arange(22)[::-1] * (1 + step / 100)
                self.store.add_snapshot(run_id, KIND, step, {"norms": norms}, {"family": family})
            scale = 0.2 if family == "rnn" else 1.0
            self.store.log_scalars(run_id, [(f"grad_norm/{k}", s, v * scale * (1 + s / 50), time.time())
                                            for s in range(10, 110, 10) for k, v in LAYERS], step=100)
        return run_id


def _names(dash_duo):
    return dash_duo.driver.execute_script(TRACE_NAMES_JS)


def _steps_shown(dash_duo) -> list[str]:
    """The step each drawn run's legend names: ["0", "100", ...]."""
    return [n.split("(step ")[1].split(")")[0] for n in (_names(dash_duo) or []) if "(step " in n]


def _slider_key(dash_duo, key) -> None:
    dash_duo.driver.find_element("css selector", f"#{GF_STEP} [role=slider]").send_keys(key)


def _view_top(dash_duo) -> list:
    """The view's top in the window, the page's scroll and whether the cards come right before it."""
    return dash_duo.driver.execute_script(
        f"const el = document.getElementById('{VIEW}');"
        "return el ? [el.getBoundingClientRect().top, window.scrollY,"
        " (el.previousElementSibling || {}).className] : null;")


def _screenshot(dash_duo, name: str, height: int = 2200) -> None:
    SHOTS.mkdir(exist_ok=True)
    dash_duo.driver.set_window_size(1400, height)
    time.sleep(0.8)
    dash_duo.driver.save_screenshot(str(SHOTS / f"lab_{name}.png"))
    dash_duo.driver.set_window_size(1400, 1000)


@pytest.mark.timeout(180)
def test_lab_lists_presets_and_launch_lands_on_each_view(dash_duo, tmp_path):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = RecordingJobs(RunStore(data_dir))
    dash_duo.start_server(create_app(data_dir, jobs=jobs))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab", timeout=30)

    # Every preset: its title, its one-line explanation and a Launch button; the nav links the page.
    for p in PRESETS.values():
        card = css_id(ids.LAB_PRESET, preset=p.id)
        dash_duo.wait_for_contains_text(card, p.title, timeout=20)
        assert p.explanation in js_text(dash_duo, card)
        assert dash_duo.find_element(css_id(ids.LAB_LAUNCH, preset=p.id)).text == "Launch"
    assert js_text(dash_duo, "#nav-lab") == "Lab"
    until(lambda: "Choose runs" in (js_text(dash_duo, f"#{ids.LAB_GF_GRAPH}") or ""), timeout=20,  # nothing launched
          msg=lambda: f"gradient-flow graph: {js_text(dash_duo, f'#{ids.LAB_GF_GRAPH}')!r}")

    # Gradient flow: three runs start (one thread each) and the view on this page draws them.
    click(dash_duo, css_id(ids.LAB_LAUNCH, preset="gradient-flow"))
    until(lambda: "preset=gradient-flow" in dash_duo.driver.current_url, timeout=30,
          msg=lambda: f"no landing (alert: {js_text(dash_duo, '#' + ids.LAB_ALERT)!r})")
    run_ids = [rid for rid, _ in jobs.started]
    assert len(run_ids) == 3 and all(t == 1 for _, t in jobs.started)
    assert dash_duo.driver.current_url.endswith("/lab?preset=gradient-flow&run=" + ",".join(run_ids))
    names = until(lambda: (n := _names(dash_duo)) and len(n) == 3 and n, timeout=30,
                  msg=lambda: f"gradient-flow curves: {_names(dash_duo)!r}")
    assert [n.split(" (")[0] for n in names] == [name for name, _ in PRESETS["gradient-flow"].runs]
    assert all("(step 100)" in n for n in names)
    assert names[0].endswith(f"d1/d20 = {2 ** 19:.3g}x")  # the decaying "RNN"
    assert PRESETS["gradient-flow"].explanation in js_text(dash_duo, f"#{ids.LAB_ALERT}")
    log_axis = dash_duo.driver.execute_script(f"return document.querySelector('{GF_GRAPH}').layout.yaxis.type;")
    assert log_axis == "log"

    # The landed view comes right after the cards, and the page scrolled to it (below the nav bar).
    top = until(lambda: (t := _view_top(dash_duo)) and t[1] > 0 and 0 <= t[0] < 120 and t, timeout=10,
                msg=lambda: f"view top, scrollY, previous: {_view_top(dash_duo)!r}")
    assert top[2] == "lab-grid"

    # Per-layer gradient norms: a panel per layer (global last), a trace per run and layer, log y.
    until(lambda: dash_duo.driver.execute_script(f"const gd = document.querySelector('{NORMS_GRAPH}');"
                                                 "return gd && gd.data ? gd.data.length : 0;") == 24,
          timeout=20, msg="the per-layer gradient norms did not draw 3 runs x 4 layers (as logged and smoothed)")
    panels = dash_duo.driver.execute_script(f"return document.querySelector('{NORMS_GRAPH}').layout"
                                            ".annotations.map(a => a.text);")
    assert panels == ["embedding", "rnn.l0", "head", "all layers together (global)"]
    assert dash_duo.driver.execute_script(f"return document.querySelector('{NORMS_GRAPH}').layout.yaxis.type") == "log"
    _screenshot(dash_duo, "fake_landed")

    # The step slider: Home moves every curve to step 0 and stops following; End brings them back live.
    _slider_key(dash_duo, Keys.HOME)
    until(lambda: _steps_shown(dash_duo) == ["0", "0", "0"], timeout=15,
          msg=lambda: f"after Home: {_names(dash_duo)!r}")
    assert dash_duo.find_element(f"#{GF_FOLLOW} input").is_selected() is False
    assert "at step 0" in dash_duo.driver.execute_script(f"return document.querySelector('{GF_GRAPH}').layout.title.text")
    marks = until(lambda: dash_duo.driver.execute_script(
        f"return (document.querySelector('{NORMS_GRAPH}').layout.shapes || []).map(s => s.x0);") or None,
        timeout=10, msg="no step mark on the gradient-norm panels")
    assert marks == [0, 0, 0, 0]
    _screenshot(dash_duo, "fake_step0")
    _slider_key(dash_duo, Keys.END)
    until(lambda: _steps_shown(dash_duo) == ["100", "100", "100"], timeout=15,
          msg=lambda: f"after End: {_names(dash_duo)!r}")
    until(lambda: dash_duo.find_element(f"#{GF_FOLLOW} input").is_selected(), timeout=10,
          msg="back at the right end, the view did not follow the newest again")
    # Play: from the first snapshot to the newest, then the button says Play again.
    click(dash_duo, f"#{GF_PLAY}")
    until(lambda: _steps_shown(dash_duo) == ["0", "0", "0"], timeout=10, poll=0.05,
          msg=lambda: f"Play did not start at step 0: {_names(dash_duo)!r}")
    until(lambda: _steps_shown(dash_duo) == ["100", "100", "100"] and "Play" in js_text(dash_duo, f"#{GF_PLAY}"),
          timeout=15, msg=lambda: f"Play did not end at the newest: {_names(dash_duo)!r}")

    # Optimizers: six runs, the Training page overlaying them.
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab", timeout=30)
    click(dash_duo, css_id(ids.LAB_LAUNCH, preset="optimizers"))
    until(lambda: "?run=" in dash_duo.driver.current_url and "/lab" not in dash_duo.driver.current_url,
          timeout=30, msg=lambda: f"no landing on Training: {dash_duo.driver.current_url}")
    opt_ids = [rid for rid, _ in jobs.started[3:]]
    assert len(opt_ids) == 6
    until(lambda: dash_duo.driver.execute_script("return decodeURIComponent(window.location.search)")
          == "?run=" + ",".join(opt_ids), timeout=20, msg=lambda: f"address: {dash_duo.driver.current_url}")
    until(lambda: all(n in (js_text(dash_duo, f"#{ids.TRAIN_STATUS}") or "")
                      for n, _ in PRESETS["optimizers"].runs), timeout=30,
          msg=lambda: f"Training status shows: {js_text(dash_duo, '#' + ids.TRAIN_STATUS)!r}; page: {js_text(dash_duo, 'main')!r}")

    # A shared address for one run: only it is drawn, and the page lands on the view.
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab?preset=gradient-flow&run={run_ids[1]}", timeout=30)
    until(lambda: _steps_shown(dash_duo) == ["100"], timeout=20, msg=lambda: f"curves: {_names(dash_duo)!r}")
    assert _names(dash_duo)[0].startswith(PRESETS["gradient-flow"].runs[1][0])
    until(lambda: (t := _view_top(dash_duo)) and t[1] > 0 and 0 <= t[0] < 120, timeout=10,
          msg=lambda: f"view top, scrollY, previous: {_view_top(dash_duo)!r}")
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_gradient_flow_preset_end_to_end_with_real_runs(dash_duo, tmp_path):
    from backend.jobs import JobManager
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = JobManager(RunStore(data_dir), launch=True)
    try:
        dash_duo.start_server(create_app(data_dir, jobs=jobs))
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab", timeout=30)
        click(dash_duo, css_id(ids.LAB_LAUNCH, preset="gradient-flow"))
        until(lambda: "preset=gradient-flow" in dash_duo.driver.current_url, timeout=30,
              msg=lambda: f"no landing (alert: {js_text(dash_duo, '#' + ids.LAB_ALERT)!r})")
        # The trainers record a snapshot when training starts; the view draws all three by itself.
        names = until(lambda: (n := _names(dash_duo)) and len(n) == 3 and n, timeout=150,
                      msg=lambda: (f"curves: {_names(dash_duo)!r}; note: {js_text(dash_duo, '#' + ids.LAB_GF_NOTE)!r}; "
                             f"graph: {js_text(dash_duo, '#' + ids.LAB_GF_GRAPH)!r}; "
                             f"slider: {js_text(dash_duo, '#' + GF_INFO)!r}; console: {dash_duo.get_logs()!r}; "
                                   f"runs: {[(r['name'], r['status'], r['error']) for r in jobs.store.list_runs()]}"))
        assert sorted(n.split(" (")[0] for n in names) == sorted(n for n, _ in PRESETS["gradient-flow"].runs)
        assert all("d1/d20 = " in n for n in names)
        assert all(r["status"] in ("running", "completed") for r in jobs.store.list_runs())
        # the trainers log per-layer gradient norms every 10 steps: the panels fill in
        until(lambda: dash_duo.driver.execute_script(f"const gd = document.querySelector('{NORMS_GRAPH}');"
                                                     "return gd && gd.data ? gd.data.length : 0;") == 24,
              timeout=60, msg="no per-layer gradient norms from the real runs")
        _screenshot(dash_duo, "real_runs")
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)
