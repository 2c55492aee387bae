"""The README's first command, as a newcomer runs it: `deepscope demo`, then a browser.

The page must show a training curve growing within 60 s of the command, and closing
the demo must leave no trainer process behind.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from backend.store import RunStore
from dashboard import ids
from tests.browser.conftest import CHROMEDRIVER, chrome_options

pytestmark = pytest.mark.browser

LOSS_POINTS_JS = f"""
const gd = document.querySelector('#{ids.graph_id("loss")} .js-plotly-plot');
if (!gd || !gd.data) return -1;
const t = gd.data.find(d => d.name === 'train/loss');
return t ? t.x.length : 0;
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dm001_demo_shows_a_growing_curve_within_60s(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port, data_dir = _free_port(), tmp_path / "data"
    t0 = time.monotonic()
    log = open(tmp_path / "demo.log", "w+")  # a file, not a pipe: an unread pipe would block the server
    demo = subprocess.Popen([sys.executable, "-m", "backend.cli", "demo", "--data-dir", str(data_dir),
                             "--port", str(port), "--stop-runs"], stdout=log, stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        driver = webdriver.Chrome(options=chrome_options(), service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(20)
        url = f"http://127.0.0.1:{port}/"
        while time.monotonic() - t0 < 60:  # the command sets up the store and starts its server
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        driver.get(url)
        seen: list[int] = []
        while time.monotonic() - t0 < 60:
            seen.append(driver.execute_script(LOSS_POINTS_JS))
            positive = [n for n in seen if n > 0]
            if len(positive) >= 2 and positive[-1] > positive[0]:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        positive = [n for n in seen if n > 0]
        assert positive and positive[-1] > positive[0], f"no growing curve within 60 s: {seen[-10:]}"
        print(f"curve growing {elapsed:.1f} s after the command ({positive[0]} -> {positive[-1]} points)")
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert severe == []
    finally:
        if driver is not None:
            driver.quit()
        demo.send_signal(signal.SIGTERM)
        time.sleep(0.1)  # a second `kill` while it stops its runs: still a clean exit, no run left live
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
        log.seek(0)
        out = log.read()[-3000:]
    assert demo.returncode == 0, out
    runs = RunStore(data_dir).list_runs()
    assert sorted(r["task"] for r in runs) == ["brackets-lstm", "code-lstm", "natural-patches"], out
    assert all(r["status"] in ("stopped", "completed") for r in runs), out  # no trainer left running
    assert runs[0]["task"] == "code-lstm"  # the newest, so the one the Training page opens on
