"""The benchmarks run and end with one JSON line. Timing is judged by the benchmark, not here."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

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
