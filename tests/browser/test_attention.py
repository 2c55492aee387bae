"""Attention page in headless Chromium, on a store from short real runs (module fixture, ~10-15 s of training):
a dates encoder-decoder (30 steps, 4 snapshots) and a tiny transformer on code-lstm (20 steps, 3 snapshots).

att001: the seq2seq matrix (tokens as ticks, spans outlined, output vs target), the step slider, the URL's
state restored on reload, Play through the snapshots, the summary chart. att002: the transformer's large map
and heads grid following a new snapshot, hover on a query row marking it in every head (timed), a click on a tile choosing it, bad
address values falling back, and a run without attention saying so.

    .venv/bin/python -m pytest --headless tests/browser/test_attention.py
"""
from __future__ import annotations

import time

import pytest
import torch
from selenium.webdriver.common.keys import Keys

from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.attention import KIND, AttentionSnapshot, write_attention_snapshot
from backend.training.worker import run_training
from dashboard import ids
from tests.browser.test_training_flow import js_text, until

pytestmark = pytest.mark.browser
MATRIX, GRID = f"#{ids.ATT_MATRIX} .js-plotly-plot", f"#{ids.ATT_GRID} .js-plotly-plot"
INFO, PLAY = f"#{ids.ATT_INFO}", f"#{ids.ATT_PLAY}"
TF_MODEL = {"family": "transformer", "layers": 2, "hidden_size": 16, "heads": 2}


@pytest.fixture(scope="module")
def attention_runs(tmp_path_factory):
    torch.set_num_threads(1)
    data_dir = tmp_path_factory.mktemp("att") / "data"
    store = RunStore(data_dir)
    specs = {"s2s": RunSpec.for_task("dates-seq2seq", steps=30, probe_every=10, eval_every=30, log_every=10),
             "tf": RunSpec.for_task("code-lstm", steps=20, batch_size=8, seq_len=32, probe_every=10, eval_every=20,
                                    log_every=5, model=TF_MODEL)}
    out = {}
    for name, spec in specs.items():
        out[name] = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, out[name], device="cpu") == "completed", store.get_run(out[name])["error"]
    none = RunSpec.for_task("dates-seq2seq", steps=4, model={"attention": "none"})
    out["none"] = store.create_run("no attention", none.task, none.model_dump(), status="completed")
    return data_dir, out


def _fig(dash_duo, sel: str, expr: str):
    return dash_duo.driver.execute_script(f"const g = document.querySelector('{sel}'); return g && g.data ? {expr} : null;")


def _shown_step(dash_duo) -> int | None:
    text = js_text(dash_duo, INFO) or ""
    return int(text.split("step ")[1].split()[0].replace(",", "")) if "snapshot at step" in text else None


