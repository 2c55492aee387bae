"""The Attention page answers junk without a 500: its address parameters, and junk bodies sent straight to its
callbacks, on a store with a tiny run of each kind that records attention (plus runs without attention, and a
store with none). Flask's test client with the app's safety net off, as in ``test_junk.py``; ~10-15 s.

    .venv/bin/python -m pytest tests/security/test_attention_junk.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from _dash_fuzz import DryJobs, Fuzzer, by_callback, client_sender, fetch_dependencies  # noqa: E402

TINY_TF = {"family": "transformer", "layers": 1, "hidden_size": 16, "heads": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from backend.spec import RunSpec
    from backend.store import RunStore
    from backend.training.worker import run_training

    torch.set_num_threads(1)
    data = tmp_path_factory.mktemp("attjunk") / "data"
    store = RunStore(data)
    specs = {"s2s": RunSpec.for_task("dates-seq2seq", steps=4, probe_every=2, eval_every=4, log_every=2,
                                     checkpoint_every=4),
             "tf": RunSpec.for_task("code-lstm", steps=4, batch_size=4, seq_len=24, probe_every=2, eval_every=4,
                                    log_every=2, checkpoint_every=4, model=TINY_TF)}
    out = {}
    for name, spec in specs.items():
        out[name] = store.create_run(name, spec.task, spec.model_dump())
        assert run_training(store, out[name], device="cpu") == "completed", store.get_run(out[name])["error"]
    none = RunSpec.for_task("dates-seq2seq", steps=4, model={"attention": "none"})
    out["none"] = store.create_run("no attention", none.task, none.model_dump(), status="completed")
    lstm = RunSpec.for_task("code-lstm", steps=4)
    out["lstm"] = store.create_run("an lstm", lstm.task, lstm.model_dump(), status="completed")
    return data, out


def _send(data):
    from backend.store import RunStore
    from dashboard.app import create_app

    app = create_app(data, jobs=DryJobs(RunStore(data)))
    app._on_error = None  # no safety net: an exception in a callback answers 500 here
    return client_sender(app.server.test_client())


def _page(send, search: str) -> str:
    result = Fuzzer(send, []).render("/attention", search)
    assert result.status == 200, (search, result.status, result.text[-2000:])
    return json.dumps(json.loads(result.text)["response"]["_pages_content"]["children"], ensure_ascii=False)


def test_attention_page_takes_junk_addresses_and_callback_bodies(runs):
    data, ids_ = runs
    send = _send(data)
    page = _page(send, f"?run={ids_['tf']}&layer=1e999&head=zz&item=-3&step=NaN")
    assert "Ignored in the address" in page and "layer=1e999" in page
    assert _page(send, f"?run={ids_['s2s']}&item=7&step=2").count("Ignored in the address") == 0
    assert "Ignored in the address" in _page(send, "?run=nosuchrun")  # falls back to a run with attention
    fz = Fuzzer(send, fetch_dependencies(send), seed=3)
    deps = [d for d in fz.server_deps if "att-" in d["output"]]
    assert len(deps) >= 5, [d["output"] for d in deps]
    for rid in ids_.values():
        fz.harvest_pages([f"/attention?run={rid}", f"/attention?run={rid}&item=3&layer=0&head=1&step=2"])
        fz.warm(1, deps)
        fz.sweep(4, deps)
    assert by_callback(fz.results, 500) == {}
    assert not [r for r in fz.results if r.seconds > 5], "slow answers"


def test_empty_states_say_what_to_do(runs, tmp_path):
    from backend.spec import RunSpec
    from backend.store import RunStore

    data, _ = runs
    lonely = tmp_path / "lonely"
    store = RunStore(lonely)
    spec = RunSpec.for_task("code-lstm", steps=4)
    store.create_run("an lstm", spec.task, spec.model_dump(), status="completed")
    page = _page(_send(lonely), "")
    assert "No run with attention maps yet: start dates-seq2seq or a transformer on code-lstm from " in page
    assert '"href": "/new"' in page
    assert "No runs yet" in _page(_send(tmp_path / "empty"), "")
