"""What a Training-page viewer costs: one timer driving a clientside poll of the plain live route
(dashboard/views/training/live_route.py), answered from the shared run heads (dashboard/live_heads.py) without
touching the store; the Python callback (dashboard/views/training/tick.py) only when the page pokes it."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask_caching import Cache
from flask import Flask

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import head_rows, ids, live_heads
from dashboard.live_heads import RunHeads
from dashboard.app import create_app
from dashboard.data import DashboardData
from dashboard.views.training.live_route import merged
from dashboard.safe_cache import SafeFileSystemCache  # noqa: F401 - the type the app configures

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
ROWS = ("train/loss", "train/acc")


def _log(store: RunStore, run_id: str, step: int) -> None:
    store.log_scalars(run_id, [(n, step, 1.0 / step, time.time()) for n in ROWS], step=step)


class CountingStore:
    """A RunStore whose reads are counted (and can be made to fail)."""

    def __init__(self, store: RunStore):
        self._store, self.calls, self.fail = store, [], False

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            if self.fail:
                raise AssertionError(f"the store was read: {name}")
            return attr(*args, **kwargs)
        return counted


class Page:
    """One Training page over HTTP: the live callback's body from /_dash-dependencies, answers carried forward."""

    def __init__(self, client, run_id: str):
        self.client = client
        deps = client.get("/_dash-dependencies", environ_base=LOCAL).get_json()
        self.dep = next(d for d in deps if f"{ids.TRAIN_STATUS}.children" in d["output"])
        self.outputs = [dict(zip(("id", "property"), o.rsplit(".", 1)))
                        for o in self.dep["output"].strip(".").split("...")]
        self.values = {(ids.TRAIN_RUNS, "value"): [run_id], (ids.TRAIN_SMOOTHING, "value"): 0.6}
        self.n = 0

    def live(self, run_id: str) -> dict:
        """What the page's clientside poll asks the live route, from the cursor its state holds."""
        state = self.values[(ids.TRAIN_STATE, "data")]
        answer = self.client.get(f"/_deepscope/live?run={run_id}&since={state['cursors'][run_id]}&smooth=0.6",
                                 environ_base=LOCAL)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
        part = answer.get_json()["r"][run_id]
        state["cursors"][run_id] = part["cursor"]
        return part

    def poll(self, changed: str = f"{ids.TRAIN_POKE}.data"):
        from bench._faults_poll import PATCH_KEY, apply_patch

        self.n += 1
        value = lambda d: self.n if d["property"] == "n_intervals" else self.values.get((d["id"], d["property"]))  # noqa: E731
        body = {"output": self.dep["output"], "outputs": self.outputs,
                "inputs": [{**d, "value": value(d)} for d in self.dep["inputs"]],
                "state": [{**d, "value": value(d)} for d in self.dep["state"]], "changedPropIds": [changed]}
        answer = self.client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json",
                                  environ_base=LOCAL)
        assert answer.status_code in (200, 204), answer.get_data(as_text=True)[:500]
        if answer.status_code == 204:
            return None
        response = answer.get_json()["response"]
        for cid, props in response.items():
            for prop, v in props.items():
                if (cid, prop) in {(d["id"], d["property"]) for d in self.dep["inputs"] + self.dep["state"]}:
                    old = self.values.get((cid, prop))
                    self.values[(cid, prop)] = apply_patch(old, v) if isinstance(v, dict) and v.get(PATCH_KEY) else v
        return response


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.05)
    monkeypatch.setattr(live_heads, "RUNS_MAX_AGE_S", live_heads.RUNS_MAX_AGE_S)  # restored after the test
    app = create_app(tmp_path / "data")
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("viewers", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    for step in range(1, 30):
        _log(store, run_id, step)
    return app, store, run_id


def test_vc001_one_timer_drives_a_clientside_poll_and_the_python_callback_only_when_poked(served):
    app, _store, _run_id = served
    deps = app.server.test_client().get("/_dash-dependencies", environ_base=LOCAL).get_json()
    timed = [d for d in deps if any(i["property"] == "n_intervals" and i["id"].startswith("train-")
                                    for i in d["inputs"])]
    assert len(timed) == 1 and timed[0]["clientside_function"]["function_name"] == "poll", timed
    for part in (f"{ids.TRAIN_STATE}.data", f"{ids.graph_id('loss')}.figure", f"{ids.TRAIN_POKE}.data"):
        assert part in timed[0]["output"]
    python = next(d for d in deps if f"{ids.TRAIN_STATUS}.children" in d["output"])
    assert python.get("clientside_function") is None and python["inputs"][0]["id"] == ids.TRAIN_POKE
    for part in (f"{ids.TRAIN_STATE}.data", "train-samples-body.children"):
        assert part in python["output"]


def test_vc002_a_poll_with_nothing_new_reads_nothing(served):
    app, store, run_id = served
    data = app.server.extensions["deepscope"].data
    counting = CountingStore(data.store)
    data.store = counting
    page = Page(app.server.test_client(), run_id)
    first = page.poll(f"{ids.TRAIN_RUNS}.value")
    assert "figure" in first[ids.graph_id("loss")] and "viewers" in json.dumps(first[ids.TRAIN_STATUS])
    time.sleep(0.1)
    _log(store, run_id, 30)
    time.sleep(0.1)
    part = page.live(run_id)
    assert merged(part)["train/loss"]["x"] == [30] and part["cursor"] == store.scalars_after(run_id, 0)[1]
    live_heads.HEAD_MAX_AGE_S = live_heads.RUNS_MAX_AGE_S = 60.0  # the heads stay fresh from here on
    page.poll()  # takes up what came between (the samples card's first answer, the status)
    counting.fail = True
    assert merged(page.live(run_id)) == {}  # nothing new: answered from the head
    assert page.poll() is None  # and a poke with nothing to draw: 204


def test_vc003_viewers_share_one_head_refresh_and_its_rows(served):
    app, store, run_id = served
    data = app.server.extensions["deepscope"].data
    answers = app.server.extensions["deepscope_live"]
    pages = [Page(app.server.test_client(), run_id) for _ in range(5)]
    for page in pages:
        page.poll(f"{ids.TRAIN_RUNS}.value")
    time.sleep(0.1)
    _log(store, run_id, 30)
    _log(store, run_id, 31)
    counting = CountingStore(data.store)
    data.store = counting
    built = answers.built
    parts = [pages[0].live(run_id)]  # its head is older than HEAD_MAX_AGE_S: refreshed
    live_heads.HEAD_MAX_AGE_S = 60.0  # the other four take that head
    parts += [page.live(run_id) for page in pages[1:]]
    assert counting.calls.count("get_run") <= 1 and counting.calls.count("scalars_after") <= 1, counting.calls
    assert all(merged(p)["train/loss"]["x"] == [30, 31] for p in parts) and answers.built == built + 1


def test_vc004_heads_survive_a_failing_cache(tmp_path):
    """A cache that raises: heads are kept in the process, the store is read, nothing fails."""
    class Broken:
        def get(self, key):
            raise ConnectionError("redis is gone")

        def set(self, *a, **k):
            raise ConnectionError("redis is gone")

    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    data = DashboardData(store, Broken())
    head = data.heads.heads([run_id])[run_id]
    assert head["cursor"] == store.scalars_after(run_id, 0)[1] and head["run"]["id"] == run_id
    _log(store, run_id, 2)
    time.sleep(live_heads.HEAD_MAX_AGE_S + 0.05)
    newer = data.heads.heads([run_id])[run_id]
    rows, cursor = data.heads.rows_between(run_id, head["cursor"], newer)
    assert rows["train/loss"]["x"] == [2] and cursor == newer["cursor"]


def test_vc005_heads_are_shared_through_the_cache_between_workers(tmp_path, monkeypatch):
    """Two DashboardData on one cache folder (two gunicorn workers): the second takes the first's head."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    config = {"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    workers = [DashboardData(store, Cache(Flask(f"w{i}"), config=config)) for i in range(2)]
    head = workers[0].heads.heads([run_id])[run_id]
    counting = CountingStore(store)
    workers[1].store = counting
    assert workers[1].heads.heads([run_id])[run_id]["cursor"] == head["cursor"]
    assert counting.calls == []


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_vc006_viewers_bench_quick():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "viewers.py"), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("viewers", "requests_per_viewer_s", "p50_ms", "p95_ms", "errors", "train_slowdown"):
        assert key in result, key
    assert result["viewers"] == 5 and result["errors"] == 0 and math.isfinite(result["p95_ms"])
    # the page's live updates come pushed on one stream per page (opened again at each block of the bench),
    # on the server's 0.5 s clock: no request per update
    assert result["live"] == "stream" and result["stream_updates_per_viewer_s"] > 0.5, result
    assert result["requests_per_viewer_s"] <= 0.5, result


def test_vc007_a_page_several_heads_behind_takes_its_rows_from_the_head(tmp_path, monkeypatch):
    """The head carries its last WINDOW_S seconds of rows: a page that polled a few refreshes ago needs no query."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    data = DashboardData(store, None)
    behind = data.heads.heads([run_id])[run_id]["cursor"]
    for step in (2, 3, 4):
        _log(store, run_id, step)
        head = data.heads.heads([run_id])[run_id]
    counting = CountingStore(store)
    data.store = counting
    rows, cursor = data.heads.rows_between(run_id, behind, head)
    assert rows["train/loss"]["x"] == [2, 3, 4] and rows["train/acc"]["y"] == [0.5, 0.333333, 0.25]
    assert cursor == head["cursor"] and counting.calls == []
    rows, _ = data.heads.rows_between(run_id, 0, head)  # before the window: one store query
    assert rows["train/loss"]["x"] == [1, 2, 3, 4] and counting.calls == ["scalars_after"]


def test_vc008_a_lone_worker_writes_its_heads_to_the_cache_seldom(tmp_path, monkeypatch):
    """No other worker wrote a head: refreshes stay in the process (one shared write per LONE_WRITE_S);
    once another worker's head is read, every refresh is shared."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    config = {"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    caches = [Cache(Flask(f"w{i}"), config=config) for i in range(2)]
    writes = []
    monkeypatch.setattr(SafeFileSystemCache, "set", lambda self, key, *a, _set=SafeFileSystemCache.set, **k:
                        (writes.append(key), _set(self, key, *a, **k))[1])
    lone = DashboardData(store, caches[0])
    for step in range(2, 7):
        _log(store, run_id, step)
        lone.heads.heads([run_id])
    assert sum(f"head:{run_id}" in k for k in writes) == 1
    other = DashboardData(store, caches[1])
    other.heads.heads([run_id])  # reads the lone worker's head, then shares its own
    lone.heads.heads([run_id])   # alone, it reads the cache at most every LONE_WRITE_S: not yet
    assert lone.heads._peer_seen_at == 0.0  # noqa: SLF001
    monkeypatch.setattr(live_heads, "LONE_WRITE_S", 0.2)
    time.sleep(0.25)
    lone.heads.heads([run_id])   # reads the other's: from now on it shares every refresh too
    writes.clear()
    for step in range(7, 10):
        _log(store, run_id, step)
        lone.heads.heads([run_id])
    assert sum(f"head:{run_id}" in k for k in writes) == 3


def test_vc009_a_malformed_cached_head_is_ignored(tmp_path, monkeypatch):
    """A head in the cache that this module did not write (wrong shape) is a miss, not an error."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    config = {"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    data = DashboardData(store, Cache(Flask("w"), config=config))
    for junk in ({"at": time.time(), "run": {"id": run_id}, "cursor": "x"}, {"at": time.time(), "run": ["x"], "cursor": 1},
                 {"at": time.time(), "run": {"id": run_id}, "cursor": True},
                 {"at": time.time(), "run": {"id": run_id}, "cursor": 2, "samples_at": "soon"},
                 {"at": time.time(), "run": {"id": run_id}, "cursor": 2, "samples": {"x": 1}}, [1, 2], "head"):
        data.cache_set(f"head:{run_id}", junk, 60)
        head = RunHeads(data).heads([run_id])[run_id]
        assert head["cursor"] == store.scalars_after(run_id, 0)[1]


def test_vc010_the_control_line_names_the_runs_rate_now():
    from dashboard.views.training.tick import status_outputs

    class Data:
        def run_summary(self, run):
            return {}

        def list_runs(self):
            return []

    run = {"id": "a1b2c3d4e5", "name": "r", "status": "running", "step": 3, "spec": {"lr": 0.004}}
    target = status_outputs(Data(), [run], with_options=False)[1]
    assert "learning rate now 0.004" in str(target)


def test_vc010_a_page_back_from_a_pause_takes_its_rows_from_the_process_tail(tmp_path, monkeypatch):
    """Heads carry a short window; the process keeps the rows of every head it saw for TAIL_S seconds, so a
    page further behind than one head's window (a hidden tab, a viewer back after a while) needs no query."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    monkeypatch.setattr(head_rows, "WINDOW_S", 0.0)  # each head carries only its own refresh's rows
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    data = DashboardData(store, None)
    behind = data.heads.heads([run_id])[run_id]["cursor"]
    for step in (2, 3, 4, 5):
        _log(store, run_id, step)
        head = data.heads.heads([run_id])[run_id]
    assert head["marks"][0][1] > behind  # the head alone no longer reaches back to the page
    counting = CountingStore(store)
    data.store = counting
    rows, cursor = data.heads.rows_between(run_id, behind, head)
    assert rows["train/loss"]["x"] == [2, 3, 4, 5] and cursor == head["cursor"] and counting.calls == []
    monkeypatch.setattr(head_rows, "TAIL_S", -1.0)  # the tail forgets: the next head starts it anew
    _log(store, run_id, 6)
    data.store = store
    head = data.heads.heads([run_id])[run_id]
    data.store = counting
    rows, _ = data.heads.rows_between(run_id, behind, head)
    assert rows["train/loss"]["x"] == [2, 3, 4, 5, 6] and counting.calls == ["scalars_after"]


def test_vc011_a_long_run_s_updates_are_drawn_at_its_history_s_resolution(tmp_path):
    """A run at step ~80k logs 400 points of a curve between two draws: the update sends a min-max pair per
    1/PAIRS_PER_RUN of the steps (the resolution of the figure's first draw), with the chunk's extremes and
    its newest point; the smoothing carries over every point. An early run's updates keep every point."""
    from dashboard.views.training.figures import ema
    from dashboard.views.training.live import PAIRS_PER_RUN, build_figures, stream_delta

    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    store.log_scalars(run_id, [("train/loss", 0, 1.0, time.time())], step=0)
    data = DashboardData(store, None)
    _figs, state = build_figures(data, [run_id], 0.6)
    early = [(s, 1.0 / s) for s in range(10, 210, 10)]  # step 200: a pair per 0.2 steps, every point kept
    store.log_scalars(run_id, [("train/loss", s, v, time.time()) for s, v in early], step=200)
    delta, state = stream_delta(data, state)
    assert delta["loss"]["extend"][0][1] == [s for s, _ in early]
    steps = list(range(76_000, 80_000, 10))
    values = [math.sin(s / 30.0) + (5.0 if s == 77_370 else 0.0) - (4.0 if s == 78_610 else 0.0) for s in steps]
    store.log_scalars(run_id, [("train/loss", s, v, time.time()) for s, v in zip(steps, values)], step=steps[-1])
    delta, new = stream_delta(data, state)
    entry = state["traces"][f"{run_id}|train/loss"]
    (raw_i, xs, ys), (smooth_i, sxs, sys_) = delta["loss"]["extend"]
    assert (raw_i, smooth_i) == (entry["raw"], entry["smooth"]) and xs == sxs
    spacing = steps[-1] / PAIRS_PER_RUN  # ~80 steps: 8 logged points per slice, 2 kept
    assert len(xs) <= 2 * (4_000 / spacing + 2) < len(steps) / 3 and xs == sorted(xs) and xs[-1] == steps[-1]
    assert 77_370 in xs and 78_610 in xs and max(ys) == pytest.approx(max(values), rel=1e-5)
    whole, _ = ema([1.0] + [v for _, v in early] + values, 0.6)
    assert sys_[-1] == pytest.approx(whole[-1], rel=1e-5)
    assert new["traces"][f"{run_id}|train/loss"]["ema"][1] == 1 + len(early) + len(steps)


def test_vc012_workers_share_stamps_not_rows(tmp_path, monkeypatch):
    """Between workers the cache carries a head's stamp (run row, cursor, samples, the rows of its newest
    refresh), never its window of rows: a worker at the stamp's cursor takes it without the store, one at the
    cursor its refresh started from takes its rows; one further behind reads just the rows it lacks."""
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    store = RunStore(tmp_path / "d")
    run_id = store.create_run("r", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, 1)
    config = {"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache", "CACHE_DIR": str(tmp_path / "cache")}
    a, b = (DashboardData(store, Cache(Flask(f"w{i}"), config=config)) for i in range(2))
    monkeypatch.setattr(live_heads, "PEER_S", 1e9)  # both are known to share the cache
    a.heads._peer_seen_at = b.heads._peer_seen_at = time.time()  # noqa: SLF001
    b.heads.heads([run_id])
    time.sleep(0.01)
    a.heads.heads([run_id])  # nothing new: a's stamp says the same cursor
    cached = a.cache_get(f"head:{run_id}")
    assert "rows" not in cached and "marks" not in cached and cached["cursor"] == store.scalars_after(run_id, 0)[1]
    counting = CountingStore(store)
    b.store = counting
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)
    b.heads._local[f"head:{run_id}"]["at"] -= 60  # noqa: SLF001 - b's own head is stale, a's stamp is not
    assert b.heads.heads([run_id])[run_id]["cursor"] == cached["cursor"] and counting.calls == []
    _log(store, run_id, 2)
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    a.heads.heads([run_id])  # a moved on from b's cursor: its stamp carries the rows it read
    assert "rows" not in a.cache_get(f"head:{run_id}") and len(a.cache_get(f"head:{run_id}")["delta"]["id"]) == 2
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)
    b.heads._local[f"head:{run_id}"]["at"] -= 60  # noqa: SLF001
    head = b.heads.heads([run_id])[run_id]
    assert head["cursor"] == store.scalars_after(run_id, 0)[1] and counting.calls == []
    assert b.heads.rows_in(head, head["marks"][-1][1], head["cursor"])["train/loss"]["x"] == [2]
    _log(store, run_id, 3)
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    a.heads.heads([run_id])
    _log(store, run_id, 4)
    a.heads.heads([run_id])  # two refreshes ahead: b cannot take that stamp's rows, it reads its own
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 30.0)
    b.heads._local[f"head:{run_id}"]["at"] -= 60  # noqa: SLF001
    head = b.heads.heads([run_id])[run_id]
    assert head["cursor"] == store.scalars_after(run_id, 0)[1] and "scalars_after" in counting.calls
    assert b.heads.rows_in(head, head["marks"][-1][1], head["cursor"])["train/loss"]["x"] == [3, 4]
