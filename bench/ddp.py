"""Steps per second of one built-in run on 1 process and on 2 (torchrun, DistributedDataParallel, gloo on CPU).

Each case trains ``deepscope train TASK`` with the same spec (global batch, seed, dropout 0) alone and with
``--nproc 2``, alternating, ``--repeats`` times, one torch thread per process. ``steps_s`` comes from the
wall times of the run's ``train/loss`` rows from the first log step to the last, so process start, torchrun's
rendezvous and data loading are left out (``start_s``: the command's wall time minus that training time);
the figures are medians. ``speedup`` is 2-process over 1-process steps/s. ``loss_gap``: the largest
difference between the two runs' logged losses (the same global batches: float rounding only).

    .venv/bin/python bench/ddp.py              # 3 cases x 2 repeats, ~4 min on 2 cores
    .venv/bin/python bench/ddp.py --quick      # the small case once (~1 min)

Two processes on 2 cores cannot beat one by more than 2x and pay a gradient all_reduce every step (~0.4-0.8
ms with gloo here) plus a control broadcast about every 50 ms: small models lose, larger steps gain. The
machine's load (``os.getloadavg``) is printed with every run: on a shared machine every figure moves with
it. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {  # name: (task, --set overrides); batch_size is the global batch
    "digits-cnn small (batch 32)": ("digits-cnn", dict(channels="4,8", batch_size=32, steps=600)),
    "digits-cnn wide (batch 256)": ("digits-cnn", dict(channels="32,64", batch_size=256, steps=200)),
    "code-lstm (hidden 128, batch 64x64)": ("code-lstm", dict(hidden_size=128, batch_size=64, seq_len=64, steps=120)),
}
COMMON = dict(dropout=0, log_every=10, eval_every=100_000, checkpoint_every=100_000, probe_every=100_000)


def train(task: str, sets: dict, nproc: int, data_dir: Path) -> dict:
    """One run; its steps/s between the first and last logged loss, the rest of its wall time, its losses."""
    from backend.store import RunStore

    args = [sys.executable, "-m", "backend.cli", "train", task, "--data-dir", str(data_dir)]
    for key, value in {**COMMON, **sets}.items():
        args += ["--set", f"{key}={value}"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    env = {**os.environ, "DEEPSCOPE_TORCH_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    store = RunStore(data_dir)
    run = store.list_runs()[0]
    rows = sorted((step, w, v) for _, name, step, w, v in store.scalars_after(run["id"], 0)[0] if name == "train/loss")
    (s0, w0, _), (s1, w1, _) = rows[0], rows[-1]
    return {"steps_s": (s1 - s0) / max(w1 - w0, 1e-9), "start_s": wall - (w1 - w0),
            "losses": [v for _, _, v in rows], "status": run["status"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="the small case, once")
    args = p.parse_args(argv)
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    repeats = 1 if args.quick else args.repeats
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; 1 torch thread per process")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (task, sets) in cases.items():
            seen: dict[int, list[dict]] = {1: [], 2: []}
            for i in range(repeats):
                for nproc in (1, 2):
                    r = train(task, sets, nproc, Path(tmp) / f"{len(results)}-{i}-{nproc}")
                    seen[nproc].append(r)
                    print(f"  {name}: {nproc} process(es) {r['steps_s']:7.1f} steps/s, start {r['start_s']:.1f} s "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
            one, two = (statistics.median(r["steps_s"] for r in seen[n]) for n in (1, 2))
            gap = max(abs(a - b) for a, b in zip(seen[1][0]["losses"], seen[2][0]["losses"]))
            results[name] = {"steps_s_1": round(one, 1), "steps_s_2": round(two, 1), "speedup": round(two / one, 2),
                             "start_s_1": round(statistics.median(r["start_s"] for r in seen[1]), 1),
                             "start_s_2": round(statistics.median(r["start_s"] for r in seen[2]), 1),
                             "loss_gap": float(f"{gap:.2g}"), "global_batch": sets["batch_size"]}
    print(f"\n{'case':<38} {'1 proc':>10} {'2 procs':>10} {'speedup':>8} {'start 1/2 (s)':>14} {'loss gap':>9}")
    for name, r in results.items():
        print(f"{name:<38} {r['steps_s_1']:>10.1f} {r['steps_s_2']:>10.1f} {r['speedup']:>8.2f} "
              f"{r['start_s_1']:>6.1f}/{r['start_s_2']:<6.1f} {r['loss_gap']:>9.2g}")
    print(json.dumps({"bench": "ddp", "cores": os.cpu_count(), "load": round(os.getloadavg()[0], 1),
                      "repeats": repeats, "cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
