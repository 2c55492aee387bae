"""Start a multi-process run under torchrun and supervise it (see :mod:`.distributed` for how the ranks work).

Example::

    status = launch(store, run_id, 2)   # "completed": torchrun ran `backend.training.worker` twice
"""
from __future__ import annotations

import collections
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

from .distributed import TORCHRUN, DistributedError, check_processes, device_kind

log = logging.getLogger(__name__)
TAIL_BYTES = 8192  # torchrun's output kept to say why a run failed


def torchrun_command(store, run_id: str, n: int, resume: bool = False, device: str | None = None,
                     progress: bool = False) -> list[str]:
    """The command that trains ``run_id`` on ``n`` local processes (torchrun running the trainer worker)."""
    cmd = [sys.executable, "-m", TORCHRUN, "--standalone", f"--nproc_per_node={n}",
           "--max_restarts=0", "--module", "backend.training.worker",
           "--data-dir", str(store.data_dir), "--run-id", run_id, "--device", device_kind(device)]
    if not store.url.startswith("sqlite"):
        cmd += ["--store-url", store.url]
    return cmd + (["--resume"] if resume else []) + (["--progress"] if progress else [])


def rank_env(n: int, environ=os.environ) -> dict[str, str]:
    """The environment of the ranks: the thread choice of one trainer shared among ``n`` processes (an
    explicit ``DEEPSCOPE_TORCH_THREADS`` is each rank's), so n ranks never ask for n times the cores."""
    from ..threads import ThreadChoice, explicit_threads, thread_choice, thread_env

    env = dict(environ)
    if explicit_threads(env) is None:
        one = thread_choice(env)
        k = max(1, one.threads // n)
        env.update(thread_env(ThreadChoice(k, f"{one.threads} thread(s) of one trainer over {n} processes"), env))
    else:
        env.update(thread_env(thread_choice(env), env))
    return env


def launch(store, run_id: str, n: int, resume: bool = False, device: str | None = None,
           progress: bool = False) -> str:
    """Train ``run_id`` on ``n`` processes under torchrun and wait; returns the run's final status.

    Output of the ranks passes through (the last 8 KiB are kept). When torchrun fails and the run is
    still active (a rank was killed, or died before rank 0 could record anything), the run is marked
    ``failed`` with torchrun's root cause; a SIGTERM to this process is passed on to torchrun (which stops
    the ranks) and the run ends ``interrupted``. DistributedError when the processes cannot start.
    """
    problem = check_processes(n, device)
    if problem:
        raise DistributedError(problem)
    cmd = torchrun_command(store, run_id, n, resume=resume, device=device, progress=progress)
    proc = subprocess.Popen(cmd, env=rank_env(n), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail: collections.deque[bytes] = collections.deque()
    pump = threading.Thread(target=_pump, args=(proc.stderr, tail), daemon=True)
    pump.start()
    terminated = []
    previous = _forward_sigterm(proc, terminated)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the ranks too: rank 0 checkpoints and records `stopped`
        rc = proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    pump.join(timeout=5)
    return _settle(store, run_id, rc, b"".join(tail).decode(errors="replace"), bool(terminated))


def _pump(stream, tail: collections.deque) -> None:
    """Copy torchrun's stderr to ours as it comes (progress bars included), keeping its last bytes."""
    size = 0
    for chunk in iter(lambda: stream.read1(4096), b""):
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
        tail.append(chunk)
        size += len(chunk)
        while size - len(tail[0]) >= TAIL_BYTES:
            size -= len(tail.popleft())


def _forward_sigterm(proc: subprocess.Popen, seen: list):
    """Pass a SIGTERM on to torchrun (which stops the ranks); only the main thread can install it."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def forward(signum, frame):
        seen.append(signum)
        proc.send_signal(signal.SIGTERM)
    return signal.signal(signal.SIGTERM, forward)


def _settle(store, run_id: str, rc: int, tail: str, terminated: bool) -> str:
    """The run's status after torchrun ended with ``rc``: what rank 0 recorded (with the rank that ended
    first put in front when it was another one), or why the processes ended."""
    from ..liveness import pid_alive
    from ..store import ACTIVE_STATUSES

    run = store.require_run(run_id)
    while run["status"] in ACTIVE_STATUSES and run.get("pid") not in (None, os.getpid()) and pid_alive(run["pid"]):
        time.sleep(1.0)  # torchrun itself was killed and left rank 0 training: it will record the end
        run = store.require_run(run_id)
    if rc == 0 or (run["status"] not in ACTIVE_STATUSES and run["status"] != "failed"):
        if rc != 0:
            log.warning("torchrun exited with code %d after run %s ended %s", rc, run_id, run["status"])
        return run["status"]
    if terminated and run["status"] in ACTIVE_STATUSES:
        why = "the training processes were terminated (SIGTERM to their supervisor); resume continues the run"
        store.mark_interrupted(run_id, why)
        return "interrupted"
    rank, cause = root_cause(tail)
    if run["status"] == "failed":  # rank 0 recorded its own error: say first which rank ended first
        if rank not in (None, 0):
            store.set_status(run_id, "failed", error=f"{cause}; torchrun stopped the others.\n\nRank 0 saw:\n"
                                                     f"{run['error'] or ''}")
        return "failed"
    store.set_status(run_id, "failed", error=f"{cause}; torchrun stopped the others (exit code {rc}) before rank 0 "
                                             "recorded the run's end")
    return "failed"


def root_cause(text: str) -> tuple[int | None, str]:
    """``(rank, one line)`` of torchrun's "Root Cause" summary in its output (which process ended first,
    how), or ``(None, its last lines)``.

    >>> root_cause("Root Cause (first observed failure):\\n[0]:\\n  rank      : 1 (local_rank: 1)\\n"
    ...            "  exitcode  : -9 (pid: 42)  (SIGKILL)\\n  traceback : Signal 9 (SIGKILL) received by PID 42")
    (1, 'training process of rank 1 (pid 42) ended with exit code -9: Signal 9 (SIGKILL) received by PID 42')
    """
    found = re.search(r"Root Cause.*?(?=\n=+|\Z)", text, re.S)
    if found:
        block = found.group(0)
        rank = re.search(r"rank\s*:\s*(\d+)", block)
        code = re.search(r"exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)", block)
        how = re.search(r"traceback\s*:\s*(.+)", block)
        if rank and code:
            line = (f"training process of rank {rank.group(1)} (pid {code.group(2)}) ended with exit code "
                    f"{code.group(1)}" + (f": {how.group(1).strip()}" if how else ""))
            return int(rank.group(1)), line
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not set(ln.strip()) <= set("-=")]
    return None, "a training process ended: " + (" / ".join(lines[-6:]) if lines else "(torchrun said nothing)")
