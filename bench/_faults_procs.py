"""Processes of ``bench/faults.py``: dashboards, the agent, trainers; started, killed and cleaned up.

Every process is started in a session of its own with its output in a log file under the bench's
temporary folder. :meth:`Procs.cleanup` ends them all: the ones started here by their process group,
and the ones they started (trainers spawned by the agent, the dashboards' analysis workers) by finding
every process whose command line names the bench's unique data folder.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from backend.liveness import pid_alive

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie is not): the store's own liveness rule."""
    return pid_alive(pid)


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def pids_naming(text: str) -> list[int]:
    """Processes of this host whose command line contains ``text`` (the bench's own data folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(int(entry))
    return found


class Procs:
    """Starts the bench's processes against one data folder (and store URL) and ends them all."""

    def __init__(self, data_dir: Path, logs: Path, store_url: str | None, env: dict[str, str]):
        self.data_dir, self.logs, self.store_url, self.env = data_dir, logs, store_url, env
        self.started: list[subprocess.Popen] = []

    def _cli(self, *args: str) -> list[str]:
        cmd = [sys.executable, "-m", "backend.cli", *args, "--data-dir", str(self.data_dir)]
        return cmd + (["--store-url", self.store_url] if self.store_url else [])

    def spawn(self, cmd: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.logs / log_name, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=str(REPO), env=env or self.env, start_new_session=True)
        self.started.append(proc)
        return proc

    def dashboard(self, port: int, name: str) -> subprocess.Popen:
        """``deepscope serve`` on ``port`` (its analysis worker on: DEEPSCOPE_ANALYSIS is not "off")."""
        return self.spawn(self._cli("serve", "--port", str(port)), f"{name}.log")

    def agent(self) -> subprocess.Popen:
        return self.spawn(self._cli("agent", "--poll", "1"), "agent.log")

    def train(self, task: str, sets: dict[str, object], name: str) -> subprocess.Popen:
        args = ["train", task, "--name", name]
        for key, value in sets.items():
            args += ["--set", f"{key}={value}"]
        return self.spawn(self._cli(*args), f"train-{name}.log")

    def resume(self, run_id: str) -> subprocess.Popen:
        return self.spawn(self._cli("resume", run_id), f"resume-{run_id}.log")

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> None:
        """SIGTERM to the process (as Ctrl-C or ``kill`` would), SIGKILL to its group after ``timeout``."""
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.wait(5)

    def cleanup(self, grace_s: float = 20.0) -> list[str]:
        """End every process of the bench: SIGTERM to each one started here and to each one naming the data
        folder (trainers the agent started, analysis workers), up to ``grace_s`` to exit, then SIGKILL.
        Returns the command lines of those that had to be killed."""
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
        for pid in pids_naming(str(self.data_dir)):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if all(p.poll() is not None for p in self.started) and not self._naming():
                break
            time.sleep(0.2)
        leftover = [" ".join(map(str, p.args))[:160] for p in self.started if p.poll() is None]
        leftover += [_cmdline(pid)[:160] for pid in self._naming()]
        for _ in range(3):
            for proc in self.started:
                _killpg(proc.pid)  # its own group: whatever it started in it goes too
                if proc.poll() is None:
                    proc.kill()
            for pid in self._naming():
                _signal(pid, signal.SIGKILL)
            if not self._naming() and not any(_group_alive(p.pid) for p in self.started):
                break  # nothing left to kill (the usual case after a clean SIGTERM): no more rounds
            time.sleep(0.5)
        for proc in self.started:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        return leftover

    def _naming(self) -> list[int]:
        return [p for p in pids_naming(str(self.data_dir)) if alive(p)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


WATCHDOG = """
import os, shutil, signal, sys, time
pid, folder, keep = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "keep"
while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(1)
for _ in range(3):
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if folder.encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    time.sleep(0.5)
if not keep:
    shutil.rmtree(folder, ignore_errors=True)
"""


def start_watchdog(folder: Path, keep: bool) -> subprocess.Popen:
    """A process that outlives this one: once this process is gone (even killed with SIGKILL, e.g. by a
    test's timeout) it kills every process naming ``folder`` and removes the folder (unless ``keep``)."""
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(folder),
                             "keep" if keep else "remove"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return f"pid {pid}"


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member (a zombie counts: another round does no harm)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def wait_healthy(port: int, proc: subprocess.Popen | None = None, timeout: float = 90.0) -> float:
    """Seconds until the dashboard on ``port`` answers ``/_deepscope/health``; RuntimeError past ``timeout``."""
    import requests

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard on port {port} exited with {proc.returncode}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_deepscope/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the dashboard on port {port} did not answer within {timeout:.0f} s")
