"""Surviving a store that is briefly unreachable: which errors to retry, backoff, and an outage clock.

A database restart, a network blip or a SQLite file locked by another process must not end a run.
Writers ask :func:`is_transient` whether an error is worth retrying (a lost connection is, a constraint
violation is not), retry with :func:`call_with_retry` (capped exponential backoff with jitter), and
report to the :class:`OutageClock` of their store, which says since when the store has been unreachable.
Past :func:`outage_limit_s` (``$DEEPSCOPE_STORE_OUTAGE_S``, default 10 minutes) a trainer checkpoints and
ends as ``interrupted``. Live processes write a heartbeat every :data:`HEARTBEAT_S` seconds.

Example::

    run = call_with_retry(lambda: store.get_run(run_id), deadline_s=60)
    clock = outage_clock(store)
    if clock.failed(exc):            # True once per outage: log it once
        log.warning("store unreachable: %s", exc)
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from typing import Callable, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

HEARTBEAT_S = 5.0  # a live trainer or client run writes runs.heartbeat_at this often (from a background thread)
DEFAULT_OUTAGE_S = 600.0  # how long a trainer keeps training while the store is unreachable
OUTAGE_ENV = "DEEPSCOPE_STORE_OUTAGE_S"

# SQLite reports both passing trouble and mistakes (no such table, syntax) as OperationalError: only these are
# passing trouble
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy", "unable to open",
                     "disk i/o error")
_NOT_TRANSIENT = (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.DataError, sa.exc.NoSuchTableError)


def outage_limit_s() -> float:
    """Seconds a run may go on without its store: ``$DEEPSCOPE_STORE_OUTAGE_S``, default 600 (read when a
    store's :class:`OutageClock` is made), e.g. ``DEEPSCOPE_STORE_OUTAGE_S=1800 deepscope train ...``."""
    raw = os.environ.get(OUTAGE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_OUTAGE_S
    except ValueError:
        return DEFAULT_OUTAGE_S
    return value if value >= 0 else DEFAULT_OUTAGE_S


def describe_s(seconds: float) -> str:
    """A duration as people say it: ``2 seconds``, ``10 minutes``.

    >>> describe_s(2), describe_s(600), describe_s(90)
    ('2 seconds', '10 minutes', '90 seconds')
    """
    if seconds >= 120 and seconds % 60 == 0 or seconds >= 600:
        n = round(seconds / 60, 1)
        return f"{n:g} minutes"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def outage_reason(limit_s: float, step: int) -> str:
    """What an ``interrupted`` run says when the store was unreachable for too long."""
    return (f"the store was unreachable for more than {describe_s(limit_s)}; "
            f"resume continues from step {int(step)}")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the store being unreachable or busy (retry later) rather than a mistake.

    Lost or refused connections, a database shutting down, a locked or unopenable SQLite file: transient.
    Integrity, programming and data errors, or a SQLite "no such table": not.

    >>> is_transient(sqlite3.OperationalError("database is locked")), is_transient(ValueError("x"))
    (True, False)
    """
    seen = 0
    while exc is not None and seen < 5:  # SQLAlchemy wraps the driver's error in .orig
        if isinstance(exc, _NOT_TRANSIENT):
            return False
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sa.exc.TimeoutError):  # no free connection in the pool
            return True
        if isinstance(exc, sqlite3.Error):
            return isinstance(exc, sqlite3.OperationalError) and _sqlite_transient(exc)
        if _driver_transient(exc):
            return True
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            orig = getattr(exc, "orig", None)
            if orig is None or not isinstance(orig, sqlite3.Error):
                return True  # PostgreSQL & co: server gone, shutting down, connection refused or reset
            exc = orig
        else:
            exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return False


def brief(exc: BaseException) -> str:
    """``Type: first line of the message``, for a log line (SQLAlchemy appends the SQL and a link).

    >>> brief(sqlite3.OperationalError("database is locked"))
    'OperationalError: database is locked'
    """
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _sqlite_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in _SQLITE_TRANSIENT)


def _driver_transient(exc: BaseException) -> bool:
    """psycopg2/psycopg/pymysql OperationalError or InterfaceError, without importing the drivers."""
    module = type(exc).__module__ or ""
    if not module.startswith(("psycopg", "pymysql", "MySQLdb", "pg8000")):
        return False
    return any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(exc).__mro__)


class Backoff:
    """Capped exponential delays with jitter: ``first``, ``2 first``, ... up to ``cap`` seconds.

    >>> b = Backoff(0.1, 5, jitter=0); [b.next() for _ in range(8)]
    [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]
    """

    def __init__(self, first: float = 0.1, cap: float = 5.0, jitter: float = 0.25):
        self.first, self.cap, self.jitter = first, cap, jitter
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        if self.jitter:  # spread retries of many processes so a recovering server is not hit at once
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        return delay

    def reset(self) -> None:
        self._next = self.first


def call_with_retry(fn: Callable[[], T], *, deadline_s: float, first_delay: float = 0.1, max_delay: float = 5.0,
                    clock: "OutageClock | None" = None, stop: threading.Event | None = None,
                    sleep: Callable[[float], object] = time.sleep) -> T:
    """``fn()``, retried on transient store errors until ``deadline_s`` seconds have passed.

    Other errors, and the last transient one past the deadline (or once ``stop`` is set), are raised.
    ``clock`` hears of each failure and success.

    >>> call_with_retry(lambda: 42, deadline_s=1)
    42
    """
    end = time.monotonic() + max(0.0, deadline_s)
    backoff = Backoff(first_delay, max_delay)
    while True:
        started = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if clock is not None:
                clock.failed(exc, since=started)
            delay = min(backoff.next(), end - time.monotonic())
            if delay <= 0 or (stop is not None and stop.is_set()):
                raise
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                sleep(delay)
            continue
        if clock is not None:
            clock.ok()
        return result


class OutageClock:
    """Since when the store has been unreachable, shared by every writer of one process and store.

    ``failed`` and ``ok`` are what writers report; :meth:`exceeded` says when the outage has lasted
    past ``limit_s``. A successful read does not end an outage: writers report, readers only consult.
    """

    def __init__(self, limit_s: float | None = None, now: Callable[[], float] = time.monotonic):
        self.limit_s = outage_limit_s() if limit_s is None else float(limit_s)
        self.now = now
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def down_for(self) -> float:
        since = self.down_since
        return 0.0 if since is None else max(0.0, self.now() - since)

    def exceeded(self) -> bool:
        """True when the store has been unreachable for longer than ``limit_s``."""
        return self.down_since is not None and self.down_for() > self.limit_s

    def failed(self, exc: BaseException | None = None, since: float | None = None) -> bool:
        """Report a transient failure (of an attempt begun at ``since``); True when it starts an outage."""
        with self._lock:
            self.last_error = brief(exc) if exc is not None else self.last_error
            if self.down_since is not None:
                return False
            self.down_since = min(since, self.now()) if since is not None else self.now()
            return True

    def ok(self) -> float | None:
        """Report a successful write; returns how long the outage lasted when this ends one, else None."""
        if self.down_since is None:  # the common case: no lock
            return None
        with self._lock:
            if self.down_since is None:
                return None
            lasted, self.down_since = self.now() - self.down_since, None
            return lasted


_CLOCKS: "weakref.WeakKeyDictionary[object, OutageClock]" = weakref.WeakKeyDictionary()
_CLOCKS_LOCK = threading.Lock()


def outage_clock(store: object) -> OutageClock:
    """The one :class:`OutageClock` of ``store`` in this process (made on first use, limit from the env);
    a clock of its own for something that is not a store object (``None`` in tests)."""
    with _CLOCKS_LOCK:
        try:
            clock = _CLOCKS.get(store)
            if clock is None:
                clock = _CLOCKS[store] = OutageClock()
        except TypeError:  # cannot be weakly referenced
            return OutageClock()
        return clock
