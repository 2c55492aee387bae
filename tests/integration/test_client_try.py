"""Try it on runs of users' own scripts: ``run.watch`` saves the model, Try it runs it from its model file.

Codes ct0xx. ``.venv/bin/python -m pytest -q tests/integration/test_client_try.py -k ct001`` runs one.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from backend import inference
from backend.inference_runs import example_text, is_language_model, model_file_paths, text_run_problem, \
    tryable_runs
from backend.models import graph_file
from backend.store import RunStore
from dashboard.data import spec_summary

TEXT = "def area(width, height):\n    return (width * height) / 2\n\nprint(area(3, [4]))\n" * 30
CHARS = sorted(set(TEXT))
IDS = torch.tensor([CHARS.index(c) for c in TEXT])


class CharLSTM(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear, batch first: the char LM of examples/lstm_text.py, deeper."""

    def __init__(self, vocab: int, layers: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, 16, num_layers=layers, batch_first=True)
        self.head = nn.Linear(16, vocab)

    def forward(self, x):
        return self.head(self.lstm(self.embedding(x))[0])


class TimeFirstGRU(nn.Module):
    """Time first, a reshape inside, tied weights, and a tuple out: the logits are found anyway."""

    def __init__(self, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, 12)
        self.rnn = nn.GRU(12, 12)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(12, vocab)
        self.out.weight = self.emb.weight

    def forward(self, x):
        h, h_n = self.rnn(self.drop(self.emb(x)))
        return self.out(h.reshape(-1, 12)).view(x.shape[0], x.shape[1], -1), h_n


