"""Wall time of every Lab preset at its default budget, launched as the Launch button launches it.

For each preset of ``backend.lab.presets.PRESETS`` (one preset at a time), a fresh store in a
temporary folder and a real :class:`backend.jobs.JobManager` start all of the preset's runs side
by side (``presets.launch``: one trainer process per run, one torch thread each, all default
hooks and probes); the figure is the wall time from the launch to the moment every run has a
final status (completed, stopped or failed), process start-up included. Printed per preset: that
time, each run's status, last step and its own time from launch to its final status, its last validation
metrics (loss, accuracies, sequence accuracy by input-length third, accuracy on ambiguous words, where the
run logs them); a failed run's error. Printed too: the 1-minute load average before and after each preset (the machine's
2 cores are shared, so a busy machine makes every figure slower).

    .venv/bin/python bench/lab.py                            # every preset, ~4 min on 2 cores
    .venv/bin/python bench/lab.py --presets gradient-flow    # a subset (comma-separated ids)
    .venv/bin/python bench/lab.py --presets attention,bidirectional-tagging,teacher-forcing   # issue 16's
    .venv/bin/python bench/lab.py --presets optimizers --steps 20   # smoke run, reduced budget

Target: every preset's default budget finishes in under 3 minutes (``TARGET_S``). The last line
of output is one JSON object: ``lab_<preset>_s`` per preset (hyphens as underscores, e.g.
``lab_gradient_flow_s``), ``statuses`` (preset -> run statuses), ``finals`` (preset -> each run's last
validation metrics), ``steps`` (the budget override,
null for the defaults), ``target_s`` and ``pass`` (every run reached its expected status within
the target: completed, or failed for a run the preset means to diverge; with ``--steps`` the target
is not judged). ``--check`` exits 1 when ``pass`` is false.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.lab.presets import PRESETS, launch  # noqa: E402

TARGET_S = 180.0
POLL_S = 0.5


def key(preset_id: str) -> str:
    """The JSON key of a preset's time: ``lab_gradient_flow_s``."""
    return "lab_" + preset_id.replace("-", "_") + "_s"


def run_preset(preset_id: str, data_dir: Path, steps: int | None, timeout: float) -> dict:
    """Launch one preset with real trainer processes and wait until all its runs are final."""
    from backend.jobs import JobManager
    from backend.store import FINAL_STATUSES, RunStore

    jobs = JobManager(RunStore(data_dir), launch=True)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    run_ids = launch(jobs, preset_id, steps=steps)
    done_at: dict[str, float] = {}
    try:
        while len(done_at) < len(run_ids) and time.time() - t0 < timeout:
            for rid in run_ids:
                if rid not in done_at and jobs.store.get_run(rid)["status"] in FINAL_STATUSES:
                    done_at[rid] = time.time() - t0
            jobs.reconcile()  # a trainer that died without reporting is marked interrupted
            time.sleep(POLL_S)
    finally:
        jobs.shutdown(timeout=10)  # stops what is still alive (after a timeout); waits for exiting trainers
    wall = max(done_at.values()) if len(done_at) == len(run_ids) else time.time() - t0
    runs = [jobs.store.get_run(rid) for rid in run_ids]
    finals = {rid: final_metrics(jobs.store, rid) for rid in run_ids}
    return {"wall_s": round(wall, 1), "timed_out": len(done_at) < len(run_ids), "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "runs": [{"name": r["name"], "status": r["status"], "step": r["step"],
                      "done_s": round(done_at[r["id"]], 1) if r["id"] in done_at else None,
                      "error": (r.get("error") or "")[-600:] or None, "final": finals[r["id"]]} for r in runs]}


SHOWN = ("val/loss", "val/acc", "val/seq_acc", "val/seq_acc_short", "val/seq_acc_middle", "val/seq_acc_long",
         "val/acc_ambiguous", "val/acc_unambiguous", "val/alignment_share")


def final_metrics(store, run_id: str) -> dict[str, float]:
    """The last logged value of each validation metric in ``SHOWN`` the run has (rounded to 3 places)."""
    series, _ = store.scalar_series(run_id, list(SHOWN))
    return {k.removeprefix("val/"): round(float(v["value"][-1]), 3) for k, v in series.items() if len(v["value"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated preset ids (default: all)")
    p.add_argument("--steps", type=int, default=None, help="replace every run's budget (smoke runs)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up on a preset after this many seconds")
    p.add_argument("--check", action="store_true", help="exit 1 when a preset misses the target")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.presets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in PRESETS]
    if unknown or not wanted:
        p.error(f"unknown preset(s) {', '.join(unknown) or '(none given)'}; presets: {', '.join(PRESETS)}")

    result: dict = {}
    statuses: dict[str, list[str]] = {}
    finals: dict[str, list[dict]] = {}
    ok = True
    budget = "default budgets" if args.steps is None else f"budgets replaced by {args.steps} steps"
    print(f"Lab presets, {budget}, each preset's runs side by side (one torch thread each), "
          f"{os.cpu_count()} cores; target {TARGET_S:.0f} s a preset", flush=True)
    with tempfile.TemporaryDirectory(prefix="deepscope-bench-lab-") as tmp:
        for pid in wanted:
            out = run_preset(pid, Path(tmp) / pid, args.steps, args.timeout)
            result[key(pid)] = out["wall_s"]
            statuses[pid] = [r["status"] for r in out["runs"]]
            finals[pid] = [r["final"] for r in out["runs"]]
            preset = PRESETS[pid]  # a run meant to diverge (clipping off) must end failed, the others completed
            done = all(r["status"] == preset.expected_status(r["name"]) for r in out["runs"])
            within = out["wall_s"] <= TARGET_S or args.steps is not None
            ok = ok and done and within
            verdict = "ok" if done and within else ("TIMED OUT" if out["timed_out"] else "MISSED")
            print(f"  {pid}: {out['wall_s']:.1f} s from launch to all {len(out['runs'])} runs final "
                  f"({verdict}; load {out['load_before']:.2f} -> {out['load_after']:.2f})", flush=True)
            for r in out["runs"]:
                when = f"{r['done_s']:.1f} s" if r["done_s"] is not None else "not final"
                print(f"      {r['name']}: {r['status']} at step {r['step']:,} ({when})", flush=True)
                if r["final"]:
                    print("        final " + ", ".join(f"{k} {v:g}" for k, v in r["final"].items()), flush=True)
                if r["error"]:
                    print("        error: " + r["error"].strip().replace("\n", "\n        "), flush=True)
    result.update(statuses=statuses, finals=finals, steps=args.steps, target_s=TARGET_S)
    result["pass"] = ok
    print(json.dumps(result))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
