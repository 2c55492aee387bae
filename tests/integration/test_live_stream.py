"""The Training page's live stream (dashboard/views/training/live_stream.py): server-sent updates chained by
their ``from``/``cursor`` get every row once while rows arrive, status changes come without rows, a bounded
number of streams is served (a `busy` event beyond, every slot given back however a stream ends), streams share one head
refresh per tick, and junk gets a 400, never a 500.

    .venv/bin/python -m pytest tests/integration/test_live_stream.py
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import live_heads
from dashboard.app import create_app
from dashboard.views.training.live_route import merged
from dashboard.views.training.live_stream import STREAM_PATH, max_streams_from_env

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
ROWS = ("train/loss", "train/acc")


def _log(store: RunStore, run_id: str, steps) -> None:
    for step in steps:
        store.log_scalars(run_id, [(n, step, 1.0 / step, time.time()) for n in ROWS], step=step)


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.0)
    app = create_app(tmp_path / "data")
    streams = app.server.extensions["deepscope_stream"]
    streams.push_s, streams.life_s, streams.heartbeat_s = 0.05, 2.0, 0.3
    streams.nice = 0  # these tests read streams in pytest's own thread: it must keep its priority (ls008)
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("live stream", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    return app, streams, store, run_id


def _events(response, until: float):
    """``(event, data)`` pairs of a streamed response until it ends or ``until`` (monotonic) passes."""
    buf = b""
    try:
        for chunk in response.response:
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                lines = block.decode().split("\n")
                event = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
                data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
                if event is None:  # a comment (":") is a heartbeat; "retry:" alone sets the browser's delay
                    event = "message" if data else "heartbeat" if lines[0].startswith(":") else "retry"
                yield event, data
            if time.monotonic() > until:
                return
    finally:
        response.close()


def test_ls001_chained_updates_get_every_row_once_as_rows_arrive(served):
    app, streams, store, run_id = served
    _log(store, run_id, range(1, 6))
    writer = threading.Thread(target=lambda: [(_log(store, run_id, [s]), time.sleep(0.01)) for s in range(6, 120)])
    response = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since=0", environ_base=LOCAL, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert "Content-Encoding" not in response.headers and "no-store" in response.headers["Cache-Control"]
    got, at, ends = [], 0, 0
    writer.start()
    for event, data in _events(response, time.monotonic() + 10):
        if event == "end":
            ends += 1
            break
        if event != "message":
            continue
        part = json.loads(data)["r"][run_id]
        assert part["from"] == at  # each update starts where the last one ended
        at = part["cursor"]
        got += merged(part).get("train/loss", {}).get("x", [])
    writer.join()
    assert ends == 1 and streams.open == 0
    # the stream lived 2 s; the writer may have gone on after it: the rest comes to a stream from its cursor
    rest = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since={at}", environ_base=LOCAL, buffered=False)
    for event, data in _events(rest, time.monotonic() + 5):
        if event == "message":
            part = json.loads(data)["r"][run_id]
            assert part["from"] == at
            got += merged(part).get("train/loss", {}).get("x", [])
            at = part["cursor"]
        if got and got[-1] == 119:
            break
    assert got == list(range(1, 120))
    assert streams.open == 0


def test_ls002_nothing_new_sends_heartbeats_a_status_change_comes_without_rows(served):
    app, streams, store, run_id = served
    _log(store, run_id, range(1, 4))
    response = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since=0&smooth=0.6", environ_base=LOCAL,
                                            buffered=False)
    seen, statuses = [], []
    paused = False
    for event, data in _events(response, time.monotonic() + 5):
        seen.append(event)
        if event == "message":
            part = json.loads(data)["r"][run_id]
            statuses.append((part["status"], merged(part)))
        if seen.count("heartbeat") >= 2 and not paused:
            store.set_status(run_id, "paused")
            paused = True
        if paused and len(statuses) >= 2:
            break
    assert seen[:2] == ["retry", "message"] and "heartbeat" in seen
    assert statuses[0][1]["train/loss"]["x"] == [1, 2, 3]
    assert statuses[1][0] != statuses[0][0] and statuses[1][1] == {}  # the status, without rows
    assert seen.count("message") == 2  # nothing in between: unchanged answers are not sent


def test_ls003_streams_are_bounded_and_every_slot_comes_back(served):
    app, streams, store, run_id = served
    streams.max_streams = 2
    client = app.server.test_client()
    url = f"{STREAM_PATH}?run={run_id}&since=0"
    first = client.get(url, environ_base=LOCAL, buffered=False)
    second = client.get(url, environ_base=LOCAL, buffered=False)
    third = client.get(url, environ_base=LOCAL, buffered=False)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 200)
    assert third.get_data(as_text=True).startswith("event: busy\n") and "poll" in third.get_data(as_text=True)
    assert third.headers["X-Deepscope-Stream"] == "busy" and "X-Deepscope-Stream" not in first.headers
    assert streams.open == 2 and streams.refused == 1
    next(iter(first.response))  # one read, then the page goes away
    first.close()
    second.close()  # never read at all: its slot comes back too
    assert streams.open == 0
    again = client.get(url, environ_base=LOCAL, buffered=False)
    assert again.status_code == 200
    again.close()
    streams.max_streams = 0  # DEEPSCOPE_STREAMS=0: every page polls
    off = client.get(url, environ_base=LOCAL)
    assert off.get_data(as_text=True).startswith("event: busy\n") and streams.open == 0


def test_ls004_junk_gets_a_400_and_the_streams_setting_is_checked(served, monkeypatch):
    app, streams, _store, _run_id = served
    client = app.server.test_client()
    for query in ["", "?run=", "?run=a&since=x", "?run=a,a", "?run=a&smooth=2", "?run=../x", "?run=a&run=b"]:
        answer = client.get(STREAM_PATH + query, environ_base=LOCAL)
        assert answer.status_code == 400 and answer.get_data(as_text=True).strip(), query
    assert streams.open == 0
    monkeypatch.setenv("DEEPSCOPE_STREAMS", "12")
    assert max_streams_from_env() == 12
    monkeypatch.setenv("DEEPSCOPE_STREAMS", "many")
    with pytest.raises(ValueError, match="DEEPSCOPE_STREAMS"):
        max_streams_from_env()


def test_ls005_streams_of_one_process_share_one_head_refresh_per_tick(served, monkeypatch):
    app, streams, store, run_id = served
    monkeypatch.setattr(live_heads, "HEAD_MAX_AGE_S", 0.2)
    streams.push_s = 0.25
    heads = app.server.extensions["deepscope_live"].data.heads
    refreshes = []
    real = heads._refresh
    monkeypatch.setattr(heads, "_refresh", lambda *a: (refreshes.append(time.monotonic()), real(*a))[1])
    _log(store, run_id, range(1, 4))
    stop = time.monotonic() + 2.5
    counts = []

    def viewer():
        response = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since=0", environ_base=LOCAL,
                                                buffered=False)
        counts.append(sum(1 for event, _ in _events(response, stop) if event == "message"))

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    logger = threading.Thread(target=lambda: [(_log(store, run_id, [s]), time.sleep(0.05)) for s in range(4, 50)])
    for th in [*threads, logger]:
        th.start()
    for th in [*threads, logger]:
        th.join()
    assert len(counts) == 8 and min(counts) >= 4  # every viewer got updates on the push clock
    # 8 viewers waking together at 4 ticks/s for ~2.5 s: about one refresh per tick, not one per viewer
    assert len(refreshes) <= 2.5 / 0.25 + 4, len(refreshes)
    assert streams.open == 0


def test_ls006_sigterm_ends_open_streams_at_once_then_does_what_it_did_before(served):
    """Under gunicorn a SIGTERM must not wait for open streams (a graceful stop waits for requests in flight):
    the hook installed by server_from_env() ends them at their next tick and then calls gunicorn's handler."""
    import os
    import signal

    from dashboard.views.training import live_stream

    app, streams, store, run_id = served
    _log(store, run_id, range(1, 4))
    called = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: called.append(signum))
    try:
        assert live_stream.end_streams_on_sigterm()
        response = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since=0", environ_base=LOCAL,
                                                buffered=False)
        events, t_kill = [], None
        for event, _data in _events(response, time.monotonic() + 10):
            events.append(event)
            if event == "message" and t_kill is None:
                t_kill = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)
            if event == "end":
                break
        assert called == [signal.SIGTERM] and events[-1] == "end"
        assert time.monotonic() - t_kill < 1.0  # not the stream's life (2 s here, 25 s by default)
        assert streams.open == 0
    finally:
        signal.signal(signal.SIGTERM, before)
        live_stream.STOPPING.clear()


