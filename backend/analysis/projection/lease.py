"""How the analysis worker (:mod:`backend.analysis.projection.worker`) holds its lease and stops.

:class:`AnalysisLease` is the store's ``analysis`` lease: one worker computes maps, the others stand by and
take over within ``LEASE_RENEW_S`` of a clean exit, ``LEASE_TTL_S`` of a crash. :class:`StopFlag` and
:func:`interruptible` are how SIGTERM stops the worker at any moment with status 0: a flag its loop and waits
check, and an exception (:class:`Terminated`) only inside a map computation.
"""
from __future__ import annotations

import logging
import os
import secrets
import select
import signal
import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from backend.store import RunStore

log = logging.getLogger("deepscope.analysis")

LEASE_NAME = "analysis"
LEASE_TTL_S = 20.0   # a holder that stops renewing (killed, store unreachable) loses the lease after this
LEASE_RENEW_S = 5.0  # the holder renews this often; a standby worker tries to take it this often


class Terminated(BaseException):
    """Raised by the SIGTERM handler inside a map computation only (see ``backend.analysis.projection.worker.main``).

    Deliberately not ``KeyboardInterrupt``: CPython 3.11 marks a ``KeyboardInterrupt`` that leaves any
    ``exec()`` / ``eval()`` of a string (dataclasses and namedtuple build their methods that way, e.g.
    while a module is imported) as "unhandled", and ``python -m`` then ends the process by SIGINT (-2)
    even after the exception was caught and ``sys.exit(0)`` called.
    """


_region = threading.local()  # .interruptible: this thread is inside compute() (see interruptible)


@contextmanager
def interruptible():
    """Mark the calling thread as computing a map: SIGTERM raises :class:`Terminated` there.

    A t-SNE map can take longer than a dashboard waits after SIGTERM (``JobManager`` kills after 5 s),
    and :func:`compute` only asks its ``stop`` between maps; it was written to be interrupted anywhere
    (it writes the ``idle`` status on the way out).
    """
    _region.interruptible = True
    try:
        yield
    finally:
        _region.interruptible = False


class StopFlag:
    """Set by the SIGTERM handler; :meth:`wait` sleeps until it is set or a timeout passes.

    Set from a signal handler, so it takes no lock (a ``threading.Event`` would deadlock if the signal
    arrived while the main thread held the event's own lock in ``wait``): a bool, plus a byte written
    to a pipe that :meth:`wait` selects on. With :meth:`wake_on_signals` the C-level signal handler
    writes that byte too, so a signal that arrives just before ``select`` starts still wakes it.
    """

    def __init__(self):
        self._set = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def wake_on_signals(self) -> None:
        """Have every signal with a Python handler wake :meth:`wait` (main thread only)."""
        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def set(self) -> None:
        self._set = True
        try:
            os.write(self._w, b"\0")
        except OSError:  # the pipe is full: wait() wakes up anyway
            pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, less once the flag is set; returns whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([self._r], [], [], left)[0]:
                try:  # a byte from another signal (e.g. SIGINT, which raises on its own) must not spin
                    while os.read(self._r, 512):
                        pass
                except OSError:
                    pass
        return self._set


def in_interruptible() -> bool:
    """Whether the calling thread is inside :func:`interruptible` (the SIGTERM handler raises there)."""
    return getattr(_region, "interruptible", False)


class AnalysisLease:
    """The store's ``analysis`` lease for this process, renewed in a daemon thread while held.

    A renewal that finds the lease taken by someone else, or that has not succeeded for ``ttl`` seconds
    (the store was unreachable, so another worker may have taken it), marks it lost: :meth:`held`
    turns False and the worker stops its current map and stands by again.

    Example::

        lease = AnalysisLease(store, ttl=20, renew_s=5)
        if lease.wait(should_stop=lambda: False):   # blocks until this worker holds it
            ...                                        # work while lease.held()
        lease.release()
    """

    def __init__(self, store: RunStore, ttl: float = LEASE_TTL_S, renew_s: float = LEASE_RENEW_S,
                 name: str = LEASE_NAME):
        if not 0 < renew_s < ttl:
            raise ValueError(f"renew the lease (every {renew_s} s) well within its ttl ({ttl} s)")
        self.store, self.ttl, self.renew_s, self.name = store, ttl, renew_s, name
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held = threading.Event()
        self._renewed_at = 0.0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # set by release(): the renewal thread stops at once

    def held(self) -> bool:
        """True while this process holds the lease (as far as its last renewal knows)."""
        return self._held.is_set()

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired (one store call; a store error counts as "no")."""
        try:
            ok = self.store.acquire_lease(self.name, self.holder, ttl=self.ttl)
        except Exception as exc:  # noqa: BLE001 - the store may be briefly unavailable
            log.warning("could not ask for the %s lease: %s", self.name, exc)
            return False
        if ok:
            self._renewed_at = time.monotonic()
            self._held.set()
            if self._thread is None or not self._thread.is_alive() or self._wake.is_set():
                self._wake = threading.Event()  # a thread told to stop by release() keeps its own event
                self._thread = threading.Thread(target=self._renew, args=(self._wake,), name="analysis-lease",
                                                daemon=True)
                self._thread.start()
        return ok

    def wait(self, should_stop: Callable[[], bool], poll: float | None = None,
             sleep: Callable[[float], Any] = time.sleep) -> bool:
        """Try every ``poll`` seconds (default ``renew_s``) until held (True) or ``should_stop()`` (False).

        ``sleep`` waits between tries (the worker passes its :meth:`StopFlag.wait`, which SIGTERM cuts short).
        """
        while not self.try_acquire():
            if should_stop():
                return False
            sleep(self.renew_s if poll is None else poll)
            if should_stop():
                return False
        return True

    def release(self) -> None:
        """Give the lease up so a standby worker takes over at once (a clean exit).

        The renewal thread is stopped and waited for first: a renewal still in flight would otherwise
        write the lease back after it was deleted (the row would outlive this process by ``ttl``).
        """
        self._wake.set()
        if not self._held.is_set():
            return
        self._held.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)  # a renewal is one store call; never hang the exit on it
        try:
            self.store.release_lease(self.name, self.holder)
        except Exception as exc:  # noqa: BLE001 - it expires by itself after ttl
            log.warning("could not release the %s lease (it expires in %.0f s): %s", self.name, self.ttl, exc)

    def _renew(self, wake: threading.Event) -> None:
        while self._held.is_set():
            if wake.wait(self.renew_s) or not self._held.is_set():
                return
            try:
                ok = self.store.acquire_lease(self.name, self.holder, ttl=self.ttl)
            except Exception as exc:  # noqa: BLE001
                ok = time.monotonic() - self._renewed_at < self.ttl  # still ours until it would expire
                log.warning("could not renew the %s lease: %s", self.name, exc)
            else:
                self._renewed_at = time.monotonic() if ok else self._renewed_at
            if wake.is_set():  # released meanwhile: release() deletes the row once this thread is done
                return
            if not ok:
                log.warning("lost the %s lease (another worker holds it now); standing by", self.name)
                wake.set()  # first: a try_acquire() that sees the lease lost starts a renewal thread of its own
                self._held.clear()
                return
