"""docker-compose.yml's topology started natively: PostgreSQL and Redis from the Debian binaries, the
project's services with the commands, environments and health checks read from the compose file.

What a container would see is mapped onto this machine, and nothing else is changed:

- service host names (``postgres``, ``redis``) -> ``127.0.0.1``, ``0.0.0.0`` -> ``127.0.0.1``;
- the container ports (5432, 6379, the dashboard's 8050) -> free ports here;
- named volumes (``/data``) -> one folder per volume, ``/run/secrets/NAME`` -> the file the test writes,
  ``/tmp`` of a container -> a folder of that service;
- ``${VAR:-default}`` -> ``default`` (the test never reads the caller's environment for them).

The environment of a service is the Dockerfile's ``ENV`` lines, then its compose ``environment`` (with
every ``DEEPSCOPE_*`` of the caller's shell removed first), so a setting the compose file forgets is
missing here too. :func:`leftovers` finds values that still name a container-only place.

Example::

    topo = Topology.load(ROOT, base, ports={"postgres": 5432, ...}, secrets={"deepscope_auth": auth})
    topo.command("analysis")   # ['/…/.venv/bin/deepscope', 'worker']
    topo.env("analysis")       # {'DEEPSCOPE_STORE_URL': 'postgresql+psycopg2://deepscope:deepscope@127.0.0.1:…', …}
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONTAINER_PORTS = {"postgres": 5432, "redis": 6379}  # the images' ports (compose publishes only the dashboard's)
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _resolve_vars(value: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(2) is None:
            raise ValueError(f"{value!r}: ${{{m.group(1)}}} has no default; the test cannot know its value")
        return m.group(2)
    return _VAR.sub(sub, value)


def dockerfile_env(path: Path) -> dict[str, str]:
    """``ENV K=V`` lines of a Dockerfile (the simple form this project uses)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"{path}: write ENV as KEY=VALUE: {line!r}")
                env[key] = value
    return env


