"""docker-compose.yml parses and every service runs a real entry point of this project."""
from __future__ import annotations

import importlib
import shlex
import tomllib
from pathlib import Path

import yaml

from backend.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_describes_the_shared_deployment():
    services = _compose()["services"]
    assert {"dashboard", "trainer", "redis", "postgres"} <= set(services)
    gpu = services["trainer"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    dash_env = services["dashboard"]["environment"]
    assert dash_env["DEEPSCOPE_CACHE_TYPE"] == "RedisCache" and dash_env["DEEPSCOPE_REDIS_URL"].startswith("redis://")
    assert (ROOT / "Dockerfile").exists()


def test_each_project_service_command_is_a_real_entry_point():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    checked = set()
    for name, svc in _compose()["services"].items():
        if "build" not in svc:
            continue  # third-party images
        cmd = svc["command"] if isinstance(svc["command"], list) else shlex.split(svc["command"])
        if cmd[0] == "gunicorn":
            target = cmd[-1]
            module, _, attr = target.partition(":")
            func = getattr(importlib.import_module(module), attr.removesuffix("()"))
            assert callable(func), target
        else:
            assert cmd[0] in scripts, f"{name}: {cmd[0]} is not a console script"
            module, _, attr = scripts[cmd[0]].partition(":")
            assert callable(getattr(importlib.import_module(module), attr))
            build_parser().parse_args(cmd[1:])  # the sub-command and flags exist
        checked.add(name)
    assert checked == {"dashboard", "trainer", "analysis"}
