"""Stop and restart the dashboard while a run trains: the open page says it is reconnecting, then its curve
catches up with no gap (assets/reconnect.js; the live callback's cursor, dashboard/views/training/live.py).

    .venv/bin/python -m pytest --headless tests/browser/test_reconnect.py
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backend.jobs import JobManager
from backend.store import RunStore
from dashboard import ids
from tests.browser.conftest import CHROMEDRIVER, chrome_options
from tests.conftest import tiny_spec

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
LOG_EVERY = 100

STEPS_JS = f"""
const gd = document.querySelector('#{ids.graph_id("loss")} .js-plotly-plot');
if (!gd || !gd.data) return null;
const t = gd.data.find(d => d.name === 'train/loss');
return t ? Array.from(t.x) : null;
"""
BANNER_JS = """
const b = document.getElementById('deepscope-reconnect');
return b && !b.hidden ? b.textContent : '';
"""
# What a browser logs while its server is down; anything else SEVERE is a bug.
# what Chromium logs of the outage itself (the live stream open when the server died ends mid-chunk)
OUTAGE_NOISE = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE", "Failed to fetch",
                "_dash-update-component", "_deepscope/health", "Callback failed: the server did not respond",
                "ERR_INCOMPLETE_CHUNKED_ENCODING")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data_dir: Path, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "DEEPSCOPE_ANALYSIS": "off"}
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--data-dir", str(data_dir), "--port",
                             str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_deepscope/health", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the dashboard did not start")


def _until(driver, script: str, ok, timeout: float):
    deadline = time.monotonic() + timeout
    value = driver.execute_script(script)
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = driver.execute_script(script)
    return value


def test_rc001_reconnecting_banner_then_the_curve_catches_up_without_a_gap(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    data_dir, port = tmp_path / "data", _free_port()
    store = RunStore(data_dir)
    spec = tiny_spec("digits-cnn", steps=1_000_000, log_every=LOG_EVERY, eval_every=100_000, checkpoint_every=100_000)
    jobs = JobManager(store)
    run_id = jobs.start(spec, name="reconnect run", threads=1)
    log = open(tmp_path / "serve.log", "w+")
    server, driver = _serve(data_dir, port, log), None
    try:
        driver = webdriver.Chrome(options=chrome_options(), service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(30)
        driver.get(f"http://127.0.0.1:{port}/?run={run_id}")
        before = _until(driver, STEPS_JS, lambda x: x and len(x) >= 3, 60)
        assert before and len(before) >= 3, f"no curve: {before}"

        server.kill()  # the dashboard dies (kill -9); the run goes on training
        server.wait(10)
        banner = _until(driver, BANNER_JS, bool, 15)
        assert "unreachable" in banner and "reconnecting" in banner, banner
        down_at = store.get_run(run_id)["step"]
        time.sleep(3)  # rows logged meanwhile must reach the page after the restart
        assert store.get_run(run_id)["step"] > down_at, "the run stopped training with the dashboard"

        server = _serve(data_dir, port, log)
        assert _until(driver, BANNER_JS, lambda b: b == "", 30) == "", "the banner stayed"
        target = store.get_run(run_id)["step"]
        steps = _until(driver, STEPS_JS, lambda x: x and x[-1] >= target, 30)
        assert steps[-1] >= target, (steps[-5:], target)
        gaps = sorted({b - a for a, b in zip(steps, steps[1:])})
        assert gaps == [LOG_EVERY], f"steps not contiguous at the log period: gaps {gaps}"
        assert steps[: len(before)] == before  # the page kept what it had: caught up, not redrawn
        severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"
                  and not any(n in e["message"] for n in OUTAGE_NOISE)]
        assert severe == [], "\n".join(sorted(set(m[:400] for m in severe)))
    finally:
        if driver is not None:
            driver.quit()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        jobs.control(run_id, "stop")
        try:
            jobs.wait(run_id, timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(store.get_run(run_id)["pid"], signal.SIGKILL)
