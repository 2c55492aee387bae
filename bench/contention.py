"""Contention: a built-in run beside other work, and two runs started together by one job manager.

1. ``contention_slowdown``: the wall time of ``deepscope train brackets-lstm`` (default spec and settings,
   CPU) started together with two more such runs and one numpy process multiplying 1500x1500 matrices with
   ``OPENBLAS_NUM_THREADS`` = cores, over its time alone. The three runs share one data folder, as they
   would by default. Each process starts in a session of its own, as from separate terminals (and as the
   job manager starts trainers). Alone and beside alternate, ``--repeats`` times; the figures are medians.
   Target <= 4 on a 2-core machine; the issue measured 364 s / 11 s = 33x with the former default of 2
   threads beside the numpy process alone. ``slowdown_worst``: the slowest of the three runs.
   ``cpu_ratio``: the run's own CPU seconds beside over alone. Near 1 means no work is wasted (OpenMP
   spinning burns CPU), so the slowdown is the CPU share the run lost, nothing more.
   ``contention_slowdown_one_session``: the same with all four processes in this one session. Where the
   kernel groups CPU time by session (``autogroup``, on by default in most desktop and server kernels),
   those four split one session's share of the machine. On a machine that other sessions keep busy, that
   costs far more than the threads do.
2. ``fair_ratio``: two runs of the same spec started together by one ``JobManager``; each run's steps/s
   over the time both trained (from the wall times of their ``train/loss`` rows), faster over slower;
   target <= 1.2. The former ``cores // (alive + 1)`` gave them 2 and 1 threads: 4-8 against 150-190 steps/s.
3. ``omp_steps_s``: OpenMP's wait policy, measured directly: training steps of an LSTM of brackets-lstm's
   shape for ``--omp-s`` seconds beside the numpy process, 1 or 2 torch threads, libgomp's default waiting
   (spins ~300,000 times before it sleeps) or ``OMP_WAIT_POLICY=PASSIVE`` (sleeps at once).
``--baseline`` also times part 1 with the former default (2 torch threads, libgomp's default spinning),
which takes minutes per run beside the other work.

    .venv/bin/python bench/contention.py            # ~7 min on 2 busy cores
    .venv/bin/python bench/contention.py --quick    # 200-step runs, one pair, no one-session pair (~1 min)

The machine's load (``os.getloadavg``) is printed before, after and with every run: on a shared machine every
figure moves with it. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_SLOWDOWN, TARGET_FAIR = 4.0, 1.2
THREAD_VARS = ("DEEPSCOPE_TORCH_THREADS", "DEEPSCOPE_TORCH_THREADS_REASON", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
HOG = ("import numpy as np\na = np.random.default_rng(0).random((1500, 1500))\n"
       "while True:\n    a = a @ a\n    a /= np.abs(a).max()\n")
STEPS = """
import json, os, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
rnn, head = torch.nn.LSTM(8, 32, batch_first=True), torch.nn.Linear(32, 6)
opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], 0.01)
x, y = torch.randn(32, 128, 8), torch.randint(0, 6, (32, 128))
def step():
    loss = torch.nn.functional.cross_entropy(head(rnn(x)[0]).reshape(-1, 6), y.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
step()
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < float(sys.argv[2]):
    step(); n += 1
print(n / (time.perf_counter() - t0))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any thread setting (the runs start with default settings)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO), **extra)
    return env


def start_hog(own_session: bool = False) -> subprocess.Popen:
    cores = str(os.cpu_count() or 1)
    env = clean_env(OPENBLAS_NUM_THREADS=cores, OMP_NUM_THREADS=cores)
    return subprocess.Popen([sys.executable, "-c", HOG], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=own_session)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_train(data_dir: Path, steps: int, env: dict[str, str], out: Path,
                own_session: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "backend.cli", "train", "brackets-lstm", "--data-dir", str(data_dir),
           "--device", "cpu"] + (["--set", f"steps={steps}"] if steps != 1000 else [])
    with open(out, "w") as log:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=own_session)


def run_together(data_dir: Path, steps: int, env: dict[str, str], n: int, own_session: bool = False) -> list[dict]:
    """Start ``n`` train commands at once. Each one's wall seconds (polled, so one that ends first is not timed
    by the others), CPU seconds (its own, from wait4), and the thread line it printed."""
    outs = [data_dir / f"train-{i}.out" for i in range(n)]
    t0 = time.perf_counter()
    procs = [start_train(data_dir, steps, env, out, own_session) for out in outs]
    ended: dict[int, dict] = {}
    try:
        while len(ended) < n:
            for i, proc in enumerate(procs):
                if i in ended:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    ended[i] = {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime}
            time.sleep(0.05)
    finally:
        for proc in procs:
            if proc.returncode is None:
                stop(proc)
    for i, proc in enumerate(procs):
        text = outs[i].read_text(errors="replace")
        if proc.returncode != 0:
            raise SystemExit(f"deepscope train failed ({proc.returncode}):\n{text[-3000:]}")
        ended[i]["said"] = next((ln.strip() for ln in text.splitlines() if ln.startswith("torch threads:")),
                                "(not said)")
    return [ended[i] for i in range(n)]


