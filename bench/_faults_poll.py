"""A page of the Training tab, played over HTTP: its Python callback and its live route about once a second.

:class:`Poller` builds each callback request from ``/_dash-dependencies`` (as the browser does), keeps the
live state (cursors) from one answer to the next (applying Dash ``Patch`` answers), asks the live route
(``/_deepscope/live``, dashboard/views/training/live_route.py) for the rows after its cursors as the page's
clientside poll does (assets/training_live.js, when no live stream can be had: a resumed run or a new series
asks the callback for whole figures, :func:`live_needs`; the stream sends the same answers, and
tests/browser/test_reconnect.py follows it through a dashboard's death), and counts what came back: HTTP 5xx, connection errors (expected while a
dashboard is deliberately down), slow answers, and ``live_backwards``: answers that made a curve the page
holds run back in step (an extension whose first step is not after the trace's last, e.g. a resumed run
streaming steps the page already drew).

Example::

    poller = Poller([run_a, run_b]); poller.set_targets([8050]); poller.start()
    ...; poller.stop(); poller.summary()     # {"http_500": 0, "requests": 412, ...}
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

DISPATCH = "/_dash-update-component"
LIVE_PATH = "/_deepscope/live"
POKE = ("train-poke", "data")
LIVE_OUTPUT = "train-state.data"
STATUS_OUTPUT = "train-status.children"
PATCH_KEY = "__dash_patch_update"


def apply_patch(target: Any, patch: dict) -> Any:
    """``target`` after Dash's ``Patch`` operations (Assign, Extend, Append, Merge, Delete) in ``patch``."""
    target = json.loads(json.dumps(target)) if target is not None else {}  # a copy: JSON in, JSON out
    for op in patch.get("operations", []):
        *path, last = op["location"] or [None]
        node = target
        for key in path:
            node = node[key]
        value = op.get("params", {}).get("value")
        kind = op["operation"]
        if last is None:
            continue
        if kind == "Assign":
            node[last] = value
        elif kind == "Extend":
            node[last].extend(value)
        elif kind == "Append":
            node[last].append(value)
        elif kind == "Merge":
            node[last].update(value)
        elif kind == "Delete":
            del node[last]
    return target


def live_needs(answer: dict, runs: list[str], state: dict, seen: Any) -> str | None:
    """What a live-route answer asks of the page's Python callback, as assets/training_live.js decides it:
    ``"rebuild"`` (a run was resumed, or logged a series the page has no trace for), ``"status"`` (a status,
    the text samples or the run list differ from what ``seen`` says is drawn), or None."""
    parts = answer.get("r") or {}
    for rid in runs:
        run = parts.get(rid)
        if not run:
            continue
        if (run.get("attempt") or 0) != ((state.get("attempts") or {}).get(rid) or 0):
            return "rebuild"
        for chunk in run.get("chunks") or []:
            for name, s in chunk.items():
                entry = (state.get("traces") or {}).get(f"{rid}|{name}")
                if entry is None or (entry.get("smooth") is not None and "c" not in s):
                    return "rebuild"
    if not isinstance(seen, dict) or answer.get("runs") != seen.get("runs"):
        return "status"
    for rid in runs:
        run = parts.get(rid)
        shown, samples = (seen.get("status") or {}).get(rid), (seen.get("samples") or {}).get(rid)
        if not run:
            if shown is not None:
                return "status"
            continue
        if (run.get("status") or None) != (shown or None) or (run.get("samples") or None) != (samples or None):
            return "status"
    return None


def live_url(state: dict, smoothing: float | None = None) -> str:
    """The live route's address for the runs and cursors of a live ``state`` (what the page's poll asks)."""
    runs = state["key"]["runs"]
    since = ",".join(str(state["cursors"].get(r, 0)) for r in runs)
    weight = state["key"]["smoothing"] if smoothing is None else smoothing
    return f"{LIVE_PATH}?run={','.join(runs)}&since={since}&smooth={weight}"


def advanced(state: dict, answer: dict) -> dict:
    """``state`` with its cursors moved to the answer's (a new dict: the old one is not changed)."""
    cursors = dict(state["cursors"])
    for rid, run in (answer.get("r") or {}).items():
        if run and rid in cursors and isinstance(run.get("cursor"), int):
            cursors[rid] = run["cursor"]
    return {**state, "cursors": cursors}


class _Page:
    """One open page on one dashboard: its live state and what its curves hold (steps only)."""

    def __init__(self):
        self.state: Any = None
        self.traces: dict[str, list[list]] = {}  # panel -> per trace: [last step, points]
        self.n = 0
        self.seen: Any = None
        self.rebuild = False  # the live route said whole figures are needed: the next callback asks for them


