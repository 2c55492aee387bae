"""``/_deepscope/stream``: the Training page's live curves pushed as server-sent events.

The poll of :mod:`dashboard.views.training.live_route` costs the server one HTTP request per viewer per
tick (~4 ms of CPU each, 1.6 ms of it werkzeug and Flask answering any request): with 20 viewers that was
most of what viewers took from training. A stream costs one request per viewer per :data:`STREAM_LIFE_S`;
afterwards each update is the same answer as a poll's (built from the shared run heads and chunks) written to
an open socket.

    GET /_deepscope/stream?run=a1b2,c3d4&since=812,90&smooth=0.6          (the poll's query)
    -> text/event-stream:
       data: {"runs": ..., "r": {"a1b2": {"from": 812, "cursor": 830, ...}}}     (a poll's answer)
       data: {"runs": ..., "r": {"a1b2": {"from": 830, "cursor": 851, ...}}}     (from = the last cursor)
       : (a heartbeat while nothing is new)
       event: end                                   (after STREAM_LIFE_S: ask again from your cursors)

Every stream of a process wakes on the same :data:`PUSH_S` clock, so the first to find a run's head stale
refreshes it (one store read) and the others share it and its chunks
(:meth:`dashboard.live_heads.RunHeads.heads` refreshes a run once at a time); the streams that ask from the
same cursors (every viewer of a run, in the steady state) send the bytes of one update built for them all
(:meth:`Streams.update`). An update is sent when a
cursor moved or the status, samples or run list changed. Each part's ``from`` lets the page check that
updates join up; when they do not (whole figures were drawn meanwhile), the page opens a new stream from
its own cursors (``assets/training_live.js``).

A stream holds a server thread while it is open. ``DEEPSCOPE_STREAMS`` per process (default
:data:`DEFAULT_MAX_STREAMS`) are served; beyond them the answer is a stream of one ``busy`` event (HTTP 200: a
refused EventSource is an error in the browser's console), and the page polls the live route for a while. Under gunicorn's
gthread workers set it below ``--threads`` (docker-compose: 32 threads, 24 streams per worker), so that
streams never take the threads the pages' other requests need. A stream passes the dashboard's guard when it
opens (hosts, sign-in); it ends after :data:`STREAM_LIFE_S`, so a signed-out viewer's stream lasts at most
that long. A gunicorn worker asked to stop (SIGTERM) ends its streams at once (:func:`end_streams_on_sigterm`).
"""
from __future__ import annotations

import logging
import os
import select
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import flask

from dashboard.views.training.live_route import BadQuery, LiveAnswers, parse_query

STREAM_PATH = "/_deepscope/stream"
PUSH_S = 0.5          # updates at most this often (the live lag grows by at most this, plus the head's age)
HEARTBEAT_S = 5.0     # a comment line while nothing is new: a closed page is noticed within this
STREAM_LIFE_S = 25.0  # then "end": the page asks again (sign-in checked again; a stopping worker is free)
DEFAULT_MAX_STREAMS = 64
DEFAULT_NICE = 5      # a stream's thread yields the cores to training (Linux: a thread has its own nice value)
SHARE_S = 0.2         # an update is shared by the streams that ask the same this soon after it was built (as a head)
SHARE_WAIT_S = 1.0    # how long a stream waits for the one building its update (then builds its own)
ANSWERS_KEPT = 256    # updates remembered before the old ones are dropped
MIMETYPE = "text/event-stream"
BUSY = b"event: busy\ndata: all streams here are taken: poll /_deepscope/live\n\n"

log = logging.getLogger(__name__)
STOPPING = threading.Event()  # set when this process is asked to stop: every open stream ends at its next tick


def end_streams_on_sigterm() -> bool:
    """Make SIGTERM end this process's streams at once, then do what it did before (gunicorn's worker: stop
    gracefully, waiting for the requests in flight, which open streams would otherwise hold for up to
    :data:`STREAM_LIFE_S`). Called from the main thread when the app is loaded (gunicorn installs its signal
    handlers before); elsewhere it does nothing and says so (False)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        STOPPING.set()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: a signal does not break a request's I/O
    return True


def nice_from_env() -> int:
    """``DEEPSCOPE_STREAM_NICE``: the nice value a stream's thread takes (0: as the server; default
    :data:`DEFAULT_NICE`)."""
    return _int_from_env("DEEPSCOPE_STREAM_NICE", DEFAULT_NICE, 19, "a nice value from 0 to 19")


def _int_from_env(name: str, default: int, most: int, what: str) -> int:
    """The whole number in environment variable ``name``, clamped to ``[0, most]``; ``default`` when unset;
    ValueError naming the variable and ``what`` it must be otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return max(0, min(most, int(text)))
    except ValueError:
        raise ValueError(f"{name} must be {what}, not {text!r}") from None


