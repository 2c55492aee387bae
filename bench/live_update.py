"""Live-update cost of the Training page on a long run: lag, bytes and server time per update.

A temporary store gets one run with ``--points`` logged points in each of four series
(``train/loss``, ``train/acc``, ``lr``, ``grad_norm/global``), written through
``RunStore.log_scalars`` in big batches. A real dashboard (``create_app(...).run``,
default poll interval) serves it from a subprocess on 127.0.0.1, and headless
Chromium (Debian's, through selenium, nothing downloaded) opens the run's Training page.

Measured:

* **page load**: from ``driver.get`` of ``/?run=ID`` until the loss graph holds data
  (cold: empty flask-caching cache; warm: an immediate reload), plus the in-process
  time of ``build_figures`` on the same run and the size of that first response.
* **lag**: a writer thread commits one new step (all four series) every ``--interval``
  seconds and notes ``time.time()`` right after ``log_scalars`` returns; the main thread
  polls the page every ~20 ms with ``execute_script``, reading the last x of the
  ``train/loss`` trace in ``document.querySelector('#train-graph-loss .js-plotly-plot').data``
  together with the page's ``Date.now()``. Lag of a step = first page time it is in the
  graph minus its commit time. p50 / p95 / max over ``--samples`` steps.
* **bytes per update** (``bytes_per_update``): the body of the live route's answer
  (``/_deepscope/live``: dashboard/views/training/live_route.py; the page's live stream,
  ``/_deepscope/stream``, sends the same answers as server-sent events, uncompressed)
  carrying exactly one new logged step, as sent on the wire to a client that accepts compression like
  every browser (the route gzips only large answers; the uncompressed JSON size is printed too), measured
  by replaying with ``requests`` the very address the page asked (taken from Chrome's performance log,
  ``Network.requestWillBeSent``), its cursor set one step back. The same
  log also gives what the live page really received during the lag phase: body bytes
  (``Network.dataReceived``) and bytes on the wire, headers included
  (``Network.loadingFinished.encodedDataLength``); those responses carry 1-2 steps.
* **server time** (``server_ms``): median over ``--calls`` in-process calls of
  ``LiveAnswers.answer`` (the live route's body: the head refresh with its store query after the
  cursor, grouping, thinning, EMA parts, JSON) on the same store, one new step per call;
  also the "nothing new" path and the HTTP round trip of the replayed request
  (``http_ms``, Flask dev server, includes localhost HTTP).

Targets: lag p95 <= 1 s at the Training page's default poll (850 ms, its one timer); <= 2 KB and <= 10 ms per update.

    .venv/bin/python bench/live_update.py            # 100k points per series, ~80 samples (~1-2 min)
    .venv/bin/python bench/live_update.py --quick    # smoke run (< 60 s)

The last line of output is one JSON object (``lag_p50_s``, ``lag_p95_s``,
``bytes_per_update``, ``server_ms``, ``points_per_series``, ``poll_ms``, ...).
``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from backend.spec import RunSpec  # noqa: E402
from backend.store import RunStore  # noqa: E402
from dashboard import ids  # noqa: E402

from _harness import SERIES, decoded, fill_store, rows_for, free_port, start_browser, start_server, stop_process  # noqa: E402

from dashboard.app import DEFAULT_TRAINING_POLL_MS as DEFAULT_POLL_MS  # noqa: E402 - the Training page's timer
TARGET_LAG_P95_S = 1.0
TARGET_BYTES = 2048
TARGET_SERVER_MS = 10.0
SMOOTHING = 0.6  # the Training page's default slider value
LOSS_GRAPH = ids.graph_id("loss")
LAST_X_JS = f"""
const gd = document.querySelector('#{LOSS_GRAPH} .js-plotly-plot');
let last = null, n = -1;
if (gd && gd.data) {{
  const t = gd.data.find(d => d.name === 'train/loss');
  if (t && t.x.length) {{ n = t.x.length; last = t.x[t.x.length - 1]; }}
}}
return [Date.now(), last, n];
"""

# -- measurements -------------------------------------------------------------------------------

def read_page(driver) -> tuple[float, int | None, int]:
    """(page time in s, last x of the loss trace or None, its point count)."""
    now_ms, last, n = driver.execute_script(LAST_X_JS)
    return now_ms / 1000.0, last, n


def time_page_load(driver, url: str, timeout: float = 120) -> float:
    """Seconds from navigation until the loss graph holds data."""
    t0 = time.time()
    driver.get(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, last, n = read_page(driver)
        if n > 0:
            return time.time() - t0
        time.sleep(0.02)
    raise RuntimeError(f"the loss graph had no data {timeout} s after opening {url}")


def measure_lag(driver, store: RunStore, run_id: str, first_step: int, samples: int,
                interval: float) -> tuple[list[float], float, float]:
    """Lag of ``samples`` steps written every ``interval`` s; returns (lags, t_start, t_end)."""
    committed: dict[int, float] = {}
    errors: list[BaseException] = []

    def writer() -> None:
        start = time.monotonic()
        try:
            for k in range(samples):
                delay = start + k * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                step = first_step + k
                store.log_scalars(run_id, rows_for(step, time.time()), step=step)
                committed[step] = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    seen: dict[int, float] = {}
    last_step = first_step + samples - 1
    t_start = time.time()
    thread = threading.Thread(target=writer, name="bench-writer", daemon=True)
    thread.start()
    deadline = time.monotonic() + samples * interval + 30
    newest = first_step - 1
    while time.monotonic() < deadline and (newest < last_step or thread.is_alive()):
        t_page, last, _n = read_page(driver)
        if last is not None and last > newest:
            for step in range(max(newest + 1, first_step), min(int(last), last_step) + 1):
                seen[step] = t_page
            newest = int(last)
        if errors:
            raise errors[0]
        time.sleep(0.02)
    thread.join(timeout=5)
    t_end = time.time()
    missing = [s for s in committed if s not in seen]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(committed)} steps never reached the page (first {missing[:5]})")
    return [seen[s] - committed[s] for s in sorted(committed)], t_start, t_end


def network_log(driver, reqs: dict[str, dict] | None = None) -> dict[str, dict]:
    """Requests from Chrome's performance log: url, postData, status, body and wire bytes, time; added to
    ``reqs`` when given (reading the log empties it: a request sent before one read and answered after it,
    or a live stream opened then and still open, is found only by carrying ``reqs`` on)."""
    reqs = {} if reqs is None else reqs
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        rid = params.get("requestId")
        if method == "Network.requestWillBeSent":
            req = params["request"]
            reqs[rid] = {"url": req["url"], "post": req.get("postData"), "t": params.get("wallTime", 0),
                         "status": None, "body": 0, "wire": None}
        elif rid in reqs and method == "Network.responseReceived":
            reqs[rid]["status"] = params["response"]["status"]
        elif rid in reqs and method == "Network.dataReceived":
            reqs[rid]["body"] += params.get("dataLength", 0)
        elif rid in reqs and method == "Network.loadingFinished":
            reqs[rid]["wire"] = params.get("encodedDataLength")
    return reqs


LIVE_PATH = "/_deepscope/live"
STREAM_PATH = "/_deepscope/stream"  # the same query; its updates are the live route's answers, uncompressed


def state_of(req: dict, missing=None):
    """The live-state value a request to the live callback sent (None: the page had none yet)."""
    if "_dash-update-component" not in req["url"] or not req["post"]:
        return missing
    body = json.loads(req["post"])
    if f"{ids.TRAIN_STATE}.data" not in body.get("output", ""):
        return missing
    return next((s.get("value") for s in body.get("state", []) if s["id"] == ids.TRAIN_STATE), None)


def is_live_poll(req: dict) -> bool:
    """The Training page's live updates: its live stream (``/_deepscope/stream``, server-sent events), or its
    clientside timer's GETs of the live route while it polls instead."""
    return (LIVE_PATH in req["url"] or STREAM_PATH in req["url"]) and not req["post"]