@dataclass
class Topology:
    """The compose file, and how its container-side names map onto this machine."""

    compose: dict
    root: Path
    base: Path
    ports: dict[str, int]                    # service -> the free port here for its container port
    secrets: dict[str, Path]                 # secret name -> file here
    bin_dirs: tuple[str, ...] = ()
    image_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, base: Path, ports: dict[str, int], secrets: dict[str, Path],
             bin_dirs: tuple[str, ...] = ()) -> Topology:
        compose = yaml.safe_load((root / "docker-compose.yml").read_text())
        return cls(compose, root, base, ports, secrets, bin_dirs, dockerfile_env(root / "Dockerfile"))

    @property
    def services(self) -> dict:
        return self.compose["services"]

    def container_port(self, service: str) -> int:
        published = self.services[service].get("ports") or []
        if published:
            return int(str(published[0]).rsplit(":", 1)[1].split("/")[0])
        return CONTAINER_PORTS[service]

    def map_value(self, service: str, value: str) -> str:
        """A string as the container ``service`` sees it -> the same thing on this machine."""
        value = _resolve_vars(str(value))
        for name in self.ports:  # a service name as a host: postgres:5432, @redis:6379
            value = re.sub(rf"(?<=[@/]){re.escape(name)}(?=:\d)", "127.0.0.1", value)
        value = value.replace("0.0.0.0", "127.0.0.1")
        for name, port in self.ports.items():
            value = re.sub(rf"(?<![\d.]){self.container_port(name)}(?!\d)", str(port), value)
        places = {f"/run/secrets/{name}": str(path) for name, path in self.secrets.items()}
        places.update({target: str(host) for target, host in self.volumes(service).items()})
        places["/tmp"] = str(self.base / f"{service}-tmp")  # a container's own /tmp
        pattern = "|".join(re.escape(p) for p in sorted(places, key=len, reverse=True))
        # one pass, and last: the folders here (under /tmp) must not be mapped again
        return re.sub(rf"(?<![\w/.-])({pattern})(?=/|$)", lambda m: places[m.group(1)], value)

    def volumes(self, service: str) -> dict[str, Path]:
        """Container path -> folder here, for the named volumes ``service`` mounts (shared between services)."""
        out = {}
        for spec in self.services[service].get("volumes") or []:
            source, target = str(spec).split(":")[:2]
            out[target] = self.base / "volumes" / source
        return out

    def command(self, service: str) -> list[str]:
        cmd = self.services[service]["command"]
        cmd = cmd if isinstance(cmd, list) else shlex.split(cmd)
        return [self._exe(cmd[0])] + [self.map_value(service, a) for a in cmd[1:]]

    def env(self, service: str) -> dict[str, str]:
        """The process environment of ``service``: this machine's basics, the image's ENV, the compose env."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSCOPE_")}
        env["PATH"] = os.pathsep.join([*self.bin_dirs, env.get("PATH", "/usr/bin:/bin")])
        declared = self.services[service].get("environment") or {}
        if isinstance(declared, list):
            declared = dict(item.split("=", 1) for item in declared)
        for key, value in {**self.image_env, **declared}.items():
            env[key] = self.map_value(service, "" if value is None else str(value))
        return env

    def healthcheck(self, service: str) -> tuple[list[str], float]:
        """The mapped health check command of ``service`` and its timeout in seconds."""
        check = self.services[service]["healthcheck"]
        test = check["test"]
        kind, args = test[0], [self.map_value(service, a) for a in test[1:]]
        if kind == "CMD-SHELL":
            cmd = ["/bin/sh", "-c", args[0]]
        elif kind == "CMD":
            cmd = [self._exe(args[0])] + args[1:]
        else:
            raise ValueError(f"{service}: health check kind {kind!r} is not runnable")
        return cmd, _seconds(check.get("timeout", "30s"))

    def start_order(self) -> list[str]:
        """Services, each after everything it ``depends_on`` (compose's order)."""
        order: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in order:
                return
            if name in path:
                raise ValueError(f"depends_on cycle: {' -> '.join(path + (name,))}")
            for dep in self.depends_on(name):
                visit(dep, path + (name,))
            order.append(name)
        for name in self.services:
            visit(name, ())
        return order

    def depends_on(self, service: str) -> dict[str, str]:
        deps = self.services[service].get("depends_on") or {}
        return {d: "service_started" for d in deps} if isinstance(deps, list) else \
            {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}

    def _exe(self, name: str) -> str:
        found = shutil.which(name, path=os.pathsep.join(self.bin_dirs))
        if found is None:
            raise FileNotFoundError(f"{name} (a compose command) is not in {self.bin_dirs}")
        return found


CONTAINER_ONLY = re.compile(r"(?<![\w.-])(postgres|redis):\d|(?<![\w/.-])/(data|run/secrets|tmp|app)(?=/|$|\s)")


def leftovers(topo: Topology, service: str) -> list[str]:
    """Values of the mapped command and environment that still name a place only a container has."""
    items = [("command", a) for a in topo.command(service)]
    declared = topo.services[service].get("environment") or {}
    items += [(k, v) for k, v in topo.env(service).items() if k in declared or k in topo.image_env]
    # the places this machine put there (the test's folder, the checkout and its virtualenv) may lie under
    # /tmp themselves (a fresh clone in /tmp failed here): only what is left after them counts
    own = [d for d in topo.bin_dirs if d not in ("/usr/bin", "/bin", "/usr/local/bin")]
    here = sorted({str(topo.base), str(topo.root), *own}, key=len, reverse=True)

    def mapped_out(value: str) -> str:
        for place in here:
            value = value.replace(place, "<here>")
        return value

    return [f"{k}={v}" for k, v in items if CONTAINER_ONLY.search(mapped_out(v))]


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", str(text).strip())
    if not m:
        raise ValueError(f"duration {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


# ----------------------------------------------------------------------------------------- processes

def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> int | None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL after ``timeout``;
    returns the exit code of ``proc``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (gunicorn workers, children)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        return None


def kill_strays(marker: str) -> list[int]:
    """SIGKILL every process whose command line names ``marker`` (the test's folder): trainers run in
    sessions of their own, so stopping the agent's group leaves them. Returns their pids."""
    killed = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


def wait_healthy(topo: Topology, service: str, timeout: float, procs: dict) -> str:
    """Run the service's health check until it passes (its last output) or raise, with the reason."""
    cmd, check_timeout = topo.healthcheck(service)
    deadline, last = time.monotonic() + timeout, ""
    while True:
        proc = procs.get(service)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{service} exited with code {proc.returncode} before it was healthy")
        try:
            r = subprocess.run(cmd, env=topo.env(service), capture_output=True, text=True, timeout=check_timeout)
            last = (r.stdout + r.stderr).strip()
            if r.returncode == 0:
                return last
        except subprocess.TimeoutExpired:
            last = f"the health check took more than {check_timeout:.0f} s"
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} not healthy after {timeout:.0f} s: {shlex.join(cmd)} -> {last}")
        time.sleep(0.5)


def check_health_once(topo: Topology, service: str) -> tuple[int, str]:
    cmd, check_timeout = topo.healthcheck(service)
    r = subprocess.run(cmd, env=topo.env(service), capture_output=True, text=True, timeout=check_timeout)
    return r.returncode, (r.stdout + r.stderr).strip()
