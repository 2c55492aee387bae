"""End-to-end in headless Chromium: start a run from the New-run form, watch it live, steer it.

A real dashboard (``create_app``) on a temporary store, a real :class:`JobManager`
and a real trainer subprocess. Graph data is read the way a user's browser holds it:
``document.querySelector('#<graph id> .js-plotly-plot').data``.

    .venv/bin/python -m pytest --headless tests/browser
"""
from __future__ import annotations

import json
import time

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.keys import Keys

from backend.spec import estimate
from backend.store import RunStore
from dashboard import ids
from tests.conftest import tiny_spec

pytestmark = pytest.mark.browser

LOSS_GRAPH = ids.graph_id("loss")
# Points of the train/loss trace in the browser's copy of the figure (-1: no graph yet).
LOSS_POINTS_JS = f"""
const gd = document.querySelector('#{LOSS_GRAPH} .js-plotly-plot');
if (!gd || !gd.data) return -1;
const t = gd.data.find(d => d.name === 'train/loss');
return t ? t.x.length : 0;
"""
BADGE = f"#{ids.TRAIN_STATUS} .badge"


def css_id(type_: str, **keys) -> str:
    """CSS selector of a pattern-matching component (Dash's DOM id is compact, key-sorted JSON)."""
    return "[id='" + json.dumps({"type": type_, **keys}, sort_keys=True, separators=(",", ":")) + "']"


def set_field(dash_duo, name: str, value, tries: int = 3) -> None:
    """Replace the text of a New-run field and leave it (blur commits a debounced input).

    On a heavily loaded machine a debounced input can commit half-typed text while keys are still
    arriving, and the re-render moves the caret ("browser run" became "browsr rune" once in CI);
    the text is checked and typed again, up to ``tries`` times."""
    for _ in range(tries):
        elem = dash_duo.find_element(css_id(ids.NEW_FIELD, field=name))
        elem.send_keys(Keys.CONTROL, "a")
        elem.send_keys(Keys.BACKSPACE)
        elem.send_keys(str(value))
        elem.send_keys(Keys.TAB)
        if elem.get_attribute("value") == str(value):
            return
    raise AssertionError(f"field {name!r} holds {elem.get_attribute('value')!r} after typing {value!r} {tries} times")


