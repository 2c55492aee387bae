"""Junk at every edge of the dashboard: callback payloads, URL parameters and run specs.

A real dashboard (``create_app`` on a temporary data folder, served by werkzeug over HTTP in a
thread, ``DEEPSCOPE_ANALYSIS=off``) holds a tiny trained run of every built-in task (probes on:
hidden states, kernels, samples, gradient flow, embeddings; PCA maps written in-process). Then:

* every page is rendered through Dash pages' routing callback (once per run) and the values and
  pattern-matching ids it holds are remembered (``bench/_dash_fuzz.py``);
* every page path is fetched with junk query values, and the routing callback is sent junk
  ``search`` strings (``/hidden?step=1e999``, repeated keys, 200 KB values, paths...);
* run by run, every server callback of ``/_dash-dependencies`` first gets the values that run's pages
  hold (``plain_500`` counts failures there: no junk at all), then junk bodies: one slot junked and the
  rest plausible, one plausible value mutated deep inside, or everything junk (None, 10**400, NaN,
  "1e999", nested lists, 200 KB strings, script tags, ``../../etc/passwd``, a planted secret's path,
  junk pattern-matching ids, unreadable ``changedPropIds``). A job manager that starts no process
  stands in for the real one, so a junk "Launch" that happens to be valid trains nothing;
* ``parse_spec`` and ``validate_form`` get a few hundred hypothesis-generated inputs;
* the source is scanned for unsafe loads with the project's rule (``tests/security/test_pickles.py``:
  ``torch.load`` without ``weights_only=True``, ``np.load`` without ``allow_pickle=False``, pickle, dill,
  cloudpickle, joblib, marshal, shelve, unsafe yaml).

Counted: ``http_500`` (any 5xx), ``payloads``, ``spec_exceptions``, ``files_disclosed`` (answers holding
the planted secret's token or ``root:x:0:0``), ``unsafe_loads``, ``slow_requests`` (> 5 s), and
``net_caught``: callbacks that raised and were answered "no update" by the app's safety net
(``on_error`` in ``dashboard/app.py``); ``--no-safety-net`` switches the net off, so those show as 500s.

    .venv/bin/python bench/fuzz_http.py                   # 2,004 payloads; 1-5 min (training the runs is most)
    .venv/bin/python bench/fuzz_http.py --no-safety-net   # what the edge checks alone leave
    .venv/bin/python bench/fuzz_http.py --payloads 300    # a quick look
    .venv/bin/python bench/fuzz_http.py --data /tmp/fz/data   # train there once, reuse on later runs

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("DEEPSCOPE_TORCH_THREADS", "1")
os.environ["DEEPSCOPE_ANALYSIS"] = "off"

from _dash_fuzz import DryJobs, Fuzzer, by_callback, fetch_dependencies  # noqa: E402

SLOW_S = 5.0
PASSWD_MARKER = "root:x:0:0"
# URL parameters the pages read, plus a few they do not
QUERY_PARAMS = ("run", "step", "layer", "pos", "ob", "oa", "win", "thr", "sel", "dir", "state", "track", "gate",
                "match", "preset", "text", "task", "source", "method", "colour", "focus", "compare", "kernel",
                "temperature", "n", "other")
NET_PREFIX = "callback raised, answered with no update"


# ------------------------------------------------------------------------------------------ data
def make_runs(data_dir: Path, steps: int = 10) -> dict[str, str]:
    """A tiny completed run of every built-in task, probes at its start and end; PCA maps of its embeddings."""
    from backend.analysis.projection.compute import compute
    from backend.spec import RunSpec
    from backend.store import RunStore
    from backend.store.projections import SOURCE_KIND, ProjectionSettings
    from backend.tasks.registry import TASKS
    from backend.training.worker import run_training

    store = RunStore(data_dir)
    runs = {}
    for task in TASKS:
        spec = RunSpec.for_task(task, steps=steps, probe_every=steps, eval_every=steps, checkpoint_every=steps,
                                log_every=max(1, steps // 4))  # snapshots at the start and the end: two
        run_id = store.create_run(f"fuzz {task}", spec.task, spec.model_dump())
        status = run_training(store, run_id, device="cpu")
        runs[task] = run_id
        rows = store.list_snapshots(run_id, SOURCE_KIND)
        for source, info in ((rows[-1]["meta"].get("sources") or {}) if rows else {}).items():
            n = int((info or {}).get("n", 0))
            if n >= 10:
                compute(store, run_id, ProjectionSettings(source=source, method="pca", n_points=min(n, 2000)))
        print(f"  trained {task:15s} {run_id} {status}", flush=True)
    store.create_run("fuzz queued", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="queued")
    return runs


def plant_secret(root: Path) -> tuple[str, list[str]]:
    """A file outside the data folder holding a random token; its paths as someone would name it."""
    token = "SECRET-" + secrets.token_hex(12)
    secret = root / "outside" / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(token + "\n")
    return token, [str(secret), "../outside/secret.txt", "../../outside/secret.txt", f"file://{secret}"]


# ------------------------------------------------------------------------------------------ server
def serve(app) -> tuple[str, object]:
    """The app over HTTP (werkzeug, threaded) on a free loopback port; returns its base URL and server."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def http_sender(base: str, timeout: float = 120.0):
    def send(path: str, body: dict | None) -> tuple[int, str]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (TimeoutError, OSError) as exc:
            return 599, f"no answer: {exc!r}"
    return send


