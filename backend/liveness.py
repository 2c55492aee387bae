"""Which runs are dead, whether they can be resumed, and the temporary files killed writers left.

Any process that opens the store to serve or to train sweeps: the dashboard and ``deepscope agent``
through :meth:`backend.jobs.JobManager.reconcile` (at start and every few seconds), the CLI
(``deepscope runs``, ``train`` and ``resume``) through :func:`startup_sweep`.

- :func:`sweep_interrupted` marks ``interrupted`` every active run, of any source and any host,
  whose last sign of life (heartbeat, else the row's last update) is older than ``stale_after_s``
  and whose process is gone. On this host "gone" is checked by pid (a zombie or a reused pid counts
  as gone); on another host the age alone decides, after ``OTHER_HOST_FACTOR`` times as long. A
  process a :class:`~backend.jobs.JobManager` started and saw exit is judged at once. A live
  process is never marked, however old its heartbeat (it may be waiting out a store outage).
- :func:`sweep_orphans` deletes ``.tmp-*`` files (arrays, checkpoints, layouts) and ``.upload-*``
  files older than a minute: a live writer keeps its temporary file fresh until it renames it.

Example::

    sweep_orphans(store)                  # at start: [Path(".../.tmp-3f2a.npy")]
    sweep_interrupted(store)              # ["a1b2c3d4e5"]: now `interrupted`, with why in `error`
    why_not_resumable(store, run)         # None, or a sentence for the user
    claim_resume(store, run_id)           # True for exactly one of several resumers
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Mapping

from .store import ACTIVE_STATUSES, FINAL_STATUSES, RESUMABLE_STATUSES, RunStore
from .store import schema as S
from .store.arrays import TEMP_PREFIX, sweep_temp_files
from .store.retry import HEARTBEAT_S
from .store.spool import read_status_note

log = logging.getLogger(__name__)

# Live trainers and client runs heartbeat every HEARTBEAT_S (5 s): four missed beats mean trouble. With
# the dashboard's reaper every 5 s a dead run shows `interrupted` within 25 s.
STALE_AFTER_S = 4 * HEARTBEAT_S
OTHER_HOST_FACTOR = 3  # a run on another host is judged by its heartbeat alone: wait longer
START_GRACE_S = 120.0  # a queued run claimed or spawned whose process never reported
ORPHAN_AGE_S = 60.0
UPLOAD_PREFIX = ".upload-"  # dashboard.uploads' temporary files (under <data>/uploads)
LOG_TAIL = 1500  # characters of a dead trainer's log kept in the run's error


def sweep_interrupted(store: RunStore, now: float | None = None, stale_after_s: float = STALE_AFTER_S,
                      exited: Mapping[str, tuple[int, int | None]] | None = None) -> list[str]:
    """Mark every active run whose process is gone ``interrupted`` (with when and why); returns their ids.

    ``exited``: ``{run_id: (pid, exit code)}`` of processes the caller started and saw exit; such a
    run (if its pid is still that one) is judged without waiting for its heartbeat to go stale.

    >>> sweep_interrupted(store, stale_after_s=1)   # doctest: +SKIP
    ['a1b2c3d4e5']
    """
    marked = []
    for run in store.list_runs():
        if run["status"] not in ACTIVE_STATUSES or verdict(run, now, stale_after_s, exited) is None:
            continue
        fresh = store.get_run(run["id"])  # it may have been resumed since it was listed
        why = verdict(fresh, now, stale_after_s, exited) if fresh else None
        if why is None:
            continue
        note = read_status_note(store.run_dir(run["id"]))  # a trainer that gave up on the store said why
        if note and note["status"] in FINAL_STATUSES:
            store.set_status(run["id"], note["status"], error=note.get("error"))
            log.warning("run %s: %s, as its process left it when the store was unreachable", run["id"], note["status"])
            marked.append(run["id"])
            continue
        why += time.strftime(" (noticed %Y-%m-%d %H:%M:%S)")
        if fresh["source"] == "builtin":
            why += _log_tail(store.run_dir(run["id"]) / "trainer.log")
        if store.mark_interrupted(run["id"], why):
            log.warning("run %s interrupted: %s", run["id"], why.splitlines()[0])
            marked.append(run["id"])
    return marked


def verdict(run: Mapping, now: float | None = None, stale_after_s: float = STALE_AFTER_S,
            exited: Mapping[str, tuple[int, int | None]] | None = None) -> str | None:
    """Why ``run`` (a runs row) is dead, or None while its process may be alive. Reads no store.

    >>> verdict({"id": "r", "status": "running", "pid": 4242, "host": "elsewhere", "heartbeat_at": 0.0,
    ...          "updated_at": 0.0}, now=100.0)
    'process 4242 on host elsewhere: no heartbeat for 100 s (another host: judged by heartbeat age alone)'
    """
    now = time.time() if now is None else now
    status, pid, host = run["status"], run.get("pid"), run.get("host")
    if status not in ACTIVE_STATUSES or (status == "queued" and pid is None):
        return None  # ended, or waiting in the queue for a launcher (deepscope agent)
    last = max(run.get("heartbeat_at") or 0.0, run.get("updated_at") or 0.0)
    age = now - last
    seen = (f"last heartbeat {age:.0f} s ago" if run.get("heartbeat_at")
            else f"no heartbeat recorded; last update {age:.0f} s ago")
    who = f"process {pid} on host {host}" if pid and pid > 0 else f"the process of host {host or '(unknown)'}"
    known = (exited or {}).get(run["id"])
    if known is not None and pid == known[0] and (status != "queued" or age > stale_after_s):
        # (a queued run with the pid of an exited process is being resumed: its new pid comes next)
        return f"{who} ended without reporting ({_exit_text(known[1])}); {seen}"
    here = host == socket.gethostname()
    if status == "queued" and (pid < 0 or not here):
        if age <= START_GRACE_S:
            return None
        return f"claimed by host {host} {age:.0f} s ago but its trainer never reported"
    if pid is None or pid <= 0 or not here:
        if age <= stale_after_s * OTHER_HOST_FACTOR:
            return None
        return f"{who}: no heartbeat for {age:.0f} s (another host: judged by heartbeat age alone)"
    # a running or paused run's own process set its status, so it started before `last`: one that
    # started later reused the pid
    if age <= stale_after_s or pid_alive(pid, started_before=None if status == "queued" else last):
        return None
    return f"{who} is gone; {seen}"


def pid_alive(pid: int | None, started_before: float | None = None) -> bool:
    """Whether process ``pid`` of this host is alive (a zombie is not). With ``started_before``, a
    process that started after that time is another process that reused the pid: not alive."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    state, started = _proc_stat(pid)
    if state == "Z":
        return False
    return started is None or started_before is None or started <= started_before + 2.0


