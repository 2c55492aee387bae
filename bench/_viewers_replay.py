"""The replayed viewers of ``bench/viewers.py``: one open Training page each, posting the callbacks Chromium
sent at the page's pace, with each input and state taken from the answers it got, and taking its live updates
from the page's live stream (``/_deepscope/stream``), or from the live route it polls when no stream can be had,
as assets/training_live.js does."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time

from _harness import decoded
from _faults_poll import LIVE_PATH, PATCH_KEY, POKE, advanced, apply_patch, live_needs, live_url

DISPATCH = "/_dash-update-component"
LIVE_OUTPUT = "live-route"  # how the live GETs (or streams) are counted beside the callbacks' outputs
STREAM_PATH = "/_deepscope/stream"  # dashboard/views/training/live_stream.py
REPOKE_S = 5.0  # assets/training_live.js REPOKE_MS
FALLBACK_S = 30.0  # assets/training_live.js FALLBACK_MS: a page refused a stream polls this long
POLL_S = 0.85  # the Training page's timer (dashboard/app.py DEFAULT_TRAINING_POLL_MS)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ms: list[float] = []
        self.requests = self.no_update = self.errors = self.bytes = self.opens = 0
        self.by_output: dict[str, int] = {}
        self.samples: list[str] = []
        self.messages = self.message_bytes = self.reopened = 0  # the live streams' updates
        self.busy = 0  # streams refused (every one of that worker's taken): the page polled meanwhile

    def add(self, output: str, ms: float, status: int | None, size: int, error: str | None, opening: bool) -> None:
        with self.lock:
            self.requests += 1
            self.opens += opening
            self.ms.append(ms)
            self.bytes += size
            self.no_update += status == 204
            self.by_output[output] = self.by_output.get(output, 0) + 1
            if error:
                self.errors += 1
                if len(self.samples) < 10:
                    self.samples.append(error)


def _pairs(body: dict, key: str):
    for item in body.get(key, []):
        for d in (item if isinstance(item, list) else [item]):
            if isinstance(d, dict) and isinstance(d.get("id"), str):
                yield d


class Viewer:
    """One open Training page: the values of its components and the page's callbacks to post."""

    def __init__(self, base: str, first: list[dict], timers: dict[str, dict], stats: Stats, timeout: float):
        self.base, self.first, self.timers, self.stats, self.timeout = base, first, timers, stats, timeout
        bodies = [*first, *(t for o, t in timers.items() if o != LIVE_OUTPUT)]
        self.templates = {b["output"]: b for b in bodies}
        self.values: dict[tuple[str, str], object] = {}
        self.lock = threading.Lock()
        self.local = threading.local()
        self.stream_sock: socket.socket | None = None  # the live stream's connection (http.client lets go of
        # it once the answer says Connection: close, as a stream's does)
        self.poked, self.poked_at, self.pokes = None, 0.0, 0
        for body in bodies:
            for d in [*_pairs(body, "inputs"), *_pairs(body, "state")]:
                self.values.setdefault((d["id"], d["property"]), d.get("value"))
        # the callback the live poll pokes (dashboard/views/training/tick.py), when the page has one
        self.poke_template = next((b for b in bodies if any((d["id"], d["property"]) == POKE
                                                          for d in _pairs(b, "inputs"))), None)

    def _send(self, payload: str | None, path: str = DISPATCH) -> tuple[int, bytes]:
        """POST one callback (GET ``path`` when ``payload`` is None) over this thread's kept-alive connection:
        ``(status, decoded body)``.

        http.client, not requests: the client shares the machine's two cores with the runs it measures (real
        viewers' browsers would not), and requests cost about 1 ms of CPU more per request."""
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            reused = conn is not None
            if conn is None:
                host, port = self.base.split("//", 1)[1].split(":")
                conn = self.local.conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            try:
                if payload is None:
                    conn.request("GET", path, headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate, br"})
                else:
                    conn.request("POST", DISPATCH, body=payload.encode(),
                                 headers={"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate, br"})
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self.local.conn = None
                if not reused or attempt:
                    raise
                # the server closed a kept-alive connection that sat idle (gunicorn: after 2 s, e.g. over a block
                # without viewers): a browser sends the request again on a new one, so does this client
            except Exception:
                conn.close()
                self.local.conn = None
                raise
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        return resp.status, decoded(raw, resp.getheader("Content-Encoding"))

    def post(self, template: dict, changed: list[str] | None = None, depth: int = 0, opening: bool = False) -> None:
        # Copies through JSON (C speed), not copy.deepcopy: the client competes with the runs for the CPU
        body = json.loads(json.dumps({k: v for k, v in template.items() if k != "period_s"}))
        if changed is not None:
            body["changedPropIds"] = changed
        with self.lock:  # answers replace values, never change them in place: serialised here, they stay
            for d in [*_pairs(body, "inputs"), *_pairs(body, "state")]:
                d["value"] = self.values.get((d["id"], d["property"]))
            payload = json.dumps(body)
        t0 = time.perf_counter()
        status, size, error, answer = None, 0, None, None
        try:
            status, raw = self._send(payload)
            size = len(raw)
            if status == 200:
                answer = json.loads(raw)
            elif status != 204:
                error = f"HTTP {status} for {template['output'][:60]}: {raw[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__} for {template['output'][:60]}: {str(exc)[:200]}"
        self.stats.add(template["output"], (time.perf_counter() - t0) * 1000, status, size, error, opening)
        if answer is not None:
            self.take(answer, template["output"], depth)

    def take(self, answer: dict, output: str, depth: int) -> None:
        response = answer.get("response") or {}
        set_props = []
        with self.lock:
            for cid, props in response.items():
                for prop, value in (props or {}).items():
                    key = (cid, prop)
                    if key not in self.values:
                        continue  # never sent back (figures, children): not kept
                    if isinstance(value, dict) and value.get(PATCH_KEY):
                        value = apply_patch(self.values.get(key), value)
                    self.values[key] = value
                    set_props.append(f"{cid}.{prop}")
        if depth > 3 or not set_props:
            return
        for out, template in self.timers.items():  # Dash fires the callbacks whose inputs an answer set
            if out in (output, LIVE_OUTPUT):
                continue
            ins = {f"{d['id']}.{d['property']}" for d in _pairs(template, "inputs")}
            hit = [p for p in set_props if p in ins]
            if hit:
                self.post(template, hit, depth + 1)

    def poll_live(self) -> None:
        """The page's clientside poll: GET the rows after the live state's cursors, move the cursors on, and
        poke the Python callback when the page would (assets/training_live.js)."""
        with self.lock:
            state = self.values.get(("train-state", "data"))
        if not (isinstance(state, dict) and state.get("key") and state.get("cursors") is not None):
            return  # no figures yet: the page waits too
        t0 = time.perf_counter()
        status, size, error, answer = None, 0, None, None
        try:
            status, raw = self._send(None, live_url(state))
            size = len(raw)
            if status == 200:
                answer = json.loads(raw)
            else:
                error = f"HTTP {status} for the live route: {raw[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__} for the live route: {str(exc)[:200]}"
        self.stats.add(LIVE_OUTPUT, (time.perf_counter() - t0) * 1000, status, size, error, False)
        if answer is not None:
            self.take_live(state, answer)

    def stream_live(self, halt: threading.Event, active: threading.Event) -> None:
        """The page's live stream: open it from the live state's cursors, take each update (moving the cursors
        on, poking the Python callback when the page would), and open it again when it ends, when an update
        does not join the state's cursors, or after a block without viewers (the page is closed meanwhile)."""
        template = self.timers[LIVE_OUTPUT]
        while not halt.is_set():
            if not active.wait(0.2):
                continue
            with self.lock:
                state = self.values.get(("train-state", "data"))
            if not (isinstance(state, dict) and state.get("key") and state.get("cursors") is not None):
                time.sleep(template["period_s"])
                continue
            path = live_url(state).replace(LIVE_PATH, STREAM_PATH)
            host, port = self.base.split("//", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            t0, error, status = time.perf_counter(), None, None
            try:
                conn.request("GET", path, headers={"Accept": "text/event-stream"})
                self.stream_sock = conn.sock
                resp = conn.getresponse()
                status = resp.status
                if status != 200:
                    error = f"HTTP {status} for the live stream: {resp.read()[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__} for the live stream: {str(exc)[:200]}"
            self.stats.add(LIVE_OUTPUT, (time.perf_counter() - t0) * 1000, status, 0, error, False)
            if error:
                conn.close()
                time.sleep(1.0)
                continue
            ended = None
            try:
                ended = self._take_stream(resp, state, halt, active)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if not halt.is_set() and active.is_set():  # not closed by close_stream
                    self.stats.add(LIVE_OUTPUT, 0.0, None, 0, f"{type(exc).__name__} in the live stream: {exc}", False)
            finally:
                resp.close()
                conn.close()
            if ended == "busy":  # all of that worker's streams taken: the page polls for a while, then asks again
                with self.stats.lock:
                    self.stats.busy += 1
                until = time.monotonic() + FALLBACK_S
                while time.monotonic() < until and active.is_set() and not halt.is_set():
                    self.poll_live()
                    halt.wait(POLL_S)

    def close_stream(self) -> None:
        """Close the live stream now (a block without viewers begins: the page is closed, not just quiet).
        The reading thread's next read fails or ends; the server stops writing at its next tick."""
        sock = self.stream_sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _take_stream(self, resp, state: dict, halt: threading.Event, active: threading.Event) -> str | None:
        event, data = None, []
        while not halt.is_set() and active.is_set():
            line = resp.readline()
            if not line:
                return  # the server closed it
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:])
            elif not line:  # an event's end
                if event in ("end", "busy"):
                    return event
                if data:
                    body = b"\n".join(data)
                    with self.stats.lock:
                        self.stats.messages += 1
                        self.stats.message_bytes += len(body)
                    state = self.take_live(state, json.loads(body))
                    if state is None:
                        with self.stats.lock:
                            self.stats.reopened += 1
                        return
                event, data = None, []

    def take_live(self, state: dict, answer: dict) -> dict | None:
        """Take one live answer as the page does: move the live state's cursors on (None when the answer does
        not start at them: whole figures came meanwhile, the stream is opened again) and poke the Python
        callback when the page would."""
        with self.lock:
            current = self.values.get(("train-state", "data"))
            seen = self.values.get(("train-seen", "data"))
        if current is not state:
            return None
        for rid, part in (answer.get("r") or {}).items():
            if part and "from" in part and part["from"] != state["cursors"].get(rid, 0) and part["cursor"] != part["from"]:
                return None
        want = live_needs(answer, state["key"]["runs"], state, seen)
        new_state = state
        if want != "rebuild":
            with self.lock:
                if self.values.get(("train-state", "data")) is state:  # no whole figures came meanwhile
                    new_state = self.values[("train-state", "data")] = advanced(state, answer)
        if want and self.poke_template is not None:
            sig = f"rebuild:{state.get('gen')}" if want == "rebuild" else \
                "status:" + json.dumps([answer.get("runs")] + [(r or {}).get("status") for r in answer["r"].values()]
                                       + [(r or {}).get("samples") for r in answer["r"].values()])
            now = time.monotonic()
            if sig != self.poked or now - self.poked_at >= REPOKE_S:
                self.poked, self.poked_at, self.pokes = sig, now, self.pokes + 1
                with self.lock:
                    self.values[POKE] = {"n": self.pokes, "rebuild": want == "rebuild"}
                self.post(self.poke_template, [f"{POKE[0]}.{POKE[1]}"])
        return new_state if want != "rebuild" else None

    def open_page(self) -> None:
        for body in self.first:
            self.post(body, opening=True)

    def run_timer(self, output: str, halt: threading.Event, active: threading.Event, phase: float) -> None:
        template = self.timers[output]
        interval_inputs = [d for d in _pairs(template, "inputs") if d["property"] == "n_intervals"]
        if output == LIVE_OUTPUT and template.get("stream"):
            self.stream_live(halt, active)
            return
        send = self.poll_live if output == LIVE_OUTPUT else lambda: self.post(template)
        period, n, due = template["period_s"], 0, time.monotonic()
        while not halt.is_set():
            if not active.is_set():  # a block without viewers: the page waits (its state is kept)
                active.wait(0.2)
                due = time.monotonic() + phase * period  # its timer's own phase, as before the pause
                continue
            wait = due - time.monotonic()
            if wait > 0 and halt.wait(wait):
                break
            if not active.is_set():
                continue
            n += 1
            with self.lock:
                for d in interval_inputs:
                    self.values[(d["id"], "n_intervals")] = n
            send()
            due = max(due + period, time.monotonic())


