"""Kernels page on real runs: a natural-patches run training while the page is open, and a text CNN.

    .venv/bin/python -m pytest --headless tests/browser/test_kernels_live.py
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from dashboard import ids
from tests.browser.test_training_flow import js_text, until

pytestmark = pytest.mark.browser
MOSAIC = f"#{ids.KN_MOSAIC} .js-plotly-plot"


def shown_step(dash_duo) -> int:
    match = re.search(r"snapshot at step ([\d,]+)", js_text(dash_duo, f"#{ids.KN_INFO}") or "")
    return int(match.group(1).replace(",", "")) if match else -1


@pytest.mark.timeout(240)
def test_kn005_grid_grows_while_a_natural_patches_run_trains(dash_duo, tmp_path):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    store = RunStore(data_dir)
    spec = RunSpec.for_task("natural-patches", steps=200_000, probe_every=400)
    run_id = store.create_run("live patches", spec.task, spec.model_dump())
    # its own process, as the job manager starts it (a thread would share the server's GIL)
    trainer = subprocess.Popen([sys.executable, "-m", "backend.training.worker", "--data-dir", str(data_dir),
                                "--run-id", run_id], env={**os.environ, "DEEPSCOPE_TORCH_THREADS": "1",
                                                          "CUDA_VISIBLE_DEVICES": ""})
    try:
        dash_duo.start_server(create_app(data_dir, poll_ms=250))
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={run_id}", timeout=30)
        until(lambda: shown_step(dash_duo) >= 0, timeout=60, msg=lambda: js_text(dash_duo, f"#{ids.KN_INFO}"))
        dash_duo.driver.execute_script("window.__sameDocument = true;")  # gone if the page reloads
        first = shown_step(dash_duo)
        until(lambda: shown_step(dash_duo) >= first + 800, timeout=90,
              msg=lambda: f"the grid stayed at step {first}: {js_text(dash_duo, f'#{ids.KN_INFO}')!r}")
        assert dash_duo.driver.execute_script("return window.__sameDocument === true;"), "the page reloaded"
        assert dash_duo.driver.execute_script(f"return document.querySelector('{MOSAIC}').data.length") == 1
        # the slider's range grew with the snapshots, and its handle follows the newest
        handle = dash_duo.driver.execute_script(
            f"const h = document.querySelector('#{ids.KN_STEP} [role=slider]');"
            "return h ? [h.getAttribute('aria-valuemax'), h.getAttribute('aria-valuenow')] : null;")
        assert handle and int(handle[0]) >= 2 and handle[0] == handle[1], handle

        # hover on a kernel of the live grid: its Gabor fit
        dash_duo.driver.execute_script(f"window.Plotly.Fx.hover(document.querySelector('{MOSAIC}'), "
                                       "{xval: 4, yval: 4});")
        until(lambda: "R²" in (dash_duo.driver.execute_script(
            f"const h = document.querySelector('{MOSAIC} .hovertext'); return h ? h.textContent : '';") or ""),
            timeout=10, msg="hovering a kernel of the live run did not show its fit")
        # the feature maps of the probe crops, one row per conv layer
        until(lambda: "encoder (conv, 32 maps)" in (js_text(dash_duo, f"#{ids.KN_MAPS}") or ""), timeout=20,
              msg=lambda: f"maps: {js_text(dash_duo, f'#{ids.KN_MAPS}')!r}"[:300])
        assert dash_duo.get_logs() == []
    finally:
        RunStore(data_dir).request_control(run_id, "stop")
        trainer.wait(timeout=60)
    assert RunStore(data_dir).get_run(run_id)["status"] == "stopped"


@pytest.fixture(scope="module")
def text_cnn_run(tmp_path_factory):
    """Trained in its own process, as the job manager runs it (in this process, beside a test
    server's threads, the same run took 17-20 s instead of 3)."""
    data_dir = tmp_path_factory.mktemp("kn6") / "data"
    store = RunStore(data_dir)
    spec = RunSpec.for_task("sentiment-cnn", steps=300, probe_every=150)
    run_id = store.create_run("kim", spec.task, spec.model_dump())
    subprocess.run([sys.executable, "-m", "backend.training.worker", "--data-dir", str(data_dir), "--run-id", run_id],
                   env={**os.environ, "DEEPSCOPE_TORCH_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}, check=True,
                   timeout=120, capture_output=True)
    assert store.get_run(run_id)["status"] == "completed"
    return data_dir, run_id


@pytest.mark.timeout(240)
def test_kn006_text_cnn_lists_each_filters_top_ngrams(dash_duo, text_cnn_run):
    from dashboard.app import create_app

    data_dir, run_id = text_cnn_run
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={run_id}", timeout=30)
    until(lambda: "top 2-grams" in (js_text(dash_duo, f"#{ids.KN_MAPS}") or ""), timeout=30,
          msg=lambda: f"maps card: {js_text(dash_duo, f'#{ids.KN_MAPS}')!r}"[:300])
    rows = dash_duo.driver.execute_script(f"return document.querySelectorAll('#{ids.KN_MAPS} .ngram-table tr').length")
    assert rows == 32
    assert dash_duo.driver.execute_script(
        f"return getComputedStyle(document.getElementById('{ids.KN_INPUT_FIELD}')).display") == "none"
    # a click on a filter lists its n-grams beside it
    dash_duo.driver.execute_script(f"""
        const gd = document.querySelector('{MOSAIC}');
        gd.emit('plotly_click', {{points: [{{curveNumber: 0, customdata: 5}}]}});""")
    until(lambda: "Filter 5 fires most on" in (js_text(dash_duo, f"#{ids.KN_DETAIL}") or ""), timeout=10,
          msg=lambda: f"detail: {js_text(dash_duo, f'#{ids.KN_DETAIL}')!r}")
    assert "no fit to show" in js_text(dash_duo, f"#{ids.KN_DETAIL}")
    assert dash_duo.get_logs() == []


@pytest.fixture(scope="module")
def awkward_runs(tmp_path_factory):
    """A CNN with 1x1 kernels, and one whose newest snapshot is still being written (a file missing)."""
    from backend.store.kernels import KIND
    from backend.training.worker import run_training

    data_dir = tmp_path_factory.mktemp("kn7") / "data"
    store = RunStore(data_dir)
    out = {}
    for name, kernel in (("k1", 1), ("partial", 7)):
        spec = RunSpec.for_task("digits-cnn", steps=20, probe_every=10, model={"channels": [4], "kernel_sizes": [kernel]})
        out[name] = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, out[name], device="cpu") == "completed"
    newest = store.list_snapshots(out["partial"], KIND)[-1]
    (store.data_dir / newest["arrays"]["w.features.0"]).unlink()
    return data_dir, out


@pytest.mark.timeout(240)
def test_kn007_one_by_one_kernels_and_a_snapshot_being_written_say_why(dash_duo, awkward_runs):
    from dashboard.app import create_app

    data_dir, runs = awkward_runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/kernels?run={runs['k1']}", timeout=30)
    until(lambda: "1x1 kernels" in (dash_duo.driver.execute_script(
        f"const g = document.querySelector('{MOSAIC}'); return g ? JSON.stringify(g.layout.annotations || []) : '';")
        or ""), timeout=20, msg="1x1 kernels: the grid does not say why it is empty")

    dash_duo.driver.get(f"{dash_duo.server_url}/kernels?run={runs['partial']}")
    until(lambda: "Showing an earlier snapshot" in (js_text(dash_duo, f"#{ids.KN_INFO}") or ""), timeout=20,
          msg=lambda: f"info: {js_text(dash_duo, f'#{ids.KN_INFO}')!r}")
    info = js_text(dash_duo, f"#{ids.KN_INFO}")
    assert "snapshot at step 10" in info and "still being written" in info
    assert dash_duo.driver.execute_script(f"return document.querySelector('{MOSAIC}').data.length") == 1
    assert dash_duo.get_logs() == []