def _proc_stat(pid: int) -> tuple[str | None, float | None]:
    """(state letter, start time in epoch seconds) from Linux's /proc; (None, None) elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith("btime"))
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None, None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")[-LOG_TAIL:]
    except OSError:
        return ""
    return f"\nsee {path}:\n{text}" if text.strip() else ""


def sweep_orphans(store: RunStore, older_than_s: float = ORPHAN_AGE_S, now: float | None = None) -> list[Path]:
    """Delete temporary files that killed writers left in the data folder (``.tmp-*`` of arrays,
    checkpoints and layouts, ``.upload-*`` of uploads) unchanged for ``older_than_s``; returns them."""
    removed = sweep_temp_files(store.data_dir, (TEMP_PREFIX, UPLOAD_PREFIX), older_than_s, now)
    if removed:
        log.info("removed %d temporary file(s) left by killed writers, e.g. %s", len(removed), removed[0])
    return removed


def startup_sweep(store: RunStore) -> list[str]:
    """What a process that opens the store does first: :func:`sweep_orphans`, then
    :func:`sweep_interrupted`. Never raises (a read-only or unreachable store only logs); returns
    the runs marked interrupted."""
    try:
        sweep_orphans(store)
    except OSError as exc:
        log.warning("could not sweep temporary files: %s", exc)
    try:
        return sweep_interrupted(store)
    except Exception as exc:  # noqa: BLE001 - the command's own work matters more than the sweep
        log.warning("could not check for interrupted runs: %s", exc)
        return []


def why_not_resumable(store: RunStore, run: Mapping) -> str | None:
    """None when ``run`` can continue from its latest checkpoint, else a sentence saying why not.

    Runs of the built-in trainer (started by the dashboard, the agent or ``deepscope train``) that
    stopped, failed or were interrupted, and have a checkpoint, can."""
    rid, status = run["id"], run["status"]
    if run.get("source") not in (None, "builtin", "cli"):
        return (f"run {rid} was recorded by your own script (client API) or imported: deepscope has no "
                "checkpoint of it; run your script again to continue")
    if status in ACTIVE_STATUSES:
        where = f" (process {run.get('pid')} on host {run.get('host')})" if (run.get("pid") or 0) > 0 else ""
        return (f"run {rid} is {status}{where}; stop it first, or, if its process is gone, wait "
                f"{STALE_AFTER_S:.0f} s until it shows interrupted")
    if status not in RESUMABLE_STATUSES:
        return f"run {rid} has {status} all its steps; nothing to resume"
    if not any((store.run_dir(rid) / "checkpoints").glob("step-*.pt")):  # backend.training.checkpoint naming
        return f"run {rid} has no checkpoint to resume from (it ended before its first one)"
    return None


def claim_resume(store: RunStore, run_id: str, pid: int | None = None) -> bool:
    """Move a resumable run to ``queued`` in one conditional update: of two resumers (two dashboards, a
    button pressed twice, ``deepscope resume`` in two terminals) exactly one gets True and trains it.
    ``pid``: the process that will train it (``deepscope resume`` itself), recorded with this host."""
    values: dict = {"status": "queued", "updated_at": time.time()}
    if pid is not None:
        values["pid"], values["host"] = pid, socket.gethostname()
    with store.engine.begin() as conn:
        n = conn.execute(S.runs.update().where(S.runs.c.id == run_id, S.runs.c.status.in_(RESUMABLE_STATUSES))
                         .values(**values)).rowcount
    return n == 1


def resumed_elsewhere(run_id: str) -> str:
    """What a resumer that lost :func:`claim_resume` says."""
    return f"run {run_id} is being resumed by another process already"
