"""The Training page's "Generated text" card with a code-lstm run training in its own process.

The newest sample follows the run live (same document), the temperature control switches the
text to the one the store holds for that step and temperature, overlaid language-model runs get a
run choice, and a run of another task gets no card.

    .venv/bin/python -m pytest --headless tests/browser/test_samples.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.spec import RunSpec
from backend.store import RunStore
from backend.store.samples import samples_history, write_samples_snapshot
from backend.tasks.registry import VOCABS
from dashboard.views.training import samples as sc
from dashboard.blank_runs import with_blank_runs
from tests.browser.test_training_flow import until
from tests.unit.test_samples_card import text_of

pytestmark = pytest.mark.browser
NEWEST = f"#{sc.BODY} .sample-newest"

SHOWN_JS = f"""
const box = document.querySelector('{NEWEST}');
if (!box) return null;
const card = document.getElementById('{sc.CARD}');
return {{step: Number(box.dataset.step), temperature: Number(box.dataset.temperature),
         prompt: box.querySelector('.sample-prompt').textContent,
         text: box.querySelector('.sample-cont').textContent,
         earlier: (document.querySelector('#{sc.BODY} .sample-earlier') || {{dataset: {{}}}}).dataset.step,
         shown: getComputedStyle(card).display !== 'none'}};
