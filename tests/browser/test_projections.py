"""Projections page in headless Chromium: the map (SVG up to 3,000 points, so Play glides), labels that
do not overlap, the step slider and Play, neighbours, analogies, a lasso selection, and the empty and bad states.

The runs are made by hand (``tests.integration.test_projection_data.make_projection_run``): 300 planted
words in 3 embeddings snapshots with a PCA map each, written with ``write_projection`` (no analysis
worker runs here).

    .venv/bin/python -m pytest --headless tests/browser/test_projections.py
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.keys import Keys

from backend.analysis.projection.core import pca
from backend.store import RunStore
from backend.store.projections import REQUESTS_FILE, write_projection, write_source_snapshot
from dashboard import ids
from tests.browser.test_training_flow import js_text, until
from tests.integration.test_projection_data import (N_WORDS, THEMES, make_projection_run, planted_inputs,
                                                    planted_tokens)

pytestmark = pytest.mark.browser
MAP = f"#{ids.PJ_MAP} .js-plotly-plot"
INFO = f"#{ids.PJ_INFO}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("pj") / "data"
    store = RunStore(data_dir)
    bare = store.create_run("mlp-bare", "digits-mlp", {"model": {"family": "mlp"}}, status="completed")
    time.sleep(0.01)
    waiting, _ = make_projection_run(store, "no-maps-yet", maps=False, status="running")
    time.sleep(0.01)
    planted, settings = make_projection_run(store, "planted")
    return data_dir, {"bare": bare, "waiting": waiting, "planted": planted}, settings


def _points(dash_duo) -> list:
    """``[type, number of points]`` of each trace of the map's points, as the browser holds them."""
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0]);"
        "return g && g._fullData ? g._fullData.filter(t => t.meta === 'points').map(t => [t.type, t._length]) : [];",
        MAP)


def _map_text(dash_duo) -> str:
    """The map's title and annotations (its messages, labels)."""
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0]); if (!g || !g.layout) return '';"
        "return [(g.layout.title || {}).text || ''].concat((g.layout.annotations || []).map(a => a.text)).join(' | ');",
        MAP) or ""


def _type(dash_duo, selector: str, text: str) -> None:
    elem = dash_duo.find_element(selector)
    elem.send_keys(Keys.CONTROL, "a")
    elem.send_keys(Keys.BACKSPACE)
    elem.send_keys(text + Keys.ENTER)


def _add_snapshot(data_dir, run_id: str, step: int, settings, **meta) -> None:
    """One more embeddings snapshot and its map, as a live run and the worker would add them."""
    store = RunStore(data_dir)
    x = planted_tokens(1.0)["x"] * 1.05
    sid = write_source_snapshot(store, run_id, step, {"tokens": {**planted_tokens(1.0), "x": x},
                                                      "penultimate": planted_inputs(1.0)})
    coords, explained = pca(x / np.linalg.norm(x, axis=1, keepdims=True), 2)
    write_projection(store, run_id, step, settings, coords * 4, np.arange(N_WORDS),
                     {"source_id": sid, "warm_from": None, "seconds": 0.01, "explained": explained.tolist(), **meta})


def _click_point(dash_duo, row: int) -> None:
    """A real mouse click on the map's point of source row ``row``."""
    x, y = dash_duo.driver.execute_script("""
        const gd = document.querySelector(arguments[0]);
        const t = gd._fullData.find(d => d.meta === 'points');
        const i = Array.from(t.customdata).indexOf(arguments[1]);
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const L = gd._fullLayout;
        return [r.left + L.xaxis.l2p(t.x[i]), r.top + L.yaxis.l2p(t.y[i])];
    """, MAP, row)
    builder = ActionBuilder(dash_duo.driver)
    builder.pointer_action.move_to_location(int(x), int(y))
    builder.pointer_action.click()
    builder.perform()
    ActionChains(dash_duo.driver).reset_actions()