@pytest.mark.timeout(240)
def test_att001_seq2seq_matrix_slider_url_and_play(dash_duo, attention_runs):
    from dashboard.app import create_app

    data_dir, runs = attention_runs
    store = RunStore(data_dir)
    snap = AttentionSnapshot(store, store.list_snapshots(runs["s2s"], KIND)[1])  # step 10
    item = snap.items()[2]
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/attention?run={runs['s2s']}&item=2&step=10", timeout=30)
    until(lambda: _shown_step(dash_duo) == 10 and _fig(dash_duo, MATRIX, "g.data[0].type") == "heatmap", timeout=30,
          msg=lambda: f"info {js_text(dash_duo, INFO)!r}")
    z_shape = _fig(dash_duo, MATRIX, "(z => z.shape ? String(z.shape) : [z.length, z[0].length].join())(g.data[0].z)")
    assert z_shape.replace(" ", "") == f"{len(item['queries'])},{len(item['keys'])}"  # numpy arrays travel as bdata
    assert _fig(dash_duo, MATRIX, "g.layout.xaxis.ticktext.join('')") == item["name"].replace(" ", "␣")
    spans = [s for s in item["extra"]["spans"] if s[0] >= 0]
    assert _fig(dash_duo, MATRIX, "(g.layout.shapes || []).length") == len(spans) > 0
    assert "Which input characters the decoder read" in js_text(dash_duo, f"#{ids.ATT_TITLE}")
    assert item["extra"]["target"] in js_text(dash_duo, f"#{ids.ATT_OUTPUT}")
    assert item["name"] in js_text(dash_duo, f"#{ids.ATT_ITEM}")
    assert dash_duo.driver.execute_script(
        "return document.querySelector(arguments[0] + ' input[type=checkbox]').checked;", f"#{ids.ATT_FOLLOW}") is False
    until(lambda: _fig(dash_duo, f"#{ids.ATT_SUMMARY} .js-plotly-plot", "g.data.map(t => t.name).join()") ==
          "attention entropy,alignment share", timeout=10, msg="no summary chart")

    # the slider moves the view, and the address bar keeps it: a reload restores it
    dash_duo.driver.find_element("css selector", f"#{ids.ATT_STEP} [role=slider]").send_keys(Keys.ARROW_RIGHT)
    until(lambda: _shown_step(dash_duo) == 20 and "step=20" in dash_duo.driver.current_url, timeout=10,
          msg=lambda: f"slider: {js_text(dash_duo, INFO)!r} {dash_duo.driver.current_url}")
    assert "item=2" in dash_duo.driver.current_url
    dash_duo.driver.get(dash_duo.driver.current_url)
    until(lambda: _shown_step(dash_duo) == 20 and item["name"] in (js_text(dash_duo, f"#{ids.ATT_ITEM}") or ""),
          timeout=20, msg=lambda: f"reload: {js_text(dash_duo, INFO)!r} {js_text(dash_duo, f'#{ids.ATT_ITEM}')!r}")

    # Play: from where it is to the newest, one snapshot at a time, then stops. The slider's own value is read
    # (a busy server may answer only the last of several quick views, so the info text can skip steps)
    seen = []

    def finished():
        index = dash_duo.driver.execute_script(
            "const h = document.querySelector(arguments[0]); return h ? Number(h.getAttribute('aria-valuenow')) : null;",
            f"#{ids.ATT_STEP} [role=slider]")
        if index is not None and (not seen or seen[-1] != index):
            seen.append(index)
        return "Play" in (js_text(dash_duo, PLAY) or "") and index == 3 and _shown_step(dash_duo) == 30
    dash_duo.find_element(PLAY).click()
    until(finished, timeout=20, poll=0.05, msg=lambda: f"Play did not step to the newest: {seen}")
    assert seen[-2:] == [2, 3], seen
    seen.clear()
    dash_duo.find_element(PLAY).click()  # at the newest: plays from the first snapshot
    until(finished, timeout=20, poll=0.05, msg=lambda: f"second Play: {seen}")
    assert seen[-4:] == [0, 1, 2, 3], seen  # (the first reading may still be the newest)
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_att002_transformer_heads_hover_click_and_fallbacks(dash_duo, attention_runs):
    from dashboard.app import create_app

    data_dir, runs = attention_runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/attention?run={runs['tf']}&layer=1&head=1", timeout=30)
    until(lambda: _fig(dash_duo, GRID, "g.data[0].type") == "image" and _shown_step(dash_duo) == 20, timeout=30,
          msg=lambda: f"no grid: {js_text(dash_duo, INFO)!r}")
    assert _fig(dash_duo, MATRIX, "[g.data[0].type, g.layout.xaxis.ticktext.length]") == ["heatmap", 32]
    assert "Layer 1, head 1" in js_text(dash_duo, f"#{ids.ATT_TITLE}")
    assert _fig(dash_duo, GRID, "[g.layout.shapes.length, g.layout.shapes[0].x0]") == [1, 36 - 1.5]  # head 1's frame
    until(lambda: _fig(dash_duo, f"#{ids.ATT_SUMMARY} .js-plotly-plot", "g.data.length") == 2, timeout=10,
          msg="no entropy line per layer")

    # live: a new snapshot while the page is open; the slider follows it
    store = RunStore(data_dir)
    last = AttentionSnapshot(store, store.list_snapshots(runs["tf"], KIND)[-1])
    item = dict(last.items()[0], weights=last.all_weights(0))
    write_attention_snapshot(store, runs["tf"], 30, [item], {"layers": last.layers, "heads": last.heads})
    until(lambda: _shown_step(dash_duo) == 30, timeout=20, msg=lambda: f"did not follow: {js_text(dash_duo, INFO)!r}")

    # hover a query row of the large map: that row is marked in all 4 heads of the grid, in the browser
    elapsed = dash_duo.driver.execute_script("""
        const grid = document.querySelector(arguments[0]); window._marked = null;
        grid.on('plotly_relayout', () => { if (window._marked === null) window._marked = performance.now() - window._t0; });
        const el = document.querySelector(arguments[1] + ' .nsewdrag'), r = el.getBoundingClientRect();
        window._t0 = performance.now();
        el.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width * 0.2, clientY: r.top + r.height * 0.6,
                                                       bubbles: true}));
        return null;""", GRID, MATRIX)
    assert elapsed is None
    until(lambda: _fig(dash_duo, GRID, "g.layout.shapes.length") == 5, timeout=5, poll=0.02,
          msg=lambda: f"hover did not mark the heads: {_fig(dash_duo, GRID, 'g.layout.shapes.length')}")
    marked_ms = dash_duo.driver.execute_script("return window._marked;")
    assert marked_ms is not None and marked_ms < 500, marked_ms  # measured ~20 ms
    print(f"hover -> marks in every head: {marked_ms:.0f} ms")

    # click a tile of the grid: layer 0, head 0 becomes the large map and the address
    dash_duo.driver.execute_script(
        "document.querySelector(arguments[0]).emit('plotly_click', {points: [{x: 3, y: 5}]});", GRID)
    until(lambda: "Layer 0, head 0" in (js_text(dash_duo, f"#{ids.ATT_TITLE}") or "")
          and "layer=0&head=0" in dash_duo.driver.current_url, timeout=10,
          msg=lambda: f"click: {js_text(dash_duo, f'#{ids.ATT_TITLE}')!r} {dash_duo.driver.current_url}")

    # bad values fall back to a default, with a notice and no error; a run without attention says so
    dash_duo.driver.get(f"{dash_duo.server_url}/attention?run={runs['tf']}&layer=7&head=x&step=1e999")
    until(lambda: "Layer 0, head 0" in (js_text(dash_duo, f"#{ids.ATT_TITLE}") or ""), timeout=20,
          msg=lambda: f"fallback: {js_text(dash_duo, f'#{ids.ATT_TITLE}')!r}")
    assert "Ignored in the address" in dash_duo.driver.execute_script("return document.body.innerText;")
    dash_duo.driver.get(f"{dash_duo.server_url}/attention?run={runs['none']}")
    until(lambda: "no attention to show" in (js_text(dash_duo, f"#{ids.ATT_NOTE}") or ""), timeout=20,
          msg=lambda: f"no-attention run: {js_text(dash_duo, f'#{ids.ATT_NOTE}')!r}")
    assert dash_duo.get_logs() == []
