"""What viewers cost: N browsers on the Training page of live runs, replayed over HTTP, while 2 runs train.

1. Two small runs train (``deepscope train``, one torch thread each, sessions of their own as from two
   terminals): ``brackets-lstm`` (a language model: its page also shows the samples card) and ``digits-cnn``.
2. ``deepscope serve`` serves their store (SQLite, the default flask-caching folder; ``DEEPSCOPE_ANALYSIS=off``
   unless ``--analysis``, so the projection worker's bursts do not blur the training rates).
3. **Capture**: headless Chromium (Debian's, through selenium) opens ``/?run=A`` and ``/?run=B`` and stays
   ``--capture-s`` seconds on each; Chrome's performance log gives every ``_dash-update-component`` body
   the page sent, and its live updates (assets/training_live.js): the live stream it opened
   (``/_deepscope/stream``, server-sent events), or the GETs of the live route it polled instead
   (``/_deepscope/live``). Callbacks fired by a ``dcc.Interval`` (``changedPropIds`` all ``*.n_intervals``)
   are timers, and the live GETs one more; each is replayed at its own period (the median gap between its
   requests in the capture); the callbacks sent before the first timer are the page's first requests,
   replayed once.
4. **Replay** (:mod:`bench._viewers_replay`): ``--viewers`` threads per timer (half the viewers on each run) post those bodies at the
   page's pace, with every input and state value taken from the answers that viewer got before (Dash
   ``Patch`` answers applied, as :mod:`bench._faults_poll` does), and ``n_intervals`` counting up. A
   callback whose input an answer set is posted next, as Dash chains callbacks. The live stream (or GET)
   asks for the rows after the cursors of the viewer's live state; each update moves them on and pokes the
   page's Python callback when the answer says the page would (:func:`bench._faults_poll.live_needs`, at
   most once per signature every 5 s, as the page does). A stream is opened again when it ends, when an
   update does not join the state's cursors, and at each block with viewers (closed between blocks). Closed loop: a timer's next request waits for its previous answer (a
   browser would not, so an overloaded server looks better here than it is).
5. **Training slowdown**: blocks of ``--block-s`` seconds without and with viewers alternate (``--seconds``
   of each in all; the pages wait between blocks and keep their state), so the machine's other load falls
   on both alike. Each run's steps/s (its ``step`` in the store) per block; ``train_slowdown`` = 1 - median
   with / median without, averaged over the two runs; ``train_slowdown_95``: where 95 % of bootstrap
   resamplings of the block pairs put it (the other load of a shared machine moves it by points from run to
   run: read one run's figure with its interval, or take the median of several runs).

``requests_per_viewer_s`` counts the requests of pages being watched (timers and what they chain, each
stream opened), not the few that open a page (``page_open_requests_per_viewer``); a stream's wall time is
until its answer's headers, its updates are counted apart (``stream_updates_per_viewer_s``). Measured per request: wall time from send to the whole answer (``p50_ms``, ``p95_ms``), answers with no
update (HTTP 204), errors (HTTP >= 400 other than 204, connection errors, timeouts, and ``callback raised``
lines in the server log), bytes; the server process's CPU seconds per second
without and with viewers, and this process's (the replaying client's: it competes with the runs too, where
real viewers' browsers would not).

Targets on the 2-core machine, one ``deepscope serve``: p95 <= 300 ms, 0 errors, training slowdown
<= 5 %, <= 1.2 requests per viewer per second.

    .venv/bin/python bench/viewers.py              # 20 viewers, 60 s (~3 min)
    .venv/bin/python bench/viewers.py --quick      # 5 viewers, 20 s (smoke test, ~1.5 min)

The last line of output is one JSON object (``viewers``, ``requests_per_viewer_s``, ``p50_ms``, ``p95_ms``,
``errors``, ``train_slowdown``, ...). ``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _viewers_replay import DISPATCH, FALLBACK_S, LIVE_OUTPUT, LIVE_PATH, STREAM_PATH, Stats, start_viewers  # noqa: E402
from _harness import free_port, start_browser, stop_process  # noqa: E402
from _viewers_procs import TASKS, compose_dashboard, cpu_seconds, start_gunicorn, start_runs, start_serve, wait_for_runs  # noqa: E402

TARGETS = {"p95_ms": 300.0, "errors": 0, "train_slowdown": 0.05, "requests_per_viewer_s": 1.2}
LOSS_JS = ("const gd = document.querySelector('#train-graph-loss .js-plotly-plot');"
           "return !!(gd && gd.data && gd.data.some(t => t.x && t.x.length));")


# -- capture ---------------------------------------------------------------------------------------------

def capture(driver, url: str, seconds: float, save: Path | None = None) -> tuple[list[dict], dict[str, dict]]:
    """(first requests in order, {output: timer template with "period_s"}) of the page at ``url``; the live
    route's GETs are the timer ``LIVE_OUTPUT`` (template ``{"url": ..., "period_s": ...}``)."""
    driver.get("about:blank")  # the previous page's timers stop here
    driver.get_log("performance")  # drop what came before
    opened = time.time()
    driver.get(url)
    deadline = time.monotonic() + 60
    while not driver.execute_script(LOSS_JS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the loss graph of {url} had no data after 60 s")
        time.sleep(0.1)
    time.sleep(seconds)
    posts, gets = [], []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        req, t = msg["params"]["request"], msg["params"].get("wallTime", opened)
        if t < opened:
            continue
        if DISPATCH in req["url"] and req.get("postData"):
            posts.append((t, json.loads(req["postData"])))
        elif (LIVE_PATH in req["url"] or STREAM_PATH in req["url"]) and req.get("method") == "GET":
            gets.append((t, req["url"]))
    if save is not None:
        save.write_text(json.dumps({"posts": [[t, b] for t, b in posts], "gets": gets}, indent=1))
    first, timers, times = [], {}, {}
    first_timer_at = gets[0][0] if gets else float("inf")
    for t, body in posts:
        changed = body.get("changedPropIds") or []
        if changed and all(c.endswith(".n_intervals") for c in changed):
            timers.setdefault(body["output"], body)
            times.setdefault(body["output"], []).append(t)
            first_timer_at = min(first_timer_at, t)
    first = [body for t, body in posts if t < first_timer_at and body["output"] not in timers]
    if gets:
        path = gets[0][1].split("//", 1)[-1]
        streamed = any(STREAM_PATH in url for _, url in gets)  # the page took a stream: it polled nothing
        timers[LIVE_OUTPUT] = {"output": LIVE_OUTPUT, "url": path[path.index("/"):], "stream": streamed}
        times[LIVE_OUTPUT] = [t for t, _ in gets]
    if not timers:
        raise RuntimeError(f"no timer-driven request was seen on {url} in {seconds:.0f} s")
    for output, body in timers.items():
        gaps = [b - a for a, b in zip(times[output], times[output][1:])]
        body["period_s"] = round(statistics.median(gaps), 2) if gaps and not body.get("stream") else 1.0
    return first, timers


# -- phases -------------------------------------------------------------------------------------------------

def steps_now(store, run_ids: list[str]) -> dict[str, tuple[float, int]]:
    return {rid: (time.monotonic(), int((store.get_run(rid) or {}).get("step") or 0)) for rid in run_ids}


def rates(before: dict, after: dict) -> dict[str, float]:
    return {rid: (after[rid][1] - before[rid][1]) / max(1e-9, after[rid][0] - before[rid][0]) for rid in before}


def block(store, run_ids, server_pid: int, seconds: float) -> tuple[dict, float, float, float]:
    """(steps/s per run, server CPU seconds, this process's CPU seconds, wall seconds) over one block."""
    s0, c0, p0, t0 = steps_now(store, run_ids), cpu_seconds(server_pid), time.process_time(), time.monotonic()
    time.sleep(seconds)
    s1, c1, p1, t1 = steps_now(store, run_ids), cpu_seconds(server_pid), time.process_time(), time.monotonic()
    return rates(s0, s1), c1 - c0, p1 - p0, t1 - t0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def slowdown_interval(alone: dict, withv: dict, run_ids: list[str], draws: int = 2000) -> list[float]:
    """The 2.5th and 97.5th percentiles of ``train_slowdown`` over bootstrap resamplings of the block pairs
    (each pair: a block without viewers and the block with viewers after it, resampled together): how far one
    bench run's figure can be trusted on a machine whose other load moves the trainings' rates."""
    import random

    rng = random.Random(0)
    n = min(len(alone[r]) for r in run_ids)
    out = []
    for _ in range(draws):
        picks = [rng.randrange(n) for _ in range(n)]
        per = [1 - statistics.median(withv[r][i] for i in picks) / statistics.median(alone[r][i] for i in picks)
               for r in run_ids if statistics.median(alone[r][i] for i in picks)]
        out.append(statistics.mean(per))
    out.sort()
    return [round(out[int(0.025 * (draws - 1))], 4), round(out[int(0.975 * (draws - 1))], 4)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 viewers, 20 s (smoke test)")
    p.add_argument("--viewers", type=int, default=None, help="concurrent viewers (default 20, quick 5)")
    p.add_argument("--seconds", type=float, default=None, help="seconds with viewers, and as many without "
                   "(default 60, quick 20)")
    p.add_argument("--block-s", type=float, default=5.0, help="seconds of each block; blocks without and "
                   "with viewers alternate, --seconds of each in all")
    p.add_argument("--capture-s", type=float, default=6.0, help="seconds on each page in Chromium")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as an error")
    p.add_argument("--analysis", action="store_true", help="run the analysis worker beside the dashboard")
    p.add_argument("--gunicorn", action="store_true",
                   help="serve as docker-compose does: gunicorn with its workers, threads and streams, and a Redis "
                   "cache (redis-server on PATH)")
    p.add_argument("--dir", default=None, help="parent folder of the temporary store")
    p.add_argument("--keep", action="store_true", help="keep the temporary store and logs")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    viewers = args.viewers or (5 if args.quick else 20)
    seconds = args.seconds or (20.0 if args.quick else 60.0)

    from backend.store import RunStore

    tmp = Path(tempfile.mkdtemp(prefix="deepscope-bench-viewers-", dir=args.dir))
    data_dir = tmp / "data"
    trainers, server, driver, redis = [], None, None, None
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; folder {tmp}", flush=True)
    try:
        trainers = start_runs(data_dir, tmp)
        store = RunStore(data_dir)
        run_ids = wait_for_runs(store, trainers)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if args.gunicorn:
            server, redis = start_gunicorn(data_dir, port, tmp / "serve.log", tmp)
            options, compose_env = compose_dashboard()
            server_name = f"gunicorn {' '.join(options)} {' '.join(f'{k}={v}' for k, v in compose_env.items())} + Redis"
        else:
            server = start_serve(data_dir, port, tmp / "serve.log", args.analysis)
            server_name = "deepscope serve"
        print(f"runs {dict(zip(TASKS, run_ids))} training; {server_name} "
              f"on {base}", flush=True)

        driver = start_browser(tmp / "chrome-profile")
        pages = []
        for rid in run_ids:
            first, timers = capture(driver, f"{base}/?run={rid}", args.capture_s, tmp / f"capture-{rid}.json")
            pages.append((base, first, timers))
            print(f"captured /?run={rid}: {len(first)} first requests; timers "
                  + ", ".join(f"{o[:50]}... every {t['period_s']:.2f} s" for o, t in timers.items()), flush=True)
        console = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        driver.quit()
        driver = None

        # Blocks without and with viewers alternate, so the load of the machine's other work (and the
        # runs' own phases) falls on both alike; the viewers' pages keep their state between blocks.
        stats, halt, active = Stats(), threading.Event(), threading.Event()
        threads, open_pages = start_viewers(pages, viewers, stats, halt, active, args.timeout)
        alone, withv = {rid: [] for rid in run_ids}, {rid: [] for rid in run_ids}
        cpu, client, wall = {"alone": 0.0, "with": 0.0}, {"alone": 0.0, "with": 0.0}, {"alone": 0.0, "with": 0.0}
        loads = []
        for _ in range(max(1, round(seconds / args.block_s))):
            for kind, on in (("alone", False), ("with", True)):
                (active.set if on else active.clear)()
                if not on:  # the pages close their live streams at once, as a closed tab does
                    for page in open_pages:
                        page.close_stream()
                r, c, p, w = block(store, run_ids, server.pid, args.block_s)
                client[kind] += p
                for rid in run_ids:
                    (withv if on else alone)[rid].append(r[rid])
                cpu[kind] += c
                wall[kind] += w
            loads.append(os.getloadavg()[0])
        active.clear()
        halt.set()
        for page in open_pages:
            page.close_stream()
        for th in threads:
            th.join(args.timeout + 5)
        seconds = wall["with"]
        log_text = (tmp / "serve.log").read_text(errors="replace")
        raised = log_text.count("callback raised")
    finally:
        if driver is not None:
            driver.quit()
        stop_process(server)
        if redis is not None:
            stop_process(redis)
        for proc in trainers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in trainers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    per_run = {}
    for rid, task in zip(run_ids, TASKS):
        a, w = statistics.median(alone[rid]), statistics.median(withv[rid])
        per_run[task] = {"alone_steps_s": round(a, 1), "with_viewers_steps_s": round(w, 1),
                         "slowdown": round(1 - w / a, 4) if a else None,
                         "blocks_alone": [round(v, 1) for v in alone[rid]],
                         "blocks_with": [round(v, 1) for v in withv[rid]]}
    slowdowns = [r["slowdown"] for r in per_run.values() if r["slowdown"] is not None]
    slowdown = statistics.mean(slowdowns) if slowdowns else float("nan")
    spread = slowdown_interval(alone, withv, run_ids)
    load_in = statistics.median(loads)
    errors = stats.errors + raised
    result = {"server": server_name,
        "viewers": viewers, "seconds": seconds,
        "requests_per_viewer_s": round((stats.requests - stats.opens) / viewers / seconds, 3),
        "page_open_requests_per_viewer": round(stats.opens / viewers, 1),
        "requests_s": round(stats.requests / seconds, 1),
        "p50_ms": round(pct(stats.ms, 50), 1), "p95_ms": round(pct(stats.ms, 95), 1),
        "p99_ms": round(pct(stats.ms, 99), 1), "max_ms": round(max(stats.ms, default=float("nan")), 1),
        "no_update_share": round(stats.no_update / max(1, stats.requests), 3),
        "bytes_per_request": round(stats.bytes / max(1, stats.requests)),
        "live": "stream" if pages[0][2].get(LIVE_OUTPUT, {}).get("stream") else "poll",
        "stream_updates_per_viewer_s": round(stats.messages / viewers / seconds, 3),
        "bytes_per_stream_update": round(stats.message_bytes / max(1, stats.messages)),
        "streams_reopened": stats.reopened, "streams_refused": stats.busy,
        "errors": errors, "callback_raised": raised, "console_errors": len(console),
        "train_slowdown": round(slowdown, 4), "train_slowdown_95": spread, "runs": per_run,
        "server_cpu_s_per_s": {k: round(cpu[k] / max(1e-9, wall[k]), 3) for k in cpu},
        # the replaying viewers themselves (this process): real viewers' browsers run elsewhere
        "client_cpu_s_per_s": {k: round(client[k] / max(1e-9, wall[k]), 3) for k in client},
        "timers": {o[:60]: t["period_s"] for o, t in pages[0][2].items()},
        "load_avg_during": round(load_in, 2), "load_avg_after": round(os.getloadavg()[0], 2),
        "quick": bool(args.quick),
    }
    for msg in stats.samples:
        print("error:", msg)
    print(f"\n{viewers} viewers for {seconds:.0f} s: {stats.requests} requests, {stats.opens} of them opening "
          f"the page ({result['requests_per_viewer_s']:.2f} per viewer per s while watching, "
          f"{result['no_update_share']:.0%} no update); "
          f"p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms; "
          f"errors {errors}")
    print("  requests by callback: " + "; ".join(f"{o[:48]}: {n}" for o, n in stats.by_output.items()))
    if result["live"] == "stream":
        print(f"  live streams: {result['stream_updates_per_viewer_s']:.2f} updates per viewer per s, "
              f"{result['bytes_per_stream_update']} B each; {stats.reopened} opened again (whole figures came); "
              f"{stats.busy} refused (the page polled {FALLBACK_S:.0f} s instead)")
    for task, r in per_run.items():
        print(f"  {task}: {r['alone_steps_s']} steps/s alone, {r['with_viewers_steps_s']} with viewers "
              f"(slowdown {r['slowdown']:.1%})")
    print(f"  training slowdown {slowdown:.1%}; 95 % of resamplings of the blocks fall in "
          f"{spread[0]:.1%} .. {spread[1]:.1%}")
    print(f"  server CPU s/s: {result['server_cpu_s_per_s']}; the replaying client's: {result['client_cpu_s_per_s']}; "
          f"load average during {load_in:.2f}")
    missed = [k for k, limit in TARGETS.items() if not result[k] <= limit]
    result["missed"] = missed
    print(json.dumps(result))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
