"""The docker-compose deployment, started natively from this virtualenv and walked in headless Chromium.

PostgreSQL and Redis from the Debian binaries stand in for their images; the dashboard (gunicorn,
several workers), the trainer agent and the analysis worker run the commands, environments and health
checks READ FROM docker-compose.yml (see :mod:`tests.deploy.topology` for what is mapped), started in
its ``depends_on`` order once each dependency's own health check passes. Then an operator signs in,
queues a digits-cnn and a code-lstm run on the New run page, the agent trains them, and the Training,
Hidden states, Kernels and Projections pages show them (the t-SNE map comes from the analysis worker).
Several gunicorn workers must have answered, no request may get a 5xx, no log a traceback; the worker
and the dashboard exit 0 on SIGTERM and their health checks then fail.

Skipped, with the reason, without PostgreSQL / Redis / Chromium (``make test`` installs them)::

    .venv/bin/python -m pytest -q --headless tests/deploy
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dashboard import ids
from tests.browser.conftest import CHROME_ARGS, CHROMEDRIVER, MISSING as BROWSER_MISSING
from tests.browser.test_training_flow import css_id, until
from tests.deploy.infra import Postgres, free_port, postgres_bin, start_redis
from tests.deploy.topology import (Topology, check_health_once, kill_strays, leftovers, stop_group,
                                   wait_healthy)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
OPERATOR, PASSWORD = "ada", "compose-operator-1"
NATIVE = {"postgres", "redis"}            # images replaced by the Debian servers
ACCESS_FORMAT = 'deepscope-access pid=%(p)s status=%(s)s "%(r)s"'
ACCESS = re.compile(r'deepscope-access pid=<(\d+)> status=(\d+) "(\S+) (\S+)')
LOSS_POINTS_JS = f"""
const gd = document.querySelector('#{ids.graph_id("loss")} .js-plotly-plot');
if (!gd || !gd.data) return -1;
const t = gd.data.find(d => d.name === 'train/loss');
return t ? t.x.length : 0;
"""
MAP_POINTS_JS = f"""
const g = document.querySelector('#{ids.PJ_MAP} .js-plotly-plot');
return g && g._fullData ? g._fullData.filter(t => t.meta === 'points').map(t => [t.type, t._length]) : [];
"""


def _missing() -> str | None:
    if postgres_bin() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) not found; `make test` installs the Debian package postgresql"
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return "redis-server / redis-cli not found; `make test` installs the Debian package redis-server"
    if not Path(VENV_BIN, "gunicorn").exists():
        return "gunicorn is not installed in this environment (pip install -e '.[deploy]')"
    return BROWSER_MISSING


class Deployment:
    """The started topology: processes, logs, and how to stop all of it."""

    def __init__(self, base: Path):
        self.base, self.procs, self.logs = base, {}, {}
        self.pg: Postgres | None = None
        self.healthy: set[str] = set()
        self.topo: Topology | None = None

    def start(self) -> Topology:
        ports = {"postgres": free_port(), "redis": free_port(), "dashboard": free_port()}
        auth = self.base / "secrets" / "auth.json"
        auth.parent.mkdir()
        bins = (VENV_BIN, str(postgres_bin()), "/usr/bin", "/bin")
        topo = self.topo = Topology.load(ROOT, self.base, ports, {"deepscope_auth": auth}, bins)
        for name in topo.services:
            if name not in NATIVE:
                assert leftovers(topo, name) == [], f"{name}: values the test cannot map onto this machine"
        # the accounts file as the compose file's header says to make it
        subprocess.run([f"{VENV_BIN}/deepscope", "auth", "add", OPERATOR, "--role", "operator", "--auth-file",
                        str(auth), "--password-stdin"], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True, timeout=60)
        for name in topo.start_order():
            for dep, condition in topo.depends_on(name).items():
                if condition == "service_healthy" and dep not in self.healthy:
                    wait_healthy(topo, dep, 90, self.procs)
                    self.healthy.add(dep)
            self._start(name)
        for name in topo.services:  # then every service, as `docker compose ps` would show it
            if name not in self.healthy:
                wait_healthy(topo, name, 120, self.procs)
                self.healthy.add(name)
        return topo

    def _start(self, name: str) -> None:
        topo = self.topo
        if name == "postgres":
            env = topo.services[name]["environment"]
            self.pg = Postgres.start(self.base / "pg", topo.ports[name], env["POSTGRES_USER"],
                                     env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
            return
        if name == "redis":
            self.procs[name] = start_redis(self.base / "redis", topo.ports[name])
            return
        assert "build" in topo.services[name], f"{name}: an image this test cannot run natively"
        cmd = topo.command(name)
        if Path(cmd[0]).name == "gunicorn":  # test-only: which worker answered each request
            cmd[-1:-1] = ["--access-logformat", ACCESS_FORMAT]
        env = topo.env(name)
        env["DEEPSCOPE_TORCH_THREADS"] = "1"   # 2 shared cores: the trainers, the worker and Chromium
        env["CUDA_VISIBLE_DEVICES"] = ""       # the GPU reservation is not reproduced here
        for folder in topo.volumes(name).values():
            folder.mkdir(parents=True, exist_ok=True)
        cwd = self.base / f"{name}-tmp"
        cwd.mkdir(exist_ok=True)
        self.logs[name] = self.base / f"{name}.log"
        with open(self.logs[name], "wb") as log:
            self.procs[name] = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self, name: str) -> str:
        try:
            return self.logs[name].read_text(errors="replace")
        except (KeyError, OSError):
            return ""

    def trainer_logs(self) -> dict[str, str]:
        return {str(p.relative_to(self.base)): p.read_text(errors="replace")
                for p in self.base.glob("volumes/*/**/*.log")}

    def tails(self) -> str:
        quiet = lambda text: "\n".join(l for l in text.splitlines() if "deepscope-access" not in l)  # noqa: E731
        parts = [f"--- {n} ---\n{quiet(self.log(n))[-2500:]}" for n in self.logs]
        parts += [f"--- {n} ---\n{t[-1500:]}" for n, t in self.trainer_logs().items()]
        if self.pg is not None:
            parts.append(f"--- postgres ---\n{self.pg.log()[-1500:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            stop_group(self.procs[name], timeout=15)
        if self.pg is not None:
            self.pg.stop()
        kill_strays(str(self.base))  # trainers run in sessions of their own; anything else left


def _driver(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def _js_text(driver, selector: str) -> str:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';", selector) or ""


def _console_errors(driver, where: str, tolerate: re.Pattern | None = None) -> list[str]:
    """SEVERE browser console entries since the last call, each named with the page it came from."""
    return [f"{where}: {e['message']}" for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and not (tolerate and tolerate.search(e["message"]))]


def _map_points(driver) -> tuple[set, int]:
    """The trace types of the Projections map's points and how many points they hold."""
    traces = driver.execute_script(MAP_POINTS_JS) or []
    return {t for t, _ in traces}, sum(n for _, n in traces)


