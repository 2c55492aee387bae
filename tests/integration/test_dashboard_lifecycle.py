"""The dashboard's lifecycle: runs outlive it, `demo` reuses its runs, a cache outage is no error, and one
analysis worker per store holds a lease that another takes over.

    .venv/bin/python -m pytest -q tests/integration/test_dashboard_lifecycle.py
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.analysis.projection.worker import AnalysisLease
from backend.cli import DEMO_RUNS, demo_plan
from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import data as data_mod
from dashboard import ids
from dashboard.data import DashboardData

REPO = Path(__file__).resolve().parents[2]
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def callback_body(client, output_part: str, inputs: list[dict], state: list | None = None) -> dict:
    """The body the browser posts for the callback whose output names ``output_part`` (from /_dash-dependencies)."""
    deps = client.get("/_dash-dependencies", environ_base=LOCAL).get_json()
    dep = next(d for d in deps if output_part in d["output"])
    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1))) for o in dep["output"].strip(".").split("...")]
    return {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


# ----------------------------------------------------------------------------------------- cache outage

def _status_body(client, run_id: str) -> dict:
    """The Training page's live callback (it also answers the status), fired by its timer, as from a fresh page."""
    deps = client.get("/_dash-dependencies", environ_base=LOCAL).get_json()
    dep = next(d for d in deps if f"{ids.TRAIN_STATUS}.children" in d["output"])
    values = {(ids.TRAIN_INTERVAL, "n_intervals"): 1, (ids.TRAIN_RUNS, "value"): [run_id]}
    inputs = [{**d, "value": values.get((d["id"], d["property"]))} for d in dep["inputs"]]
    return callback_body(client, f"{ids.TRAIN_STATUS}.children", inputs, [{**d, "value": None} for d in dep["state"]])


