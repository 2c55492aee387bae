"""Issue 16 in headless Chromium: the Lab's sequence presets land on their views, and Try it on a dates
encoder-decoder shows the ISO output and its attention matrix.

The Lab test uses test_lab's recording job manager (no training). The Try it test uses a dates-seq2seq run of
200 steps trained in-process (tests/seq_runs.py, shared with tests/integration/test_try_sequences.py when both
run in one session: ~15 s on one quiet thread). Screenshots go to /tmp/shots/seq_*.png.

    .venv/bin/python -m pytest --headless tests/browser/test_seq_pages.py
"""
from __future__ import annotations

from pathlib import Path

import pytest

from backend import inference
from backend.lab.presets import PRESETS
from backend.store import RunStore
from dashboard import ids
from dashboard.views.try_it import ids as page
from tests.browser.test_lab import RecordingJobs
from tests.browser.test_training_flow import click, css_id, js_text, until
from tests.browser.test_try_input import graph, text_of, type_text
from tests.seq_runs import trained_run

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")
SEQ_PRESETS = ("attention", "bidirectional-tagging", "teacher-forcing")


@pytest.mark.timeout(180)
def test_sq001_sequence_presets_land_on_the_training_page(dash_duo, tmp_path):
    from dashboard.app import create_app

    jobs = RecordingJobs(RunStore(tmp_path / "data"))
    dash_duo.start_server(create_app(tmp_path / "data", jobs=jobs))
    for preset_id in SEQ_PRESETS:
        preset = PRESETS[preset_id]
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/lab", timeout=30)
        card = css_id(ids.LAB_PRESET, preset=preset_id)
        dash_duo.wait_for_contains_text(card, preset.title, timeout=20)
        assert preset.explanation in js_text(dash_duo, card)
        before = len(jobs.started)
        click(dash_duo, css_id(ids.LAB_LAUNCH, preset=preset_id))
        until(lambda: len(jobs.started) == before + len(preset.runs) and "?run=" in dash_duo.driver.current_url
              and "/lab" not in dash_duo.driver.current_url, timeout=30,
              msg=lambda: f"{preset_id}: no landing on Training: {dash_duo.driver.current_url}; alert: "
                          f"{js_text(dash_duo, '#' + ids.LAB_ALERT)!r}")
        run_ids = [rid for rid, _ in jobs.started[before:]]
        assert all(t == 1 for _, t in jobs.started[before:])
        until(lambda: dash_duo.driver.execute_script("return decodeURIComponent(window.location.search)")
              == "?run=" + ",".join(run_ids), timeout=20, msg=lambda: f"address: {dash_duo.driver.current_url}")
        until(lambda: all(n in (js_text(dash_duo, f"#{ids.TRAIN_STATUS}") or "") for n, _ in preset.runs),
              timeout=30, msg=lambda: f"{preset_id}: Training shows {js_text(dash_duo, '#' + ids.TRAIN_STATUS)!r}")
    tasks = [jobs.store.get_run(rid)["task"] for rid, _ in jobs.started]
    assert tasks == ["numbers-seq2seq"] * 2 + ["tags-bidir"] * 2 + ["dates-seq2seq"] * 3
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_sq002_try_a_date_shows_iso_output_and_attention_matrix(dash_duo):
    from dashboard.app import create_app

    data_dir, run_id = trained_run("dates-seq2seq", 200)
    inference.clear_cache()
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={run_id}", timeout=30)
    def shown() -> str:
        return f"prediction: {text_of(dash_duo, page.TRY_PREDICTION)!r}; {text_of(dash_duo, page.TRY_MESSAGE)!r}"

    until(lambda: "2021-05-03" in text_of(dash_duo, page.TRY_PREDICTION), timeout=60, msg=shown)  # the example
    type_text(dash_duo, "24.01.2035")
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    until(lambda: "2035-01-24" in text_of(dash_duo, page.TRY_PREDICTION), timeout=30, msg=shown)
    fig = until(lambda: (g := graph(dash_duo, page.TRY_ATTENTION)) and len(g["data"][0]["x"]) == 10 and g,
                timeout=20, msg=lambda: f"attention matrix: {graph(dash_duo, page.TRY_ATTENTION)!r}")
    z = fig["data"][0]["z"]
    assert len(z) == 11 and all(len(row) == 10 for row in z)  # 10 output characters and the end token x 10 input
    assert fig["layout"]["yaxis"]["ticktext"] == list("2035-01-24") + ["end"]
    assert "Read as 10 characters" in text_of(dash_duo, page.TRY_INFO)
    until(lambda: dash_duo.find_element(f"#{page.TRY_STATES_CARD}").is_displayed(), timeout=10,
          msg="no encoder states")
    assert not dash_duo.find_element(f"#{page.TRY_GEN_CARD}").is_displayed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.set_window_size(1400, 1800)
    dash_duo.driver.save_screenshot(str(SHOTS / "seq_try_date.png"))
    assert dash_duo.get_logs() == []
