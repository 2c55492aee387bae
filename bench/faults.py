"""Faults, one after another, against a live deepscope: nothing lost, nothing written twice, nothing stuck.

Setup (a temporary folder, removed at the end): a ``deepscope serve`` dashboard with its analysis worker,
``deepscope agent``, and two endless ``digits-cnn`` trainings (``log_every=5``, ``checkpoint_every=100``):
one queued for the agent (the agent's trainer process), one ``deepscope train`` in a terminal of its own.
A poller plays the Training page over HTTP (status and live-figure callbacks, both runs, once a second).

Faults:
  (a) store locked 30 s (SQLite: another connection holds ``BEGIN EXCLUSIVE``; PostgreSQL: ``LOCK TABLE
      scalars, runs, controls, snapshots IN ACCESS EXCLUSIVE MODE``);
  (b) the dashboards' cache broken 10 s: ``<data>/cache`` replaced by a regular file (the default file
      cache: cachelib turns that into misses), or with ``--cache redis`` the Redis server gone (a stand-in
      server in this process, ``bench/_faults_redis.py``: connections refused, so ``dashboard/data.py``
      must fall back to the store), then back empty;
  (c) ``kill -9`` of a trainer at 10 random moments (seeded: the two trainers in turn, 2-10 s (``--quick``:
      0.5-2 s) after the last resume trained again; the moment within training is chance; ``--quick`` starts
      with the agent run, so of its 3 kills the terminal run, ~20 s to show interrupted, gets one); each time:
      seconds until the run shows ``interrupted``, then resume (agent run: queued again for the agent, as a
      dashboard with ``DEEPSCOPE_LAUNCH=agent`` does; terminal run: ``deepscope resume RUN``);
  (d) ``kill -9`` of the dashboard, then started again;
  (e) a second dashboard on the same data folder, the first stopped: seconds until the second one's
      analysis worker holds the lease.
After each: SQLite integrity check, every run and series readable, each metric strictly increasing in
step in commit order with no duplicates and no missing step of its cadence (except, until the resume
writes them again, the steps after the last checkpoint of a killed trainer), no run left ``running``
without a process. Then ``contention_slowdown`` (``bench/contention.py`` when it exists, else measured
here: ``deepscope train brackets-lstm --set steps=300`` alone vs beside two default ``code-lstm`` CLI runs
and a multi-threaded numpy matmul, all with default thread settings).

    .venv/bin/python bench/faults.py              # ~10 minutes on 2 cores
    .venv/bin/python bench/faults.py --quick      # 3 kills (agent, terminal, agent), 5 s lock, 4 s cache fault,
                                                  # no contention: ~1.5 minutes on 2 cores
    .venv/bin/python bench/faults.py --cache redis --no-contention
    DEEPSCOPE_TEST_PG=postgresql+psycopg2://u@host/db .venv/bin/python bench/faults.py   # on PostgreSQL

One line per fault, then one JSON line (``faults``, ``trainings_died``, ``rows_lost``, ``duplicate_steps``,
``stuck_running``, ``interrupted_detect_s``, ``http_500``, ``lease_takeover_s``, ``contention_slowdown``...).
``duplicate_steps`` counts repeated steps and steps going back in commit order; ``live_backwards`` (under
``poller``) counts live-callback answers that made a curve the open page holds run back in step.
Every process is ended at the end; a watchdog process does it (and removes the folder) if the bench
itself is killed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _faults_check import (BrokenCache, StoreLock, holder_pid, integrity, lease_holder, series_report,  # noqa: E402
                           snapshot_report, stuck_runs, training_stall)
from _faults_contention import contention_slowdown  # noqa: E402
from _faults_poll import Poller  # noqa: E402
from _faults_procs import Procs, alive, free_port, parent_of, start_watchdog, wait_healthy  # noqa: E402
from backend.jobs import ANALYSIS_LOG  # noqa: E402  (every analysis worker of the data folder logs there)

TASK = "digits-cnn"
SETS = {"steps": 10_000_000, "log_every": 5, "checkpoint_every": 100, "eval_every": 200}
NET_PREFIX = "callback raised, answered with no update"  # dashboard/app.py's safety net
CACHE_FAILED = "the dashboard cache failed"  # dashboard/data.py, when it reads the store instead
STANDBY = "standing by: another analysis worker holds"  # backend/analysis/projection/worker.py


class Bench:
    """The fault sequence against one temporary data folder; ``results()`` is the JSON line."""

    def __init__(self, args: argparse.Namespace, tmp: Path):
        from backend.liveness import STALE_AFTER_S
        from backend.store import RunStore

        self.args, self.tmp = args, tmp
        self.rng = random.Random(args.seed)
        self.data, self.logs = tmp / "data", tmp / "logs"
        self.logs.mkdir(parents=True)
        self.store = RunStore(self.data, args.store_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSCOPE_")}
        env.update(DEEPSCOPE_TORCH_THREADS=os.environ.get("DEEPSCOPE_TORCH_THREADS", "1"), DEEPSCOPE_ANALYSIS="on",
                   PYTHONUNBUFFERED="1")
        self.redis = None
        if args.cache == "redis":
            from _faults_redis import MiniRedis

            self.redis = MiniRedis()
            self.redis.up()
            env.update(DEEPSCOPE_CACHE_TYPE="RedisCache", DEEPSCOPE_REDIS_URL=self.redis.url)
        self.procs = Procs(self.data, self.logs, args.store_url, env)
        self.stuck_wait_s = STALE_AFTER_S + 15  # stale threshold + the reapers' period + slack
        self.gaps: dict[str, list[tuple[int, int]]] = {}
        self.faults: list[dict] = []
        self.totals = {"rows_lost": 0, "duplicate_steps": 0, "backwards": 0, "stuck_running": 0,
                       "duplicate_snapshots": 0, "unreadable_snapshots": 0, "integrity_failures": 0,
                       "missing_allowed": 0}
        self.trainings_died = 0
        self.detect: list[float] = []
        self.poller: Poller | None = None
        self.dash = self.dash_port = None
        self.cli: dict[str, object] = {}  # run id -> the Popen of its terminal process
        self.t_phase = time.monotonic()  # start of the current fault, for the "took" of its line

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self) -> None:
        from backend.jobs import JobManager
        from backend.spec import RunSpec

        t0 = time.monotonic()
        self.dash_port = free_port()
        self.dash = self.procs.dashboard(self.dash_port, "dashboard-1")
        up = wait_healthy(self.dash_port, self.dash)
        self.procs.agent()
        spec = RunSpec.for_task(TASK, **SETS)
        tag = self.tmp.name.rsplit("-", 1)[-1]  # a shared PostgreSQL store keeps the runs of earlier benches
        self.agent_run = JobManager(self.store, launch=False).start(spec, name=f"faults · agent run {tag}")
        proc = self.procs.train(TASK, SETS, f"faults-terminal-run-{tag}")
        self.term_run = self._wait_for_run(f"faults-terminal-run-{tag}")
        self.cli[self.term_run] = proc
        self.runs = [self.agent_run, self.term_run]
        self.kill_order = self.rng.sample(self.runs, 2)
        if self.args.quick:
            # 3 kills: the agent's trainer (interrupted within a second: the agent saw its child exit) twice, the
            # terminal run (interrupted once its heartbeat is STALE_AFTER_S old, ~20 s) once
            self.kill_order = [self.agent_run, self.term_run]
        for rid in self.runs:
            self.gaps[rid] = []
            self._wait_training(rid, timeout=120)
        training = time.monotonic() - t0
        self.poller = Poller(self.runs)
        self.poller.set_targets([self.dash_port])
        self.poller.start()
        self._wait_polled(4, timeout=10)  # the page open and live (two ticks answered) before the first fault
        self.t_phase = time.monotonic()
        say(f"setup: dashboard on :{self.dash_port} ({up:.1f} s to answer), agent, runs {self.agent_run} (agent) "
            f"and {self.term_run} (deepscope train), store {self.store_kind()}; both training after {training:.1f} s, "
            f"polled after {self.t_phase - t0:.1f} s")

    def store_kind(self) -> str:
        return "sqlite" if self.store.url.startswith("sqlite") else "postgresql"

    def _wait_for_run(self, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r["id"] for r in self.store.list_runs() if r["name"] == name]
            if found:
                return found[0]
            time.sleep(0.3)
        raise RuntimeError(f"run {name!r} did not appear within {timeout} s")

    def _wait_training(self, rid: str, timeout: float = 90, past_step: int = 0) -> dict:
        """Wait until ``rid`` is running in a live process and has logged a step after ``past_step``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.store.get_run(rid)
            if run and run["status"] == "running" and alive(run.get("pid")) and (run.get("step") or 0) > past_step:
                return run
            time.sleep(0.25)
        raise RuntimeError(f"run {rid} is not training past step {past_step} after {timeout} s: "
                           f"{self.store.get_run(rid)}")

    # -- checks ----------------------------------------------------------------------------------------
    def check(self) -> dict:
        """The checks after a fault; totals keep the worst seen."""
        ok = integrity(self.store)
        lost = dup = back = allowed = dsnap = unread = 0
        details = {}
        for rid in self.runs:
            rep = series_report(self.store, rid, SETS["log_every"], SETS["eval_every"], self.gaps[rid])
            snaps = snapshot_report(self.store, rid)
            lost, dup, back = lost + rep["lost"], dup + rep["duplicates"], back + rep["backwards"]
            allowed += rep["missing_allowed"]
            dsnap, unread = dsnap + snaps["duplicate_snapshots"], unread + snaps["unreadable"]
            if rep["lost"] or rep["duplicates"] or rep["backwards"]:
                details[rid] = {k: rep[k] for k in ("lost_steps", "duplicates", "backwards", "status")}
        stuck = stuck_runs(self.store, self.runs, self.stuck_wait_s)
        t = self.totals
        t["rows_lost"], t["duplicate_steps"] = max(t["rows_lost"], lost), max(t["duplicate_steps"], dup)
        t["backwards"], t["missing_allowed"] = max(t["backwards"], back), max(t["missing_allowed"], allowed)
        t["duplicate_snapshots"] = max(t["duplicate_snapshots"], dsnap)
        t["unreadable_snapshots"] = max(t["unreadable_snapshots"], unread)
        t["stuck_running"] += len(stuck)
        t["integrity_failures"] += ok not in ("ok", "skipped")
        return {"integrity": ok, "rows_lost": lost, "duplicate_steps": dup, "backwards": back,
                "missing_in_gaps": allowed, "stuck_running": stuck, "duplicate_snapshots": dsnap,
                "unreadable_snapshots": unread, **({"problems": details} if details else {})}

    def record(self, fault: dict) -> None:
        t_check = time.monotonic()
        checks = self.check()
        fault["checks"] = checks
        self.faults.append(fault)
        now = time.monotonic()
        took, self.t_phase = f"took {now - self.t_phase:.1f} s (checks {now - t_check:.1f} s)", now
        extra = ", ".join(f"{k} {v}" for k, v in fault.items() if k not in ("fault", "checks"))
        say(f"fault {fault['fault']}: {extra}; integrity {checks['integrity']}, rows lost {checks['rows_lost']}, "
            f"duplicates {checks['duplicate_steps']}, stuck {len(checks['stuck_running'])}, "
            f"http_500 so far {self.poller.http_500}; {took}")
        if checks.get("problems"):
            say(f"  problems: {json.dumps(checks['problems'])}")

    def _pids(self) -> dict[str, int | None]:
        return {rid: (self.store.get_run(rid) or {}).get("pid") for rid in self.runs}

    def _died_since(self, pids: dict[str, int | None]) -> list[str]:
        """Runs whose trainer of ``pids`` is no longer the one training."""
        died = []
        for rid, pid in pids.items():
            run = self.store.get_run(rid) or {}
            if run.get("status") != "running" or run.get("pid") != pid or not alive(pid):
                died.append(rid)
        return died

    # -- the faults ----------------------------------------------------------------------------------------
    def store_locked(self, seconds: float) -> None:
        pids, t_wall = self._pids(), time.time()
        lock = StoreLock(self.store, seconds)
        lock.start()
        lock.locked.wait(60)
        importlib.import_module("backend.training.checkpoint")  # torch, for the kills: loaded while the lock holds
        lock.join(seconds + 120)
        released = time.time()
        # the writers' backoff (up to 5 s) and a commit: every run has logged a row after the release
        self._wait_logged_after(released, timeout=8)
        died = self._died_since(pids)
        self.trainings_died += len(died)
        stall = max(training_stall(self.store, rid, t_wall, released) for rid in self.runs)
        self.record({"fault": "store_locked", "seconds": seconds, "error": lock.error, "trainings_died": len(died),
                     "max_training_stall_s": round(stall, 1)})

    def cache_broken(self, seconds: float) -> None:
        pids, before = self._pids(), self.poller.http_500
        if self.redis is not None:  # Redis gone (connection refused), then back empty
            self.redis.down()
            time.sleep(seconds)
            self.redis.up()
        else:
            with BrokenCache(self.data):
                time.sleep(seconds)
        self._wait_polled(3, timeout=3)  # the page answered again (a whole tick) with the cache back
        died = self._died_since(pids)
        self.trainings_died += len(died)
        self.record({"fault": "cache_down" if self.redis else "cache_broken", "seconds": seconds,
                     "cache": self.args.cache, "trainings_died": len(died),
                     "http_500_during": self.poller.http_500 - before})

    def _wait_logged_after(self, wall: float, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until every run has a ``train/loss`` row logged after ``wall`` (epoch s)."""
        deadline = time.monotonic() + timeout
        while True:
            last = []
            for rid in self.runs:
                series, _ = self.store.scalar_series(rid, ["train/loss"])
                last.append(float(series["train/loss"]["wall_time"].max()) if "train/loss" in series else 0.0)
            if min(last) > wall:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)

    def _answered(self) -> int:
        return self.poller.ok + self.poller.no_content

    def _wait_polled(self, answers: int, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until the poller has had ``answers`` more successful answers (200 or 204)."""
        deadline, target = time.monotonic() + timeout, self._answered() + answers
        while self._answered() < target:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def kill_trainer(self, index: int) -> None:
        from backend.jobs import JobManager
        from backend.training.checkpoint import latest_checkpoint, read_checkpoint

        rid = self.kill_order[index % 2]  # both kinds of trainer, in a seeded order
        run = self._wait_training(rid, past_step=max((k for _s, k in self.gaps[rid]), default=0))
        after = self.rng.uniform(*self.args.kill_after_s)  # mid-training: it has trained since the wait
        time.sleep(after)
        run = self.store.get_run(rid)
        pid = run["pid"]
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        proc = self.cli.get(rid)
        if proc is not None and proc.pid == pid:
            proc.wait(10)  # reaped, as a shell would
        detect = self._wait_status(rid, "interrupted", timeout=180)
        if detect is not None:
            self.detect.append(detect)
        ckpt = latest_checkpoint(self.store.run_dir(rid) / "checkpoints")
        ckpt_step = int(read_checkpoint(ckpt)["step"]) if ckpt else 0
        series, _ = self.store.scalar_series(rid, ["train/loss"])
        at_kill = int(series["train/loss"]["step"].max()) if series else 0
        self.gaps[rid].append((ckpt_step, at_kill))
        t_resume = time.monotonic()
        if rid == self.agent_run:
            JobManager(self.store, launch=False).resume(rid)  # queued again: the agent starts it
            how = "queued for the agent"
        else:
            self.cli[rid] = self.procs.resume(rid)
            how = "deepscope resume"
        first = self._wait_training(rid, timeout=120, past_step=-1)  # running again, in a new process
        # supersede_after sets the run's step to the checkpoint's: wait for rows past both
        self._wait_training(rid, timeout=180, past_step=max(at_kill, ckpt_step) + 2 * SETS["log_every"])
        rate = steps_per_s(self.store, rid, ckpt_step)
        self.record({"fault": f"kill_trainer_{index + 1}", "run": rid, "pid": pid, "killed_after_s": round(after, 1),
                     "interrupted_after_s": None if detect is None else round(detect, 1),
                     "checkpoint_step": ckpt_step, "last_logged_step": at_kill, "resumed": how,
                     "resume_to_past_kill_s": round(time.monotonic() - t_resume, 1),
                     "resumed_pid": first["pid"], "resumed_steps_per_s": rate,
                     "kill_to_training_s": round(time.monotonic() - t_kill, 1)})

    def _wait_status(self, rid: str, status: str, timeout: float) -> float | None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if (self.store.get_run(rid) or {}).get("status") == status:
                return time.monotonic() - t0
            time.sleep(0.2)
        return None

    def kill_dashboard(self) -> None:
        holder_before, _ = lease_holder(self.store)
        worker = holder_pid(holder_before)
        self.poller.expect_down(self.dash_port)
        os.kill(self.dash.pid, signal.SIGKILL)
        self.dash.wait(10)
        t0 = time.monotonic()
        while worker and alive(worker) and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        worker_exit = round(time.monotonic() - t0, 1) if worker else None
        time.sleep(2)
        self.dash = self.procs.dashboard(self.dash_port, "dashboard-1-restarted")
        restart = wait_healthy(self.dash_port, self.dash)
        self.poller.expect_down(self.dash_port, False)
        lease_s = self._wait_lease(self.dash.pid, t0, timeout=90)
        self.record({"fault": "kill_dashboard", "old_worker_exit_s": worker_exit,
                     "orphan_worker": bool(worker and alive(worker)), "restart_answer_s": round(restart, 1),
                     "lease_back_s": lease_s})

    def _wait_lease(self, dashboard_pid: int, t0: float, timeout: float) -> float | None:
        """Seconds from ``t0`` until the lease holder is an analysis worker started by ``dashboard_pid``."""
        while time.monotonic() - t0 < timeout:
            pid = holder_pid(lease_holder(self.store)[0])
            if pid and alive(pid) and parent_of(pid) == dashboard_pid:
                return round(time.monotonic() - t0, 1)
            time.sleep(0.2)
        return None

    def _standby_lines(self) -> int:
        """How many times an analysis worker of this data folder has logged that it stands by."""
        try:
            return (self.data / ANALYSIS_LOG).read_text(errors="replace").count(STANDBY)
        except OSError:
            return 0

    def _wait_standby(self, before: int, dashboard_pid: int, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until one more analysis worker than ``before`` has logged standing by (or
        the worker of ``dashboard_pid`` holds the lease already)."""
        deadline = time.monotonic() + timeout
        while self._standby_lines() <= before:
            if parent_of(holder_pid(lease_holder(self.store)[0]) or 0) == dashboard_pid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def second_dashboard(self) -> float | None:
        port2 = free_port()
        standing = self._standby_lines()
        dash2 = self.procs.dashboard(port2, "dashboard-2")
        up = wait_healthy(port2, dash2)
        self.poller.set_targets([self.dash_port, port2])
        self._wait_standby(standing, dash2.pid, timeout=20)  # its worker starts and stands by
        self.poller.expect_down(self.dash_port)
        t0 = time.monotonic()
        self.procs.stop(self.dash)
        stopped = time.monotonic() - t0
        took = self._wait_lease(dash2.pid, t0, timeout=90)
        self.poller.set_targets([port2])
        self.dash, self.dash_port = dash2, port2
        self.record({"fault": "second_dashboard", "second_answer_s": round(up, 1),
                     "first_stopped_s": round(stopped, 1), "lease_takeover_s": took})
        return took

    # -- the end ----------------------------------------------------------------------------------------------
    def finish(self) -> dict:
        for rid in self.runs:
            self.store.request_control(rid, "stop")
        ends = {rid: self._wait_status(rid, "stopped", timeout=90) for rid in self.runs}
        final = self.check()
        self.poller.stop()
        say(f"end: runs stopped ({', '.join(f'{r} after {s and round(s, 1)} s' for r, s in ends.items())}); final "
            f"rows lost {final['rows_lost']}, missing in resume gaps {final['missing_in_gaps']}, duplicates "
            f"{final['duplicate_steps']}; poller {json.dumps(self.poller.summary())}")
        for err in self.poller.errors[:10]:
            say(f"  poller: {err}")
        return {"final": final, "final_status": {rid: (self.store.get_run(rid) or {}).get("status") for rid in self.runs}}

    def log_count(self, text: str) -> int:
        """How often ``text`` appears in the dashboards' logs."""
        return sum(p.read_text(errors="replace").count(text) for p in self.logs.glob("dashboard-*.log"))


def steps_per_s(store, run_id: str, after_step: int) -> float | None:
    """Training speed of the rows logged after ``after_step`` (steps over their wall-clock span)."""
    series, _ = store.scalar_series(run_id, ["train/loss"])
    if "train/loss" not in series:
        return None
    s = series["train/loss"]
    keep = s["step"] > after_step
    steps, walls = s["step"][keep], s["wall_time"][keep]
    if len(steps) < 2 or walls[-1] <= walls[0]:
        return None
    return round(float(steps[-1] - steps[0]) / float(walls[-1] - walls[0]), 1)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_bench(args: argparse.Namespace, tmp: Path) -> dict:
    bench = Bench(args, tmp)
    lease_takeover = None
    try:
        bench.setup()
        bench.store_locked(args.lock_s)
        bench.cache_broken(args.cache_s)
        for i in range(args.kills):
            bench.kill_trainer(i)
        bench.kill_dashboard()
        lease_takeover = bench.second_dashboard()
        end = bench.finish()
    finally:
        try:
            if bench.poller is not None and bench.poller.is_alive():
                bench.poller.stop()
        finally:
            leftover = bench.procs.cleanup()
            if bench.redis is not None:
                bench.redis.down()
    poll = bench.poller.summary()
    return {
        "faults": [{k: v for k, v in f.items() if k != "checks"} for f in bench.faults],
        "trainings_died": bench.trainings_died,
        "rows_lost": bench.totals["rows_lost"],
        "duplicate_steps": bench.totals["duplicate_steps"] + bench.totals["backwards"],
        "stuck_running": bench.totals["stuck_running"],
        "interrupted_detect_s": round(max(bench.detect), 1) if bench.detect else None,
        "interrupted_detect_median_s": round(sorted(bench.detect)[len(bench.detect) // 2], 1) if bench.detect else None,
        "kills": args.kills, "kills_detected": len(bench.detect),
        "http_500": poll["http_500"],
        "callbacks_raised": bench.log_count(NET_PREFIX),
        "cache": args.cache, "cache_fallback_warnings": bench.log_count(CACHE_FAILED),
        "lease_takeover_s": lease_takeover,
        "store": bench.store_kind(),
        "integrity_failures": bench.totals["integrity_failures"],
        "duplicate_snapshots": bench.totals["duplicate_snapshots"],
        "unreadable_snapshots": bench.totals["unreadable_snapshots"],
        "missing_in_resume_gaps_final": end["final"]["missing_in_gaps"],
        "final_status": end["final_status"],
        "poller": poll,
        "processes_left_killed": leftover,
        "lock_s": args.lock_s, "cache_s": args.cache_s, "seed": args.seed,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 kills, a 5 s lock, a 4 s cache fault, no contention run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kills", type=int, default=None)
    p.add_argument("--store-url", default=os.environ.get("DEEPSCOPE_TEST_PG") or None,
                   help="SQLAlchemy URL of the store (default $DEEPSCOPE_TEST_PG, else SQLite in the temp folder)")
    p.add_argument("--cache", choices=["filesystem", "redis"], default="filesystem",
                   help="the dashboards' cache: the default file cache (fault: its folder replaced by a file) or "
                        "Redis (a stand-in server in this process; fault: it goes away, then comes back empty)")
    p.add_argument("--no-contention", action="store_true", help="skip contention_slowdown")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for a look")
    args = p.parse_args(argv)
    args.kills = args.kills if args.kills is not None else (3 if args.quick else 10)
    args.lock_s, args.cache_s = (5.0, 4.0) if args.quick else (30.0, 10.0)
    args.kill_after_s = (0.5, 2.0) if args.quick else (2.0, 10.0)  # the kill, this long after training again
    tmp = Path(tempfile.mkdtemp(prefix="deepscope-faults-"))
    start_watchdog(tmp, keep=args.keep)  # cleans up even if this process is killed
    say(f"bench/faults.py: temp folder {tmp}, seed {args.seed}, {args.kills} kills, lock {args.lock_s:g} s")
    try:
        result = run_bench(args, tmp)
        if args.quick or args.no_contention:
            result.update(contention_slowdown=None, contention_source="skipped (--quick)" if args.quick else "skipped")
        else:
            result.update(contention_slowdown(tmp / "contention", quick=False, log=say))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"kept {tmp}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