def test_lc001_redis_down_status_callback_reads_the_store(tmp_path, monkeypatch, caplog):
    """Redis on a closed port: every status poll answers 200 with the run read from the store; one warning."""
    from dashboard.app import create_app

    monkeypatch.setenv("DEEPSCOPE_CACHE_TYPE", "RedisCache")
    monkeypatch.setenv("DEEPSCOPE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(tmp_path / "data")
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("cache outage run", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump())
    client = app.server.test_client()
    body = json.dumps(_status_body(client, run_id))
    with caplog.at_level(logging.WARNING, logger="dashboard.data"):
        answers = [client.post("/_dash-update-component", data=body, content_type="application/json",
                               environ_base=LOCAL) for _ in range(30)]
    assert [r.status_code for r in answers] == [200] * 30
    assert all("cache outage run" in r.get_data(as_text=True) for r in answers)
    warnings = [r for r in caplog.records if "dashboard cache failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


class FlakyCache:
    """A cache that raises while ``down`` (as a Redis client does when its server is gone)."""

    def __init__(self):
        self.down, self.values, self.calls = True, {}, 0

    def get(self, key):
        self.calls += 1
        if self.down:
            raise ConnectionError("cache is down")
        return self.values.get(key)

    def set(self, key, value, timeout=None):
        if self.down:
            raise ConnectionError("cache is down")
        self.values[key] = value
        return True


def test_lc002_a_raising_cache_is_bypassed_then_used_again(store, monkeypatch, caplog):
    cache = FlakyCache()
    data = DashboardData(store, cache)
    store.create_run("a", "digits-cnn", {})
    with caplog.at_level(logging.WARNING, logger="dashboard.data"):
        assert [r["name"] for r in data.list_runs()] == ["a"]
        for _ in range(20):  # within CACHE_RETRY_S: the store is read, the cache not even asked
            assert len(data.list_runs()) == 1
        assert cache.calls == 1
        monkeypatch.setattr(data_mod, "CACHE_RETRY_S", 0.0)
        data._cache_down_until = 0.0
        for _ in range(5):  # still down: asked again each time, warned about once (rate-limited)
            assert len(data.list_runs()) == 1
        cache.down = False
        store.create_run("b", "digits-cnn", {})
        assert len(data.list_runs()) == 2 and cache.values  # cached again
    messages = [r.getMessage() for r in caplog.records]
    assert sum("dashboard cache failed" in m for m in messages) == 1, messages
    assert any("answers again" in m for m in messages)


# ----------------------------------------------------------------------------------------- lease

def _holder(store: RunStore) -> str | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT holder FROM leases WHERE name = 'analysis'")).first()
    return row[0] if row else None


def test_lc003_lease_is_taken_over_within_its_ttl(store):
    ttl, renew = 1.0, 0.2
    first, second = AnalysisLease(store, ttl=ttl, renew_s=renew), AnalysisLease(store, ttl=ttl, renew_s=renew)
    assert first.try_acquire() and not second.try_acquire()
    time.sleep(3 * ttl)  # renewed meanwhile: still the first's
    assert first.held() and not second.try_acquire() and _holder(store) == first.holder
    first._held.clear()  # the holder "dies": no more renewals, no release
    t0 = time.monotonic()
    assert second.wait(lambda: False, poll=renew)
    assert time.monotonic() - t0 <= ttl + 2 * renew
    time.sleep(2 * renew)
    assert not first.try_acquire()
    second.release()  # a clean exit hands it over at once
    assert _holder(store) is None and first.try_acquire()
    first.release()


def test_lc004_renewal_that_finds_the_lease_taken_stands_by(store):
    lease = AnalysisLease(store, ttl=1.0, renew_s=0.1)
    assert lease.try_acquire()
    with store.engine.begin() as conn:  # another worker took it (say, after this one's store stalled)
        conn.execute(sa.text("UPDATE leases SET holder = 'elsewhere:1:x', expires_at = :t"), {"t": time.time() + 60})
    deadline = time.monotonic() + 3
    while lease.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lease.held() and _holder(store) == "elsewhere:1:x"


def _worker(data_dir: Path, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "backend.analysis.projection.worker", "--data-dir", str(data_dir),
                                 "--lease-ttl", "2", "--lease-renew", "0.5", "--poll", "0.2"], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_lc005_a_standby_worker_takes_over_from_a_killed_one(store, tmp_path):
    """Two workers (two dashboards) on one store: one works; kill -9 it and the other holds the lease
    within its ttl; SIGTERM releases it."""
    procs = [_worker(store.data_dir, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        holder = _wait_for(lambda: _holder(store), 60)
        assert holder, (tmp_path / "w0.log").read_text()
        pid = int(holder.split(":")[1])
        dead = next(p for p in procs if p.pid == pid)
        standby = next(p for p in procs if p.pid != pid)
        time.sleep(1.0)
        assert standby.poll() is None and _holder(store) == holder  # waits instead of exiting
        dead.kill()
        dead.wait(5)
        t0 = time.monotonic()
        took = _wait_for(lambda: (_holder(store) or "").split(":")[1:2] == [str(standby.pid)], 10)
        assert took, (tmp_path / "w1.log").read_text()
        assert time.monotonic() - t0 < 2 + 0.5 + 1.5  # ttl + renew + slack for a busy machine
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(30) == 0
        assert _holder(store) is None  # released on a clean exit
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


# ----------------------------------------------------------------------------------------- demo reuse

def _run(rid: str, name: str, status: str) -> dict:
    return {"id": rid, "name": name, "status": status}


def test_lc006_demo_plan_reuses_demo_runs():
    names = [name for _, name in DEMO_RUNS]
    to_start, lines = demo_plan([])
    assert to_start == list(DEMO_RUNS) and lines == []
    live = [_run(f"r{i}", n, "running") for i, n in enumerate(names)]
    to_start, lines = demo_plan(live)
    assert to_start == [] and len(lines) == 3 and all("still training" in line for line in lines)
    ended = [_run("a", names[0], "completed"), _run("b", names[1], "interrupted"), _run("c", names[2], "stopped")]
    to_start, lines = demo_plan(ended)
    assert to_start == [] and ["completed" in lines[0], "interrupted" in lines[1], "stopped" in lines[2]] == [True] * 3
    # newest first: an older run of the same name does not count
    to_start, lines = demo_plan([_run("new", names[2], "running"), _run("old", names[2], "failed")])
    assert [t for t, _ in to_start] == ["natural-patches", "brackets-lstm"] and lines[0].startswith("demo run new")
    # another run training: the missing demo runs wait (two cores), and it says so
    to_start, lines = demo_plan([_run("u", "my run", "running"), _run("d", names[0], "completed")])
    assert to_start == [] and "my run" in lines[-1] and "not starting" in lines[-1]


# ----------------------------------------------------------------------------------------- runs outlive serve

def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_lc007_runs_started_by_serve_keep_training_after_it_stops(tmp_path):
    """A run started through `deepscope serve` (its New run form) survives the server's SIGTERM."""
    from dashboard.views.new_run.form import form_values

    data_dir, port = tmp_path / "data", free_port()
    env = {**os.environ, "DEEPSCOPE_ANALYSIS": "off", "DEEPSCOPE_TORCH_THREADS": "1"}
    log = open(tmp_path / "serve.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--data-dir", str(data_dir),
                               "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    store, pid = RunStore(data_dir), None
    try:
        assert _wait_for(lambda: _health(base), 60, 0.3), log.read()
        deps = json.loads(_get(f"{base}/_dash-dependencies"))
        dep = next(d for d in deps if f"{ids.NEW_ALERT}.children" in d["output"])
        spec = RunSpec.for_task("digits-cnn", model={"channels": [4, 8], "dropout": 0.0}, batch_size=16,
                                steps=200_000)
        fields = [{"id": {"type": ids.NEW_FIELD, "field": k}, "property": "value", "value": v}
                  for k, v in form_values(spec).items()]
        answer = _post(f"{base}/_dash-update-component", {
            "output": dep["output"], "outputs": [dict(zip(("id", "property"), o.rsplit(".", 1)))
                                                 for o in dep["output"].strip(".").split("...")],
            "inputs": [{"id": ids.NEW_START, "property": "n_clicks", "value": 1}],
            "state": [{"id": ids.NEW_TASK, "property": "value", "value": "digits-cnn"}, fields],
            "changedPropIds": [f"{ids.NEW_START}.n_clicks"]})
        run_id = answer["response"][ids.NEW_LOCATION]["href"].split("run=")[1]
        assert _wait_for(lambda: (store.get_run(run_id) or {}).get("step", 0) > 0, 120, 0.3), store.get_run(run_id)
        pid = store.get_run(run_id)["pid"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        log.seek(0)
        out = log.read()
        assert "left 1 run(s) training" in out, out
        step = store.get_run(run_id)["step"]
        assert _wait_for(lambda: store.get_run(run_id)["step"] > step, 30, 0.3), "the run stopped training"
        os.kill(pid, 0)  # still alive
        assert store.get_run(run_id)["status"] == "running"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        if pid:
            _stop(store, pid)


def _health(base: str) -> bool:
    try:
        return _get(f"{base}/_deepscope/health") == b"ok"
    except OSError:
        return False


def _stop(store: RunStore, pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
