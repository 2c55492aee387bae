"""New run: type into fields and press Start at once: the run gets what the form shows, and no console error.

With the fields debounced (0.3 s), Start sent the values from before the last keystrokes (this test got a run
named "digits-cnn · cnn" with the default steps after typing "quick" and 300), and the timer, firing after
Start had opened the Training page, read its removed input: ``TypeError: Cannot read properties of null
(reading 'value')`` (half the runs of tests/deploy). The fields now send each change at once.
"""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.keys import Keys

from backend.jobs import JobManager
from backend.store import RunStore
from dashboard import ids
from tests.browser.test_training_flow import css_id, stop_processes, until, wait_enabled

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_nr010_type_then_start_at_once_logs_no_error(dash_duo, tmp_path):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    jobs = JobManager(RunStore(data_dir), launch=False)  # queued only: no trainer needed to see the page change
    try:
        dash_duo.start_server(create_app(data_dir, jobs=jobs))
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/new", timeout=30)
        wait_enabled(dash_duo, f"#{ids.NEW_START}", timeout=30)
        for name, text in (("name", "quick"), ("steps", "300"), ("batch_size", "16")):
            field = dash_duo.find_element(css_id(ids.NEW_FIELD, field=name))
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(text)
        wait_enabled(dash_duo, f"#{ids.NEW_START}", timeout=20)
        dash_duo.driver.execute_script(f"document.getElementById('{ids.NEW_START}').click();")
        until(lambda: "?run=" in dash_duo.driver.current_url, timeout=30, msg="Start did not open the run")
        dash_duo.wait_for_element(f"#{ids.TRAIN_PAUSE}", timeout=30)
        time.sleep(1.0)  # longer than any input timer
        run = jobs.store.get_run(dash_duo.driver.current_url.split("?run=")[1])
        assert run["name"] == "quick" and run["spec"]["steps"] == 300 and run["spec"]["batch_size"] == 16
        assert dash_duo.get_logs() == []
    finally:
        stop_processes(jobs)
