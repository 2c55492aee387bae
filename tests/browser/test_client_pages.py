"""Runs of users' own scripts (``import deepscope``) on the dashboard's pages, in headless Chromium.

    .venv/bin/python -m pytest --headless tests/browser/test_client_pages.py
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from dashboard import ids
from tests.browser.test_training_flow import BADGE, js_text, loss_points, until

pytestmark = pytest.mark.browser


class CharLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, 24, batch_first=True)
        self.head = nn.Linear(24, vocab)

    def forward(self, x):
        return self.head(self.lstm(self.embedding(x))[0])


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


@pytest.fixture(scope="module")
def client_runs(tmp_path_factory):
    """A finished char-LSTM run, a finished CNN run, and a run still open (live), all via the client API."""
    torch.manual_seed(0)
    data_dir = tmp_path_factory.mktemp("client") / "data"
    text = "def f(a, (b, c)):\n    return [a, {b: c}]\n" * 40
    chars = sorted(set(text))
    ids_ = torch.tensor([chars.index(c) for c in text])
    model = CharLM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", deepscope.DeepscopeWarning)
        with deepscope.init(name="my char lstm", data_dir=data_dir, total_steps=40) as lm:
            lm.watch(model, probe=text[:600], vocab=chars)
            lm.log_track("parens", np.cumsum([(c == "(") - (c == ")") for c in text[:600]]))
            for step in range(1, 41):
                starts = torch.randint(0, len(ids_) - 33, (8,))
                w = ids_[starts[:, None] + torch.arange(33)]
                loss = nn.functional.cross_entropy(model(w[:, :-1]).reshape(-1, len(chars)), w[:, 1:].reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                lm.log({"train/loss": loss.detach()}, step=step)
        cnn_model = SmallCNN()
        with deepscope.init(name="my cnn", data_dir=data_dir, total_steps=30) as cnn:
            cnn.watch(cnn_model, probe=torch.randn(8, 1, 8, 8))
            opt = torch.optim.SGD(cnn_model.parameters(), lr=0.1)
            for step in range(1, 31):
                x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
                loss = nn.functional.cross_entropy(cnn_model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                cnn.log({"train/loss": loss.detach()}, step=step)
    live = deepscope.init(name="still training", data_dir=data_dir)
    for step in range(1, 11):
        live.log({"train/loss": 1.0 / step})
    live._writer.flush()
    yield data_dir, lm.id, cnn.id, live
    live.finish()


@pytest.mark.timeout(240)
def test_cp001_client_runs_open_on_hidden_states_kernels_and_training(dash_duo, client_runs):
    from dashboard.app import create_app

    data_dir, lm_id, cnn_id, live = client_runs
    dash_duo.start_server(create_app(data_dir, poll_ms=250))

    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/hidden?run={lm_id}&sel=100-103&thr=0", timeout=30)
    until(lambda: "snapshot at step 40" in (js_text(dash_duo, f"#{ids.HS_SNAPSHOT_INFO}") or ""), timeout=30,
          msg=lambda: f"hidden states: {js_text(dash_duo, f'#{ids.HS_SNAPSHOT_INFO}')!r}")
    until(lambda: re.search(r"cells are above|No cell is above", js_text(dash_duo, f"#{ids.HS_SELECTION}") or ""),
          timeout=20, msg=lambda: f"select: {js_text(dash_duo, f'#{ids.HS_SELECTION}')!r}")
    until(lambda: "parens" in (js_text(dash_duo, f"#{ids.HS_SUMMARY_TEXT}") or ""), timeout=20,
          msg="the user's track is not in the cell summary")

    dash_duo.driver.get(f"{dash_duo.server_url}/kernels?run={cnn_id}")
    until(lambda: "snapshot at step 30" in (js_text(dash_duo, f"#{ids.KN_INFO}") or ""), timeout=30,
          msg=lambda: f"kernels: {js_text(dash_duo, f'#{ids.KN_INFO}')!r}")
    until(lambda: dash_duo.driver.execute_script(
        f"const g = document.querySelector('#{ids.KN_MOSAIC} .js-plotly-plot'); return !!g && !!g.data;"),
        timeout=20, msg="the kernel grid never drew")

    dash_duo.driver.get(f"{dash_duo.server_url}/?run={live.id}")
    until(lambda: loss_points(dash_duo) >= 10, timeout=30, msg=lambda: f"loss points: {loss_points(dash_duo)}")
    until(lambda: js_text(dash_duo, BADGE) == "running", timeout=20, msg=lambda: f"badge: {js_text(dash_duo, BADGE)}")
    for _ in range(5):  # the script logs on while the page is open
        live.log({"train/loss": 0.05})
    until(lambda: loss_points(dash_duo) >= 15, timeout=30,
          msg=lambda: f"the curve did not follow the script: {loss_points(dash_duo)} points")
    live.finish()
    until(lambda: js_text(dash_duo, BADGE) == "completed", timeout=30,
          msg=lambda: f"badge after finish: {js_text(dash_duo, BADGE)}")
    assert dash_duo.get_logs() == []


@pytest.mark.timeout(240)
def test_cp002_try_it_runs_a_client_language_model(dash_duo, client_runs):
    """``/try?run=<client run>``: the model run.watch saved predicts, shows its LSTM's states, and writes text."""
    from backend import inference
    from backend.store import RunStore
    from dashboard.views.try_it import ids as page
    from dashboard.app import create_app
    from dashboard.views.try_it.figures import visible
    from tests.browser.test_try_input import click, generate_and_read, graph, set_number, text_of, type_text

    data_dir, lm_id, _cnn_id, _live = client_runs
    store = RunStore(data_dir)
    dash_duo.start_server(create_app(data_dir))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/try?run={lm_id}", timeout=30)
    until(lambda: "likeliest guesses" in text_of(dash_duo, page.TRY_PREDICTION), timeout=60,
          msg=lambda: f"no prediction: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert dash_duo.find_element(f"#{page.TRY_TEXT}").get_attribute("value").startswith("def f(a, (b, c)):")
    prompt = "return [a, {b"
    type_text(dash_duo, prompt)
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    want = inference.analyse_run(store, lm_id, prompt)
    guesses = until(lambda: (g := graph(dash_duo, page.TRY_GUESSES)) and len(g["data"][0]["x"]) == len(prompt) and g,
                    timeout=30, msg=lambda: f"guesses: {str(graph(dash_duo, page.TRY_GUESSES))[:300]}")
    assert guesses["data"][0]["text"][0] == [visible(row[0]) for row in want.top_tokens]
    assert "step 40" in text_of(dash_duo, page.TRY_INFO)
    heat = until(lambda: (g := graph(dash_duo, page.TRY_HEATMAP)) and len(g["data"][0]["z"][0]) == len(prompt) and g,
                 timeout=20, msg=lambda: f"heatmap: {str(graph(dash_duo, page.TRY_HEATMAP))[:300]}")
    assert len(heat["data"][0]["z"]) == 24  # the script's LSTM has 24 cells
    assert heat["data"][0]["z"][5][-1] == pytest.approx(want.states[(0, "fwd")]["h"][-1, 5], abs=1e-3)

    set_number(dash_duo, f"#{page.TRY_TEMPERATURE} input", 0)
    set_number(dash_duo, f"#{page.TRY_LENGTH}", 60)
    greedy = generate_and_read(dash_duo, None)
    assert greedy == inference.generate_text(inference.load_run(store, lm_id), prompt, 60, 0.0, 0).text
    type_text(dash_duo, "naïve")  # not in the script's vocabulary: refused by name
    click(dash_duo, f"#{page.TRY_ANALYSE}")
    until(lambda: "has no 'ï'" in text_of(dash_duo, page.TRY_MESSAGE), timeout=20,
          msg=lambda: f"message: {text_of(dash_duo, page.TRY_MESSAGE)!r}")
    assert dash_duo.get_logs() == []
