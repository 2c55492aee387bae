"""The benchmarks run and end with one JSON line. Timing is judged by the benchmark, not here."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_overhead_quick():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "overhead.py"), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    for key in ("ratio", "target", "steps_per_s_hooks", "steps_per_s_none", "blocks"):
        assert key in result, key
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert result["steps_per_s_hooks"] > 0 and result["steps_per_s_none"] > 0
    assert result["eval_excluded"] is True
    assert "evaluation EXCLUDED" in proc.stdout


def _have_chromium() -> bool:
    import shutil

    return bool(shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")) \
        and bool(shutil.which("chromedriver") or Path("/usr/bin/chromedriver").exists())


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_live_update_quick():
    if not _have_chromium():
        pytest.skip("bench/live_update.py needs chromium and chromedriver (`make browser-deps`)")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "live_update.py"), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("lag_p50_s", "lag_p95_s", "bytes_per_update", "server_ms", "points_per_series", "poll_ms",
                "page_load_cold_s", "http_ms"):
        assert key in result, key
        assert isinstance(result[key], (int, float)) and math.isfinite(result[key]), (key, result[key])
    assert result["lag_p95_s"] >= result["lag_p50_s"]
    assert result["bytes_per_update"] > 0 and result["server_ms"] > 0
    assert result["samples"] >= 10 and result["points_per_series"] > 0
    assert result["console_errors"] == 0, proc.stdout[-2000:]