def replay_one_step(base_url: str, address: str, store: RunStore, run_id: str,
                    calls: int) -> tuple[int, list[float], dict]:
    """GET the page's own live-route address with its cursor one logged step back; (bytes, ms list, body)."""
    import requests
    from urllib.parse import parse_qs, urlencode, urlsplit

    query = {k: v[0] for k, v in parse_qs(urlsplit(address).query).items()}
    rows, _ = store.scalars_after(run_id, 0)
    row_ids = [r[0] for r in rows]
    per_step = len(SERIES)
    if len(row_ids) <= per_step:
        raise RuntimeError("not enough rows to replay one step")
    query["since"] = str(row_ids[-per_step - 1])
    url = f"{base_url}{LIVE_PATH}?{urlencode(query)}"
    session = requests.Session()
    sizes, times = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        # as a browser asks: compressed if the server offers it; count the bytes on the wire
        resp = session.get(url, timeout=10, stream=True, headers={"Accept-Encoding": "gzip, deflate, br"})
        wire = resp.raw.read(decode_content=False)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
        sizes.append(len(wire))
        encoding = resp.headers.get("Content-Encoding", "identity")
    session.close()
    return int(statistics.median(sizes)), times, wire if encoding == "identity" else decoded(wire, encoding)


def time_live_callback(store: RunStore, run_id: str, calls: int) -> dict:
    """In-process timings of the live route's body on this store (each update refreshes the run's head)."""
    from dashboard import live_heads
    from dashboard.data import DashboardData
    from dashboard.views.training.live import build_figures
    from dashboard.views.training.live_route import LiveAnswers

    data = DashboardData(store, cache=None)
    answers = LiveAnswers(data)
    t0 = time.perf_counter()
    _figs, state = build_figures(data, [run_id], SMOOTHING)
    build_s = time.perf_counter() - t0
    cursor = json.loads(answers.answer([run_id], [state["cursors"][run_id]], SMOOTHING))["r"][run_id]["cursor"]
    step = store.get_run(run_id)["step"] + 1
    update_ms, idle_ms = [], []
    for _ in range(calls):
        store.log_scalars(run_id, rows_for(step, time.time()), step=step)
        step += 1
        live_heads.HEAD_MAX_AGE_S, kept = 0.0, live_heads.HEAD_MAX_AGE_S  # this call refreshes the head
        t0 = time.perf_counter()
        cursor = json.loads(answers.answer([run_id], [cursor], SMOOTHING))["r"][run_id]["cursor"]
        update_ms.append((time.perf_counter() - t0) * 1000)
        live_heads.HEAD_MAX_AGE_S = kept
        t0 = time.perf_counter()
        answers.answer([run_id], [cursor], SMOOTHING)
        idle_ms.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    series, _cursor = data.initial_series(run_id)
    load_s = time.perf_counter() - t0
    return {"build_s": build_s, "series_load_s": load_s, "update_ms": update_ms, "idle_ms": idle_ms,
            "initial_points": {k: len(v["x"]) for k, v in series.items()}}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


