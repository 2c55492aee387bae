"""Throw-away PostgreSQL and Redis servers from the Debian binaries, for the compose topology test.

PostgreSQL refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as user ``postgres``
(``runuser -u postgres --``) in a folder it owns. Each server listens on 127.0.0.1 and a free port,
keeps its data (and PostgreSQL its unix socket) in the test's folder, and is stopped by its ``stop``.

    pg = Postgres.start(base / "pg", port, user="deepscope", password="deepscope", db="deepscope")
    pg.stop()
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of ``initdb``, ``pg_ctl``, ``createdb``, ``pg_isready`` (initdb on PATH, links followed, else
    Debian's newest /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(dirs[-1]).parent if dirs else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres() -> list[str]:
    """The prefix that runs a command as an unprivileged user when this process is root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root and there is no `postgres` user for the PostgreSQL server") from exc
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class Postgres:
    bin_dir: Path
    folder: Path
    port: int

    @classmethod
    def start(cls, folder: Path, port: int, user: str, password: str, db: str) -> Postgres:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries")
        folder.mkdir(parents=True)
        (folder / "pw").write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
            shutil.chown(folder / "pw", "postgres")
        pg = cls(bin_dir, folder, port)
        pg._run("initdb", "-D", str(folder / "data"), "-U", user, f"--pwfile={folder / 'pw'}", "-E", "UTF8",
                "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        pg._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "server.log"), "-w", "-t", "60",
                "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, db],
                       env={**os.environ, "PGPASSWORD": password}, check=True, capture_output=True, timeout=60)
        return pg

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*_as_postgres(), str(self.bin_dir / tool), *args], capture_output=True, text=True,
                           timeout=120, cwd=self.folder)
        if r.returncode:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}")

    def log(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (immediate: its data is thrown away), killing the postmaster if pg_ctl cannot."""
        data = self.folder / "data"
        if not (data / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "20", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    """``redis-server`` on 127.0.0.1:``port``, no persistence, its working folder ``folder``."""
    folder.mkdir(parents=True)
    log = open(folder / "redis.log", "wb")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {port}: {(folder / 'redis.log').read_text()[-2000:]}")