def _isolated_row(dash_duo) -> int:
    """The source row of the point farthest from its nearest neighbour on the map (a click cannot miss it)."""
    xs, ys, rows = dash_duo.driver.execute_script(
        "const t = document.querySelector(arguments[0])._fullData.find(d => d.meta === 'points');"
        "return [Array.from(t.x), Array.from(t.y), Array.from(t.customdata)];", MAP)
    p = np.c_[xs, ys]
    d = np.linalg.norm(p[:, None] - p[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return int(rows[int(d.min(axis=1).argmax())])


def _shown_step(dash_duo) -> int | None:
    text = js_text(dash_duo, INFO) or ""
    return int(text.split("map at step ")[1].split()[0].replace(",", "")) if "map at step" in text else None


@pytest.mark.timeout(240)
def test_pj001_map_play_neighbours_analogy_selection(dash_duo, runs):
    from dashboard.app import create_app

    data_dir, ids_, settings = runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/projections?run={ids_['planted']}", timeout=30)

    # the newest map: one SVG trace of all 300 words (tokens have no labels: coloured by frequency)
    until(lambda: _points(dash_duo) == [["scatter", N_WORDS]], timeout=30,
          msg=lambda: f"map traces: {_points(dash_duo)}, map says {_map_text(dash_duo)!r}")
    until(lambda: _shown_step(dash_duo) == 200, timeout=10, msg=lambda: f"info: {js_text(dash_duo, INFO)!r}")
    assert "map at step 200 (3 of 3)" in js_text(dash_duo, INFO)
    ranges = dash_duo.driver.execute_script("const l = document.querySelector(arguments[0]).layout;"
                                            "return [l.xaxis.range, l.yaxis.range, l.uirevision];", MAP)
    assert ranges[2] == f"{ids_['planted']}:{settings.key()}"
    assert dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0] + ' input[value=\"label\"]').disabled;", f"#{ids.PJ_COLOUR}")

    # the most frequent words are written beside their points, a subset that does not overlap, the rest on hover
    written = dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0])._fullData.find(t => t.meta === 'points').text.filter(s => s);",
        MAP)
    assert 10 <= len(written) < N_WORDS, written

    # live: a new snapshot's map shows up by itself (following the newest), the axes widen to cover it; laid
    # out again by the worker, it says so
    _add_snapshot(data_dir, ids_["planted"], 300, settings, restructured=True, neighbourhood_overlap=0.25)
    until(lambda: "map at step 300 (4 of 4)" in (js_text(dash_duo, INFO) or ""), timeout=20,
          msg=lambda: f"the new map did not show: {js_text(dash_duo, INFO)!r}")
    assert "the layout changed a lot at step 300: the words moved to new places" in js_text(dash_duo, INFO)
    assert "the layout changed a lot" in _map_text(dash_duo)
    until(lambda: dash_duo.driver.execute_script("return document.querySelector(arguments[0]).layout.xaxis.range;",
                                                 MAP) != ranges[0], timeout=10, msg="the axes did not cover the new map")
    ranges = dash_duo.driver.execute_script("const l = document.querySelector(arguments[0]).layout;"
                                            "return [l.xaxis.range, l.yaxis.range];", MAP)

    # Play: from the first map to the newest, the axes still, the points gliding from map to map
    seen, glided = [], []
    dash_duo.find_element(f"#{ids.PJ_PLAY}").click()

    def played():
        glided.append(dash_duo.driver.execute_script(
            "return !!document.querySelector(arguments[0])._transitioningWithDuration;", MAP))
        step = _shown_step(dash_duo)
        if step is not None and (not seen or seen[-1] != step):
            seen.append(step)
        return "Play" in (js_text(dash_duo, f"#{ids.PJ_PLAY}") or "") and seen[-1:] == [300] and 0 in seen
    until(played, timeout=20, poll=0.05, msg=lambda: f"Play did not step through the maps: {seen}")
    assert seen[seen.index(0):] == [0, 100, 200, 300], seen
    assert any(glided), "no transition ran while playing"
    assert dash_duo.driver.execute_script("const l = document.querySelector(arguments[0]).layout;"
                                          "return [l.xaxis.range, l.yaxis.range];", MAP) == ranges[:2]
    assert not dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0] + ' input[type=checkbox]').checked;", f"#{ids.PJ_FOLLOW}")

    # a word: its 10 nearest neighbours, listed and ringed on the map
    neighbours = f"#{ids.PJ_NEIGHBOURS}"
    _type(dash_duo, f"#{ids.PJ_QUERY}", "Apple")
    until(lambda: "Nearest to apple" in (js_text(dash_duo, neighbours) or ""), timeout=15,
          msg=lambda: f"neighbours: {js_text(dash_duo, neighbours)!r}")
    listed = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' li button')).map(b => b.textContent);", neighbours)
    assert len(listed) == 10 and set(listed) <= set(THEMES["fruit"]), listed
    until(lambda: "<b>apple</b>" in _map_text(dash_duo), timeout=10, msg=lambda: f"map: {_map_text(dash_duo)!r}")
    rings = dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0])._fullData.filter(t => t.meta === 'highlight').map(t => t._length);",
        MAP)
    assert rings == [10, 1], rings

    # clicking a point on the map looks it up
    row = _isolated_row(dash_duo)
    _click_point(dash_duo, row)
    until(lambda: "Nearest to apple" not in (js_text(dash_duo, neighbours) or ""), timeout=10,
          msg=lambda: f"clicking row {row} did nothing: {js_text(dash_duo, neighbours)!r}")
    clicked = dash_duo.find_element(f"#{ids.PJ_QUERY}").get_attribute("value")
    assert clicked and f"Nearest to {clicked}" in js_text(dash_duo, neighbours)
    assert planted_tokens()["text"][row] == clicked

    # clicking a listed neighbour looks it up in turn
    first = dash_duo.driver.execute_script("return document.querySelector(arguments[0] + ' li button').textContent;",
                                           neighbours)
    dash_duo.driver.execute_script("document.querySelector(arguments[0] + ' li button').click();", neighbours)
    until(lambda: f"Nearest to {first}" in (js_text(dash_duo, neighbours) or ""), timeout=10,
          msg=lambda: f"after clicking {first}: {js_text(dash_duo, neighbours)!r}")
    assert dash_duo.find_element(f"#{ids.PJ_QUERY}").get_attribute("value") == first

    # an unknown word says so, with close spellings
    _type(dash_duo, f"#{ids.PJ_QUERY}", "bananna")
    until(lambda: "no token 'bananna' in this source" in (js_text(dash_duo, neighbours) or ""), timeout=10,
          msg=lambda: f"neighbours: {js_text(dash_duo, neighbours)!r}")
    assert "'banana'" in js_text(dash_duo, neighbours)
    _type(dash_duo, f"#{ids.PJ_QUERY}", "xyzzy")
    until(lambda: "no token 'xyzzy' in this source." in (js_text(dash_duo, neighbours) or ""), timeout=10,
          msg=lambda: f"neighbours: {js_text(dash_duo, neighbours)!r}")

    # an analogy: king - man + woman = queen, arrows on the map
    for cid, word in ((ids.PJ_AN_A, "king"), (ids.PJ_AN_B, "man"), (ids.PJ_AN_C, "woman")):
        dash_duo.find_element(f"#{cid}").send_keys(word)
    dash_duo.find_element(f"#{ids.PJ_AN_GO}").click()
    out = f"#{ids.PJ_ANALOGY_OUT}"
    until(lambda: "≈ queen" in (js_text(dash_duo, out) or ""), timeout=10, msg=lambda: f"analogy: {js_text(dash_duo, out)!r}")
    def arrows():
        return dash_duo.driver.execute_script(
            "return (document.querySelector(arguments[0]).layout.annotations || []).filter(a => a.showarrow).length;",
            MAP)
    until(lambda: arrows() == 2, timeout=10, msg=lambda: f"{arrows()} arrows on the map, not 2: {_map_text(dash_duo)!r}")

    # a box selection lists its members
    dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0]); const r = g._fullData[0].customdata;"
        "g.emit('plotly_selected', {points: [0, 1, 2, 12].map(i => ({curveNumber: 0, pointNumber: i, customdata: r[i]}))});",
        MAP)
    selection = f"#{ids.PJ_SELECTION}"
    until(lambda: "4 points selected" in (js_text(dash_duo, selection) or ""), timeout=10,
          msg=lambda: f"selection: {js_text(dash_duo, selection)!r}")
    assert "apple" in js_text(dash_duo, selection) and "cat" in js_text(dash_duo, selection)
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_pj002_empty_and_bad_states(dash_duo, runs):
    from dashboard.app import create_app

    data_dir, ids_, _ = runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    note, check, status = f"#{ids.PJ_NOTE}", f"#{ids.PJ_CHECK}", f"#{ids.PJ_STATUS}"

    # a run without embeddings snapshots
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/projections?run={ids_['bare']}", timeout=30)
    until(lambda: "has no embeddings snapshots" in (js_text(dash_duo, note) or ""), timeout=20,
          msg=lambda: f"note: {js_text(dash_duo, note)!r}")
    until(lambda: "no embeddings snapshot" in _map_text(dash_duo), timeout=10, msg=lambda: _map_text(dash_duo))
    options = dash_duo.driver.execute_script("return document.querySelector(arguments[0]).textContent;", f"#{ids.PJ_RUN}")
    assert "no projections" in options

    # snapshots but no map yet: asked of the worker, neighbours still work
    dash_duo.driver.get(f"{dash_duo.server_url}/projections?run={ids_['waiting']}")
    until(lambda: "not ready yet" in _map_text(dash_duo), timeout=30, msg=lambda: _map_text(dash_duo))
    until(lambda: "0 of 3" in (js_text(dash_duo, status) or ""), timeout=10, msg=lambda: js_text(dash_duo, status))
    asked = json.loads((RunStore(data_dir).run_dir(ids_["waiting"]) / REQUESTS_FILE).read_text())
    assert asked[-1]["key"] == "tokens-tsne-2d-p30-cosine-n5000-s0"
    _type(dash_duo, f"#{ids.PJ_QUERY}", "tiger")
    neighbours = f"#{ids.PJ_NEIGHBOURS}"
    until(lambda: "Nearest to tiger" in (js_text(dash_duo, neighbours) or ""), timeout=15,
          msg=lambda: f"neighbours: {js_text(dash_duo, neighbours)!r}")
    assert "The map is not ready yet" in js_text(dash_duo, neighbours) and "lion" in js_text(dash_duo, neighbours)

    # too few points for the perplexity: said at once, nothing asked
    _type(dash_duo, f"#{ids.PJ_PERPLEXITY}", "200")
    until(lambda: "needs at least 601 points" in (js_text(dash_duo, check) or ""), timeout=10,
          msg=lambda: f"check: {js_text(dash_duo, check)!r}")
    assert "lower the perplexity to at most 99" in js_text(dash_duo, check)
    until(lambda: "needs at least 601 points" in _map_text(dash_duo), timeout=10, msg=lambda: _map_text(dash_duo))
    assert all(r["settings"]["perplexity"] != 200 for r in json.loads(
        (RunStore(data_dir).run_dir(ids_["waiting"]) / REQUESTS_FILE).read_text()))

    # tokens have no labels: colouring by label is disabled and says why; the inputs' features have them
    label_off = "return document.querySelector(arguments[0] + ' input[value=\"label\"]').disabled;"
    assert dash_duo.driver.execute_script(label_off, f"#{ids.PJ_COLOUR}")
    assert "no labels" in (js_text(dash_duo, f"#{ids.PJ_COLOUR_WHY}") or "")
    dash_duo.select_dcc_dropdown(f"#{ids.PJ_SOURCE}", value="features the output layer reads, per input (120 × 16)")
    until(lambda: not dash_duo.driver.execute_script(label_off, f"#{ids.PJ_COLOUR}"), timeout=10,
          msg="colour by label stays disabled for a source with labels")
    assert dash_duo.get_logs() == []