# -- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10k points, 15 samples (smoke test, < 60 s)")
    p.add_argument("--points", type=int, default=None, help="logged points per series (default 100000, quick 10000)")
    p.add_argument("--samples", type=int, default=None, help="lag samples (default 80, quick 15)")
    p.add_argument("--interval", type=float, default=0.3, help="seconds between written steps (default 0.3)")
    p.add_argument("--calls", type=int, default=None, help="timed calls for server time (default 200, quick 50)")
    p.add_argument("--poll-ms", type=int, default=None,
                   help=f"dashboard poll interval (default: create_app's, {DEFAULT_POLL_MS} ms)")
    p.add_argument("--dir", default=None, help="parent folder of the temporary store")
    p.add_argument("--keep", action="store_true", help="keep the temporary store and server log")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    points = args.points or (10_000 if args.quick else 100_000)
    samples = args.samples or (15 if args.quick else 80)
    calls = args.calls or (50 if args.quick else 200)
    poll_ms = args.poll_ms or DEFAULT_POLL_MS

    tmp = Path(tempfile.mkdtemp(prefix="deepscope-bench-live-", dir=args.dir))
    server = driver = None
    try:
        data_dir = tmp / "data"
        store = RunStore(data_dir)
        spec = RunSpec.for_task("digits-cnn", model={"channels": [4, 8]}, steps=10_000_000)
        run_id = store.create_run("bench live", "digits-cnn", spec.model_dump(), status="running")
        fill_s = fill_store(store, run_id, points)
        print(f"store: {points:,} points x {len(SERIES)} series written in {fill_s:.1f} s ({data_dir})", flush=True)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, tmp / "server.log", args.poll_ms)
        driver = start_browser(tmp / "chrome-profile")
        url = f"{base}/?run={run_id}"

        load_cold = time_page_load(driver, url)
        time.sleep(0.5)  # requests still in flight when the data appeared
        cold_net = network_log(driver)
        initial_bytes = max((r["body"] for r in cold_net.values() if state_of(r, missing="?") is None), default=0)
        builds_cold = sum(state_of(r, missing="?") is None for r in cold_net.values())
        load_warm = time_page_load(driver, url)
        time.sleep(0.5)
        warm_net = network_log(driver)
        builds_warm = sum(state_of(r, missing="?") is None for r in warm_net.values())
        print(f"page load (loss graph has data): cold {load_cold:.2f} s ({builds_cold} full-figure requests), "
              f"warm {load_warm:.2f} s ({builds_warm}); first figure response {initial_bytes / 1024:.0f} KiB",
              flush=True)

        time.sleep(1.0)  # let the page settle into streaming
        first_step = store.get_run(run_id)["step"] + 1
        lags, t_start, t_end = measure_lag(driver, store, run_id, first_step, samples, args.interval)
        # from the warm load on: the page's live stream may have opened before the lag phase, and stays open
        polls = [r for r in network_log(driver, warm_net).values() if is_live_poll(r) and r["status"] is not None]
        updates = [r for r in polls if r["status"] == 200]
        console = driver.get_log("browser")
        driver.quit()
        driver = None
        if not updates:
            raise RuntimeError("no live update responses were seen in the performance log")

        streams = sum(STREAM_PATH in r["url"] for r in updates)
        address = updates[0]["url"].replace(STREAM_PATH, LIVE_PATH)  # a stream's update is the route's answer
        replay_bytes, http_ms, replay_body = replay_one_step(base, address, store, run_id, calls)
        stop_process(server)
        server = None
        inproc = time_live_callback(store, run_id, calls)
    finally:
        if driver is not None:
            driver.quit()
        stop_process(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    lag_p50, lag_p95, lag_max = pct(lags, 50), pct(lags, 95), max(lags)
    server_ms = statistics.median(inproc["update_ms"])
    live_body = statistics.median(r["body"] for r in updates)
    wires = [r["wire"] for r in updates if r["wire"] is not None]  # a stream still open has not finished loading
    live_wire = statistics.median(wires) if wires else None
    patched = sorted({name for part in json.loads(replay_body)["r"].values() if part
                      for chunk in part["chunks"] for name in chunk})
    gzip_bytes = len(gzip.compress(replay_body))

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\nlive update, {points:,} points per series, {len(SERIES)} series, poll {poll_ms} ms, "
          f"a step written every {args.interval:.2f} s")
    print(f"  lag commit -> graph data ({len(lags)} steps): p50 {lag_p50:.3f} s, p95 {lag_p95:.3f} s, "
          f"max {lag_max:.3f} s   target p95 <= {TARGET_LAG_P95_S:.1f} s: {verdict(lag_p95 <= TARGET_LAG_P95_S)}")
    print(f"  bytes of one update (1 step, replayed page payload, response body on the wire): {replay_bytes} B   "
          f"target <= {TARGET_BYTES} B: {verdict(replay_bytes <= TARGET_BYTES)}")
    print(f"    uncompressed JSON body {len(replay_body)} B; gzip of it {gzip_bytes} B")
    if streams:
        print(f"    live page during the lag run: {streams} live stream(s) (server-sent events; an update is the "
              f"route's answer, uncompressed), {len(polls) - streams} polls")
    else:
        print(f"    live page during the lag run: {len(polls)} polls, {len(updates)} with data; median body "
              f"{live_body:.0f} B, on the wire {live_wire} B (headers included; 1-2 steps each)")
    print(f"    series in it: {', '.join(patched)}")
    print(f"  server time per update (in-process live route, 1 new step, median of {calls}): {server_ms:.2f} ms "
          f"(p95 {pct(inproc['update_ms'], 95):.2f})   target <= {TARGET_SERVER_MS:.0f} ms: "
          f"{verdict(server_ms <= TARGET_SERVER_MS)}")
    print(f"    nothing new: {statistics.median(inproc['idle_ms']):.2f} ms; HTTP round trip of "
          f"the replayed request: median {statistics.median(http_ms):.2f} ms, p95 {pct(http_ms, 95):.2f} ms")
    print(f"  initial load: cold {load_cold:.2f} s, warm {load_warm:.2f} s in the browser; in-process "
          f"build_figures {inproc['build_s']:.2f} s (of which initial_series {inproc['series_load_s']:.2f} s uncached), "
          f"{max(inproc['initial_points'].values())} points per series drawn")
    print(f"  console errors: {len(console)}" + (f" (first: {console[0].get('message', '')[:200]})" if console else ""))

    result = {
        "lag_p50_s": round(lag_p50, 4), "lag_p95_s": round(lag_p95, 4), "lag_max_s": round(lag_max, 4),
        "samples": len(lags), "bytes_per_update": replay_bytes, "bytes_method": "requests replay of page payload, body bytes on the wire (compressed)",
        "bytes_uncompressed": len(replay_body),
        "bytes_gzip": gzip_bytes,
        "live_body_bytes_median": live_body, "live_wire_bytes_median": live_wire,
        "live_transport": "stream" if streams else "poll", "live_streams": streams,
        "server_ms": round(server_ms, 3), "server_ms_p95": round(pct(inproc["update_ms"], 95), 3),
        "idle_ms": round(statistics.median(inproc["idle_ms"]), 3),
        "http_ms": round(statistics.median(http_ms), 3),
        "page_load_cold_s": round(load_cold, 3), "page_load_warm_s": round(load_warm, 3),
        "full_figure_requests_cold": builds_cold, "full_figure_requests_warm": builds_warm,
        "initial_build_s": round(inproc["build_s"], 3), "initial_response_bytes": initial_bytes,
        "console_errors": len(console), "points_per_series": points, "series": len(SERIES),
        "poll_ms": poll_ms, "interval_s": args.interval, "quick": bool(args.quick),
    }
    missed = [name for name, ok in (("lag", lag_p95 <= TARGET_LAG_P95_S), ("bytes", replay_bytes <= TARGET_BYTES),
                                    ("server", server_ms <= TARGET_SERVER_MS)) if not ok]
    result["missed"] = missed
    print(json.dumps(result))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