def _yield_to_training(nice: int) -> None:
    """Lower this thread's priority to ``nice`` (never raise it: that needs privileges).

    Every stream of every worker wakes on the same 0.5 s clock, and a trainer's short steps (digits-cnn: ~2.7 ms)
    lose to any wake-up on their core: a stream's thread at nice 5 lets the trainers run first (its update comes
    a few ms later), as the probes' writer threads and the analysis worker do (nice 10). Its effect was within
    the noise of ``bench/viewers.py`` (bench/RESULTS.md). The thread serves only this stream under
    ``deepscope serve`` (a thread per request); a gunicorn gthread keeps the value for the requests it serves
    later (the dashboard's container yields to training anyway)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: the stream runs as it is
        pass


def max_streams_from_env() -> int:
    """``DEEPSCOPE_STREAMS`` (0 turns streams off: every page polls), else :data:`DEFAULT_MAX_STREAMS`."""
    return _int_from_env("DEEPSCOPE_STREAMS", DEFAULT_MAX_STREAMS, 10_000, "a whole number of streams per process")


class Streams:
    """The open streams of this process: their count is bounded, and each yields its updates."""

    def __init__(self, answers: LiveAnswers, max_streams: int, push_s: float = PUSH_S,
                 life_s: float = STREAM_LIFE_S, heartbeat_s: float = HEARTBEAT_S):
        self.answers, self.max_streams = answers, max_streams
        self.nice = nice_from_env()
        self.push_s, self.life_s, self.heartbeat_s = push_s, life_s, heartbeat_s
        self._lock = threading.Lock()
        self.open = 0       # streams open now
        self.opened = 0     # streams opened since start (tests and benchmarks read both)
        self.refused = 0
        self.shared_answers = 0  # updates another stream of this process built (tests and benchmarks read it)
        self._answers: dict[tuple, _Shared] = {}  # (runs, cursors, smoothing) -> the answer built for them

    def take_slot(self) -> bool:
        with self._lock:
            if self.open >= self.max_streams:
                self.refused += 1
                return False
            self.open += 1
            self.opened += 1
            return True

    def give_slot(self) -> None:
        with self._lock:
            self.open -= 1

    def update(self, run_ids: list[str], sinces: list[int], smoothing: float) -> tuple[bytes, list[int], str]:
        """(the event that carries the answer, its cursors, its signature: see
        :meth:`~dashboard.views.training.live_route.LiveAnswers.answer_and_cursors`), built once for every stream
        of this process that asks the same within :data:`SHARE_S`.

        The streams of a process wake together and, in the steady state, the viewers of a run ask from the same
        cursors: the first builds the answer and its bytes, the others wait for it and send the same bytes.
        Measured (``bench/worker_ticks.py``): building an answer per stream was ~0.2 ms of CPU each, the
        largest cost of a worker's streams after the shared refresh itself."""
        key = (tuple(run_ids), tuple(sinces), smoothing)
        now = time.monotonic()
        with self._lock:
            found = self._answers.get(key)
            if found is None or now - found.at > SHARE_S:
                if len(self._answers) >= ANSWERS_KEPT:  # another tick's: none is waited for any more
                    self._answers = {k: v for k, v in self._answers.items() if now - v.at <= SHARE_S}
                found = self._answers[key] = _Shared(now)
                mine = True
            else:
                mine = False
        if mine:
            try:
                found.value = self._built(run_ids, sinces, smoothing)
            finally:
                found.done.set()  # failed: the others build their own (and fail alike, or not)
        elif not found.done.wait(SHARE_WAIT_S) or found.value is None:
            return self._built(run_ids, sinces, smoothing)
        self.shared_answers += not mine
        event, cursors, says = found.value
        return event, list(cursors), says

    def _built(self, run_ids: list[str], sinces: list[int], smoothing: float) -> tuple[bytes, list[int], str]:
        text, cursors, says = self.answers.answer_and_cursors(run_ids, sinces, smoothing)
        return b"data: " + text.encode() + b"\n\n", cursors, says

    def events(self, run_ids: list[str], sinces: list[int], smoothing: float,
               sock: socket.socket | None = None) -> Iterator[bytes]:
        """The stream's bytes, until :data:`STREAM_LIFE_S` has passed or the store fails (then ``end`` too:
        the page opens a new stream, or polls while that fails), or the page closed ``sock`` (the client's
        connection, when the server names it: a write to a closed page may succeed once or twice)."""
        _yield_to_training(self.nice)
        yield b"retry: 3000\n\n"
        cursors, last, last_write = list(sinces), None, time.monotonic()
        end = last_write + self.life_s
        while True:
            if sock is not None and _closed(sock):
                return
            try:
                event, now_cursors, says = self.update(run_ids, cursors, smoothing)
            except Exception:  # the store or cache failing: said once in the log, the page asks again
                log.exception("live stream: an update failed; the stream ends")
                yield b"event: end\ndata: \n\n"
                return
            if now_cursors != cursors or says != last:  # new rows, or a new status, step, samples or run list
                cursors, last, last_write = now_cursors, says, time.monotonic()
                yield event
            elif time.monotonic() - last_write >= self.heartbeat_s:
                last_write = time.monotonic()
                yield b":\n\n"
            if time.monotonic() >= end or STOPPING.is_set():
                yield b"event: end\ndata: \n\n"
                return
            # every stream of the process on one clock: they share each head refresh and chunk
            time.sleep(self.push_s - (time.time() % self.push_s) + 0.001)


