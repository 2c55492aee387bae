"""What live streams cost per dashboard worker: the answer path alone (no HTTP), W processes x S streams.

A writer process logs 8 series to 2 runs at 50 steps/s each (as a fast trainer's metrics hook would); W
worker processes, each a ``DashboardData`` on one Redis cache (docker-compose's) with its
:class:`~dashboard.views.training.live_route.LiveAnswers`, run S stream threads that call
``Streams.update`` on the streams' 0.5 s clock (as :mod:`dashboard.views.training.live_stream` does),
each following its own cursors, through :meth:`~dashboard.views.training.live_stream.Streams.update` as a
stream does (the streams of a worker at the same cursors share one update). Measured: the workers' CPU seconds per second, and how many heads each
read from the store or took from another worker's stamp, and how many chunks each built or took.

Far less noisy than ``bench/viewers.py`` (no trainers to slow, no HTTP, no replaying client): use it to see
what the shared ticks (dashboard/live_heads.py) save; ``bench/viewers.py --gunicorn`` gives the slowdown.

    .venv/bin/python bench/worker_ticks.py                    # 4x5, 2x10, 1x20 for 20 s each (~2 min)
    .venv/bin/python bench/worker_ticks.py --configs 4x5 --seconds 10

The last line is one JSON object: ``{"configs": {"4x5": {"cpu_s_per_s": ..., "ms_per_tick_per_worker": ...,
"read": ..., "taken": ..., "built": ..., "shared": ...}, ...}}``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SERIES = [f"train/s{i}" for i in range(8)]
PUSH_S = 0.5


def _writer(data_dir: str, run_ids: list[str], stop_at: float) -> None:
    from backend.store import RunStore

    store = RunStore(data_dir)
    step = 1000
    while time.time() < stop_at:
        for rid in run_ids:
            store.log_scalars(rid, [(n, step, 1.0 / (step + 1), time.time()) for n in SERIES], step=step)
        step += 1
        time.sleep(0.02)


def _worker(data_dir: str, run_ids: list[str], streams: int, start_at: float, stop_at: float, out) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from dashboard.app import create_app

    server = create_app(data_dir).server
    answers, streams_of = server.extensions["deepscope_live"], server.extensions["deepscope_stream"]
    heads = answers.data.heads.heads(run_ids)
    start = [heads[r]["cursor"] for r in run_ids]
    while time.time() < start_at:
        time.sleep(0.01)
    cpu0 = time.process_time()

    def stream() -> None:
        cursors = list(start)
        while time.time() < stop_at:
            _event, cursors, _says = streams_of.update(run_ids, cursors, 0.6)
            time.sleep(PUSH_S - time.time() % PUSH_S + 0.001)

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h = answers.data.heads
    out.put({"cpu": time.process_time() - cpu0, "read": getattr(h, "read", 0), "taken": getattr(h, "taken", 0),
             "built": answers.built, "shared": getattr(answers, "shared", 0),
             "answers_shared": getattr(streams_of, "shared_answers", 0)})


def measure(workers: int, streams: int, seconds: float, redis_url: str) -> dict:
    os.environ.update(DEEPSCOPE_CACHE_TYPE="RedisCache", DEEPSCOPE_REDIS_URL=redis_url)
    from backend.spec import RunSpec
    from backend.store import RunStore

    folder = tempfile.mkdtemp(prefix="deepscope-bench-ticks-")
    try:
        store = RunStore(folder)
        spec = RunSpec.for_task("digits-cnn").model_dump()
        run_ids = [store.create_run(f"r{i}", "digits-cnn", spec, status="running") for i in range(2)]
        for rid in run_ids:
            store.log_scalars(rid, [(n, s, 1.0, time.time()) for s in range(1000) for n in SERIES], step=999)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 10  # every worker has loaded the app
        stop_at = start_at + seconds
        procs = [ctx.Process(target=_writer, args=(folder, run_ids, stop_at))]
        procs += [ctx.Process(target=_worker, args=(folder, run_ids, streams, start_at, stop_at, out))
                  for _ in range(workers)]
        for p in procs:
            p.start()
        got = [out.get(timeout=seconds + 120) for _ in range(workers)]
        for p in procs:
            p.join(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cpu = sum(g["cpu"] for g in got)
    return {"cpu_s_per_s": round(cpu / seconds, 4),
            "ms_per_tick_per_worker": round(cpu / seconds / (1 / PUSH_S) / workers * 1e3, 2),
            **{k: sum(g[k] for g in got) for k in ("read", "taken", "built", "shared", "answers_shared")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="4x5,2x10,1x20", help="WORKERSxSTREAMS, separated by commas")
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (make test installs it)", file=sys.stderr)
        return 2
    from _harness import free_port  # bench/ is on the path

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        results = {}
        for config in args.configs.split(","):
            w, s = (int(x) for x in config.lower().split("x"))
            results[config] = measure(w, s, args.seconds, f"redis://127.0.0.1:{port}/0")
            print(f"{w} workers x {s} streams: {results[config]}", flush=True)
    finally:
        redis.kill()
        redis.wait(10)
    print(json.dumps({"seconds": args.seconds, "configs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
