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
import subprocess
import sys
import threading
import time

from .spec import RunSpec
from .store import ACTIVE_STATUSES, RunStore, StoreError
from .threads import ThreadChoice, explicit_threads, thread_choice, thread_env
from .store.retry import Backoff, brief, is_transient, outage_clock

log = logging.getLogger(__name__)
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
        """Continue a stopped, failed or interrupted run (built-in, or from ``deepscope train``) from its
        latest checkpoint in a new process; ask a paused one to go on. StoreError says why not.

        The new process supersedes what the run logged after that checkpoint before it logs again."""
        from .liveness import claim_resume, resumed_elsewhere, why_not_resumable

        run = self.store.require_run(run_id)
        if run["status"] == "paused":
            self.store.request_control(run_id, "resume")
            return
        why = why_not_resumable(self.store, run)
        if why is not None:
            raise StoreError(why)
        if not claim_resume(self.store, run_id):
            raise StoreError(resumed_elsewhere(run_id))
        self._procs.pop(run_id, None)  # its last process has exited: not the one reconcile judges next
        if self.launch:
            self._spawn(run_id, resume=True)
        else:
            self.store.clear_pid(run_id)

    def control(self, run_id: str, kind: str, value: float | None = None) -> None:
        """pause / resume / stop / set_lr. Resume on a finished run restarts it from its checkpoint."""
        run = self.store.require_run(run_id)
        if kind == "resume" and run["status"] not in ACTIVE_STATUSES:  # stopped, failed, interrupted...
            self.resume(run_id)
            return
        if kind == "stop" and run["status"] == "queued" and run_id in self._procs:
            self._procs[run_id].terminate()
            self.store.set_status(run_id, "stopped")
            return
        self.store.request_control(run_id, kind, value)

    def serve_queue(self, poll: float = 1.0, once: bool = False, stop: threading.Event | None = None,
                    on_round=None) -> None:
        """Start every queued run that nobody has claimed (the ``deepscope agent`` loop), until ``stop`` is set.

        A store that is unreachable (restarting, locked) is waited out: the loop logs it once, asks again
        with backoff (up to 30 s apart) and goes on; other errors are logged and retried the same way.
        ``on_round()`` runs after every round that reached the store (the agent's health heartbeat).
        """
        clock, backoff = outage_clock(self.store), Backoff(poll, max(poll, 30.0))
        while True:
            delay = poll
            try:
                while (run := self.store.claim_queued()) is not None:
                    resume = any((self.store.run_dir(run["id"]) / "checkpoints").glob("step-*.pt"))
                    self._spawn(run["id"], resume=resume)
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - the agent outlives whatever one round met
                delay = backoff.next()
                if once and not is_transient(exc):
                    raise
                if not is_transient(exc):
                    log.exception("the agent's round failed; trying again in %.0f s", delay)
                elif clock.failed(exc):
                    log.warning("the store is unreachable (%s); the agent keeps trying", brief(exc))
            else:
                backoff.reset()
                if (lasted := clock.ok()) is not None:
                    log.warning("the store is reachable again after %.0f s", lasted)
                if on_round is not None:
                    on_round()
            if once:
                return
            if stop is not None:
                if stop.wait(delay):
                    return
            else:
                time.sleep(delay)

    def _threads(self) -> ThreadChoice:
        """Threads for a new trainer (:func:`backend.threads.thread_choice`: an explicit
        ``DEEPSCOPE_TORCH_THREADS``, else from the cores and the load), equal for runs started together.

        A run started while another started here in the last minute still trains gets that run's count:
        the load average has not seen the first run yet, and equal specs must train at equal speed (the
        former ``cores // (alive + 1)`` gave two runs started together 2 and 1 threads; on 2 cores they
        trained at 4-8 and 150-190 steps/s).
        """
        together_s = 60.0  # the horizon of the 1-minute load average
        now = time.time()
        given = self.__dict__.setdefault("_threads_given", {})  # run id -> (started at, choice)
        for rid in [r for r, (at, _) in given.items() if now - at >= together_s]:
            del given[rid]
        for rid, (_, choice) in sorted(given.items(), key=lambda item: item[1][0], reverse=True):
            proc = self._procs.get(rid)
            if proc is not None and proc.poll() is None and explicit_threads() is None:
                return choice  # with the reason it was chosen for, the same for the whole batch
        return thread_choice()

    def _spawn(self, run_id: str, resume: bool, threads: int | None = None) -> None:
        log_path = self.store.run_dir(run_id) / "trainer.log"
        cmd = [sys.executable, "-m", "backend.training.worker", "--data-dir", str(self.store.data_dir),
               "--run-id", run_id]
        if not self.store.url.startswith("sqlite"):
            cmd += ["--store-url", self.store.url]
        if resume:
            cmd.append("--resume")
        env = os.environ.copy()
        if threads and explicit_threads(env) is None:  # the user's DEEPSCOPE_TORCH_THREADS wins over the caller's
            choice = ThreadChoice(threads, f"{threads} asked for by whoever started the run")
        else:
            choice = self._threads()
            self.__dict__.setdefault("_threads_given", {})[run_id] = (time.time(), choice)
        env.update(thread_env(choice, env))  # torch, OpenMP and BLAS pools alike; OpenMP waits passively
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env)
        self._procs[run_id] = proc
        self.store.set_pid(run_id, proc.pid)

    def reconcile(self, stale_after_s: float | None = None) -> list[str]:
        """Mark ``interrupted`` every active run whose process is gone: any source (dashboard, agent,
        ``deepscope train``, client scripts), any host (see :mod:`backend.liveness`); returns their ids.

        A trainer started here that exited without reporting is marked at once, others once their
        heartbeat is ``stale_after_s`` old (default ``liveness.STALE_AFTER_S``). The first call also
        deletes the temporary files killed writers left (:func:`backend.liveness.sweep_orphans`)."""
        from .liveness import STALE_AFTER_S, sweep_interrupted, sweep_orphans

        if not getattr(self, "_orphans_swept", False):
            self._orphans_swept = True
            try:
                sweep_orphans(self.store)
            except OSError as exc:
                log.warning("could not sweep temporary files: %s", exc)
        exited = {rid: (p.pid, p.returncode) for rid, p in list(self._procs.items()) if p.poll() is not None}
        return sweep_interrupted(self.store, stale_after_s=STALE_AFTER_S if stale_after_s is None else stale_after_s,
                                 exited=exited)

    def start_analysis(self) -> subprocess.Popen:
        """Start the analysis worker of this store (``backend.analysis.projection.worker``), or keep the live one.

        The worker computes projection maps of every run; it runs at nice 10 with one thread (it sets
        both itself), logs to ``analysis-worker.log`` in the data folder and exits when this process
        is gone (``--parent-pid``). Called again after the worker died, it starts a new one. Every
        dashboard starts one; only the holder of the store's ``analysis`` lease works, the others stand
        by and one of them takes over within 30 s after the holder dies (within 5 s after a clean exit).
        """
        if self._analysis is not None and self._analysis.poll() is None:
            return self._analysis
        if self._analysis is not None:
            log.warning("the analysis worker exited with code %s; starting it again (see %s)",
                        self._analysis.returncode, self.store.data_dir / ANALYSIS_LOG)
        cmd = [sys.executable, "-m", "backend.analysis.projection.worker", "--data-dir", str(self.store.data_dir),
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

    def shutdown(self, timeout: float = 15.0, stop_runs: bool = True) -> list[str]:
        """Stop the analysis worker and, with ``stop_runs``, the runs this manager started (checkpointed,
        status ``stopped``); returns the ids of those runs (stopped, or left training).

        Asks politely first (a stop control), then terminates what has not exited by ``timeout``.
        ``stop_runs=False`` (what ``deepscope serve`` does by default) leaves the trainers training:
        each is in a session of its own with its output in a file, so it outlives this process, and a
        dashboard started later shows it live and steers it through the store.
        """
        analysis, self._analysis = self._analysis, None
        if analysis is not None and analysis.poll() is None:
            analysis.terminate()  # waited for below, after the trainers
        live = {rid: p for rid, p in self._procs.items() if p.poll() is None}
        if not stop_runs:
            if analysis is not None:
                _wait_or_kill(analysis, 5.0)
            return list(live)
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
