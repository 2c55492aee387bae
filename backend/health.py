"""Health of the long-running services (docker-compose ``healthcheck``) and the heartbeat file behind it.

``deepscope health`` runs the checks it is asked for and exits 0 when all pass, 1 otherwise, one line
per check on stdout (what ``docker inspect`` shows)::

    deepscope health --url http://127.0.0.1:8050/_deepscope/health   # the dashboard answers 200
    deepscope health --store                                         # the store answers (DEEPSCOPE_STORE_URL)
    deepscope health --heartbeat /tmp/worker.json --max-age 30       # a service wrote its heartbeat lately

A service that runs a :class:`Heartbeat` (``deepscope worker --heartbeat FILE``) rewrites the file every
:data:`HEARTBEAT_S` seconds from a thread that asks the store a question first: a stale file means the
process is gone or frozen, or the store has not answered it for ``--max-age`` seconds.

Example::

    beat = Heartbeat("/tmp/hb.json", status=lambda: {"lease": "held"}).start()
    check_heartbeat("/tmp/hb.json", max_age=30)   # -> (True, "heartbeat 0.1 s old (pid 7, lease held)")
    beat.stop()                                    # removes the file: a stopped service is not healthy
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "DEEPSCOPE_HEARTBEAT"  # default heartbeat file of `deepscope worker` and `deepscope health`
HEARTBEAT_S = 5.0
MAX_AGE_S = 30.0


class Heartbeat:
    """Writes ``{"time", "pid", "host", **status()}`` to ``path`` now and every ``every`` seconds (a daemon
    thread). A ``status()`` that raises (the store does not answer) writes nothing, so the file goes stale."""

    def __init__(self, path: str | Path, status: Callable[[], dict], every: float = HEARTBEAT_S):
        self.path, self.status, self.every = Path(path), status, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat(self) -> bool:
        """Write the file once (atomically: a reader never sees half of it); True when written. Never
        raises: a status that does not answer, or a full or read-only disk, leaves the file stale (said
        once until it is written again), so the caller (the agent's queue loop) goes on."""
        try:
            record = {**self.status(), "time": time.time(), "pid": os.getpid(), "host": socket.gethostname()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        except Exception as exc:  # noqa: BLE001 - whatever stops the beat makes the file stale
            if not self._failing:
                log.warning("heartbeat not written to %s: %s", self.path, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def start(self) -> Heartbeat:
        def loop() -> None:
            while not self._stop.is_set():
                self.beat()
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, name="deepscope-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and remove the file (a service that stopped is not healthy)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.every + 5)
        self.path.unlink(missing_ok=True)


def check_heartbeat(path: str | Path | None, max_age: float = MAX_AGE_S) -> tuple[bool, str]:
    """Is the heartbeat at ``path`` at most ``max_age`` seconds old, and its process (on this host) alive?"""
    if not path:
        return False, f"no heartbeat file named (--heartbeat FILE or ${HEARTBEAT_ENV})"
    try:
        record = json.loads(Path(path).read_text())
        age = time.time() - float(record["time"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable heartbeat in {path}: {exc}"
    pid, extra = record.get("pid"), ", ".join(f"{k} {v}" for k, v in record.items()
                                               if k not in ("time", "pid", "host"))
    if record.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return False, f"the process that wrote {path} (pid {pid}) is gone"
    if age > max_age:
        return False, f"heartbeat in {path} is {age:.0f} s old (more than {max_age:.0f} s): frozen, or the store " \
                      "does not answer it"
    return True, f"heartbeat {age:.1f} s old (pid {pid}{', ' + extra if extra else ''})"


def check_url(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Does a GET of ``url`` answer 200?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200, f"{url}: HTTP {r.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def check_store(data_dir: str, url: str | None, timeout: float = 5.0) -> tuple[bool, str]:
    """Does the store answer a query on its ``runs`` table? (SQLAlchemy only: no numpy, no schema changes.)"""
    import sqlalchemy as sa

    url = url or f"sqlite:///{Path(data_dir).expanduser().resolve() / 'deepscope.sqlite'}"
    args = {"connect_timeout": int(timeout)} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url, connect_args=args)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 FROM runs LIMIT 1"))
        return True, f"store {shown} answers"
    except sa.exc.SQLAlchemyError as exc:
        return False, f"store {shown}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_checks(checks: list[Callable[[], tuple[bool, str]]], say: Callable[[str], None] = print) -> int:
    """Run each check, say its line; 0 when all passed, else 1."""
    ok = True
    for check in checks:
        passed, line = check()
        say(("ok: " if passed else "FAILED: ") + line)
        ok = ok and passed
    return 0 if ok else 1