class CausalConv(nn.Module):
    """No recurrent layer: a causal convolution over the last 4 characters."""

    def __init__(self, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.conv = nn.Conv1d(8, 16, 4)
        self.head = nn.Linear(16, vocab)

    def forward(self, x):
        h = nn.functional.pad(self.emb(x).transpose(1, 2), (3, 0))
        return self.head(torch.relu(self.conv(h)).transpose(1, 2))


class DataDependent(CharLSTM):
    """Python control flow on the values: torch.export cannot trace it."""

    def forward(self, x):
        if int(x.sum()) % 2:
            x = x.flip(1)
        return super().forward(x)


def train(data_dir, model, steps=40, layout="batch_first", catch=False, **watch):
    """Train ``model`` on TEXT with the client API; returns (run, warnings, losses)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", deepscope.DeepscopeWarning)
        with deepscope.init(name=type(model).__name__, data_dir=data_dir, total_steps=steps) as run:
            run.watch(model, **({"probe": TEXT[:300], "vocab": CHARS, "optimizer": opt} | watch))
            for step in range(1, steps + 1):
                starts = torch.randint(0, len(IDS) - 33, (8,))
                w = IDS[starts[:, None] + torch.arange(33)]
                x = w[:, :-1] if layout == "batch_first" else w[:, :-1].t()
                out = model(x)
                out = out[0] if isinstance(out, tuple) else out
                target = w[:, 1:] if layout == "batch_first" else w[:, 1:].t()
                loss = nn.functional.cross_entropy(out.reshape(-1, len(CHARS)), target.reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss))
                run.log({"train/loss": loss.detach()}, step=step)
    return run, [str(w.message) for w in caught if issubclass(w.category, deepscope.DeepscopeWarning)], losses


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("client-try") / "data"
    model = CharLSTM(len(CHARS))
    run, caught, losses = train(data_dir, model)
    inference.clear_cache()
    return RunStore(data_dir), run, model, caught, losses


def test_ct001_try_it_predicts_for_a_client_lstm(lstm_run):
    store, run, model, caught, losses = lstm_run
    assert caught == [] and np.mean(losses[-5:]) < np.mean(losses[:5])
    row = store.get_run(run.id)
    assert row["status"] == "completed" and text_run_problem(row) is None and is_language_model(row)
    assert [r["id"] for r in tryable_runs(store.list_runs(), store.run_dir)] == [run.id]
    assert example_text(row) == TEXT[:200]

    text = "def area(w"
    result = inference.analyse_run(store, run.id, text)  # what the Try it page calls
    assert result.step == 40 and result.kind == "lm" and result.family == "lstm" and result.tokens == list(text)
    with torch.no_grad():  # the same prediction as the user's model with its final weights
        want = torch.softmax(model.eval()(torch.tensor([[CHARS.index(c) for c in text]]))[0], -1)
    top = want[-1].topk(5)
    assert result.top_tokens[-1] == [CHARS[i] for i in top.indices] and result.predicted == CHARS[top.indices[0]]
    assert result.top_probs[-1] == pytest.approx(top.values.numpy(), abs=1e-5)

    # every state and gate of both layers; the top layer's h is the LSTM's own output
    assert set(result.states) == {(0, "fwd"), (1, "fwd")}
    assert set(result.states[(1, "fwd")]) == {"h", "c", "i", "f", "g", "o"}
    with torch.no_grad():
        h_top = model.lstm(model.embedding(torch.tensor([[CHARS.index(c) for c in text]])))[0][0]
    assert result.states[(1, "fwd")]["h"] == pytest.approx(h_top.numpy(), abs=1e-5)
    assert result.states[(0, "fwd")]["h"].shape == (len(text), 16)

    loaded = inference.load_run(store, run.id)
    assert loaded.can_step  # generation carries the LSTM's state, checked against reading the whole text
    gen = inference.generate_text(loaded, "def ", length=60, temperature=0.0, seed=0)
    assert len(gen.text) == 60 and set(gen.text) <= set(CHARS)
    ids = [CHARS.index(c) for c in "def "]
    with torch.no_grad():  # greedy generation = the user's model reading its own output
        for _ in range(60):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert gen.text == "".join(CHARS[i] for i in ids[4:])
    tf = inference.teacher_force_text(loaded, "def area(width, height):")
    assert len(tf.guesses) == 23 and 0 <= tf.accuracy <= 1
    with pytest.raises(ValueError, match="has no 'é'"):
        inference.analyse_run(store, run.id, "area é")


def test_ct002_the_run_header_and_its_model_files(lstm_run):
    store, run, model, _caught, _losses = lstm_run
    summary = spec_summary(run.task, store.get_run(run.id)["spec"])
    assert summary["optimizer"] == "adam" and summary["lr"] == pytest.approx(1e-2)
    assert summary["params"] == sum(p.numel() for p in model.parameters())
    folder = store.run_dir(run.id) / "checkpoints"
    files = model_file_paths(store.run_dir(run.id))
    assert 1 <= len(files) <= graph_file.KEEP and files[-1].name == "model-step-000000040.pt"
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in files]  # no temporary file left over
    assert files[-1].stat().st_size < 64 * 1024  # this model's weights and graph


def test_ct003_time_first_gru_with_a_tuple_out(tmp_path):
    model = TimeFirstGRU(len(CHARS))
    run, caught, _ = train(tmp_path, model, steps=20, layout="time_first")
    assert caught == []
    store = RunStore(tmp_path)
    assert store.get_run(run.id)["spec"]["model"]["try"]["layout"] == "time_first"
    inference.clear_cache()
    result = inference.analyse_run(store, run.id, "print(area")
    with torch.no_grad():
        want = torch.softmax(model.eval()(torch.tensor([[CHARS.index(c)] for c in "print(area"]))[0][:, 0], -1)
    assert result.top_probs[:, 0] == pytest.approx(want.max(-1).values.numpy(), abs=1e-5)
    assert set(result.states) == {(0, "fwd")} and set(result.states[(0, "fwd")]) == {"h", "r", "z", "n"}


def test_ct004_a_model_without_recurrent_layers_predicts_and_says_why_no_states(tmp_path):
    run, caught, _ = train(tmp_path, CausalConv(len(CHARS)), steps=20)
    assert len(caught) == 1 and "CausalConv has no recurrent layer" in caught[0], caught  # watch says it once
    store = RunStore(tmp_path)
    inference.clear_cache()
    result = inference.analyse_run(store, run.id, "return (w")
    assert len(result.top_tokens) == 9 and result.states == {} and "no nn.LSTM" in result.states_note
    loaded = inference.load_run(store, run.id)
    assert not loaded.can_step  # nothing to carry: each new character reads the window again
    assert len(inference.generate_text(loaded, "", length=20, temperature=1.0, seed=3).text) == 20


def test_ct005_an_unexportable_model_warns_once_and_trains_on(tmp_path):
    run, caught, losses = train(tmp_path, DataDependent(len(CHARS)), steps=30)
    assert len(caught) == 1 and "Try it will not be able to run this model" in caught[0], caught
    store = RunStore(tmp_path)
    row = store.get_run(run.id)
    assert row["status"] == "completed" and row["step"] == 30 and len(losses) == 30
    series, _ = store.scalar_series(run.id)
    assert series["train/loss"]["step"].tolist() == list(range(1, 31))
    assert [int(s["step"]) for s in store.list_snapshots(run.id, "hidden")][-1] == 30  # the other probes go on
    assert row["spec"]["model"]["try"]["ok"] is False and model_file_paths(store.run_dir(run.id)) == []
    assert [r["id"] for r in tryable_runs(store.list_runs(), store.run_dir)] == []
    with pytest.raises(ValueError, match="could not be saved for Try it: torch.export cannot trace it"):
        inference.load_run(store, run.id)


def test_ct006_without_a_character_vocab_nothing_is_saved_and_try_it_says_why(tmp_path):
    run, caught, _ = train(tmp_path, CharLSTM(len(CHARS)), steps=5, probe=IDS[:200], vocab=None)
    store = RunStore(tmp_path)
    assert caught == [] and model_file_paths(store.run_dir(run.id)) == []
    assert "no vocab=" in text_run_problem(store.get_run(run.id))


# -- hostile files: whoever writes the data folder must not run code in the dashboard -------------------

class Plant:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _newest(store, run) -> Path:
    return store.run_dir(run.id) / "checkpoints" / "model-step-000009999.pt"


def _good_file(store, run) -> dict:
    return torch.load(model_file_paths(store.run_dir(run.id))[-1], weights_only=True)


def _with_graph(raw: dict, change) -> dict:
    graph = json.loads(raw["graph"])
    change(graph)
    return {**raw, "graph": json.dumps(graph)}


def _set_node(target=None, args=None):
    def change(graph):
        node = next(n for n in graph["nodes"] if n["op"] == "call")
        if target:
            node["target"] = target
        if args is not None:
            node["args"] = args
    return change


def _set_kwarg(target, key, value):
    def change(graph):
        next(n for n in graph["nodes"] if n.get("target") == target)["kwargs"][key] = value
    return change


@pytest.mark.parametrize("plant,message", [
    ("pickle", "holds objects deepscope will not load"),
    ("garbage", "is corrupt"),
    ("empty", "corrupt or not a model file"),
    ("not ours", "is not a deepscope model file"),
    ("from_file", "uses aten.from_file.default, which Try it does not run"),
    ("builtins", "uses builtins.exec, which Try it does not run"),
    ("dunder", "which Try it does not run"),
    ("forward ref", "a node used before it is computed"),
    ("huge", "too large"),
    ("int dtype", "argument dtype of aten.zeros.default must be Optional\\[ScalarType\\]"),  # segfaulted torch
    ("bad lstm", "recurrent op's weights of layer 0 do not fit"),
    ("bad json", "not valid JSON"),
    ("no weights", "has no weights for"),
    ("fifo", "is not a regular file"),
])
def test_ct007_a_planted_model_file_is_a_clear_error_not_code(lstm_run, tmp_path, plant, message):
    store, run, _model, _caught, _losses = lstm_run
    marker, path = tmp_path / "pwned", _newest(store, run)
    raw = _good_file(store, run)
    first = next(n["name"] for n in json.loads(raw["graph"])["nodes"] if n["op"] == "call")
    content = {
        "pickle": lambda: torch.save({"format": "deepscope-model", "weights": Plant(marker)}, path),
        "garbage": lambda: path.write_bytes(os.urandom(4096)),
        "empty": lambda: path.write_bytes(b""),
        "not ours": lambda: torch.save({"step": 1, "model": {}}, path),
        "from_file": lambda: torch.save(_with_graph(raw, _set_node("aten.from_file.default", ["/etc/passwd"])), path),
        "builtins": lambda: torch.save(_with_graph(raw, _set_node("builtins.exec")), path),
        "dunder": lambda: torch.save(_with_graph(raw, _set_node("aten.linear.__class__")), path),
        "forward ref": lambda: torch.save(_with_graph(raw, _set_node(args=[{"ref": "output_of_later_node"}])), path),
        "huge": lambda: torch.save(_with_graph(raw, _set_node("aten.zeros.default", [[1 << 20, 1 << 20]])), path),
        "bad json": lambda: torch.save({**raw, "graph": "{" * 100_000}, path),
        "int dtype": lambda: torch.save(_with_graph(raw, _set_kwarg("aten.zeros.default", "dtype", -1)), path),
        "bad lstm": lambda: torch.save({**raw, "weights": {**raw["weights"],
                                                          "lstm.weight_hh_l0": torch.zeros(4, 4)}}, path),
        "no weights": lambda: torch.save({**raw, "weights": {}}, path),
        "fifo": lambda: os.mkfifo(path),
    }
    content[plant]()
    assert first
    try:
        inference.clear_cache()
        with pytest.raises(ValueError, match=message):
            inference.analyse_run(store, run.id, "def area(w")
        assert not marker.exists()
    finally:
        path.unlink(missing_ok=True)
        inference.clear_cache()


def test_ct008_torch_export_files_are_not_read(lstm_run, tmp_path):
    """A pt2 archive (torch.export.save) planted under the model file's name is refused, not loaded."""
    store, run, model, _caught, _losses = lstm_run
    path = _newest(store, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own notes on tracing nn.LSTM
        torch.export.save(torch.export.export(model.eval(), (torch.zeros(1, 5, dtype=torch.long),)), path)
    try:
        inference.clear_cache()
        with pytest.raises(ValueError, match="model-step-000009999.pt"):
            inference.load_run(store, run.id)
    finally:
        path.unlink(missing_ok=True)
        inference.clear_cache()


def test_ct009_pickle_stays_out_of_the_model_file(lstm_run):
    """The file loads with weights_only=True (what read_model_file uses), so no pickle is ever needed."""
    store, run, *_ = lstm_run
    raw = torch.load(model_file_paths(store.run_dir(run.id))[-1], weights_only=True)
    assert set(raw) == {"format", "version", "step", "graph", "weights"} and isinstance(raw["graph"], str)
    assert all(isinstance(v, torch.Tensor) for v in raw["weights"].values())


JUNK = [None, True, -1, 0, 10 ** 30, 1.5, float("nan"), "x", "", [], {}, [[1] * 4], [1 << 40, 1 << 40],
        {"ref": "nope"}, {"ref": []}, {"dtype": "evil"}, {"device": "cuda:9"}, {"float": "1e999"}, {"a": 1, "b": 2},
        "aten.from_file.default", "operator.pow", {"layout": "sparse"}]


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    yield path


def test_ct010_any_damage_to_the_graph_is_a_graph_error(lstm_run):
    """Every leaf of a real graph, replaced by junk, in turn: the model runs or says GraphError; nothing else."""
    import random

    from backend.models.graph import GraphError, GraphModel

    store, run, *_ = lstm_run
    raw = _good_file(store, run)
    good = json.loads(raw["graph"])
    paths = [p for p in _leaves(good) if p and p[0] != "vocab"]
    rng = random.Random(0)
    outcomes = {"ran": 0, "refused": 0}
    for path in paths:
        for junk in rng.sample(JUNK, 4):
            graph = json.loads(raw["graph"])
            target = graph
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = junk
            try:
                GraphModel(graph, raw["weights"]).logits_and_states(torch.tensor([1, 2, 3]))
                outcomes["ran"] += 1
            except GraphError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 4 * len(paths), outcomes
