"""Harness of bench/live_update.py: synthetic series in a real store, a dashboard server and a
headless Chromium, started and stopped.

Debian's chromium + chromedriver, nothing downloaded (same options as tests/browser).
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from backend.store import RunStore

REPO = Path(__file__).resolve().parents[1]
SERIES = ("train/loss", "train/acc", "lr", "grad_norm/global")
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1400,1000")


def decoded(body: bytes, encoding: str | None) -> bytes:
    """A response body as sent, uncompressed by its ``Content-Encoding`` (gzip, br, deflate, or none)."""
    encoding = (encoding or "identity").lower()
    if encoding == "gzip":
        import gzip

        return gzip.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    if encoding == "deflate":
        import zlib

        return zlib.decompress(body)
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log_path: Path, poll_ms: int | None) -> subprocess.Popen:
    """The dashboard in its own process, as ``create_app(data_dir).run`` serves it."""
    kwargs = "" if poll_ms is None else f", poll_ms={int(poll_ms)}"
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from dashboard.app import create_app; "
            f"create_app({str(data_dir)!r}{kwargs}).run(host='127.0.0.1', port={port}, debug=False)")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO))
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"dashboard did not answer on port {port} within 60 s; see {log_path}")


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def find_browser() -> tuple[str, str]:
    chromium = os.environ.get("DASH_TEST_CHROMEPATH") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("SE_CHROMEDRIVER") or shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if not chromium or not driver:
        raise SystemExit(f"needs chromium and chromedriver (found {chromium}, {driver}); "
                         "install Debian's chromium and chromium-driver (`make browser-deps`)")
    return chromium, driver


def start_browser(profile: Path):
    """Headless Chromium with the system chromedriver (no Selenium Manager), performance log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    os.environ.setdefault("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = chromium
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE", "performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def value_of(name: str, step: int) -> float:
    """A plausible, slightly noisy value of each series at ``step``."""
    noise = math.sin(step * 12.9898) * 0.05
    if name == "train/loss":
        return 2.3 / math.sqrt(1 + step / 500) + noise
    if name == "train/acc":
        return min(1.0, 1 - 0.9 / math.sqrt(1 + step / 500) + noise / 5)
    if name == "lr":
        return 0.003 * (0.5 ** (step // 25_000))
    return 1.0 + abs(noise) * 10


def rows_for(step: int, wall: float) -> list[tuple]:
    return [(name, step, value_of(name, step), wall) for name in SERIES]


def fill_store(store: "RunStore", run_id: str, points: int, batch_steps: int = 25_000) -> float:
    """Log ``points`` steps of every series in big batches; return seconds taken."""
    t0 = time.perf_counter()
    wall = time.time() - points
    for start in range(1, points + 1, batch_steps):
        steps = range(start, min(points, start + batch_steps - 1) + 1)
        store.log_scalars(run_id, [r for s in steps for r in rows_for(s, wall + s)], step=steps[-1])
    return time.perf_counter() - t0
