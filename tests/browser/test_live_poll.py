"""In headless Chromium: the Training page's curves grow through the live stream (assets/training_live.js,
dashboard/views/training/live_stream.py), or with no stream to be had through the plain live route it polls
(dashboard/views/training/live_route.py), not through Dash callbacks, with every logged point drawn once, the
smoothed curve equal to smoothing the whole series at once, the card's step kept current, a resume redrawn
from the checkpoint, a new series drawn, and no console errors.

    .venv/bin/python -m pytest --headless tests/browser/test_live_poll.py
"""
from __future__ import annotations

import re
import threading
import time

import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import ids
from dashboard.views.training.figures import ema
from tests.browser.test_training_flow import until

pytestmark = pytest.mark.browser
TRACES_JS = f"""
const gd = document.querySelector('#{ids.graph_id("loss")} .js-plotly-plot');
if (!gd || !gd.data) return null;
return gd.data.filter(t => t.name === 'train/loss').map(t => [Array.from(t.x), Array.from(t.y)]);
"""
REQUESTS_JS = """
const names = performance.getEntriesByType('resource').map(e => e.name);
return [names.filter(n => n.includes('/_deepscope/live')).length,
        names.filter(n => n.includes('/_dash-update-component')).length];
"""


def _value(step: int) -> float:
    return 1.0 / step + 0.05 * ((step * 7919) % 13) / 13


def _log(store: RunStore, run_id: str, steps) -> None:
    for s in steps:
        store.log_scalars(run_id, [("train/loss", s, _value(s), time.time())], step=s)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("way", ["stream", "poll"])
def test_lv001_curves_grow_live_once_each_and_a_resume_redraws(dash_duo, tmp_path, way):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    store = RunStore(data_dir)
    run_id = store.create_run("live poll", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(),
                              status="running")
    _log(store, run_id, range(1, 21))
    app = create_app(data_dir)
    streams = app.server.extensions["deepscope_stream"]
    if way == "poll":
        streams.max_streams = 0  # DEEPSCOPE_STREAMS=0, or every stream taken: the page polls
    else:
        streams.life_s = 1.0  # streams end while the curve grows: the page opens the next from its cursors
    halt, logged = threading.Event(), [20]

    def trainer():  # a run logging ~25 points a second, as a small model does
        while not halt.wait(0.04):
            logged[0] += 1
            _log(store, run_id, [logged[0]])

    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/?run={run_id}", timeout=30)
    dash_duo.wait_for_element(f"#{ids.graph_id('loss')} .js-plotly-plot", timeout=30)
    traces = lambda: dash_duo.driver.execute_script(TRACES_JS)  # noqa: E731

    def card_step() -> int:
        text = dash_duo.driver.execute_script(
            f"const e = document.querySelector('#{ids.TRAIN_STATUS} .run-head'); return e ? e.textContent : '';")
        found = re.search(r"step ([\d,]+)", text or "")
        return int(found.group(1).replace(",", "")) if found else -1
    until(lambda: traces() and len(traces()[0][0]) >= 20, timeout=30, msg="the first figures never came")
    live0, dash0 = dash_duo.driver.execute_script(REQUESTS_JS)
    thread = threading.Thread(target=trainer, daemon=True)
    thread.start()
    try:
        until(lambda: len(traces()[0][0]) >= 80, timeout=40, msg=lambda: f"the curve did not grow: {len(traces()[0][0])}")
        # the step in the status card follows too
        until(lambda: card_step() >= 80, timeout=10, msg=lambda: f"the card's step stayed at {card_step()}")
    finally:
        halt.set()
        thread.join(5)
    last = logged[0]
    until(lambda: traces()[0][0][-1:] == [last], timeout=15, msg="the last logged point never arrived")
    (raw_x, raw_y), (smooth_x, smooth_y) = traces()
    assert raw_x == list(range(1, last + 1)) and smooth_x == raw_x  # every point once, in order
    whole, _ = ema([_value(s) for s in raw_x], 0.6)
    assert max(abs(a - b) / abs(b) for a, b in zip(smooth_y, whole)) < 1e-5
    live1, dash1 = dash_duo.driver.execute_script(REQUESTS_JS)
    assert dash1 - dash0 <= 3, dash1 - dash0  # the curves grow without Dash callbacks
    if way == "poll":
        assert live1 - live0 >= 5 and streams.refused >= 1, (live1 - live0, streams.refused)
    else:  # pushed: no poll at all, across streams that ended and were opened again
        assert live1 == 0 and streams.opened >= 2 and streams.refused == 0, (live1, streams.opened)

    store.supersede_after(run_id, 30)  # the run resumed from its checkpoint at step 30
    _log(store, run_id, range(31, 41))
    until(lambda: traces()[0][0] == list(range(1, 41)), timeout=20,
          msg=lambda: f"the resumed run was not redrawn: {traces()[0][0][-5:]}, {len(traces()[0][0])} points")
    # a series the page has no trace for (the first evaluation): whole figures again, with it
    store.log_scalars(run_id, [("val/loss", 40, 0.5, time.time())], step=40)
    names = f"return document.querySelector('#{ids.graph_id('loss')} .js-plotly-plot').data.map(t => t.name);"
    until(lambda: "val/loss" in dash_duo.driver.execute_script(names), timeout=20, msg="val/loss never appeared")
    assert traces()[0][0] == list(range(1, 41))
    assert dash_duo.get_logs() == []


HIDE_JS = """
Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => arguments[0]});
document.dispatchEvent(new Event('visibilitychange'));
"""


@pytest.mark.timeout(120)
def test_lv002_a_hidden_tab_closes_its_stream_and_catches_up_once_shown(dash_duo, tmp_path):
    """A tab nobody looks at takes nothing from the server; shown again, it opens a stream from its cursors at
    once and draws what it missed, every point once."""
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    store = RunStore(data_dir)
    run_id = store.create_run("hidden tab", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="running")
    _log(store, run_id, range(1, 21))
    app = create_app(data_dir)
    streams = app.server.extensions["deepscope_stream"]
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/?run={run_id}", timeout=30)
    traces = lambda: dash_duo.driver.execute_script(TRACES_JS)  # noqa: E731
    until(lambda: traces() and len(traces()[0][0]) >= 20, timeout=30, msg="the first figures never came")
    until(lambda: streams.open == 1, timeout=10, msg=lambda: f"{streams.open} streams open")
    dash_duo.driver.execute_script(HIDE_JS, "hidden")
    _log(store, run_id, range(21, 41))  # logged while nobody looks
    until(lambda: streams.open == 0, timeout=10, msg="the hidden tab kept its stream")
    opened = streams.opened
    time.sleep(2.0)
    assert streams.opened == opened and len(traces()[0][0]) <= 40  # nothing asked while hidden
    dash_duo.driver.execute_script(HIDE_JS, "visible")
    until(lambda: traces()[0][0] == list(range(1, 41)), timeout=5,
          msg=lambda: f"shown again, the page did not catch up: {traces()[0][0][-5:]}")
    assert streams.opened == opened + 1 and dash_duo.get_logs() == []