class _Shared:
    """An update being built by one stream for the others that ask the same (:meth:`Streams.update`)."""

    __slots__ = ("at", "done", "value")

    def __init__(self, at: float):
        self.at, self.done, self.value = at, threading.Event(), None


def _closed(sock: socket.socket) -> bool:
    """Whether the client closed its end of ``sock`` (readable, and reading would give nothing): checked
    without reading or blocking. A page does not send anything on its stream's connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # ValueError: a socket that takes no flags
        return False
    except OSError:  # reset, or already closed here
        return True


class _Slotted:
    """A stream's body that gives its slot back exactly once: when it ends, or when the server closes it (a
    write to a closed page failed, or the server stops), even if it never started (a generator's ``finally``
    would not run then)."""

    def __init__(self, body: Iterator[bytes], streams: Streams):
        self.body, self.streams, self._given = body, streams, False
        self._lock = threading.Lock()

    def __iter__(self) -> _Slotted:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.body)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            given, self._given = self._given, True
        if not given:
            try:
                self.body.close()
            finally:
                self.streams.give_slot()


def register_stream(server: flask.Flask, answers: LiveAnswers, max_streams: int | None = None) -> Streams:
    """Add the route to ``server`` (``server.extensions["deepscope_stream"]`` holds the :class:`Streams`)."""
    streams = Streams(answers, max_streams_from_env() if max_streams is None else max_streams)
    server.extensions["deepscope_stream"] = streams

    def stream() -> flask.Response:
        try:
            run_ids, sinces, smoothing = parse_query(flask.request.args, flask.request.query_string)
        except BadQuery as exc:
            return flask.Response(f"{exc}\n", status=400, mimetype="text/plain")
        if not streams.take_slot():  # a stream that says so and ends: a refused EventSource is a console error
            return flask.Response(BUSY, mimetype=MIMETYPE, headers={"Cache-Control": "no-store",
                                                                    "X-Deepscope-Stream": "busy"})
        environ = flask.request.environ
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
        plain = isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)  # TLS: a peek reads records
        body = _Slotted(streams.events(run_ids, sinces, smoothing, sock if plain else None), streams)
        # no-transform, X-Accel-Buffering: proxies (nginx) must pass each event on, not buffer the stream
        return flask.Response(body, mimetype=MIMETYPE, headers={"Cache-Control": "no-store, no-transform",
                                                                 "X-Accel-Buffering": "no"})

    server.add_url_rule(STREAM_PATH, endpoint="deepscope_stream", view_func=stream, methods=["GET"])
    return streams