class NetCounter(logging.Handler):
    """Counts the safety net's warnings (callbacks that raised), by output."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0
        self.messages: dict[str, int] = {}

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith(NET_PREFIX):
            self.count += 1
            where = re.sub(r"\s+", " ", msg.split("(outputs", 1)[-1])[:100]
            kind = msg[len(NET_PREFIX) + 2:].split("(", 1)[0]
            self.messages[f"{kind} {where}"] = self.messages.get(f"{kind} {where}", 0) + 1


def create(data_dir: Path, safety_net: bool):
    """The dashboard on ``data_dir`` with a job manager that starts no process (:class:`DryJobs`)."""
    from backend.store import RunStore
    from dashboard.app import create_app

    kwargs = {}
    if "safety_net" in inspect.signature(create_app).parameters:
        kwargs["safety_net"] = safety_net
    app = create_app(data_dir, poll_ms=500, jobs=DryJobs(RunStore(data_dir)), **kwargs)
    if not safety_net:
        app._on_error = None  # Dash's global on_error hook: without it a raising callback answers 500
    return app


# ------------------------------------------------------------------------------------------ specs
def fuzz_specs(examples: int, seed: int) -> tuple[int, int, list[str]]:
    """``parse_spec`` and ``validate_form`` on hypothesis-generated junk; (calls, exceptions, examples)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from backend.spec import parse_spec
    from backend.tasks.registry import TASKS
    from dashboard.views.new_run.form import FIELDS, validate_form

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**400, max_value=10**400),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50),
                        st.sampled_from(["1e999", "NaN", "-1", "../../etc/passwd", "/proc/self/environ",
                                         "x" * 10_000, "16, 32", "1,,2", "٣", "1_000"]))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=8)
    tasks = st.one_of(st.sampled_from(sorted(TASKS)), values)
    field_names = st.sampled_from([f.name for f in FIELDS] + ["model", "task", "lr", "data_file", "extra"])
    calls, errors, seen = [0], [0], []

    def attempt(fn, *args):
        calls[0] += 1
        try:
            fn(*args)
        except Exception as exc:  # counted, not raised: hypothesis would stop at the first
            errors[0] += 1
            if len(seen) < 5:
                seen.append(f"{fn.__name__}: {type(exc).__name__}: {str(exc)[:120]}")

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(task=tasks, form=st.dictionaries(field_names, values, max_size=8),
           spec=st.one_of(values, st.dictionaries(field_names, values, max_size=8)))
    def run(task, form, spec):
        attempt(validate_form, task, form)
        data = dict(spec) if isinstance(spec, dict) else spec
        if isinstance(data, dict) and "task" not in data and isinstance(task, str):
            data["task"] = task
        attempt(parse_spec, data)

    run()
    return calls[0], errors[0], seen


