"""A trainer killed with SIGKILL shows ``interrupted``; Resume continues the curve from its checkpoint.

A real dashboard (``create_app``) with a real :class:`JobManager` and its reaper, a real trainer
subprocess, headless Chromium reading the figure the way the user's browser holds it.

    .venv/bin/python -m pytest --headless tests/browser/test_resume_flow.py
"""
from __future__ import annotations

import os
import signal

import pytest

from backend.store import RunStore
from dashboard import ids
from tests.browser.test_training_flow import BADGE, LOSS_GRAPH, js_text, until
from tests.conftest import tiny_spec

pytestmark = pytest.mark.browser

LOSS_X_JS = f"""
const gd = document.querySelector('#{LOSS_GRAPH} .js-plotly-plot');
if (!gd || !gd.data) return null;
const t = gd.data.find(d => d.name === 'train/loss');
return t ? Array.from(t.x) : null;
"""
SHAPES_JS = f"""
const gd = document.querySelector('#{LOSS_GRAPH} .js-plotly-plot');
return gd && gd.layout && gd.layout.shapes ? gd.layout.shapes.map(s => s.x0) : [];
"""


def test_rs001_kill_shows_interrupted_and_resume_continues_without_drawing_back(dash_duo, tmp_path):
    from backend.jobs import JobManager
    from dashboard.app import create_app

    store = RunStore(tmp_path / "data")
    jobs = JobManager(store, launch=True)
    jobs.start_reaper(interval=1.0)
    spec = tiny_spec(steps=1_000_000, log_every=5, checkpoint_every=100)
    run_id = jobs.start(spec, name="killed run")
    try:
        dash_duo.start_server(create_app(store.data_dir, jobs=jobs))
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/?run={run_id}", timeout=30)
        until(lambda: store.get_run(run_id)["step"] >= 260, 120, "the run did not pass step 260")
        os.kill(store.get_run(run_id)["pid"], signal.SIGKILL)
        until(lambda: js_text(dash_duo, BADGE) == "interrupted", 30,
              lambda: f"badge says {js_text(dash_duo, BADGE)!r}, run {store.get_run(run_id)['status']}")
        killed_at = max(until(lambda: dash_duo.driver.execute_script(LOSS_X_JS), 10, "no loss curve"))
        assert killed_at >= 200
        dash_duo.find_element(f"#{ids.TRAIN_RESUME}").click()
        until(lambda: store.get_run(run_id)["resumes"], 30, "the run was not resumed")
        checkpoint = store.get_run(run_id)["resumes"][0]["step"]
        assert checkpoint <= killed_at and checkpoint % 100 == 0  # equal: killed right after a checkpoint
        # the browser's curve: past the kill point again, strictly increasing, one resume mark
        xs = until(lambda: (x := dash_duo.driver.execute_script(LOSS_X_JS)) and max(x) > killed_at + 20 and x,
                   120, lambda: f"curve after resume: {dash_duo.driver.execute_script(LOSS_X_JS)}")
        assert all(a < b for a, b in zip(xs, xs[1:])), "the curve draws back on itself"
        assert until(lambda: dash_duo.driver.execute_script(SHAPES_JS), 10, "no resume mark") == [checkpoint]
        until(lambda: js_text(dash_duo, BADGE) == "running", 30, "not running after Resume")
        assert dash_duo.get_logs() == []
    finally:
        jobs.shutdown(timeout=10)
