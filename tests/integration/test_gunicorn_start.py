"""A gunicorn worker answers its first requests, fired together, without Dash's first-request setup race.

Measured before ``dashboard.app.finish_dash_setup``: a fresh worker with ``--threads 4`` failed 3 of 16
concurrent first requests over 5 boots (``KeyError: Callback function not found``), and a worker that
replaced a killed one once raised ``dictionary changed size during iteration``. The requests here are
queued on gunicorn's socket before its worker has booted, so they all reach a brand-new worker at once.

    .venv/bin/python -m pytest -q tests/integration/test_gunicorn_start.py
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dashboard import ids

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
BOOTS = 5
REQUESTS = 16
pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed in this environment")



def _bodies(tmp_path: Path) -> list[dict]:
    """Callbacks of three kinds, as the browser posts them: one registered on the app (nav highlight), one a
    page registers with ``dash.callback`` (the Training status, moved into the app by Dash's setup) and the
    pages router (registered by Dash's router hook)."""
    from dashboard.app import create_app

    deps = create_app(tmp_path / "deps").server.test_client().get(
        "/_dash-dependencies", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()

    def body(output_part: str, inputs: list[dict], state: list | None = None) -> dict:
        dep = next(d for d in deps if output_part in d["output"])
        outputs = [dict(zip(("id", "property"), o.rsplit(".", 1))) for o in dep["output"].strip(".").split("...")]
        return {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
                "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}

    where = [{"id": "_pages_location", "property": "pathname", "value": "/runs"}]
    return [body(f"{ids.NAV}.children", where),
            body("_pages_content.children", where + [{"id": "_pages_location", "property": "search", "value": ""}]),
            body(f"{ids.TRAIN_STATUS}.children", *_live_values(deps))]


def _live_values(deps: list[dict]) -> tuple[list[dict], list[dict]]:
    """Inputs and states of the Training page's live callback, as its timer fires it on an empty selection."""
    dep = next(d for d in deps if f"{ids.TRAIN_STATUS}.children" in d["output"])
    inputs = [{**d, "value": 1 if d["id"] == ids.TRAIN_INTERVAL else [] if d["id"] == ids.TRAIN_RUNS else None}
              for d in dep["inputs"]]
    return inputs, [{**d, "value": None} for d in dep["state"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(base: str, bodies: list[dict], i: int) -> str:
    """``"ok"`` or what went wrong with request ``i`` (a GET of the page or a callback POST)."""
    kind = i % (len(bodies) + 1)
    if kind == len(bodies):
        req = urllib.request.Request(f"{base}/")
    else:
        req = urllib.request.Request(f"{base}/_dash-update-component", data=json.dumps(bodies[kind]).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            if kind < len(bodies) and not json.loads(body).get("response"):
                return f"{kind}: empty response {body[:200]!r}"
            return "ok" if r.status == 200 else f"{kind}: HTTP {r.status}"
    except urllib.error.HTTPError as exc:
        return f"{kind}: HTTP {exc.code} {exc.read()[:300]!r}"
    except OSError as exc:
        return f"{kind}: {exc!r}"


def _fire(base: str, bodies: list[dict]) -> list[str]:
    with ThreadPoolExecutor(REQUESTS) as pool:
        return list(pool.map(lambda i: _request(base, bodies, i), range(REQUESTS)))


def _wait_bound(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until gunicorn's master listens (its worker may still be booting: requests then wait in the backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError("gunicorn did not bind")


def _workers(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def _gunicorn(tmp_path: Path, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "DEEPSCOPE_DATA_DIR": str(tmp_path / "data"), "DEEPSCOPE_CACHE_TYPE": "SimpleCache"}
    return subprocess.Popen([str(GUNICORN), "--workers", "1", "--threads", "8", "--bind", f"127.0.0.1:{port}",
                             "--graceful-timeout", "2", "dashboard.app:server_from_env()"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_gu001_concurrent_first_requests_of_fresh_and_respawned_workers(tmp_path):
    bodies = _bodies(tmp_path)
    log = open(tmp_path / "gunicorn.log", "w+")
    failures: list[str] = []
    for boot in range(BOOTS):
        port = _free_port()
        proc = _gunicorn(tmp_path, port, log)
        try:
            _wait_bound(port, proc)
            failures += [f"boot {boot}: {r}" for r in _fire(f"http://127.0.0.1:{port}", bodies) if r != "ok"]
            if boot == BOOTS - 1:  # kill -9 the worker; its replacement gets a burst of first requests
                (worker,) = _workers(proc.pid)
                os.kill(worker, signal.SIGKILL)
                time.sleep(0.2)
                failures += [f"respawn: {r}" for r in _fire(f"http://127.0.0.1:{port}", bodies) if r != "ok"]
                assert _workers(proc.pid) and worker not in _workers(proc.pid)
        finally:
            _stop(proc)
    log.seek(0)
    text = log.read()
    assert failures == [], "\n".join(failures) + "\n" + text[-3000:]
    for bad in ("Callback function not found", "changed size during iteration", "Traceback"):
        assert bad not in text, text[-3000:]