def alone(data_dir: Path, steps: int, env: dict[str, str], own_session: bool = False) -> dict:
    return run_together(data_dir, steps, env, 1, own_session)[0]


def beside(data_dir: Path, steps: int, env: dict[str, str], own_session: bool = False) -> list[dict]:
    """Three runs and the numpy process started together; each run's figures (the measured one first)."""
    hog = start_hog(own_session)
    try:
        return run_together(data_dir, steps, env, 3, own_session)
    finally:
        stop(hog)


def part_contention(steps: int, repeats: int, env: dict[str, str], label: str, own_session: bool) -> dict:
    arms: dict[str, list[dict]] = {"alone": [], "beside": []}
    worst = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        for rep in range(repeats):
            for arm in (("alone", "beside") if rep % 2 == 0 else ("beside", "alone")):
                runs = ([alone(data, steps, env, own_session)] if arm == "alone"
                        else beside(data, steps, env, own_session))
                run = dict(runs[0], load=round(os.getloadavg()[0], 1))
                arms[arm].append(run)
                others = ("" if arm == "alone"
                          else f"  (the other two {runs[1]['wall_s']:.1f}, {runs[2]['wall_s']:.1f} s)")
                if arm == "beside":
                    worst.append(max(r["wall_s"] for r in runs))
                print(f"  [{label}] {arm:6s} {run['wall_s']:6.1f} s wall, {run['cpu_s']:5.1f} s CPU, load "
                      f"{run['load']:4.1f}{others}   {run['said']}", flush=True)
    med = {arm: {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s")} for arm, runs in arms.items()}
    return {"alone_s": round(med["alone"]["wall_s"], 1), "beside_s": round(med["beside"]["wall_s"], 1),
            "slowdown": round(med["beside"]["wall_s"] / med["alone"]["wall_s"], 2),
            "slowdown_worst": round(statistics.median(worst) / med["alone"]["wall_s"], 2),
            "cpu_alone_s": round(med["alone"]["cpu_s"], 1), "cpu_beside_s": round(med["beside"]["cpu_s"], 1),
            "cpu_ratio": round(med["beside"]["cpu_s"] / med["alone"]["cpu_s"], 2),
            "alone_all_s": [round(r["wall_s"], 1) for r in arms["alone"]],
            "beside_all_s": [round(r["wall_s"], 1) for r in arms["beside"]],
            "load_alone": [r["load"] for r in arms["alone"]], "load_beside": [r["load"] for r in arms["beside"]],
            "said": arms["beside"][-1]["said"]}


def autogroup() -> bool | None:
    """Whether the kernel shares CPU time among sessions before threads (``sched_autogroup_enabled``)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def part_fairness(steps: int) -> dict:
    """Two runs of one spec started together by one JobManager: steps/s of each while both trained."""
    import numpy as np

    from backend.jobs import JobManager
    from backend.spec import RunSpec
    from backend.store import RunStore

    saved = {k: os.environ.pop(k) for k in THREAD_VARS if k in os.environ}  # the manager's default policy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore(tmp)
            jobs = JobManager(store, launch=True)
            spec = RunSpec.for_task("brackets-lstm", steps=steps)
            try:
                ids = [jobs.start(spec, name=f"fair {i}") for i in range(2)]
                for rid in ids:
                    jobs.wait(rid, timeout=1800)
            finally:
                jobs.shutdown(timeout=5)  # only what is still running: after an interruption
            series = [store.scalar_series(rid, ["train/loss"])[0]["train/loss"] for rid in ids]
            logs = [(store.run_dir(rid) / "trainer.log").read_text().splitlines() for rid in ids]
            said = [next((ln.split("INFO ", 1)[-1] for ln in lines if "torch threads:" in ln), "(not said)")
                    for lines in logs]
    finally:
        os.environ.update(saved)
    lo = max(s["wall_time"][0] for s in series)
    hi = min(s["wall_time"][-1] for s in series)
    if hi - lo < 1.0:
        raise SystemExit("the two runs hardly overlapped; use more --steps")
    rates = [float((np.interp(hi, s["wall_time"], s["step"]) - np.interp(lo, s["wall_time"], s["step"])) / (hi - lo))
             for s in series]
    whole = [float((s["step"][-1] - s["step"][0]) / (s["wall_time"][-1] - s["wall_time"][0])) for s in series]
    return {"fair_ratio": round(max(rates) / min(rates), 3), "steps_per_s_overlap": [round(r, 1) for r in rates],
            "steps_per_s_whole": [round(r, 1) for r in whole], "overlap_s": round(float(hi - lo), 1), "said": said}


def part_omp(seconds: float) -> dict:
    """Training steps/s beside the numpy process: threads x OpenMP wait policy."""
    out = {}
    for threads in (1, 2):
        for policy in ("default", "PASSIVE"):
            env = clean_env(**({"OMP_WAIT_POLICY": policy} if policy != "default" else {}))
            hog = start_hog()
            try:
                time.sleep(0.5)
                res = subprocess.run([sys.executable, "-c", STEPS, str(threads), str(seconds)], env=env,
                                     capture_output=True, text=True, check=True)
            finally:
                stop(hog)
            key = f"{threads}t_{policy.lower()}"
            out[key] = round(float(res.stdout.strip().splitlines()[-1]), 1)
            print(f"  {threads} thread(s), OpenMP waiting {policy:8s} {out[key]:7.1f} steps/s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 1000, the task's own; quick 200)")
    p.add_argument("--repeats", type=int, default=None, help="alone/beside pairs (default 3, quick 1)")
    p.add_argument("--omp-s", type=float, default=None, help="seconds per OpenMP measurement (default 6, quick 3)")
    p.add_argument("--one-session-repeats", type=int, default=None,
                   help="alone/beside pairs with all processes in this session (default 1, quick 0: skipped)")
    p.add_argument("--fair-steps", type=int, default=1000,
                   help="steps of each of the two job-manager runs (short runs overlap too briefly to compare)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--baseline", action="store_true", help="also the former default: 2 threads, spinning OpenMP")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the finally blocks stop the children
    steps = args.steps or (200 if args.quick else 1000)
    repeats = args.repeats or (1 if args.quick else 3)
    omp_s = args.omp_s or (2.0 if args.quick else 6.0)
    one_repeats = args.one_session_repeats if args.one_session_repeats is not None else (0 if args.quick else 1)
    cores = os.cpu_count() or 1
    load0 = os.getloadavg()
    print(f"contention bench: {cores} cores, load {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"brackets-lstm, {steps} steps, {repeats} repeat(s)", flush=True)
    t_start = time.time()
    print("1. one run alone vs beside two more runs and a numpy process (default settings)")
    cont = part_contention(steps, repeats, clean_env(), "own sessions", own_session=True)
    one = part_contention(steps, one_repeats, clean_env(), "one session", own_session=False) if one_repeats else None
    base = None
    if args.baseline:  # the former default: torch's own 2 threads, libgomp's default spin before sleeping
        base = part_contention(steps, 1, clean_env(DEEPSCOPE_TORCH_THREADS=str(cores), GOMP_SPINCOUNT="300000"),
                               f"former: {cores} threads, spinning", own_session=True)
    print("2. two runs started together by one JobManager")
    fair = part_fairness(args.fair_steps)
    print(f"  steps/s while both trained: {fair['steps_per_s_overlap']} -> ratio {fair['fair_ratio']}; {fair['said']}")
    print("3. OpenMP wait policy, beside the numpy process")
    omp = part_omp(omp_s)
    load1 = os.getloadavg()
    result = {
        "contention_slowdown": cont["slowdown"], "target_slowdown": TARGET_SLOWDOWN,
        "slowdown_worst": cont["slowdown_worst"], "alone_s": cont["alone_s"], "beside_s": cont["beside_s"],
        "cpu_ratio": cont["cpu_ratio"], "cpu_alone_s": cont["cpu_alone_s"], "cpu_beside_s": cont["cpu_beside_s"],
        "alone_all_s": cont["alone_all_s"], "beside_all_s": cont["beside_all_s"], "load_alone": cont["load_alone"],
        "load_beside": cont["load_beside"], "threads_said": cont["said"],
        "contention_slowdown_one_session": one and one["slowdown"], "one_session": one, "autogroup": autogroup(),
        "fair_ratio": fair["fair_ratio"], "target_fair": TARGET_FAIR, "fair_steps_per_s": fair["steps_per_s_overlap"],
        "fair_said": fair["said"], "omp_steps_s": omp, "baseline": base,
        "steps": steps, "fair_steps": args.fair_steps, "repeats": repeats, "cores": cores,
        "load_before": round(load0[0], 2),
        "load_after": round(load1[0], 2), "bench_s": round(time.time() - t_start, 1),
        "pass": cont["slowdown"] <= TARGET_SLOWDOWN and fair["fair_ratio"] <= TARGET_FAIR,
    }
    in_one = f", one session {one['slowdown']} (CPU work x{one['cpu_ratio']})" if one else ""
    print(f"contention_slowdown {result['contention_slowdown']} (target <= {TARGET_SLOWDOWN}; CPU work x"
          f"{result['cpu_ratio']}){in_one}, fair_ratio {result['fair_ratio']} (target <= {TARGET_FAIR}); "
          f"load {load0[0]:.1f} -> {load1[0]:.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