def _set_field(driver, name: str, value) -> None:
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):
        elem = until(lambda: driver.find_element("css selector", css_id(ids.NEW_FIELD, field=name)), 30,
                     f"no field {name!r} on the New run page")
        elem.send_keys(Keys.CONTROL, "a")
        elem.send_keys(Keys.BACKSPACE)
        elem.send_keys(str(value))
        elem.send_keys(Keys.TAB)
        if elem.get_attribute("value") == str(value):
            return
    raise AssertionError(f"field {name!r} holds {elem.get_attribute('value')!r} after typing {value!r}")


def _queue_run(driver, base_url: str, task: str, fields: dict) -> str:
    """Fill the New run form of ``task`` and press Start; returns the run id the Training page opens."""
    from backend.spec import RunSpec
    from dashboard.views.new_run.form import form_values, validate_form

    cost = lambda: _js_text(driver, f"#{ids.NEW_COST}")  # noqa: E731
    driver.get(f"{base_url}/new?task={task}")
    until(lambda: "parameters" in cost(), 30, lambda: f"the New run form of {task} never showed its size: {cost()!r}")
    for name, value in fields.items():
        _set_field(driver, name, value)
    # the page has validated what was typed (the size of exactly this spec), as the user sees it
    want = validate_form(task, {**form_values(RunSpec.for_task(task)), **{k: str(v) for k, v in fields.items()}})
    assert want.spec is not None, want.field_errors
    until(lambda: cost() == want.cost, 30, lambda: f"{task}: the form shows {cost()!r}, not {want.cost!r} "
          f"({_js_text(driver, '#' + ids.NEW_ERRORS)!r})")
    until(lambda: driver.find_element("id", ids.NEW_START).is_enabled(), 30, f"Start stayed disabled for {task}")
    until(lambda: driver.find_element("id", ids.NEW_START).click() or True, 10, "could not click Start")
    until(lambda: "?run=" in driver.current_url, 30,
          lambda: f"Start did not open the run ({task}): {_js_text(driver, '#' + ids.NEW_ALERT)!r}")
    time.sleep(1.0)  # any late error of the page left behind lands in the console check that follows
    return driver.current_url.split("?run=")[1].split("&")[0]