def test_ls007_a_closed_page_frees_its_stream_at_the_next_tick_without_a_write(served):
    """A page that goes away is noticed on its connection at the next tick, not at the next failed write (a
    write to a closed page can succeed, and with nothing new there is none for a heartbeat's while)."""
    import socket

    from werkzeug.serving import make_server

    app, streams, store, run_id = served
    streams.heartbeat_s = 60.0
    _log(store, run_id, range(1, 4))
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            sock.sendall(f"GET {STREAM_PATH}?run={run_id}&since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            got = b""
            while b"data: " not in got:
                got += sock.recv(65536)
            assert streams.open == 1
        t0 = time.monotonic()
        while streams.open and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        assert streams.open == 0 and time.monotonic() - t0 < 1.0, time.monotonic() - t0
    finally:
        server.shutdown()


def test_ls008_a_stream_s_thread_yields_to_training(served):
    """The thread that serves a stream lowers its own priority (nice 5 by default, DEEPSCOPE_STREAM_NICE), so
    the streams that wake together every tick wait for the trainers; other threads keep theirs."""
    import os

    from dashboard.views.training.live_stream import DEFAULT_NICE, nice_from_env

    app, streams, _store, run_id = served
    streams.nice = nice_from_env()
    assert streams.nice == DEFAULT_NICE == 5
    seen = {}

    def read_one():
        response = app.server.test_client().get(f"{STREAM_PATH}?run={run_id}&since=0", environ_base=LOCAL,
                                                buffered=False)
        next(iter(response.response))
        seen["stream"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        response.close()

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=read_one)
    t.start()
    t.join(10)
    assert seen["stream"] == max(before, 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # only the stream's thread


@pytest.mark.parametrize("text", ["-3", "x", "5.5"])
def test_ls009_a_bad_stream_nice_is_refused_or_clamped(monkeypatch, text):
    from dashboard.views.training.live_stream import nice_from_env

    monkeypatch.setenv("DEEPSCOPE_STREAM_NICE", text)
    if text == "-3":
        assert nice_from_env() == 0
    else:
        with pytest.raises(ValueError, match="DEEPSCOPE_STREAM_NICE"):
            nice_from_env()


class _CountingAnswers:
    """Stands in for LiveAnswers: counts the answers built, each after ``delay`` (streams wait meanwhile)."""

    def __init__(self, delay: float = 0.05, fail: bool = False):
        self.delay, self.fail, self.calls = delay, fail, []

    def answer_and_cursors(self, run_ids, sinces, smoothing):
        self.calls.append((tuple(run_ids), tuple(sinces)))
        time.sleep(self.delay)
        if self.fail:
            raise OSError("the store is gone")
        return json.dumps({"r": {r: s + 10 for r, s in zip(run_ids, sinces)}}), [s + 10 for s in sinces], "sig"


def test_ls010_streams_asking_the_same_share_one_update_and_nothing_else(monkeypatch):
    """The viewers of a run wake together at the same cursors: one stream builds the update and every other
    sends the same bytes; other cursors get their own, a later tick a new one, and a failed build is no
    answer for anybody (each stream then builds its own, or ends)."""
    from dashboard.views.training import live_stream
    from dashboard.views.training.live_stream import Streams

    answers = _CountingAnswers()
    streams = Streams(answers, max_streams=8)
    got = []

    def ask(sinces):
        got.append(streams.update(["a", "b"], sinces, 0.6))

    threads = [threading.Thread(target=ask, args=([5, 7],)) for _ in range(6)]
    threads.append(threading.Thread(target=ask, args=([5, 8],)))  # a viewer of b one tick behind
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert sorted(answers.calls) == [(("a", "b"), (5, 7)), (("a", "b"), (5, 8))]
    same = [g for g in got if g[1] == [15, 17]]
    assert len(same) == 6 and len({g[0] for g in same}) == 1 and streams.shared_answers == 5
    assert same[0][0] == b'data: {"r": {"a": 15, "b": 17}}\n\n' and same[0][2] == "sig"
    same[0][1].append(99)  # a stream's cursors are its own
    assert streams.update(["a", "b"], [5, 7], 0.6)[1] == [15, 17] and len(answers.calls) == 2
    monkeypatch.setattr(live_stream, "SHARE_S", 0.0)  # a later tick: built again
    streams.update(["a", "b"], [5, 7], 0.6)
    assert len(answers.calls) == 3

    failing = Streams(_CountingAnswers(fail=True), max_streams=8)
    errors = []

    def ask_failing():
        try:
            failing.update(["a"], [5], 0.6)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask_failing) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(errors) == 3 and not any(th.is_alive() for th in threads)
    assert len(failing.answers.calls) == 3  # the owner's failure was nobody's answer