def start_viewers(pages: list[tuple[str, list, dict]], viewers: int, stats: Stats, halt: threading.Event,
                  active: threading.Event, timeout: float) -> tuple[list[threading.Thread], list[Viewer]]:
    """Threads of ``viewers`` pages (alternating over ``pages``): each opens its page once when ``active`` is
    first set, then runs its timers while ``active`` is set, until ``halt``."""
    threads, pages_open = [], []
    for i in range(viewers):
        base, first, timers = pages[i % len(pages)]
        viewer = Viewer(base, first, timers, stats, timeout)
        phase = i / max(1, viewers)
        delay = phase * min(t.get("period_s", 1.0) for t in timers.values())

        def open_then_poll(v=viewer, delay=delay, phase=phase):
            while not active.wait(0.2):
                if halt.is_set():
                    return
            time.sleep(delay)  # spread the page opens over one period, as viewers arrive at different times
            v.open_page()
            inner = [threading.Thread(target=v.run_timer, args=(out, halt, active, phase), daemon=True)
                     for out in v.timers]
            for th in inner:
                th.start()
            for th in inner:
                th.join()

        threads.append(threading.Thread(target=open_then_poll, daemon=True))
        pages_open.append(viewer)
    for th in threads:
        th.start()
    return threads, pages_open