def until(condition, timeout: float, msg, poll: float = 0.1):
    """Poll ``condition`` until it is truthy; an element re-rendered under us counts as not yet.

    ``msg`` may be a callable, evaluated only on failure (it can read the page's current state).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except WebDriverException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(msg() if callable(msg) else msg)
        time.sleep(poll)


def js_text(dash_duo, selector: str) -> str | None:
    """Text of the first element matching ``selector`` read in the page (never stale), or None."""
    return dash_duo.driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;", selector)


def js_enabled(dash_duo, selector: str) -> bool:
    return dash_duo.driver.execute_script(
        "const e = document.querySelector(arguments[0]); return !!e && !e.disabled;", selector)


def click(dash_duo, selector: str) -> None:
    """Click an element, finding it again if a re-render replaced it."""
    until(lambda: dash_duo.find_element(selector).click() or True, timeout=10, msg=f"could not click {selector}")


def loss_points(dash_duo) -> int:
    return dash_duo.driver.execute_script(LOSS_POINTS_JS)


def wait_points_above(dash_duo, n: int, timeout: float, msg: str) -> int:
    until(lambda: loss_points(dash_duo) > n, timeout=timeout,
          msg=lambda: f"{msg}: the loss trace stayed at {loss_points(dash_duo)} points (wanted > {n})")
    return loss_points(dash_duo)


def wait_badge(dash_duo, status: str, timeout: float = 30) -> None:
    until(lambda: js_text(dash_duo, BADGE) == status, timeout=timeout,
          msg=lambda: f"status badge never showed {status!r} (shows {js_text(dash_duo, BADGE)!r})")


def wait_enabled(dash_duo, selector: str, timeout: float = 20) -> None:
    until(lambda: js_enabled(dash_duo, selector), timeout=timeout, msg=f"{selector} stayed disabled")


def wait_stable(dash_duo, quiet_s: float, timeout: float) -> int:
    """Wait until the loss point count has not changed for ``quiet_s``; return it."""
    deadline = time.monotonic() + timeout
    last, since = loss_points(dash_duo), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = loss_points(dash_duo)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"the loss trace kept growing ({last} points) {timeout} s after the run paused")


def stop_processes(jobs) -> None:
    """Terminate trainer processes this test started that are still alive."""
    for proc in jobs._procs.values():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.timeout(240)
def test_tr001_new_run_invalid_then_valid_then_pause_resume_stop(dash_duo, tmp_path):
    from backend.jobs import JobManager
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = JobManager(RunStore(data_dir), launch=True)
    app = create_app(data_dir, jobs=jobs)
    try:
        dash_duo.start_server(app)
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/new", timeout=30)
        dash_duo.wait_for_element(css_id(ids.NEW_FIELD, field="kernel_sizes"), timeout=30)
        wait_enabled(dash_duo, f"#{ids.NEW_START}", timeout=30)  # the defaults are valid

        # An even kernel size: the field says why, Start is not possible.
        set_field(dash_duo, "kernel_sizes", "4")
        dash_duo.wait_for_contains_text(css_id(ids.NEW_FEEDBACK, field="kernel_sizes"), "odd", timeout=20)
        until(lambda: not js_enabled(dash_duo, f"#{ids.NEW_START}"), timeout=10,
              msg="Start stayed enabled with an invalid kernel size")
        assert "fix the problems" in js_text(dash_duo, f"#{ids.NEW_COST}")

        # Fix it into a tiny, long run.
        spec = tiny_spec(steps=100_000, batch_size=32, model={"channels": [4, 8], "kernel_sizes": [3],
                                                              "dropout": 0.1})
        set_field(dash_duo, "channels", "4, 8")
        set_field(dash_duo, "batch_size", 32)
        set_field(dash_duo, "steps", 100_000)
        set_field(dash_duo, "name", "browser run")
        set_field(dash_duo, "kernel_sizes", "3")
        until(lambda: js_text(dash_duo, css_id(ids.NEW_FEEDBACK, field="kernel_sizes")) == "",
              timeout=20, msg="the kernel-size message stayed after the fix")
        dash_duo.wait_for_text_to_equal(f"#{ids.NEW_COST}", estimate(spec).describe(), timeout=20)
        wait_enabled(dash_duo, f"#{ids.NEW_START}")
        click(dash_duo, f"#{ids.NEW_START}")

        # Lands on the Training page of the new run.
        until(lambda: "?run=" in dash_duo.driver.current_url, timeout=30,
              msg=lambda: f"Start did not open the training view (alert: {js_text(dash_duo, '#' + ids.NEW_ALERT)!r})")
        run_id = dash_duo.driver.current_url.split("?run=")[1]
        run = jobs.store.get_run(run_id)
        assert run is not None and run["name"] == "browser run"
        assert run["spec"]["steps"] == 100_000 and run["spec"]["model"]["channels"] == [4, 8]
        assert run["spec"]["model"]["kernel_sizes"] == [3]

        dash_duo.wait_for_element(f"#{LOSS_GRAPH} .js-plotly-plot", timeout=30)
        dash_duo.driver.execute_script("window.__deepscopeNoReload = true;")
        first = wait_points_above(dash_duo, 0, timeout=90, msg="no loss points arrived")
        wait_points_above(dash_duo, first, timeout=30, msg="the loss curve did not grow live")
        wait_badge(dash_duo, "running")

        # Pause: the badge says so and the curve stops growing.
        wait_enabled(dash_duo, f"#{ids.TRAIN_PAUSE}")
        click(dash_duo, f"#{ids.TRAIN_PAUSE}")
        wait_badge(dash_duo, "paused")
        paused_at = wait_stable(dash_duo, quiet_s=1.0, timeout=10)  # a poll in flight may land once
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            assert loss_points(dash_duo) == paused_at, "the loss curve grew while the run was paused"
            time.sleep(0.1)

        # Resume: it grows again.
        wait_enabled(dash_duo, f"#{ids.TRAIN_RESUME}")
        click(dash_duo, f"#{ids.TRAIN_RESUME}")
        wait_badge(dash_duo, "running")
        wait_points_above(dash_duo, paused_at, timeout=30, msg="the loss curve did not grow after Resume")

        # Stop.
        wait_enabled(dash_duo, f"#{ids.TRAIN_STOP}")
        click(dash_duo, f"#{ids.TRAIN_STOP}")
        wait_badge(dash_duo, "stopped", timeout=40)
        until(lambda: jobs.store.get_run(run_id)["status"] == "stopped", timeout=10, msg="store never said stopped")
        assert jobs.wait(run_id, timeout=30) is not None, "the trainer process did not exit after Stop"

        assert dash_duo.driver.execute_script("return window.__deepscopeNoReload === true;"), \
            "the page reloaded during the live updates"
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)


@pytest.mark.timeout(180)
def test_ru001_empty_states_then_runs_page_lists_run_and_status(dash_duo, tmp_path):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    app = create_app(data_dir)
    dash_duo.start_server(app)

    # Empty store: each page says what it shows and where to start.
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/", timeout=30)
    dash_duo.wait_for_contains_text(".empty-state", "No runs yet", timeout=20)
    assert "Training shows live loss" in js_text(dash_duo, ".empty-state")
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/runs", timeout=30)
    dash_duo.wait_for_contains_text(".empty-state", "No runs yet", timeout=20)
    assert "Runs lists every training run" in js_text(dash_duo, ".empty-state")

    # A run appears in the store: the open Runs page lists it with its live status.
    store = RunStore(data_dir)
    spec = tiny_spec()
    run_id = store.create_run("listed run", spec.task, spec.model_dump(), status="running")
    store.log_scalars(run_id, [("train/loss", s, 1.0 / s, time.time()) for s in range(1, 6)], step=5)
    dash_duo.wait_for_contains_text(f"#{ids.RUNS_TABLE}", "listed run", timeout=20)
    status_cell = css_id(ids.RUNS_STATUS_CELL, index=run_id)
    dash_duo.wait_for_text_to_equal(status_cell, "running", timeout=20)
    assert run_id in js_text(dash_duo, f"#{ids.RUNS_TABLE}")

    store.set_status(run_id, "paused")
    dash_duo.wait_for_text_to_equal(status_cell, "paused", timeout=20)
    assert dash_duo.get_logs() == []


def test_tr002_address_bar_follows_the_run_selection(dash_duo, tmp_path):
    """The view can be shared: ?run= always names the runs on screen, without reloading the page."""
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    store = RunStore(data_dir)
    spec = tiny_spec()
    older = store.create_run("older run", spec.task, spec.model_dump(), status="completed")
    time.sleep(0.01)
    newer = store.create_run("newer run", spec.task, spec.model_dump(), status="completed")
    for rid in (older, newer):
        store.log_scalars(rid, [("train/loss", s, 1.0 / s, time.time()) for s in range(1, 6)], step=5)
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/", timeout=30)
    until(lambda: dash_duo.driver.execute_script("return window.location.search") == f"?run={newer}",
          timeout=20, msg=lambda: f"address bar: {dash_duo.driver.current_url}")
    dash_duo.driver.execute_script("window.__no_reload = true")
    dash_duo.select_dcc_dropdown(f"#{ids.TRAIN_RUNS}", value=f"older run ({older}, completed)")
    until(lambda: dash_duo.driver.execute_script("return window.location.search") == f"?run={newer}%2C{older}",
          timeout=20, msg=lambda: f"address bar: {dash_duo.driver.current_url}")
    assert dash_duo.driver.execute_script("return window.__no_reload === true")  # same page, not reloaded
    assert dash_duo.get_logs() == []
