"""The Training page's live route (dashboard/views/training/live_route.py): consecutive polls chained by their
cursors get every row once (across a resume too), viewers at the same cursor share one built answer, the
page's smoothing carried across chunks equals smoothing at once, and junk gets a 400, never a 500.

    .venv/bin/python -m pytest tests/integration/test_live_route.py
"""
from __future__ import annotations

import json
import math
import time

import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import live_heads
from dashboard.app import create_app
from dashboard.views.training.figures import ema
from dashboard.views.training.live_route import LIVE_PATH, BadQuery, ema_parts, merged, parse_query

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
ROWS = ("train/loss", "train/acc")


def _log(store: RunStore, run_id: str, steps) -> None:
    for step in steps:
        store.log_scalars(run_id, [(n, step, 1.0 / step + (0.01 if n == "train/acc" else 0), time.time())
                                   for n in ROWS], step=step)


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)  # every poll sees the newest rows
    app = create_app(tmp_path / "data")
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("live route", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    return app, store, run_id


def _get(client, query: str):
    return client.get(LIVE_PATH + query, environ_base=LOCAL)


def _poll(client, run_id: str, since: int, smooth: float = 0.0) -> dict:
    answer = _get(client, f"?run={run_id}&since={since}&smooth={smooth}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["r"][run_id]


def test_lr001_chained_polls_get_every_row_once(served):
    app, store, run_id = served
    client = app.server.test_client()
    got: dict[str, list] = {n: [] for n in ROWS}
    cursor = 0
    for start in range(1, 200, 17):  # rows arrive between polls, sometimes none
        _log(store, run_id, range(start, start + 17))
        for _ in range(2):
            part = _poll(client, run_id, cursor)
            assert part["cursor"] >= cursor and part["attempt"] == 0 and part["step"] is not None
            for name, s in merged(part).items():
                got[name] += s["x"]
            cursor = part["cursor"]
    assert got == {n: list(range(1, 205)) for n in ROWS}  # steps < PAIRS_PER_RUN: nothing thinned
    assert merged(_poll(client, run_id, cursor)) == {}


def test_lr002_a_resume_restarts_steps_from_the_checkpoint_without_loss_or_repeat(served):
    app, store, run_id = served
    client = app.server.test_client()
    _log(store, run_id, range(1, 41))
    first = _poll(client, run_id, 0)
    assert merged(first)["train/loss"]["x"] == list(range(1, 41))
    store.supersede_after(run_id, 25)  # the run died at step 40; it resumes from its checkpoint at 25
    _log(store, run_id, range(26, 51))
    after = _poll(client, run_id, first["cursor"])
    # the resumed attempt says so (the page rebuilds its figures), and its rows come once, from the checkpoint on
    assert after["attempt"] == 1
    assert merged(after)["train/loss"]["x"] == list(range(26, 51))
    assert merged(_poll(client, run_id, after["cursor"])) == {}
    rebuilt = _poll(client, run_id, 0)  # what a rebuilt page's history holds: no superseded row
    assert merged(rebuilt)["train/loss"]["x"] == list(range(1, 51))


def test_lr003_viewers_at_one_cursor_share_one_built_answer(served, monkeypatch):
    app, store, run_id = served
    answers = app.server.extensions["deepscope_live"]
    _log(store, run_id, range(1, 11))
    clients = [app.server.test_client() for _ in range(2)]
    base = _poll(clients[0], run_id, 0)["cursor"]
    _log(store, run_id, range(11, 14))
    answers.data.heads.heads([run_id])  # refreshed once (as by whichever poll came first) ...
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 60.0)  # ... that head serves both viewers
    built = answers.built
    bodies = [_get(c, f"?run={run_id}&since={base}&smooth=0.6").get_data() for c in clients]
    assert bodies[0] == bodies[1] and answers.built == built + 1
    assert merged(json.loads(bodies[0])["r"][run_id])["train/loss"]["x"] == [11, 12, 13]


def test_lr004_smoothing_carried_over_chunks_equals_smoothing_at_once():
    ys = [1.0, 0.5, float("nan"), 0.25, 0.3, None, 0.1, 0.2, 0.05]
    weight = 0.6
    whole, _ = ema(ys, weight)
    last, count, out = 0.0, 0, []
    for chunk in (ys[:3], ys[3:4], ys[4:]):  # what the page computes from each answer (assets/training_live.js)
        keep = list(range(len(chunk)))
        parts = ema_parts(chunk, keep, weight)
        for y, c, p in zip(chunk, parts["c"], parts["p"]):
            if y is None or not math.isfinite(y):
                out.append(None)
                continue
            value = weight ** c * last + p
            out.append(value / (1 - weight ** (count + c)))
        last, count = weight ** parts["C"] * last + parts["P"], count + parts["C"]
    finite = [(a, b) for a, b in zip(whole, out) if a is not None and math.isfinite(a)]
    assert len(finite) == 7 and all(abs(a - b) < 1e-12 for a, b in finite)


JUNK = ["", "?run=", "?since=1", "?run=a&since=x", "?run=a,a", "?run=a&since=1,2", "?run=a&smooth=nan",
        "?run=a&smooth=1e999", "?run=a&smooth=2", "?run=a&since=-1", "?run=a&run=b", "?run=../x",
        "?run=a&since=99999999999999999999", "?run=a&since=%C2%B2", "?run=" + ",".join(f"r{i}" for i in range(40)),
        "?run=" + "x" * 5000, "?run=a&smooth=" + "9" * 5000, "?run=%00&since=0", "?run=a&since=1e3"]


@pytest.mark.parametrize("query", JUNK)
def test_lr005_junk_queries_get_a_clear_400(served, query):
    app, _store, _run_id = served
    answer = _get(app.server.test_client(), query)
    assert answer.status_code == 400, (query, answer.status_code)
    assert answer.mimetype == "text/plain" and answer.get_data(as_text=True).strip()


def test_lr006_unknown_runs_are_null_and_the_query_parser_is_strict(served):
    app, store, run_id = served
    _log(store, run_id, range(1, 4))
    body = _get(app.server.test_client(), f"?run={run_id},nosuchrun&since=0,0").get_json()
    assert body["r"]["nosuchrun"] is None and merged(body["r"][run_id])["train/loss"]["x"] == [1, 2, 3]
    assert isinstance(body["runs"], str)
    assert parse_query({"run": "a1"}) == (["a1"], [0], 0.0)
    with pytest.raises(BadQuery):
        parse_query({"run": "a1", "since": "1,2"})


def test_lr007_the_faults_bench_page_replay_follows_the_route_across_a_resume(served):
    """bench/_faults_poll.py plays the page as the browser does now: its curves grow through the route, a resume
    brings whole figures, and no answer draws a curve back."""
    import sys
    import threading
    from pathlib import Path

    from werkzeug.serving import make_server

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from _faults_poll import Poller

    app, store, run_id = served
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    poller = Poller([run_id], period=0.05)
    try:
        _log(store, run_id, range(1, 11))
        poller.set_targets([server.server_port])
        poller.start()
        page = lambda: poller._pages.get(server.server_port)  # noqa: E731
        deadline = time.monotonic() + 20

        def wait_for(last_step: int) -> None:
            while time.monotonic() < deadline:
                traces = (page() and page().traces.get("train-graph-loss")) or []
                if traces and traces[0][0] == last_step:
                    return
                time.sleep(0.05)
            raise AssertionError(f"the replayed page never reached step {last_step}: {page() and page().traces}")

        wait_for(10)
        _log(store, run_id, range(11, 31))
        wait_for(30)
        store.supersede_after(run_id, 20)
        _log(store, run_id, range(21, 26))
        wait_for(25)
        _log(store, run_id, range(26, 41))
        wait_for(40)
    finally:
        poller.stop()
        server.shutdown()
    summary = poller.summary()
    assert summary["http_500"] == 0 and summary["live_backwards"] == 0, (summary, poller.errors)
    assert page().traces["train-graph-loss"][0][1] == 40  # every point once: 1..20, then 21..40 after the resume


def test_lr008_a_large_answer_is_gzipped_once_for_every_viewer_a_small_one_is_not_compressed(served):
    import gzip as gzip_

    app, store, run_id = served
    _log(store, run_id, range(1, 1500))
    client = app.server.test_client()
    answers = [client.get(f"{LIVE_PATH}?run={run_id}&since=0&smooth=0.6", environ_base=LOCAL,
                          headers={"Accept-Encoding": "gzip, deflate, br"}) for _ in range(2)]
    assert all(a.headers["Content-Encoding"] == "gzip" for a in answers)
    assert answers[0].get_data() == answers[1].get_data()
    body = json.loads(gzip_.decompress(answers[0].get_data()))
    xs = merged(body["r"][run_id])["train/loss"]["x"]
    assert xs[-1] == 1499 and xs == sorted(set(xs)) and len(xs) > 1000  # a pair per 1.5 steps from step 1000
    plain = client.get(f"{LIVE_PATH}?run={run_id}&since=0&smooth=0.6", environ_base=LOCAL)
    assert "Content-Encoding" not in plain.headers and plain.get_json() == body
    cursor = body["r"][run_id]["cursor"]
    _log(store, run_id, [1500])
    small = client.get(f"{LIVE_PATH}?run={run_id}&since={cursor}&smooth=0.6", environ_base=LOCAL,
                       headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in small.headers and merged(small.get_json()["r"][run_id])["train/loss"]["x"] == [1500]


def test_lr009_viewers_at_different_cursors_share_the_chunks_of_each_refresh(served, monkeypatch):
    """A page one refresh behind and a page two behind get the same bytes for the refresh they both lack:
    chunks are built once per refresh of the run's head, not once per (cursor, head) pair."""
    app, store, run_id = served
    answers = app.server.extensions["deepscope_live"]
    heads = answers.data.heads
    cuts = []
    for steps in (range(1, 11), range(11, 13), range(13, 15)):
        _log(store, run_id, steps)
        cuts.append(heads.heads([run_id])[run_id]["cursor"])
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 60.0)
    client = app.server.test_client()
    built = answers.built
    near = _poll(client, run_id, cuts[1])
    assert merged(near)["train/loss"]["x"] == [13, 14] and answers.built == built + 1
    far = _poll(client, run_id, cuts[0])
    assert merged(far)["train/loss"]["x"] == [11, 12, 13, 14] and answers.built == built + 2
    assert far["chunks"][-1] == near["chunks"][0] and far["cursor"] == near["cursor"] == cuts[2]
    _poll(client, run_id, cuts[0])
    assert answers.built == built + 2
