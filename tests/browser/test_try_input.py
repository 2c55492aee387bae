"""Try it page in headless Chromium on really trained runs: a sentiment LSTM and a brackets language model.

Both train in their own processes before the server starts (200 and 300 steps, hidden size 16: a few
seconds each). What the page shows is checked against backend.inference run in the test process on the
same checkpoint.

    .venv/bin/python -m pytest --headless tests/browser/test_try_input.py
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from selenium.webdriver.common.keys import Keys

from backend import inference
from backend.spec import RunSpec
from backend.store import RunStore
from dashboard.views.try_it import ids as page
from tests.browser.test_training_flow import click, js_text, until

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")
GRAPH_JS = "const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot'); " \
           "return gd && gd.data && gd.data.length ? {data: gd.data, layout: gd.layout} : null;"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A sentiment-lstm and a brackets-lstm run, trained to completion (each writes a checkpoint at its end)."""
    data_dir = tmp_path_factory.mktemp("try") / "data"
    store = RunStore(data_dir)
    out = {}
    for key, task, steps in (("cls", "sentiment-lstm", 200), ("lm", "brackets-lstm", 300)):
        spec = RunSpec.for_task(task, steps=steps, model={"hidden_size": 16})
        out[key] = store.create_run(f"{task} small", task, spec.model_dump())
        subprocess.run([sys.executable, "-m", "backend.training.worker", "--data-dir", str(data_dir), "--run-id",
                        out[key]], env={**os.environ, "DEEPSCOPE_TORCH_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
                       check=True, timeout=180, capture_output=True)
        assert store.get_run(out[key])["status"] == "completed"
    inference.clear_cache()
    return data_dir, out


def graph(dash_duo, cid: str):
    return dash_duo.driver.execute_script(GRAPH_JS, cid)


def type_text(dash_duo, text: str) -> None:
    box = dash_duo.find_element(f"#{page.TRY_TEXT}")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if text:
        box.send_keys(text)


def set_number(dash_duo, selector: str, value) -> None:
    elem = dash_duo.find_element(selector)
    elem.send_keys(Keys.CONTROL, "a")
    elem.send_keys(Keys.BACKSPACE)
    elem.send_keys(str(value))
    elem.send_keys(Keys.TAB)


def text_of(dash_duo, cid: str) -> str:
    return js_text(dash_duo, f"#{cid}") or ""


def _shot(dash_duo, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.set_window_size(1400, 2600)
    dash_duo.driver.save_screenshot(str(SHOTS / name))
    dash_duo.driver.set_window_size(1400, 1000)


@pytest.mark.timeout(240)
def test_try001_classifier_prediction_states_and_evolution(dash_duo, trained):
    from dashboard.app import create_app

    data_dir, runs = trained
    store = RunStore(data_dir)
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={runs['cls']}", timeout=30)
    # the run's example is filled in and analysed on arrival
    until(lambda: "The model says" in text_of(dash_duo, page.TRY_PREDICTION), timeout=60,
          msg=lambda: f"no prediction: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert dash_duo.find_element(f"#{page.TRY_TEXT}").get_attribute("value").startswith("The acting was not bad")

    sentence = "I loved this phone, although the battery was weak."
    type_text(dash_duo, sentence)
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    want = inference.analyse_run(store, runs["cls"], sentence)
    until(lambda: (g := graph(dash_duo, page.TRY_EVOLUTION)) and len(g["data"][0]["x"]) == len(want.tokens),
          timeout=30, msg=lambda: f"evolution: {graph(dash_duo, page.TRY_EVOLUTION)}")
    shown = text_of(dash_duo, page.TRY_PREDICTION)
    assert f"The model says {want.predicted} ({100 * want.probs.max():.1f}% sure)" in shown, shown
    evo = graph(dash_duo, page.TRY_EVOLUTION)
    assert [t["name"] for t in evo["data"]] == ["negative", "positive"]
    assert evo["data"][1]["y"] == pytest.approx(want.evolution[:, 1].tolist(), abs=1e-3)
    assert list(evo["layout"]["xaxis"]["ticktext"]) == want.tokens
    assert "Checkpoint at step 200" in text_of(dash_duo, page.TRY_INFO)
    assert f"Read as {len(want.tokens)} words" in text_of(dash_duo, page.TRY_INFO)

    # the hidden state h: 16 cells down, one column per word; then the forget gate of the same text
    heat = until(lambda: (g := graph(dash_duo, page.TRY_HEATMAP)) and len(g["data"][0]["z"][0]) == len(want.tokens)
                 and g, timeout=20, msg=lambda: f"heatmap: {str(graph(dash_duo, page.TRY_HEATMAP))[:300]}")
    assert len(heat["data"][0]["z"]) == 16 and list(heat["layout"]["xaxis"]["ticktext"]) == want.tokens
    assert heat["data"][0]["z"][3][5] == pytest.approx(want.states[(0, "fwd")]["h"][5, 3], abs=1e-3)
    dash_duo.select_dcc_dropdown(f"#{page.TRY_STATE}", value="f: forget gate")
    until(lambda: "forget gate" in graph(dash_duo, page.TRY_HEATMAP)["layout"]["title"]["text"], timeout=20,
          msg=lambda: f"heatmap title: {graph(dash_duo, page.TRY_HEATMAP)['layout']['title']}")
    gate = graph(dash_duo, page.TRY_HEATMAP)["data"][0]
    assert gate["zmin"] == 0 and gate["z"][0][0] == pytest.approx(want.states[(0, "fwd")]["f"][0, 0], abs=1e-3)
    assert "display: none" in dash_duo.find_element(f"#{page.TRY_GEN_CARD}").get_attribute("style")

    # an unknown word is named and still read; then empty text is refused in the page
    type_text(dash_duo, "The zorblax was great.")
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    until(lambda: "zorblax" in text_of(dash_duo, page.TRY_MESSAGE), timeout=20,
          msg=lambda: f"message: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert "The model says" in text_of(dash_duo, page.TRY_PREDICTION)
    type_text(dash_duo, sentence)
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    until(lambda: not text_of(dash_duo, page.TRY_MESSAGE), timeout=20, msg="the warning stayed")
    dash_duo.select_dcc_dropdown(f"#{page.TRY_STATE}", value="c: cell state c")
    until(lambda: "cell state" in graph(dash_duo, page.TRY_HEATMAP)["layout"]["title"]["text"], timeout=20,
          msg="the heatmap did not switch to c")
    _shot(dash_duo, "try_classifier.png")
    type_text(dash_duo, "")
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    until(lambda: "Type some text first" in text_of(dash_duo, page.TRY_MESSAGE), timeout=20,
          msg=lambda: f"message: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert "alert-danger" in dash_duo.find_element(f"#{page.TRY_MESSAGE} .alert").get_attribute("class")

    # the address can carry the text (how other pages link here)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={runs['cls']}&text=not%20bad%20at%20all", timeout=30)
    until(lambda: "Read as 4 words" in text_of(dash_duo, page.TRY_INFO), timeout=30,
          msg=lambda: f"info: {text_of(dash_duo, page.TRY_INFO)!r}")
    assert dash_duo.find_element(f"#{page.TRY_TEXT}").get_attribute("value") == "not bad at all"

    # runs that cannot be tried say why: one that reads images, one without a checkpoint yet
    img = store.create_run("digits", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump(), status="completed")
    waiting = store.create_run("waiting", "sentiment-lstm", RunSpec.for_task("sentiment-lstm", checkpoint_every=500)
                               .model_dump(), status="running")
    for run_id, why in ((img, "reads images"), (waiting, "no checkpoint yet (it is at step 0). The trainer writes one "
                                                        "every 500 steps (the first at step 500)")):
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={run_id}", timeout=30)
        until(lambda: why in text_of(dash_duo, page.TRY_MESSAGE), timeout=20,
              msg=lambda: f"message: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert dash_duo.get_logs() == []


def generated(dash_duo) -> str | None:
    return dash_duo.driver.execute_script(
        f"const e = document.querySelector('#{page.TRY_GEN_OUT} .try-generated'); return e ? e.textContent : null;")


def generate_and_read(dash_duo, previous: str | None) -> str:
    click(dash_duo, f"#{page.TRY_GENERATE}")
    return until(lambda: (g := generated(dash_duo)) is not None and g != previous and g, timeout=30,
                 msg=lambda: f"no new generation: {text_of(dash_duo, page.TRY_GEN_OUT)!r} "
                             f"{text_of(dash_duo, page.TRY_GEN_MESSAGE)!r}")


@pytest.mark.timeout(240)
def test_try002_language_model_guesses_generation_and_teacher_forcing(dash_duo, trained):
    from dashboard.app import create_app

    data_dir, runs = trained
    store = RunStore(data_dir)
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={runs['lm']}", timeout=30)
    until(lambda: "likeliest guesses" in text_of(dash_duo, page.TRY_PREDICTION), timeout=60,
          msg=lambda: f"no prediction: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    prompt = "a(b(c)d(a(b("
    type_text(dash_duo, prompt)
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    want = inference.analyse_run(store, runs["lm"], prompt)
    guesses = until(lambda: (g := graph(dash_duo, page.TRY_GUESSES)) and len(g["data"][0]["x"]) == len(prompt) and g,
                    timeout=30, msg=lambda: f"guesses: {str(graph(dash_duo, page.TRY_GUESSES))[:300]}")
    first_row = [t.replace("⏎", "\n") for t in guesses["data"][0]["text"][0]]
    assert first_row == [row[0] for row in want.top_tokens]
    heat = until(lambda: (g := graph(dash_duo, page.TRY_HEATMAP)) and len(g["data"][0]["z"][0]) == len(prompt) and g,
                 timeout=20, msg=lambda: f"heatmap: {str(graph(dash_duo, page.TRY_HEATMAP))[:300]}")
    assert len(heat["data"][0]["z"]) == 16
    assert heat["data"][0]["z"][7][-1] == pytest.approx(want.states[(0, "fwd")]["h"][-1, 7], abs=1e-3)
    assert "display: none" in dash_duo.find_element(f"#{page.TRY_EVOLUTION_CARD}").get_attribute("style")

    # free running: temperature 0 is greedy; a hot temperature and another seed write other text
    temperature = f"#{page.TRY_TEMPERATURE} input"
    set_number(dash_duo, temperature, 0)
    set_number(dash_duo, f"#{page.TRY_LENGTH}", 80)
    greedy = generate_and_read(dash_duo, None)
    loaded = inference.load_run(store, runs["lm"])
    assert greedy == inference.generate_text(loaded, prompt, 80, 0.0, 0).text
    assert "always the likeliest character (greedy)" in text_of(dash_duo, page.TRY_GEN_OUT)
    set_number(dash_duo, temperature, 1.5)
    hot = generate_and_read(dash_duo, greedy)
    assert hot == inference.generate_text(loaded, prompt, 80, 1.5, 0).text and len(hot) == 80
    set_number(dash_duo, f"#{page.TRY_SEED}", 7)
    other = generate_and_read(dash_duo, hot)
    assert other == inference.generate_text(loaded, prompt, 80, 1.5, 7).text
    assert "temperature 1.5, seed 7" in text_of(dash_duo, page.TRY_GEN_OUT)
    _shot(dash_duo, "try_generate.png")

    # teacher forcing: a guess under each character, and the accuracy
    click(dash_duo, f"#{page.TRY_TEACHER} input[value='on']")
    click(dash_duo, f"#{page.TRY_GENERATE}")
    until(lambda: "guessed right" in text_of(dash_duo, page.TRY_GEN_OUT), timeout=30,
          msg=lambda: f"teacher forcing: {text_of(dash_duo, page.TRY_GEN_OUT)!r}")
    tf = inference.teacher_force_text(loaded, prompt)
    right = sum(g == t for g, t in zip(tf.guesses, tf.tokens[1:]))
    assert re.search(rf"\b{right} of {len(prompt) - 1} characters guessed right", text_of(dash_duo, page.TRY_GEN_OUT))
    cols = dash_duo.driver.execute_script(
        f"return document.querySelectorAll('#{page.TRY_GEN_OUT} .try-tf-col').length")
    assert cols == len(prompt)
    _shot(dash_duo, "try_language_model.png")

    # back to free running, then a teacher-forced request with one character is refused in the page
    type_text(dash_duo, "a")
    click(dash_duo, f"#{page.TRY_GENERATE}")
    until(lambda: "at least two characters" in text_of(dash_duo, page.TRY_GEN_MESSAGE), timeout=20,
          msg=lambda: f"message: {text_of(dash_duo, page.TRY_GEN_MESSAGE)!r}")
    assert dash_duo.get_logs() == []
