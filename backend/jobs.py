"""Start, steer and watch trainer processes. Shared by the dashboard and the CLI.

Each run trains in its own OS process, so a crash or a long step never blocks
the web server. Steering goes through control requests in the store, which the
trainer reads between steps.

Example::

    jobs = JobManager(RunStore("./deepscope-data"))
    run_id = jobs.start(RunSpec.for_task("digits-cnn"))
    jobs.control(run_id, "pause")
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time

from .spec import RunSpec
from .store import ACTIVE_STATUSES, RunStore, StoreError

log = logging.getLogger(__name__)
START_GRACE_S = 120  # a queued run whose process never reported is failed after this
ANALYSIS_LOG = "analysis-worker.log"  # in the data folder
ANALYSIS_RESTART_S = 60  # the reaper restarts a crashed analysis worker at most this often


class JobManager:
    """Launches one trainer process per run and relays controls to it."""

    def __init__(self, store: RunStore, launch: bool | None = None):
        """``launch=False`` only queues runs, for a separate ``deepscope agent`` to start
        (a deployment where trainers run on GPU hosts); default from ``$DEEPSCOPE_LAUNCH``."""
        self.store = store
        self.launch = launch if launch is not None else os.environ.get("DEEPSCOPE_LAUNCH", "local") != "agent"
        self._procs: dict[str, subprocess.Popen] = {}
        self._analysis: subprocess.Popen | None = None
        self._analysis_started = 0.0

    def start(self, spec: RunSpec, name: str | None = None, threads: int | None = None) -> str:
        """Create a run for ``spec`` and start its trainer process; returns the run id.

        ``threads``: torch threads of the trainer (default: see :meth:`_threads`)."""
        spec = RunSpec.model_validate(spec.model_dump())  # re-validate: callers may have mutated it
        name = name or spec.name or f"{spec.task} · {spec.model.family}"
        run_id = self.store.create_run(name, spec.task, spec.model_dump())
        if self.launch:
            self._spawn(run_id, resume=False, threads=threads)
        return run_id

    def resume(self, run_id: str) -> None:
        """Continue a stopped or failed run from its latest checkpoint in a new process."""
        run = self.store.require_run(run_id)
        if run["status"] in ACTIVE_STATUSES:
            if run["status"] == "paused":
                self.store.request_control(run_id, "resume")
                return
            raise StoreError(f"run {run_id} is already {run['status']}")
        if not any((self.store.run_dir(run_id) / "checkpoints").glob("step-*.pt")):
            raise StoreError(f"run {run_id} has no checkpoint to resume from")
        self.store.set_status(run_id, "queued")
        if self.launch:
            self._spawn(run_id, resume=True)
        else:
            self.store.clear_pid(run_id)

    def control(self, run_id: str, kind: str, value: float | None = None) -> None:
        """pause / resume / stop / set_lr. Resume on a finished run restarts it from its checkpoint."""
        run = self.store.require_run(run_id)
        if kind == "resume" and run["status"] in ("stopped", "failed", "completed"):
            self.resume(run_id)
            return
        if kind == "stop" and run["status"] == "queued" and run_id in self._procs:
            self._procs[run_id].terminate()
            self.store.set_status(run_id, "stopped")
            return
        self.store.request_control(run_id, kind, value)

    def serve_queue(self, poll: float = 1.0, once: bool = False) -> None:
        """Start every queued run that nobody has claimed (the ``deepscope agent`` loop)."""
        while True:
            while (run := self.store.claim_queued()) is not None:
                resume = any((self.store.run_dir(run["id"]) / "checkpoints").glob("step-*.pt"))
                self._spawn(run["id"], resume=resume)
            self.reconcile()
            if once:
                return
            time.sleep(poll)

    def _threads(self) -> int:
        """Torch threads for a new trainer: the cores shared among the trainers alive here.

        Two trainers with two threads each on two cores ran ~10x slower than one thread each
        (OpenMP workers spin while they wait for a core).
        """
        alive = sum(1 for p in self._procs.values() if p.poll() is None)
        return max(1, (os.cpu_count() or 1) // (alive + 1))

    def _spawn(self, run_id: str, resume: bool, threads: int | None = None) -> None:
        log_path = self.store.run_dir(run_id) / "trainer.log"
        cmd = [sys.executable, "-m", "backend.training.worker", "--data-dir", str(self.store.data_dir),
               "--run-id", run_id]
        if not self.store.url.startswith("sqlite"):
            cmd += ["--store-url", self.store.url]
        if resume:
            cmd.append("--resume")
        env = os.environ.copy()
        if threads or not env.get("DEEPSCOPE_TORCH_THREADS"):  # a user's explicit setting wins
            env["DEEPSCOPE_TORCH_THREADS"] = str(threads or self._threads())
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env)
        self._procs[run_id] = proc
        self.store.set_pid(run_id, proc.pid)

    def reconcile(self) -> list[str]:
        """Mark runs whose trainer process (or, for client-API runs, whose script) died without
        reporting as failed; returns their ids."""
        failed = []
        for run in self.store.list_runs():
            if run["status"] not in ACTIVE_STATUSES or run["source"] not in ("builtin", "client"):
                continue
            if run["pid"] is None or run["pid"] <= 0 or run["host"] != socket.gethostname():
                continue  # not started (or only claimed) yet, or started elsewhere: not ours to judge
            proc = self._procs.get(run["id"])
            code = proc.poll() if proc is not None else None
            alive = (code is None and proc is not None) or (proc is None and _pid_alive(run["pid"]))
            stale = run["status"] == "queued" and time.time() - run["updated_at"] > START_GRACE_S
            if run["source"] == "client" and not _pid_alive(run["pid"]):  # a user's script killed mid-run
                self.store.set_status(run["id"], "failed", error=(
                    f"the script that logged this run (process {run['pid']}) ended without finishing it: "
                    "killed, or it exited before run.finish() and atexit could run"))
                failed.append(run["id"])
                continue
            if run["source"] == "client":
                continue
            if not alive or stale:
                log_path = self.store.run_dir(run["id"]) / "trainer.log"
                self.store.set_status(run["id"], "failed", error=(
                    f"the trainer process ended without reporting (exit code {code}); see {log_path}\n"
                    + _tail(log_path)))
                failed.append(run["id"])
        return failed

    def start_analysis(self) -> subprocess.Popen:
        """Start the analysis worker of this store (``backend.analysis.projection_worker``), or keep the live one.

        The worker computes projection maps of every run; it runs at nice 10 with one thread (it sets
        both itself), logs to ``analysis-worker.log`` in the data folder and exits when this process
        is gone (``--parent-pid``). Called again after the worker died, it starts a new one. One worker
        per data folder: a second one (another dashboard on the same folder) exits at once.
        """
        if self._analysis is not None and self._analysis.poll() is None:
            return self._analysis
        if self._analysis is not None:
            log.warning("the analysis worker exited with code %s; starting it again (see %s)",
                        self._analysis.returncode, self.store.data_dir / ANALYSIS_LOG)
        cmd = [sys.executable, "-m", "backend.analysis.projection_worker", "--data-dir", str(self.store.data_dir),
               "--parent-pid", str(os.getpid())]
        if not self.store.url.startswith("sqlite"):
            cmd += ["--store-url", self.store.url]
        env = os.environ.copy()
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = "1"
        with open(self.store.data_dir / ANALYSIS_LOG, "ab") as out:
            self._analysis = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True, env=env)
        self._analysis_started = time.time()
        return self._analysis

    def stop_analysis(self, timeout: float = 5.0) -> None:
        """Stop the analysis worker started here (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._analysis = self._analysis, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        _wait_or_kill(proc, timeout)

    def shutdown(self, timeout: float = 15.0) -> list[str]:
        """Stop the runs this manager started (checkpointed, status ``stopped``) and its analysis worker;
        returns the run ids.

        Asks politely first (a stop control), then terminates what has not exited by ``timeout``.
        """
        analysis, self._analysis = self._analysis, None
        if analysis is not None and analysis.poll() is None:
            analysis.terminate()  # waited for below, after the trainers
        live = {rid: p for rid, p in self._procs.items() if p.poll() is None}
        for rid in live:
            try:
                self.control(rid, "stop")
            except StoreError:
                pass  # already finished, or never reported: terminated below if still alive
        deadline = time.time() + timeout
        for rid, proc in live.items():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(5)
                self.store.set_status(rid, "stopped", error="terminated when the dashboard shut down")
        if analysis is not None:  # terminated once, above: a second SIGTERM is not needed
            _wait_or_kill(analysis, 5.0)
        return list(live)

    def start_reaper(self, interval: float = 5.0) -> threading.Thread:
        """Call :meth:`reconcile` every ``interval`` seconds in a daemon thread (servers use this); also
        restarts a started analysis worker that crashed (non-zero exit), at most once a minute."""
        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.reconcile()
                except Exception as exc:  # the store may be briefly unavailable; try again later
                    log.warning("reconcile failed: %s", exc)
                proc = self._analysis
                if (proc is not None and proc.poll() not in (None, 0)
                        and time.time() - self._analysis_started > ANALYSIS_RESTART_S):
                    try:
                        self.start_analysis()
                    except OSError as exc:
                        log.warning("could not restart the analysis worker: %s", exc)
        thread = threading.Thread(target=loop, name="deepscope-reaper", daemon=True)
        thread.start()
        return thread

    def wait(self, run_id: str, timeout: float | None = None) -> int | None:
        """Wait for a run's process (started here) to exit; returns its exit code."""
        proc = self._procs.get(run_id)
        return proc.wait(timeout) if proc else None


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Wait up to ``timeout`` for ``proc`` (already asked to stop) to exit, then kill it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""