"""


def shown(dash_duo) -> dict | None:
    return dash_duo.driver.execute_script(SHOWN_JS)


def pick(dash_duo, radio_id: str, value) -> None:
    """Click the radio input of ``value`` in a dcc.RadioItems."""
    until(lambda: dash_duo.driver.execute_script(
        "const i = [...document.querySelectorAll(`#${arguments[0]} input[type=radio]`)]"
        ".find(e => e.value === arguments[1]); if (!i) return false; i.click(); return true;",
        radio_id, str(value)), timeout=10, msg=f"no radio {value!r} in #{radio_id}")


def stored_text(store: RunStore, run_id: str, step: int, temperature: float) -> str:
    """The stored sample as the card shows it: long blank runs as their markers (tests/unit/test_blank_runs.py)."""
    text = next(r for r in samples_history(store, run_id) if r.step == step).text(temperature)
    return text_of(with_blank_runs(text))


@pytest.mark.timeout(300)
def test_sm001_card_follows_the_run_and_switches_temperature_and_run(dash_duo, tmp_path):
    from dashboard.app import create_app

    data_dir = tmp_path / "data"
    store = RunStore(data_dir)
    spec = RunSpec.for_task("code-lstm", steps=100_000, probe_every=50, eval_every=100)
    code = store.create_run("code live", spec.task, spec.model_dump())
    digits = store.create_run("digits", "digits-cnn", RunSpec.for_task("digits-cnn").model_dump())
    # a finished brackets run whose samples are written straight into the store
    brackets = store.create_run("brackets done", "brackets-lstm", RunSpec.for_task("brackets-lstm").model_dump())
    vocab = VOCABS["brackets-lstm"]
    for step, letter in ((0, "a"), (500, "b")):
        write_samples_snapshot(store, brackets, step, [2, 4], np.full((4, 8), vocab.index(letter)),
                               [0.0, 0.5, 1.0, 1.5], vocab, {"source": "test", "every": 500})
    store.set_status(brackets, "completed")
    trainer = subprocess.Popen([sys.executable, "-m", "backend.training.worker", "--data-dir", str(data_dir),
                                "--run-id", code], env={**os.environ, "DEEPSCOPE_TORCH_THREADS": "1",
                                                        "CUDA_VISIBLE_DEVICES": ""})
    try:
        dash_duo.start_server(create_app(data_dir, poll_ms=400))
        dash_duo.wait_for_page(url=f"{dash_duo.server_url}/?run={code}", timeout=30)
        first = until(lambda: shown(dash_duo), timeout=90, msg="the Generated text card never showed a sample")
        assert first["shown"] and first["temperature"] == 0.5 and first["prompt"].startswith("def ")
        assert first["text"] == stored_text(store, code, first["step"], 0.5)
        dash_duo.driver.execute_script("window.__sameDocument = true;")

        # live: newer samples replace the newest box; step 0 stays beside it for comparison
        later = until(lambda: (s := shown(dash_duo)) and s["step"] >= first["step"] + 150 and s,
                      timeout=120, msg=lambda: f"the newest sample stayed at {shown(dash_duo)}")
        assert dash_duo.driver.execute_script("return window.__sameDocument === true;"), "the page reloaded"
        assert later["earlier"] == "0" and later["text"] == stored_text(store, code, later["step"], 0.5)

        # the temperature control: greedy, then 1.5, each the store's text for the shown step
        texts = {}
        for t in (0, 1.5):
            pick(dash_duo, sc.TEMPERATURE, t)
            now = until(lambda: (s := shown(dash_duo)) and s["temperature"] == t and s, timeout=10,
                        msg=lambda: f"temperature {t} not shown: {shown(dash_duo)}")
            assert now["text"] == stored_text(store, code, now["step"], t)
            texts[t] = (now["step"], now["text"])
        if texts[0][0] == texts[1.5][0]:
            assert texts[0][1] != texts[1.5][1]
        until(lambda: shown(dash_duo)["step"] >= 300, timeout=120, msg="the run did not reach step 300")
        pick(dash_duo, sc.TEMPERATURE, 0.5)
        until(lambda: shown(dash_duo)["temperature"] == 0.5, timeout=10, msg="back to 0.5")
        Path("/tmp/shots").mkdir(parents=True, exist_ok=True)
        dash_duo.driver.execute_script("document.querySelector('.graph-grid').scrollIntoView(); scrollBy(0, -60);")
        dash_duo.driver.save_screenshot("/tmp/shots/samples.png")

        # several runs: a run choice among the language-model runs only
        dash_duo.driver.get(f"{dash_duo.server_url}/?run={code},{digits},{brackets}")
        until(lambda: (s := shown(dash_duo)) and s["prompt"].startswith("def "), timeout=30,
              msg=lambda: f"overlay: {shown(dash_duo)}")
        labels = dash_duo.driver.execute_script(
            f"return [...document.querySelectorAll('#{sc.RUN} label')].map(l => l.textContent.trim());")
        assert labels == ["code live", "brackets done"]
        pick(dash_duo, sc.RUN, brackets)
        until(lambda: shown(dash_duo)["text"] == "b" * 8 and shown(dash_duo)["prompt"] == "(a", timeout=10,
              msg=lambda: f"brackets run not shown: {shown(dash_duo)}")
        assert shown(dash_duo)["earlier"] == "0"
        dash_duo.driver.execute_script(f"document.getElementById('{sc.CARD}').scrollIntoView(); scrollBy(0, -60);")
        dash_duo.driver.save_screenshot("/tmp/shots/samples_overlay.png")
        # a finished run: the polls that follow find nothing new and leave the card's nodes alone
        dash_duo.driver.execute_script(f"""
            window.__cardNode = document.querySelector('{NEWEST}'); window.__changes = [];
            new MutationObserver(ms => ms.forEach(m => {{  // Dash flags outputs while a poll is in flight: not a change
                if (m.attributeName !== 'data-dash-is-loading') window.__changes.push(m.type + ' ' + m.target.nodeName);
            }})).observe(document.getElementById('{sc.CARD}'), {{subtree: true, childList: true, attributes: true,
                                                                 characterData: true}});""")
        time.sleep(2.5)  # about six polls at 400 ms
        assert dash_duo.driver.execute_script(f"return document.querySelector('{NEWEST}') === window.__cardNode;")
        assert dash_duo.driver.execute_script("return window.__changes;") == [], "the card changed with nothing new"

        # a run of another task: no card
        dash_duo.driver.get(f"{dash_duo.server_url}/?run={digits}")
        dash_duo.wait_for_element(f"#{sc.CARD}", timeout=30)
        until(lambda: dash_duo.driver.execute_script(
            f"return getComputedStyle(document.getElementById('{sc.CARD}')).display") == "none",
            timeout=10, msg="a digits run shows the Generated text card")
        assert dash_duo.get_logs() == []
    finally:
        RunStore(data_dir).request_control(code, "stop")
        try:
            trainer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            trainer.kill()
            trainer.wait(timeout=10)
