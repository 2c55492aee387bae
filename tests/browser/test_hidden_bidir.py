"""Hidden-states page for a bidirectional LSTM in headless Chromium: both directions side by side.

A real dashboard on a store holding a trained bidirectional ``sentiment-lstm`` run (a text classifier:
reading both ways is legitimate there, while the spec refuses a bidirectional language model, which
would see the token it must predict) and a one-directional ``brackets-lstm`` run, probe snapshots
written by the real trainer. Built-in runs of a classifier record no hidden states per token (no probe
text), so the test gives its run the hidden-state probe over held-out reviews, one after the other.
Brushing and dragging the threshold line are real mouse drags, in the backward panel.

    .venv/bin/python -m pytest --headless tests/browser/test_hidden_bidir.py
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.keys import Keys

from backend.analysis.cells import select_cells
from backend.probes.hooks import HiddenStateProbe
from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.hidden import KIND, HiddenSnapshot
from backend.tasks import get_task
from backend.tasks.data import load_task_data
from backend.tasks.probe import ProbeCorpus
from backend.training.worker import run_training
from dashboard import ids
from dashboard.views.hidden_states.figures import visible
from dashboard.views.hidden_states.panels import HS_MATCH_ON
from tests.browser.test_hidden_states import _query, _set_number
from tests.browser.test_training_flow import js_text, until

pytestmark = pytest.mark.browser
TRACES = f"#{ids.HS_TRACES} .js-plotly-plot"
THRESHOLD = 0.2
POS, WIN = 100, 80
SHOTS = Path("/tmp/shots")


def review_corpus(n_tokens: int = 3000) -> ProbeCorpus:
    """Held-out reviews of sentiment-lstm one after the other (word ids, padding dropped), with each
    word's position in its review as a track."""
    data = load_task_data(get_task("sentiment-lstm"), seed=0)
    rows = [[i for i in row if i] for row in data.x_val.tolist()]
    ids = [i for row in rows for i in row][:n_tokens]
    where = [float(k) for row in rows for k in range(len(row))][:n_tokens]
    return ProbeCorpus(ids=np.asarray(ids, dtype=np.int64), vocab=tuple(data.vocab),
                       tracks={"position in review": np.asarray(where, dtype=np.float32)},
                       source="held-out generated reviews, one after the other")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A bidirectional sentiment-lstm run and a one-directional brackets-lstm run, trained briefly."""
    data_dir = tmp_path_factory.mktemp("hsbi") / "data"
    store = RunStore(data_dir)
    out = {}
    for name, task, bi, steps in (("bidir", "sentiment-lstm", True, 60), ("onedir", "brackets-lstm", False, 20)):
        spec = RunSpec.for_task(task, steps=steps, probe_every=steps, model={"bidirectional": bi, "hidden_size": 32})
        out[name] = store.create_run(name, spec.task, spec.model_dump())
        extra = [HiddenStateProbe(store, out[name], review_corpus(), every=steps, adaptive=False)] if bi else []
        assert run_training(store, out[name], device="cpu", extra_hooks=extra) == "completed"
    assert store.list_snapshots(out["bidir"], KIND)[-1]["meta"]["directions"] == ["fwd", "bwd"]
    return data_dir, out


def _snapshot(data_dir, run_id) -> HiddenSnapshot:
    store = RunStore(data_dir)
    return HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1])


def _expected(snap, start, stop) -> dict[str, list[int]]:
    """Cells selected at THRESHOLD with the default margins (1 off before, in each direction's reading order)."""
    lo = max(0, start - 1)
    fwd = snap.window("l0.fwd.h", lo, stop + 1)
    bwd = snap.window("l0.bwd.h", lo, stop + 1)
    return {"fwd": select_cells(fwd, start - lo, stop - lo, THRESHOLD, 1, 0).tolist(),
            "bwd": select_cells(bwd, start - lo, stop - lo, THRESHOLD, 0, 1).tolist()}


def _brushable_range(snap) -> tuple[int, int]:
    """A 2-4 token range in the window where both directions select at least one cell."""
    for length in (3, 2, 4):
        for s in range(POS + 10, POS + WIN - 10):
            want = _expected(snap, s, s + length)
            if want["fwd"] and want["bwd"]:
                return s, s + length
    raise AssertionError("no range where both directions select cells")


def _pixels(dash_duo, axis: str, x: float | None, y: float | None) -> tuple[float, float]:
    """Page pixels of data point (x, y) in the subplot of x axis ``axis`` ("x" or "x2"); None: its middle."""
    return tuple(dash_duo.driver.execute_script("""
        const gd = document.querySelector(arguments[0]), r = gd.getBoundingClientRect();
        const xa = gd._fullLayout[arguments[1].replace('x', 'xaxis')], ya = xa._anchorAxis;
        const px = arguments[2] === null ? xa._length / 2 : xa.l2p(arguments[2]);
        const py = arguments[3] === null ? ya._length / 2 : ya.l2p(arguments[3]);
        return [r.left + xa._offset + px, r.top + ya._offset + py];
    """, TRACES, axis, x, y))


def _drag(dash_duo, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    builder = ActionBuilder(dash_duo.driver)
    builder.pointer_action.move_to_location(int(start[0]), int(round(start[1])))
    builder.pointer_action.pointer_down()
    for k in range(1, steps + 1):
        builder.pointer_action.move_to_location(int(start[0] + (end[0] - start[0]) * k / steps),
                                                int(round(start[1] + (end[1] - start[1]) * k / steps)))
    builder.pointer_action.pointer_up()
    builder.perform()
    ActionChains(dash_duo.driver).reset_actions()


def _layout(dash_duo, path: str):
    """``layout<path>`` of the traces plot (e.g. ".xaxis2.range"), or None where any part is missing."""
    return dash_duo.driver.execute_script(
        f"const g = document.querySelector('{TRACES}'); return (g?.layout{path.replace('.', '?.')}) ?? null;")


def _options(dash_duo, cid: str) -> list:
    """The option elements of dropdown ``cid``, its menu open."""
    dash_duo.find_element(f"#{cid}").click()
    menu = dash_duo.wait_for_element(".dash-dropdown-options", timeout=10)
    return menu.find_elements("css selector", ".dash-dropdown-option")


def _direction_options(dash_duo) -> list[str]:
    texts = [o.text for o in _options(dash_duo, ids.HS_DIR)]
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    return texts


def _selection(dash_duo) -> str:
    return js_text(dash_duo, f"#{ids.HS_SELECTION}") or ""


@pytest.mark.timeout(300)
def test_hsbi001_both_directions_side_by_side(dash_duo, runs):
    from dashboard.app import create_app

    data_dir, run = runs
    snap = _snapshot(data_dir, run["bidir"])
    start, stop = _brushable_range(snap)
    want = _expected(snap, start, stop)
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/hidden?run={run['bidir']}&pos={POS}", timeout=30)

    # the default for a bidirectional run: both, side by side, and the URL says so
    until(lambda: _layout(dash_duo, ".xaxis2 && g.layout.xaxis2.ticktext"), timeout=30,
          msg="the side-by-side chart never drew")
    assert "both, side by side" in js_text(dash_duo, f"#{ids.HS_DIR}")
    until(lambda: _query(dash_duo).get("dir") == "both", timeout=10,
          msg=lambda: f"the URL does not hold the direction: {dash_duo.driver.current_url}")
    assert _direction_options(dash_duo) == ["both, side by side", "forward only", "backward only"]

    # both panels: the same tokens at the same places, titled by reading direction
    tokens = [visible(t) for t in snap.tokens(POS, POS + WIN)]
    assert _layout(dash_duo, ".xaxis.ticktext") == tokens == _layout(dash_duo, ".xaxis2.ticktext")
    assert _layout(dash_duo, ".xaxis.range") == _layout(dash_duo, ".xaxis2.range") == [POS - 0.5, POS + WIN - 0.5]
    left = [_pixels(dash_duo, a, POS + 17, None)[0] - _pixels(dash_duo, a, POS, None)[0] for a in ("x", "x2")]
    assert left[0] == pytest.approx(left[1], abs=0.5)  # token 17 of the window is as far in, in both panels
    titles = dash_duo.driver.execute_script(
        f"return document.querySelector('{TRACES}').layout.annotations.map(a => a.text);")
    assert titles[0].startswith("forward (reads left to right)")
    assert titles[1].startswith("backward (reads right to left)")
    strips = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('.pair-strips .token-strip')].map(e => e.textContent);")
    assert strips == ["".join(tokens)] * 2

    # brush in the backward panel: the same token range selects cells in both directions
    _set_number(dash_duo, ids.HS_THRESHOLD, THRESHOLD)
    _drag(dash_duo, _pixels(dash_duo, "x2", start - 0.4, None), _pixels(dash_duo, "x2", stop - 0.6, None))
    until(lambda: dash_duo.find_element(f"#{ids.HS_SEL_START}").get_attribute("value") == str(start), timeout=15,
          msg=lambda: "brushing the backward panel did not set the range: "
          f"{dash_duo.find_element(f'#{ids.HS_SEL_START}').get_attribute('value')!r} (wanted {start})")
    assert dash_duo.find_element(f"#{ids.HS_SEL_STOP}").get_attribute("value") == str(stop)
    fwd = until(lambda: re.search(r"Forward: (\d+) cells are above", _selection(dash_duo)), timeout=15,
                msg=lambda: f"no forward selection: {_selection(dash_duo)!r}")
    bwd = re.search(r"Backward: (\d+) cells are above[^:]*right to left[^:]*: ([\d, …]+)", _selection(dash_duo))
    assert int(fwd.group(1)) == len(want["fwd"]) and bwd and int(bwd.group(1)) == len(want["bwd"])
    assert [int(c) for c in bwd.group(2).replace("…", "").split(",") if c.strip()] == want["bwd"][:40]
    assert "selects cells in both directions" in _selection(dash_duo)
    colored = dash_duo.driver.execute_script(f"""return document.querySelector('{TRACES}').data
        .filter(t => / cell \\d+$/.test(t.name)).map(t => t.name.split(' ')[0] + ':' + t.xaxis);""")
    assert colored.count("forward:x") == min(len(want["fwd"]), 30)
    assert colored.count("backward:x2") == min(len(want["bwd"]), 30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(SHOTS / "bidir.png"))

    # Match: both directions' cells together by default; then the backward cells only (kept in the URL)
    n_both = len(want["fwd"]) + len(want["bwd"])
    until(lambda: f"of {len(want['fwd'])} forward and {len(want['bwd'])} backward cells"
          in (js_text(dash_duo, f"#{ids.HS_MATCHES}") or ""), timeout=30,
          msg=lambda: f"no matches of both directions: {(js_text(dash_duo, f'#{ids.HS_MATCHES}') or '')[:300]!r}")
    first = dash_duo.find_elements(f"#{ids.HS_MATCHES} tbody tr")[0].find_elements("css selector", "td")[2].text
    assert first.endswith(f"/{n_both}")
    label = next(e for e in dash_duo.find_elements(f"#{HS_MATCH_ON} label") if "backward cells only" in e.text)
    label.click()
    until(lambda: f"of {len(want['bwd'])} backward cells" in (js_text(dash_duo, f"#{ids.HS_MATCHES}") or ""),
          timeout=30, msg=lambda: f"matching on backward cells: {js_text(dash_duo, f'#{ids.HS_MATCHES}')!r}")
    until(lambda: _query(dash_duo).get("match") == "bwd", timeout=10, msg="the URL does not hold match=bwd")

    # drag the backward panel's threshold line down: the threshold follows
    line = _pixels(dash_duo, "x2", None, THRESHOLD)
    _drag(dash_duo, line, (line[0], line[1] + 25), steps=5)
    until(lambda: float(dash_duo.find_element(f"#{ids.HS_THRESHOLD}").get_attribute("value") or THRESHOLD)
          < THRESHOLD - 0.05, timeout=10, msg=lambda: "dragging the backward threshold line did nothing: "
          f"{dash_duo.find_element(f'#{ids.HS_THRESHOLD}').get_attribute('value')!r}")
    _set_number(dash_duo, ids.HS_THRESHOLD, THRESHOLD)

    # the gate view shows both directions over the same tokens; the summary ranks both directions' cells
    until(lambda: dash_duo.driver.execute_script(
        f"const g = document.querySelector('#{ids.HS_GATE_MAP} .js-plotly-plot');"
        "return !!g && g.data.length === 2 && g.data.every(t => t.type === 'heatmap');"), timeout=20,
        msg="the gate view does not show both directions")
    until(lambda: re.search(r"(Forward|Backward) cell \d+ tracks|No cell of either direction",
                            js_text(dash_duo, f"#{ids.HS_SUMMARY_TEXT}") or ""), timeout=20,
          msg=lambda: f"cell summary: {js_text(dash_duo, f'#{ids.HS_SUMMARY_TEXT}')!r}")

    # the URL reproduces the view
    until(lambda: _query(dash_duo).get("sel") == f"{start}-{stop}" and _query(dash_duo).get("thr") == "0.2",
          timeout=10, msg=lambda: f"URL: {dash_duo.driver.current_url}")
    dash_duo.driver.get(dash_duo.driver.current_url)
    until(lambda: re.search(r"Forward: \d+ cells are above", _selection(dash_duo)), timeout=20,
          msg=lambda: f"the reloaded URL lost the side-by-side selection: {_selection(dash_duo)!r}")
    assert "both, side by side" in js_text(dash_duo, f"#{ids.HS_DIR}") and _layout(dash_duo, ".xaxis2.range")

    # one direction at a time: backward only, with its own (mirrored) selection; kept in the URL
    dash_duo.select_dcc_dropdown(f"#{ids.HS_DIR}", value="backward only")
    until(lambda: _query(dash_duo).get("dir") == "bwd", timeout=15, msg="the URL does not hold dir=bwd")
    until(lambda: _layout(dash_duo, ".xaxis2") is None and "layer 0 bwd" in (_layout(dash_duo, ".title.text") or ""),
          timeout=15, msg="backward only: still two panels")
    until(lambda: f"{len(want['bwd'])} cells are above" in _selection(dash_duo), timeout=15,
          msg=lambda: f"backward only: {_selection(dash_duo)!r}")
    dash_duo.driver.get(dash_duo.driver.current_url)
    until(lambda: "layer 0 bwd" in (_layout(dash_duo, ".title.text") or ""), timeout=20,
          msg="reloading kept neither the backward direction nor its chart")
    assert "backward only" in js_text(dash_duo, f"#{ids.HS_DIR}")
    assert dash_duo.get_logs() == []


MARKS_JS = f"""
return [...document.querySelectorAll('#{ids.HS_TRACES} .pair-hover-mark')].map(m => {{
    const r = m.getBoundingClientRect();
    return {{shown: getComputedStyle(m).display !== 'none', left: r.left, token: Number(m.dataset.token),
             text: m.textContent}};
}});"""


def _move(dash_duo, x: float, y: float) -> None:
    builder = ActionBuilder(dash_duo.driver)
    builder.pointer_action.move_to_location(int(round(x)), int(round(y)))
    builder.perform()


@pytest.mark.timeout(240)
def test_hsbi003_hovering_a_token_marks_it_in_both_panels(dash_duo, runs):
    """A real pointer over the backward panel at one token: a line marks that token in both panels, at the
    token's place in each; leaving the chart takes them away. One direction shown: no marks."""
    from dashboard.app import create_app

    data_dir, run = runs
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/hidden?run={run['bidir']}&pos={POS}", timeout=30)
    until(lambda: _layout(dash_duo, ".xaxis2 && g.layout.xaxis2.ticktext"), timeout=30,
          msg="the side-by-side chart never drew")
    dash_duo.driver.execute_script(f"document.querySelector('{TRACES}').scrollIntoView({{block: 'center'}});")
    token = POS + 17
    target = _pixels(dash_duo, "x2", token, None)
    until(lambda: (_move(dash_duo, *target), [m for m in dash_duo.driver.execute_script(MARKS_JS) if m["shown"]])[1],
          timeout=10, msg="the pointer over the backward panel drew no mark")
    marks = dash_duo.driver.execute_script(MARKS_JS)
    assert [m["shown"] for m in marks] == [True, True] and {m["token"] for m in marks} == {token}
    tokens = [visible(t) for t in _snapshot(data_dir, run["bidir"]).tokens(POS, POS + WIN)]
    assert {m["text"] for m in marks} == {tokens[17]}  # the token itself, written at the top of each mark
    where = [_pixels(dash_duo, a, token, None)[0] for a in ("x", "x2")]
    assert [m["left"] for m in marks] == [pytest.approx(w, abs=1.5) for w in where]
    SHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(SHOTS / "hidden_bidir_hover.png"))
    _move(dash_duo, *_pixels(dash_duo, "x", token - 5, None))  # over the forward panel: the marks follow
    until(lambda: {m["token"] for m in dash_duo.driver.execute_script(MARKS_JS)} == {token - 5}, timeout=5,
          msg="the marks did not follow the pointer into the forward panel")
    _move(dash_duo, 5, 5)  # off the chart
    until(lambda: not any(m["shown"] for m in dash_duo.driver.execute_script(MARKS_JS)), timeout=5,
          msg="the marks stayed after the pointer left")

    dash_duo.driver.execute_script("window.scrollTo(0, 0);")  # the menus, out from under the sticky header
    dash_duo.select_dcc_dropdown(f"#{ids.HS_DIR}", value="forward only")
    until(lambda: _layout(dash_duo, ".xaxis2") is None, timeout=15, msg="forward only: still two panels")
    dash_duo.driver.execute_script(f"document.querySelector('{TRACES}').scrollIntoView({{block: 'center'}});")
    _move(dash_duo, *_pixels(dash_duo, "x", token, None))
    time.sleep(0.3)
    assert not any(m["shown"] for m in dash_duo.driver.execute_script(MARKS_JS))
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_hsbi002_one_directional_runs_offer_no_side_by_side(dash_duo, runs):
    from dashboard.app import create_app

    data_dir, run = runs
    dash_duo.start_server(create_app(data_dir))
    # a shared link asking for both directions of a one-directional run shows its one direction, as before
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/hidden?run={run['onedir']}&dir=both&sel=110-112", timeout=30)
    until(lambda: re.search(r"^(\d+ cells are above|No cell is above)", _selection(dash_duo)), timeout=30,
          msg=lambda: f"one-directional run: {_selection(dash_duo)!r}")
    assert _layout(dash_duo, ".xaxis2") is None and "layer 0 fwd" in _layout(dash_duo, ".title.text")
    assert "Forward:" not in _selection(dash_duo) and "both directions" not in _selection(dash_duo)
    assert _direction_options(dash_duo) == ["forward"]
    assert "forward" in js_text(dash_duo, f"#{ids.HS_DIR}")
    until(lambda: "sel" in _query(dash_duo), timeout=10, msg="the view never reached the URL")
    assert "dir" not in _query(dash_duo) and "match" not in _query(dash_duo)
    assert not dash_duo.find_element(f"#{HS_MATCH_ON}").is_displayed()
    until(lambda: dash_duo.driver.execute_script(
        f"const g = document.querySelector('#{ids.HS_GATE_MAP} .js-plotly-plot');"
        "return !!g && g.data.length === 1 && g.data[0].type === 'heatmap';"), timeout=20,
        msg="one-directional run: the gate view is not the one heatmap of before")

    # switching to the bidirectional run from the run menu picks its default: both, side by side
    next(o for o in _options(dash_duo, ids.HS_RUN) if run["bidir"] in o.text).click()
    until(lambda: _query(dash_duo).get("dir") == "both" and _layout(dash_duo, ".xaxis2.range"), timeout=20,
          msg=lambda: f"switching to the bidirectional run: {dash_duo.driver.current_url}")
    assert "both, side by side" in js_text(dash_duo, f"#{ids.HS_DIR}")
    until(lambda: dash_duo.find_element(f"#{HS_MATCH_ON}").is_displayed(), timeout=10,
          msg="the Match-on choice is not shown side by side")
    assert dash_duo.get_logs() == []