class Poller(threading.Thread):
    """Polls the Training page's status and live callbacks of every target dashboard every ``period`` s."""

    def __init__(self, run_ids: list[str], period: float = 1.0, timeout: float = 60.0, slow_s: float = 5.0):
        super().__init__(name="faults-poller", daemon=True)
        self.run_ids, self.period, self.timeout, self.slow_s = list(run_ids), period, timeout, slow_s
        self.session = requests.Session()
        self._targets: list[int] = []
        self._pages: dict[int, _Page] = {}
        self._deps: dict[int, dict[str, dict]] = {}
        self._down: set[int] = set()  # ports whose dashboard is down on purpose
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.requests = self.ok = self.no_content = self.http_500 = 0
        self.conn_errors = self.unexpected_conn_errors = self.slow = self.backwards = 0
        self._went_back = False
        self.max_s = 0.0
        self.errors: list[str] = []  # a few 5xx / unexpected failures, for the log

    # -- steering ---------------------------------------------------------------------------------
    def set_targets(self, ports: list[int]) -> None:
        with self._lock:
            self._targets = list(ports)

    def expect_down(self, port: int, down: bool = True) -> None:
        """Connection errors from ``port`` do not count while it is down on purpose."""
        with self._lock:
            (self._down.add if down else self._down.discard)(port)

    def stop(self) -> None:
        self._halt.set()
        self.join(self.timeout + 5)

    def run(self) -> None:
        while not self._halt.is_set():
            t0 = time.monotonic()
            with self._lock:
                targets = list(self._targets)
            for port in targets:
                self._tick(port)
            self._halt.wait(max(0.05, self.period - (time.monotonic() - t0)))

    # -- one tick ------------------------------------------------------------------------------------
    def _tick(self, port: int) -> None:
        deps = self._deps.get(port) or self._fetch_deps(port)
        if deps is None:
            return
        page = self._pages.setdefault(port, _Page())
        page.n += 1
        values = {("train-interval", "n_intervals"): page.n, ("train-status-interval", "n_intervals"): page.n,
                  ("train-runs", "value"): self.run_ids, ("train-smoothing", "value"): 0.6,
                  ("train-state", "data"): page.state, ("train-runs", "options"): None,
                  ("train-seen", "data"): page.seen, POKE: {"n": page.n, "rebuild": page.rebuild}}
        # one callback answers both on a Training page with one timer (dashboard/views/training/tick.py): post it once
        status = None if deps[STATUS_OUTPUT] is deps[LIVE_OUTPUT] else self._post(port, deps[STATUS_OUTPUT], values,
                                                                                  "status")
        live = self._post(port, deps[LIVE_OUTPUT], values, "live")
        if live is not None:
            self._went_back = False
            self._take_live(page, live)
            self.backwards += self._went_back  # one answer that drew a curve back, however many traces
        del status
        if isinstance(page.state, dict) and any(d["id"] == POKE[0] for d in deps[LIVE_OUTPUT]["inputs"]):
            self._poll_route(port, page)

    def _poll_route(self, port: int, page: _Page) -> None:
        """What the page's clientside poll does: the rows after its cursors, drawn on its traces."""
        answer = self._get(port, live_url(page.state, 0.6), "route")
        if answer is None:
            return
        runs = page.state["key"]["runs"]
        if live_needs(answer, runs, page.state, page.seen) == "rebuild":
            page.rebuild = True
            return
        self._went_back = False
        for rid in runs:
            for chunk in ((answer.get("r") or {}).get(rid) or {}).get("chunks", []):
                for name, s in chunk.items():
                    entry = page.state["traces"][f"{rid}|{name}"]
                    for index in (entry["raw"], entry["smooth"]):
                        if index is not None:
                            self._extend_trace(page, f"train-graph-{entry['panel']}", index, s.get("x") or [])
        self.backwards += self._went_back
        page.state = advanced(page.state, answer)

    def _send(self, port: int, label: str, send) -> requests.Response | None:
        """``send()`` timed and counted; None (and counted) when the connection failed or the server answered 5xx."""
        t0 = time.monotonic()
        try:
            answer = send()
        except requests.RequestException as exc:
            self._connection_failed(port, exc, label)
            return None
        took = time.monotonic() - t0
        self.requests += 1
        self.max_s = max(self.max_s, took)
        self.slow += took > self.slow_s
        if answer.status_code >= 500:
            self._server_error(port, label, answer)
            return None
        return answer

    def _json(self, port: int, label: str, answer: requests.Response, read):
        self.ok += answer.status_code == 200
        try:
            return read(answer)
        except ValueError:
            self.errors.append(f"port {port} {label}: {answer.status_code} answer is not JSON")
            return None

    def _get(self, port: int, path: str, label: str) -> dict | None:
        answer = self._send(port, label, lambda: self.session.get(f"http://127.0.0.1:{port}{path}",
                                                                  timeout=self.timeout))
        if answer is None:
            return None
        return self._json(port, label, answer, lambda a: a.json() if a.status_code == 200 else None)

    def _fetch_deps(self, port: int) -> dict[str, dict] | None:
        try:
            answer = self.session.get(f"http://127.0.0.1:{port}/_dash-dependencies", timeout=self.timeout)
        except requests.RequestException as exc:
            self._connection_failed(port, exc, "dependencies")
            return None
        self.requests += 1
        if answer.status_code >= 500:
            self._server_error(port, "dependencies", answer)
            return None
        found = {}
        for dep in answer.json():
            parts = dep["output"].strip(".").split("...")
            for key in (LIVE_OUTPUT, STATUS_OUTPUT):
                if key in parts:
                    found[key] = dep
        if len(found) != 2:
            raise RuntimeError(f"the Training page callbacks were not found in /_dash-dependencies of port {port}")
        self._deps[port] = found
        return found

    def _post(self, port: int, dep: dict, values: dict, label: str) -> dict | None:
        outputs = []
        for part in dep["output"][2:-2].split("..."):
            id_, prop = part.rsplit(".", 1)
            outputs.append({"id": id_, "property": prop})
        body = {"output": dep["output"], "outputs": outputs,
                "inputs": [{**d, "value": values.get((d["id"], d["property"]))} for d in dep["inputs"]],
                "state": [{**d, "value": values.get((d["id"], d["property"]))} for d in dep["state"]],
                "changedPropIds": [f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"]}
        answer = self._send(port, label, lambda: self.session.post(
            f"http://127.0.0.1:{port}{DISPATCH}", data=json.dumps(body),
            headers={"Content-Type": "application/json"}, timeout=self.timeout))
        if answer is None:
            return None
        if answer.status_code == 204:
            self.no_content += 1
            return None
        return self._json(port, label, answer, lambda a: a.json().get("response") or {})

    def _server_error(self, port: int, label: str, answer: requests.Response) -> None:
        self.http_500 += 1
        if len(self.errors) < 20:
            self.errors.append(f"{time.strftime('%H:%M:%S')} port {port} {label}: HTTP {answer.status_code} "
                               f"{answer.text[:300]!r}")

    def _connection_failed(self, port: int, exc: Exception, label: str) -> None:
        self.conn_errors += 1
        with self._lock:
            expected = port in self._down
        if not expected:
            self.unexpected_conn_errors += 1
            if len(self.errors) < 20:
                self.errors.append(f"{time.strftime('%H:%M:%S')} port {port} {label}: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}")
        self._deps.pop(port, None)  # a restarted dashboard is asked again

    # -- the live callback's answer ------------------------------------------------------------------
    def _take_live(self, page: _Page, response: dict) -> None:
        data = (response.get("train-state") or {}).get("data")
        if isinstance(data, dict) and data.get(PATCH_KEY):
            page.state = apply_patch(page.state, data)
        elif data is not None:
            page.state = data
            page.rebuild = False
        seen = (response.get("train-seen") or {}).get("data")
        if seen is not None:
            page.seen = seen
        for sid, props in response.items():
            if not sid.startswith("train-graph-") or "figure" not in props:
                continue
            panel, figure = sid, props["figure"]
            if isinstance(figure, dict) and figure.get(PATCH_KEY):
                self._extend(page, panel, figure)
            elif isinstance(figure, dict):
                page.traces[panel] = [[_last(t.get("x")), len(t.get("x") or [])] for t in figure.get("data", [])]

    def _extend(self, page: _Page, panel: str, patch: dict) -> None:
        traces = page.traces.setdefault(panel, [])
        for op in patch.get("operations", []):
            loc, value = op.get("location") or [], op.get("params", {}).get("value")
            if op["operation"] == "Append" and loc == ["data"]:
                traces.append([_last((value or {}).get("x")), len((value or {}).get("x") or [])])
            elif op["operation"] == "Extend" and len(loc) == 3 and loc[0] == "data" and loc[2] == "x":
                self._extend_trace(page, panel, loc[1], value or [])

    def _extend_trace(self, page: _Page, panel: str, index: int, value: list) -> None:
        traces = page.traces.setdefault(panel, [])
        if index >= len(traces) or not value:
            return
        last, count = traces[index]
        steps = [v for v in value if isinstance(v, (int, float))]
        if (last is not None and steps and steps[0] <= last) or any(b <= a for a, b in zip(steps, steps[1:])):
            self._went_back = True
        traces[index] = [steps[-1] if steps else last, count + len(value)]

    def summary(self) -> dict:
        return {"http_500": self.http_500, "requests": self.requests, "ok": self.ok, "no_content": self.no_content,
                "conn_errors_expected": self.conn_errors - self.unexpected_conn_errors,
                "conn_errors_unexpected": self.unexpected_conn_errors, "slow_answers": self.slow,
                "max_answer_s": round(self.max_s, 2), "live_backwards": self.backwards}


def _last(xs: Any) -> Any:
    return xs[-1] if isinstance(xs, list) and xs and isinstance(xs[-1], (int, float)) else None