# ------------------------------------------------------------------------------------------ unsafe loads
def unsafe_loads() -> list[str] | None:
    """The project's one rule for loads that could unpickle (``tests/security/test_pickles.py``: torch.load
    without weights_only=True, np.load without allow_pickle=False, pickle, dill, joblib, unsafe yaml...)
    over backend/, dashboard/, deepscope/; None when that module cannot be imported."""
    try:
        from tests.security.test_pickles import SCANNED, unsafe_loads as scan
    except ImportError as exc:
        print(f"unsafe-load scan unavailable: {exc}")
        return None
    return scan(sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py")))


# ------------------------------------------------------------------------------------------ main
def page_paths() -> list[str]:
    import dash
    return sorted({p["path"] for p in dash.page_registry.values()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--payloads", type=int, default=2000, help="junk requests in all (at least one per callback)")
    p.add_argument("--spec-examples", type=int, default=200, help="hypothesis examples for the spec parsers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=10, help="training steps of each tiny run")
    p.add_argument("--no-safety-net", action="store_true", help="switch off the app's on_error net: count raw 500s")
    p.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    p.add_argument("--data", type=Path, help="use (and keep) this data folder; trained there once, then reused")
    args = p.parse_args(argv)
    t_start = time.time()

    tmp = args.data.resolve().parent if args.data else Path(tempfile.mkdtemp(prefix="deepscope-fuzz-"))
    data_dir = args.data.resolve() if args.data else tmp / "data"
    token, secret_paths = plant_secret(tmp)
    reuse = data_dir / "runs.json"
    if reuse.exists():
        runs = json.loads(reuse.read_text())
        print(f"data folder {data_dir}: reusing its runs", flush=True)
    else:
        print(f"data folder {data_dir}; training a tiny run of every task", flush=True)
        runs = make_runs(data_dir, args.steps)
        if args.data:
            reuse.write_text(json.dumps(runs))
    t_trained = time.time()

    counter = NetCounter()
    logging.getLogger().addHandler(counter)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create(data_dir, safety_net=not args.no_safety_net)
    base, server = serve(app)
    send = http_sender(base)
    deps = fetch_dependencies(send)
    fz = Fuzzer(send, deps, seed=args.seed, secret_paths=secret_paths, markers=(token, PASSWD_MARKER))
    pages = page_paths()
    print(f"{len(deps)} callbacks ({len(fz.server_deps)} on the server), pages {', '.join(pages)}", flush=True)

    # learn the pages: every page once per run, so pattern ids and stored values are known
    fz.harvest_pages([f"{path}?run={rid}" for path in pages for rid in runs.values()] + pages)

    # URL junk: GET each page path, then the routing callback with junk search strings
    url_results = []
    words = ("1e999", "-1", "NaN", "abc", "../../etc/passwd", "x" * 5000)
    for path in pages:
        for name in QUERY_PARAMS[:8]:
            url_results.append(fz.get(f"{path}?{name}={fz.rng.choice(words)}"))
    per_page = max(4, args.payloads // 10 // max(1, len(pages)))
    url_results += fz.search_junk(pages, QUERY_PARAMS, per_page)
    # the Training page's plain live route (not a callback, so not in /_dash-dependencies)
    good = {"run": [",".join(runs.values()), *runs.values()], "since": ["0", "5"], "smooth": ["0", "0.6"]}
    url_results += fz.route_junk("/_deepscope/live", ("run", "since", "smooth"), per_page, good)

    # callback junk, one run at a time: its pages rendered and their callbacks answered with what the
    # pages hold (so stores of steps, selections and settings fit that run), then the junk
    left = max(len(fz.server_deps), args.payloads - len(url_results))
    per_callback = math.ceil(left / len(fz.server_deps))
    t_cb = time.time()
    cb_results, warm_results = [], []
    ids = list(runs.values())
    for k, rid in enumerate(ids):
        n = per_callback // len(ids) + (1 if k < per_callback % len(ids) else 0)
        if not n:
            continue
        fz.harvest_pages([f"{path}?run={rid}" for path in pages])
        warm_results += fz.warm(1)
        cb_results += fz.sweep(n)
    t_done = time.time()
    n_learn = len(fz.results) - len(url_results) - len(cb_results)
    server.shutdown()

    calls, spec_errors, spec_seen = fuzz_specs(args.spec_examples, args.seed)
    loads = unsafe_loads()

    junk = url_results + cb_results
    fails = [r for r in junk if r.status >= 500]
    warm_fails = [r for r in warm_results if r.status >= 500]  # plain requests a page could send: bugs too
    slow = [r for r in junk if r.seconds > SLOW_S]
    disclosed = [r for r in fz.results if r.disclosed]
    print(f"\n{len(junk)} junk requests ({len(url_results)} URL, {len(cb_results)} callback, {per_callback} per "
          f"callback) beside {n_learn} page renders and plain requests; callbacks took {t_done - t_cb:.0f} s")
    table = by_callback(fails, 500) | {k: v for k, v in by_callback(fails, 599).items()}
    if table:
        print("\nHTTP 5xx by callback:")
        for name, n in table.items():
            print(f"  {n:5d}  {name[:150]}")
        for r in fails[:5]:
            print(f"  e.g. {r.callback[:80]}: {r.body[:200]}")
    else:
        print("no HTTP 5xx")
    if warm_fails:
        print(f"\nHTTP 5xx to requests with values the pages held (no junk): {len(warm_fails)}")
        for name, n in by_callback(warm_fails, 500).items():
            print(f"  {n:5d}  {name[:150]}")
    if counter.count:
        print(f"\ncaught by the safety net (a callback raised): {counter.count}")
        for msg, n in sorted(counter.messages.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {n:5d}  {msg}")
    if slow:
        print(f"\nslow (> {SLOW_S:.0f} s): " + ", ".join(f"{r.callback[:60]} {r.seconds:.1f}s" for r in slow[:10]))
    if disclosed:
        print("\nFILE CONTENTS DISCLOSED by: " + ", ".join(sorted({r.callback for r in disclosed})))
    print(f"\nspec parsers: {calls} calls, {spec_errors} exceptions" + "".join(f"\n  {s}" for s in spec_seen))
    if loads is not None:
        print(f"unsafe loads: {len(loads)}" + "".join(f"\n  {s}" for s in loads))
    if not args.keep and not args.data:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"payloads": len(junk), "http_500": len(fails), "spec_exceptions": spec_errors,
              "files_disclosed": len(disclosed), "unsafe_loads": None if loads is None else len(loads), "slow_requests": len(slow),
              "net_caught": counter.count, "plain_500": len(warm_fails), "safety_net": not args.no_safety_net, "callbacks": len(fz.server_deps),
              "url_payloads": len(url_results), "callback_payloads": len(cb_results), "spec_calls": calls,
              "max_request_s": round(max((r.seconds for r in junk), default=0.0), 2),
              "train_s": round(t_trained - t_start, 1), "total_s": round(time.time() - t_start, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
