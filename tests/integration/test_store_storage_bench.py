"""bench/storage.py runs and ends with one JSON line (timing is judged by the benchmark, not here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_storage_bench_quick():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "storage.py"), "--quick", "--before", "none"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    after = result["after"]
    assert after["schema"] >= 3 and "before" not in result
    assert 0 < result["bytes_per_point"] <= 50  # the layout, not the machine: stable
    assert after["read_20k_s"] > 0 and after["poll_20k_ms"] > 0 and after["wal_peak_mb_20k"] > 0
