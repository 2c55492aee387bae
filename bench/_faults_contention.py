"""``contention_slowdown`` for ``bench/faults.py``: a built-in run's time beside busy neighbours over its time alone.

When ``bench/contention.py`` exists it is run (``--quick`` when it has that option) and its JSON
``contention_slowdown`` is taken. Otherwise it is measured here, every process with default settings (no
``DEEPSCOPE_TORCH_THREADS``, BLAS threads as numpy picks them): ``deepscope train brackets-lstm --set
steps=300`` alone, then the same beside two default ``deepscope train code-lstm`` runs and one process
multiplying 1500x1500 matrices in a loop. Times are the wall time of the whole command (start-up included).

Example::

    contention_slowdown(Path("/tmp/x"), quick=False, log=print)
    # {"contention_slowdown": 2.7, "contention_source": "measured by bench/faults.py", ...}
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
MATMUL = "import numpy as np\na = np.random.rand(1500, 1500)\nwhile True:\n    a = (a @ a) / 1500.0\n"
TIMED = ["brackets-lstm", "--set", "steps=300"]
NEIGHBOUR = ["code-lstm"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("DEEPSCOPE_") and k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _train(data: Path, args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "backend.cli", "train", *args, "--data-dir", str(data)],
                                cwd=str(REPO), env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _timed(data: Path, log: Path) -> float:
    t0 = time.monotonic()
    proc = _train(data, TIMED, log)
    if proc.wait(1800) != 0:
        raise RuntimeError(f"the timed run failed; see {log}")
    return time.monotonic() - t0


def _end(procs: list[subprocess.Popen]) -> None:
    import signal

    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(10)


def measure(folder: Path, log: Callable[[str], None]) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    alone = _timed(folder / "alone", folder / "alone.log")
    log(f"contention: {' '.join(TIMED)} alone {alone:.1f} s")
    busy: list[subprocess.Popen] = []
    try:
        for i in range(2):
            busy.append(_train(folder / f"neighbour-{i}", NEIGHBOUR, folder / f"neighbour-{i}.log"))
        with open(folder / "matmul.log", "ab") as out:
            busy.append(subprocess.Popen([sys.executable, "-c", MATMUL], env=_env(), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(5)  # the neighbours past their start-up
        beside = _timed(folder / "beside", folder / "beside.log")
        still = sum(p.poll() is None for p in busy)
    finally:
        _end(busy)
    log(f"contention: beside two code-lstm runs and a numpy matmul {beside:.1f} s ({still} of 3 neighbours "
        f"still running at the end); slowdown {beside / alone:.2f}")
    return {"contention_slowdown": round(beside / alone, 2), "contention_source": "measured by bench/faults.py",
            "contention_alone_s": round(alone, 1), "contention_beside_s": round(beside, 1),
            "contention_neighbours_alive": still}


def from_script(script: Path, quick: bool, log: Callable[[str], None]) -> dict:
    helptext = subprocess.run([sys.executable, str(script), "--help"], cwd=str(REPO), capture_output=True,
                              text=True, timeout=120).stdout
    cmd = [sys.executable, str(script)] + (["--quick"] if "--quick" in helptext else [])
    log(f"contention: running {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=1800)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    value = json.loads(lines[-1]).get("contention_slowdown")
    return {"contention_slowdown": value, "contention_source": f"bench/{script.name}"
            + (" --quick" if "--quick" in cmd else "")}


def contention_slowdown(folder: Path, quick: bool, log: Callable[[str], None]) -> dict:
    """``{"contention_slowdown": ratio, "contention_source": ...}``: from bench/contention.py, else measured."""
    script = REPO / "bench" / "contention.py"
    if script.exists():
        return from_script(script, quick, log)
    return measure(folder, log)
