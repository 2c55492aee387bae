"""Lab page in headless Chromium: the presets are listed, Launch lands on each preset's view.

The first test uses a job manager that only records runs in the store (and, for recurrent runs,
writes gradient-flow snapshots as a probe would), so it checks the page without training. The
second launches the gradient-flow preset for real: three trainer processes, whose first
gradient-flow snapshots (step 0) must appear as curves on the Lab page.

    .venv/bin/python -m pytest --headless tests/browser/test_lab.py
"""
from __future__ import annotations

import numpy as np
import pytest

from backend.lab.presets import PRESETS
from backend.lab.records import KIND
from backend.store import RunStore
from dashboard import ids
from tests.browser.test_training_flow import click, css_id, js_text, stop_processes, until

pytestmark = pytest.mark.browser
GF_GRAPH = f"#{ids.LAB_GF_GRAPH} .js-plotly-plot"
TRACE_NAMES_JS = f"""
const gd = document.querySelector('{GF_GRAPH}');
return gd && gd.data ? gd.data.map(d => d.name) : null;
"""


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
        return run_id


def _names(dash_duo):
    return dash_duo.driver.execute_script(TRACE_NAMES_JS)


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
    assert js_text(dash_duo, "#nav-pages\\.lab") == "Lab"
    assert "Choose runs" in js_text(dash_duo, f"#{ids.LAB_GF_GRAPH}")  # nothing launched yet

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
                                   f"runs: {[(r['name'], r['status'], r['error']) for r in jobs.store.list_runs()]}"))
        assert sorted(n.split(" (")[0] for n in names) == sorted(n for n, _ in PRESETS["gradient-flow"].runs)
        assert all("d1/d20 = " in n for n in names)
        assert all(r["status"] in ("running", "completed") for r in jobs.store.list_runs())
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)