@pytest.mark.timeout(420)
def test_dp001_compose_topology_end_to_end():
    if reason := _missing():
        pytest.skip(reason)
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="deepscope-deploy-"))
    os.chmod(base, 0o711)  # the postgres user reaches its folder inside
    deployment, driver = Deployment(base), None
    marks: list[str] = []
    try:
        topo = deployment.start()
        marks.append(f"all {len(topo.services)} services healthy at {time.monotonic() - t0:.0f} s")
        base_url = f"http://127.0.0.1:{topo.ports['dashboard']}"
        assert topo.env("dashboard")["DEEPSCOPE_LAUNCH"] == "agent", "the dashboard must queue, the agent train"

        driver = _driver(base / "chrome-profile")
        # sign in: the dashboard sends a visitor to /login first
        driver.get(f"{base_url}/new")
        until(lambda: "/login" in driver.current_url, 30, lambda: f"no sign-in page: {driver.current_url}")
        driver.find_element("name", "name").send_keys(OPERATOR)
        driver.find_element("name", "password").send_keys(PASSWORD)
        driver.find_element("css selector", "button[type=submit]").click()
        until(lambda: "/login" not in driver.current_url, 30, lambda: f"sign-in failed: {_js_text(driver, 'body')}")

        # two tiny runs from the New run page: a CNN (Kernels) and a character LSTM (Hidden states, Projections)
        cnn = _queue_run(driver, base_url, "digits-cnn", {"channels": "4, 8", "steps": 300, "probe_every": 100,
                                                          "name": "compose cnn"})
        lstm = _queue_run(driver, base_url, "code-lstm", {"hidden_size": 16, "embedding_dim": 8, "batch_size": 8,
                                                          "steps": 300, "probe_every": 100,
                                                          "name": "compose lstm"})
        marks.append(f"queued both runs at {time.monotonic() - t0:.0f} s")
        # (the New run fields used to be debounced: a timer then read a removed input as Start left the page;
        # tests/browser/test_new_run_console.py)
        severe = _console_errors(driver, "sign-in and New run")

        # Training: the LSTM's loss curve, streamed by the gunicorn workers
        until(lambda: driver.execute_script(LOSS_POINTS_JS) > 5, 120,
              lambda: f"no loss curve for {lstm}: {driver.execute_script(LOSS_POINTS_JS)} points, badge "
                      f"{_js_text(driver, f'#{ids.TRAIN_STATUS} .badge')!r}")
        until(lambda: _js_text(driver, f"#{ids.TRAIN_STATUS} .badge") == "completed", 120,
              lambda: f"the LSTM run did not complete: {_js_text(driver, f'#{ids.TRAIN_STATUS}')!r}")
        marks.append(f"LSTM run completed at {time.monotonic() - t0:.0f} s")

        severe += _console_errors(driver, "Training")

        # Hidden states of the text run
        driver.get(f"{base_url}/hidden?run={lstm}")
        traces_js = (f"const g = document.querySelector('#{ids.HS_TRACES} .js-plotly-plot');"
                     "return g && g.data ? g.data.length : 0;")
        until(lambda: driver.execute_script(traces_js), 60, "the Hidden states traces never drew")

        severe += _console_errors(driver, "Hidden states")

        # Kernels of the CNN run (its snapshots)
        driver.get(f"{base_url}/kernels?run={cnn}")
        until(lambda: re.search(r"snapshot at step [\d,]+", _js_text(driver, f"#{ids.KN_INFO}")), 90,
              lambda: f"no kernel snapshot shown: {_js_text(driver, f'#{ids.KN_INFO}')!r}")

        severe += _console_errors(driver, "Kernels")

        # Projections: the t-SNE map the analysis worker computed for the LSTM's 98 characters
        driver.get(f"{base_url}/projections?run={lstm}")
        # one trace per class of character (letters, digits, brackets, blanks...), 98 points in all: SVG, so
        # that Play glides (dashboard/views/projections/glide.py)
        until(lambda: _map_points(driver) == ({"scatter"}, 98), 150,
              lambda: f"no t-SNE map: {driver.execute_script(MAP_POINTS_JS)}, {_js_text(driver, f'#{ids.PJ_INFO}')!r}")
        assert "map at step" in _js_text(driver, f"#{ids.PJ_INFO}")
        marks.append(f"t-SNE map shown at {time.monotonic() - t0:.0f} s")
        assert "computing maps" in deployment.log("analysis"), deployment.log("analysis")[-2000:]

        severe += _console_errors(driver, "Projections")
        assert severe == [], "\n".join(severe)

        # a clean stop: SIGTERM, exit 0, and then the health check says so
        for name in ("analysis", "dashboard"):
            code = stop_group(deployment.procs[name], timeout=20)
            assert code == 0, f"{name} exited with {code} on SIGTERM:\n{deployment.log(name)[-2000:]}"
            rc, out = check_health_once(topo, name)
            assert rc != 0, f"{name}'s health check passed after it stopped: {out}"

        # every request answered, by several workers; no traceback anywhere
        hits = ACCESS.findall(deployment.log("dashboard"))
        callbacks = {pid for pid, status, method, path in hits if path.startswith("/_dash-update-component")}
        assert len(callbacks) >= 2, f"only gunicorn worker(s) {callbacks} answered the pages' callbacks"
        errors = [h for h in hits if int(h[1]) >= 500]
        assert errors == [], errors
        logs = {name: deployment.log(name) for name in deployment.logs} | deployment.trainer_logs()
        broken = {name: text[text.index("Traceback") - 500:][:3000] for name, text in logs.items()
                  if "Traceback" in text}
        assert broken == {}, broken
        assert " 500 " not in "".join(logs.values())
        print(f"{len(hits)} requests, callbacks answered by {len(callbacks)} gunicorn workers; " + "; ".join(marks))
    except BaseException:
        print("\n".join(marks) + "\n" + deployment.tails())
        raise
    finally:
        if driver is not None:
            driver.quit()
        deployment.stop()
        shutil.rmtree(base, ignore_errors=True)
