"""``/_deepscope/live``: the Training page's live curves as plain JSON, outside Dash's dispatch.

The page's one timer drives a clientside callback (``assets/training_live.js``) that asks this route for the
rows after the cursors its live state holds, and extends its traces with them in the browser. A steady-state
poll is one small GET: no Dash dispatch, no callback, no store read (the run heads of
:mod:`dashboard.live_heads` answer it). The Python callback (:mod:`dashboard.views.training.tick`) runs only
when something it draws changed: the page pokes it when the status, samples or run-list signatures here
differ from the ones it last drew, or when a run was resumed or logged a new series (whole figures again).

    GET /_deepscope/live?run=a1b2,c3d4&since=812,90&smooth=0.6
    -> {"runs": "<run-list signature>",
        "r": {"a1b2": {"from": 812, "cursor": 830, "attempt": 0, "status": "<sig>", "step": 415, "samples": null,
                       "chunks": [{"train/loss": {"x": [...], "y": [...], "c": [...], "p": [...],
                                                  "C": 18, "P": 0.41}, ...}, ...]}, "c3d4": ...}}

A run's rows after ``since`` up to its head's cursor come as ``chunks``, to be drawn in order: one per refresh
of the run's head (:meth:`dashboard.live_heads.RunHeads.boundaries`) when ``since`` is where one of them
started, which it is for every page that polled in the head's window (a few seconds), else one chunk from
``since`` on. Each chunk is thinned as :func:`dashboard.views.training.live.stream_delta` thins an update,
serialised once per (run, attempt, its cursors, smoothing), and shared by every viewer and every answer it
belongs to, however far back each viewer's cursor is. ``c``/``p`` let the page carry its smoothing across a
chunk exactly (see :func:`ema_parts`). A run that does not exist is ``null``. Answers from
:data:`GZIP_FROM` bytes (a page back from a hidden tab) are gzipped once per distinct answer; the small ones of
the steady state are sent as they are (compressing each anew cost more CPU than the whole route).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import flask

from dashboard.inputs import BIG, MAX_RUNS, RUN_ID, as_float
from dashboard.series import thin_indices
from dashboard.views.training.figures import UNSMOOTHED, panel_of
from dashboard.views.training.live import PAIRS_PER_RUN, attempt_of

LIVE_PATH = "/_deepscope/live"
MAX_QUERY = 4096     # bytes of query string: MAX_RUNS ids and cursors fit in far less
CHUNKS_KEPT = 512    # serialised run parts kept in this process (a few heads x runs x smoothings)
CHUNK_TTL = 30       # s in the shared cache: an older range's chunk (a tick's newest ride in its stamp)
SMOOTHINGS_KEPT = 4  # per run, the smoothings asked for lately: a claimed refresh builds its chunk for each
SMOOTHING_S = 60.0   # "lately"
BODIES_KEPT = 64     # gzipped answers kept in this process: viewers at the same cursors get the same bytes
GZIP_FROM = 16_384   # bytes of answer from which it is sent gzipped
# Not "application/json": flask-compress would brotli every answer anew (this route gzips the large ones once).
MIMETYPE = "application/vnd.deepscope.live+json"


class BadQuery(ValueError):
    """A query this route refuses with HTTP 400 (the message says why)."""


def parse_query(args: Any, raw: bytes = b"") -> tuple[list[str], list[int], float]:
    """``(run ids, since cursors, smoothing)`` from the request's arguments, or :class:`BadQuery`.

    Strict: every run id must be one (no silent dropping, the cursors pair with them), as many cursors as
    runs, each a whole number in ``[0, 2**53]``; ``smooth`` in ``[0, 0.99]``, rounded to 0.01 (the slider's step).

    >>> parse_query({"run": "a1,b2", "since": "5,0", "smooth": "0.6"})
    (['a1', 'b2'], [5, 0], 0.6)
    """
    if len(raw) > MAX_QUERY:
        raise BadQuery(f"query longer than {MAX_QUERY} bytes")
    runs_text, since_text = _one(args, "run"), _one(args, "since")
    if not runs_text:
        raise BadQuery("run= is required (run ids separated by commas)")
    run_ids = runs_text.split(",")
    if len(run_ids) > MAX_RUNS or not all(RUN_ID.fullmatch(r) for r in run_ids) or len(set(run_ids)) != len(run_ids):
        raise BadQuery(f"run= must name 1 to {MAX_RUNS} distinct run ids")
    sinces = (since_text or ",".join("0" * len(run_ids))).split(",")
    if len(sinces) != len(run_ids) or not all(s.isascii() and s.isdigit() and len(s) <= 16 and int(s) <= BIG for s in sinces):
        raise BadQuery("since= must give one whole-number cursor (0 or more) per run")
    smooth_text = _one(args, "smooth") or "0"
    smoothing = as_float(smooth_text[:32], None, None, None)
    if smoothing is None or not 0 <= smoothing <= 0.99:
        raise BadQuery("smooth= must be a number from 0 to 0.99")
    return run_ids, [int(s) for s in sinces], round(smoothing, 2)


def _one(args: Any, name: str) -> str | None:
    values = args.getlist(name) if hasattr(args, "getlist") else [args[name]] if name in args else []
    if len(values) > 1:
        raise BadQuery(f"{name}= given more than once")
    return values[0] if values else None


def status_key(run: dict | None) -> str | None:
    """A short signature of what a run's status card and the control buttons show, but its step: status,
    name, error and attempt. The page compares it with the one its cards were drawn for."""
    if not run:
        return None
    sig = [run.get("status"), run.get("name"), run.get("error"), run.get("attempt")]
    return hashlib.sha1(json.dumps(sig, default=str).encode()).hexdigest()[:12]


def ema_parts(ys: list, keep: list[int], weight: float) -> dict:
    """What the page needs to carry its debiased EMA (:func:`dashboard.views.training.figures.ema`) over the
    chunk ``ys`` from whatever state ``(last, count)`` it holds, sent once for every viewer.

    The EMA is linear in its start: after the chunk's first i+1 values, ``last_i = w**c_i * last + p_i`` and
    ``count_i = count + c_i``, where ``c_i`` counts the finite values so far and ``p_i`` is the EMA of the chunk
    started from 0. Returned for the kept indices (``c``, ``p``) and for the chunk's end (``C``, ``P``).
    """
    last, count, at = 0.0, 0, {}
    wanted = set(keep)
    for i, v in enumerate(ys):
        if v is not None and math.isfinite(v):
            last = last * weight + (1.0 - weight) * v
            count += 1
        if i in wanted:
            at[i] = (count, last)
    return {"c": [at[i][0] for i in keep], "p": [at[i][1] for i in keep], "C": count, "P": last}


def run_chunk(rows: dict[str, dict[str, list]], weight: float) -> dict[str, dict]:
    """The series part of one run's answer: each series thinned as a live update thins it, with EMA parts
    where the page smooths it."""
    out = {}
    for name, s in rows.items():
        xs, ys = s["x"], s["y"]
        keep = thin_indices(xs, ys, (xs[-1] if xs else 0) / PAIRS_PER_RUN)
        item = {"x": [xs[i] for i in keep], "y": [_plain(ys[i]) for i in keep]}
        if weight > 0 and panel_of(name) not in UNSMOOTHED:
            item.update(ema_parts(ys, keep, weight))
        out[name] = item
    return out


def merged(part: dict) -> dict[str, dict[str, list]]:
    """A run's part of an answer as the page draws it: each series' ``x`` and ``y`` over its chunks, in order
    (for tests and benchmarks; the page extends its traces chunk by chunk).

    >>> merged({"chunks": [{"a": {"x": [1], "y": [2.0]}}, {"a": {"x": [2], "y": [1.0]}}]})
    {'a': {'x': [1, 2], 'y': [2.0, 1.0]}}
    """
    out: dict[str, dict[str, list]] = {}
    for chunk in part.get("chunks") or []:
        for name, s in chunk.items():
            into = out.setdefault(name, {"x": [], "y": []})
            into["x"] += s["x"]
            into["y"] += s["y"]
    return out


def _plain(v: Any) -> Any:
    return v if v is None or (isinstance(v, (int, float)) and math.isfinite(v)) else None


class LiveAnswers:
    """Builds the route's answers from a :class:`dashboard.data.DashboardData`; each run part once per key."""

    def __init__(self, data: Any):
        self.data = data
        self._chunks: OrderedDict[tuple, tuple[str, int]] = OrderedDict()
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._smoothings: dict[str, dict[float, float]] = {}  # run -> {smoothing: when last asked for}
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self.built = 0   # run parts built (the rest were shared): tests and benchmarks read them
        self.shared = 0  # and taken from another worker through the cache
        data.heads.on_refresh = self._share_chunks

    def answer(self, run_ids: list[str], sinces: list[int], smoothing: float) -> str:
        """The JSON text of the answer (see the module's docstring)."""
        return self.answer_and_cursors(run_ids, sinces, smoothing)[0]

    def answer_and_cursors(self, run_ids: list[str], sinces: list[int], smoothing: float) -> tuple[str, list[int], str]:
        """The answer's JSON text, the cursor each run's part ends at (``since`` for a run that is gone), and a
        signature of what it says besides its rows (run list, each run's status, step and samples)."""
        self._asked(run_ids, smoothing)
        heads = self.data.heads.heads(run_ids)
        parts, cursors, says = [], [], [self.data.heads.runs_signature()]
        for rid, since in zip(run_ids, sinces):
            head = heads.get(rid)
            text, cursor = self._part(rid, since, head, smoothing) if head else ("null", since)
            parts.append(f"{json.dumps(rid)}:{text}")
            cursors.append(cursor)
            run = (head or {}).get("run") or {}
            says.append(f"{status_key(run)}/{run.get('step')}/{(head or {}).get('samples')}" if head else "-")
        return '{"runs":%s,"r":{%s}}' % (json.dumps(says[0]), ",".join(parts)), cursors, "|".join(says)

    def gzipped(self, body: str) -> bytes:
        """``body`` gzipped, once for every viewer that gets the same answer. flask-compress would compress
        each response anew, with brotli: measured, that was a third of this route's CPU time per request."""
        with self._lock:
            found = self._bodies.get(body)
        if found is None:
            found = gzip.compress(body.encode(), compresslevel=6, mtime=0)
            with self._lock:
                self._bodies[body] = found
                while len(self._bodies) > BODIES_KEPT:
                    self._bodies.popitem(last=False)
        return found

    def _part(self, rid: str, since: int, head: dict, smoothing: float) -> tuple[str, int]:
        run = head["run"]
        attempt = attempt_of(run)
        cuts = self.data.heads.boundaries(head)
        if since in cuts:  # every page that polled within the head's window: shared chunks, one per refresh
            start = cuts.index(since)
            chunks = [self._chunk((rid, attempt, a, b, smoothing), head)[0]
                      for a, b in zip(cuts[start:], cuts[start + 1:]) if a < b]
            cursor = head["cursor"]
        elif since < head["cursor"]:  # figures just built from a cached series, or a page back after a while
            chunk, cursor = self._chunk((rid, attempt, since, head["cursor"], smoothing), head)
            chunks = [chunk]
        else:  # a cursor ahead of this head (another worker's newer one): nothing yet
            chunks, cursor = [], since
        status = json.dumps({"from": since, "cursor": cursor, "attempt": attempt, "status": status_key(run),
                             "step": run.get("step"), "samples": head.get("samples")}, separators=(",", ":"), default=str)
        return status[:-1] + ',"chunks":[' + ",".join(chunks) + "]}", cursor

    def _chunk(self, key: tuple, head: dict, publish: bool = True) -> tuple[str, int]:
        """The serialised series of the run's rows in ``(lo, hi]`` (``key``: run, attempt, lo, hi, smoothing) and
        the cursor they end at (before ``hi`` when a long read from the store was capped), built once per
        process, and once for every worker while workers share the cache (:meth:`RunHeads.sharing`): taken
        from the head (the chunks its stamp carried), else from the cache, else built (and put in the cache
        when ``publish``; the newest chunks of a refresh ride in its stamp instead)."""
        with self._lock:
            found = self._chunks.get(key)
            if found is not None:
                self._chunks.move_to_end(key)
                return found
        with self._building:  # the streams of a process wake together: one builds (or fetches), the others wait
            with self._lock:
                found = self._chunks.get(key)
            return found if found is not None else self._build_chunk(key, head, publish)

    def _build_chunk(self, key: tuple, head: dict, publish: bool) -> tuple[str, int]:
        sharing = self.data.heads.sharing()
        cache_key = _chunk_key(key)
        found = None
        if sharing:
            carried = head.get("chunks")
            found = _chunk_value(carried.get(cache_key) if isinstance(carried, dict) else None, key)
            if found is None and publish:
                found = _chunk_value(self.data.cache_get(cache_key), key)
        if found is not None:
            self.shared += 1
        else:
            rid, _attempt, lo, hi, smoothing = key
            rows, end = self.data.heads.rows_in(head, lo, hi), hi
            if rows is None:  # not in the head's window: from this process's tail, the cache or the store
                rows, end = self.data.heads.rows_between(rid, lo, head)
            found = (json.dumps(run_chunk(rows, smoothing), separators=(",", ":"), allow_nan=False), end)
            self.built += 1
            if sharing and publish:
                self.data.cache_set(cache_key, list(found), CHUNK_TTL)
        with self._lock:
            self._chunks[key] = found
            while len(self._chunks) > CHUNKS_KEPT:
                self._chunks.popitem(last=False)
        return found

    def _asked(self, run_ids: list[str], smoothing: float) -> None:
        """Note that a page asked for these runs at this smoothing (what :meth:`_share_chunks` builds)."""
        now = time.time()
        with self._lock:
            for rid in run_ids:
                seen = self._smoothings.setdefault(rid, {})
                seen[smoothing] = now
                if len(seen) > SMOOTHINGS_KEPT:
                    seen.pop(min(seen, key=seen.get))
            if len(self._smoothings) > 4 * CHUNKS_KEPT:  # runs asked for over a long life: forget the idle
                self._smoothings = {r: v for r, v in self._smoothings.items() if max(v.values()) > now - SMOOTHING_S}

    def _share_chunks(self, rid: str, head: dict) -> dict[str, list]:
        """Called by the run heads after this worker claimed and read a run's newest rows, before the others
        take them: the newest chunk at each smoothing this worker's pages asked for lately, built now, for the
        stamp to carry (``{cache key: [text, end]}``), so the workers that take the stamp take the chunks too
        instead of building them (or reading each from the cache: a command each)."""
        marks = head.get("marks") or []
        if not marks or not head.get("run") or marks[-1][1] >= head["cursor"]:
            return {}
        now = time.time()
        with self._lock:
            smoothings = [s for s, at in self._smoothings.get(rid, {}).items() if at > now - SMOOTHING_S]
        out = {}
        for smoothing in smoothings:
            key = (rid, attempt_of(head["run"]), marks[-1][1], head["cursor"], smoothing)
            out[_chunk_key(key)] = list(self._chunk(key, head, publish=False))
        return out


def _chunk_key(key: tuple) -> str:
    """A chunk's name in the shared cache and in the stamps that carry it (run, attempt, lo, hi, smoothing)."""
    return "chunk:" + ":".join(str(k) for k in key)


def _chunk_value(value: Any, key: tuple) -> tuple[str, int] | None:
    """A chunk another worker put in the cache as ``[text, end]``, or None when it is not one (checked, not
    trusted: its text goes into answers as it is, so it must be a JSON object of series, and ``end`` within
    the key's range)."""
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int):
        return None
    text, end = value
    if not key[2] <= end <= key[3]:
        return None
    try:
        series = json.loads(text, parse_constant=_no_constant)  # NaN would break the page's JSON.parse
    except (ValueError, RecursionError):
        return None
    if not (isinstance(series, dict) and all(isinstance(v, dict) and isinstance(v.get("x"), list)
                                             and isinstance(v.get("y"), list) for v in series.values())):
        return None
    return text, end


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def register_live(server: flask.Flask, answers: LiveAnswers) -> None:
    """Add the route to ``server`` (``server.extensions["deepscope_live"]`` holds ``answers``). It passes the
    dashboard's guard like any page (hosts, sign-in; viewers may read it; a signed-out poll gets 401)."""
    server.extensions["deepscope_live"] = answers

    def live() -> flask.Response:
        try:
            run_ids, sinces, smoothing = parse_query(flask.request.args, flask.request.query_string)
        except BadQuery as exc:
            return flask.Response(f"{exc}\n", status=400, mimetype="text/plain")
        body = answers.answer(run_ids, sinces, smoothing)
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
        if len(body) >= GZIP_FROM and "gzip" in flask.request.headers.get("Accept-Encoding", ""):
            return flask.Response(answers.gzipped(body), mimetype=MIMETYPE, headers={**headers, "Content-Encoding": "gzip"})
        return flask.Response(body, mimetype=MIMETYPE, headers=headers)

    server.add_url_rule(LIVE_PATH, endpoint="deepscope_live", view_func=live, methods=["GET"])
