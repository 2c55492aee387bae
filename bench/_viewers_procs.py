"""The processes of ``bench/viewers.py``: the two training runs, and the dashboard they are watched on
(``deepscope serve``, or gunicorn with a Redis cache as docker-compose runs it); CPU time of a
process and its children."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _harness import free_port

REPO = Path(__file__).resolve().parents[1]
TASKS = ("brackets-lstm", "digits-cnn")


def deepscope_cmd() -> list[str]:
    return [sys.executable, "-c", "import sys; from backend.cli import main; sys.exit(main())"]


def start_runs(data_dir: Path, log_dir: Path) -> list[subprocess.Popen]:
    """One ``deepscope train`` per task, each in its own session, one torch thread."""
    env = dict(os.environ, DEEPSCOPE_TORCH_THREADS="1", PYTHONPATH=str(REPO))
    procs = []
    for task in TASKS:
        log = open(log_dir / f"train-{task}.log", "ab")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([*deepscope_cmd(), "train", task, "--data-dir", str(data_dir),
                                       "--set", "steps=10000000", "--name", f"bench {task}"],
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=str(REPO), env=env, start_new_session=True))
    return procs


def wait_for_runs(store, procs, timeout: float = 180) -> list[str]:
    """Ids of the runs once each has logged a few steps, in :data:`TASKS` order."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a training run exited early; see train-*.log in the bench folder (--keep)")
        runs = {r["task"]: r for r in store.list_runs()}
        if all(t in runs and (runs[t]["step"] or 0) > 20 for t in TASKS):
            return [runs[t]["id"] for t in TASKS]
        time.sleep(0.5)
    raise RuntimeError(f"the runs did not start training within {timeout:.0f} s")


def start_serve(data_dir: Path, port: int, log_path: Path, analysis: bool) -> subprocess.Popen:
    import requests

    env = dict(os.environ, PYTHONPATH=str(REPO), DEEPSCOPE_ANALYSIS="on" if analysis else "off")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*deepscope_cmd(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO),
                                env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"deepscope serve exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("deepscope serve did not answer within 90 s")


def compose_dashboard() -> tuple[list[str], dict[str, str]]:
    """The dashboard service's gunicorn options (between ``gunicorn`` and ``--bind``'s value) and its
    DEEPSCOPE_* settings that shape the workers (threads, streams), as docker-compose.yml has them."""
    import yaml

    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["dashboard"]
    command = list(service["command"])
    options = command[1:command.index("--bind")]
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()
           if k in ("DEEPSCOPE_STREAMS", "DEEPSCOPE_POLL_MS")}
    return options, env


def start_gunicorn(data_dir: Path, port: int, log_path: Path, tmp: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The compose dashboard as docker-compose.yml runs it: gunicorn with the compose file's workers, threads
    and streams on ``dashboard.app:server_from_env()``, flask-caching on a Redis server of its own."""
    import requests

    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    options, compose_env = compose_dashboard()
    env = dict(os.environ, PYTHONPATH=str(REPO), DEEPSCOPE_DATA_DIR=str(data_dir), DEEPSCOPE_CACHE_TYPE="RedisCache",
               DEEPSCOPE_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", **compose_env)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([gunicorn, *options, "--bind", f"127.0.0.1:{port}",
                                 "dashboard.app:server_from_env()"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO), env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=2).status_code == 200:
                return proc, redis
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 120 s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (gunicorn's workers), in seconds (Linux /proc)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a worker that just exited
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


