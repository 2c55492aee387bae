"""``deepscope import-lstmvis``: a generated LSTMVis project round-trips into a hidden-state run.

Codes: lv0xx.
"""
from __future__ import annotations

import numpy as np
import pytest

from backend.cli import main
from backend.store import RunStore
from dashboard.views.hidden_states.data import HiddenStates

h5py = pytest.importorskip("h5py")

WORDS = ["<unk>", "the", "cat", "(", ")", "sat", "on", "mat", "a", "dog"]
LSTM_YML = """\
name: generated brackets
description: a small project made by the test

files:
  states: states.hdf5
  train: train.h5
  words: words.dict
  extra: extra.h5

word_sequence:
  file: train
  path: word_ids
  dict_file: words

states:
  file: states
  types: [
    {type: state, layer: 1, path: states1},
    {type: output, layer: 1, path: output1},
    {type: state, layer: 2, path: states2},
    {file: extra, type: output, layer: 2, path: output2}
  ]

meta:
  depth:
    file: train
    path: depth
    vis: {type: discrete, range: 0...5}
"""


def make_project(folder, n=600, cells=12, seed=0):
    """An LSTMVis project: word ids (1-based ids, as Lua writes them), a dict, four state types and a
    depth annotation; cell 3 of layer 1's state is the bracket depth."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = rng.integers(1, len(WORDS), size=n)
    depth = np.cumsum(np.where(ids == 3, 1, 0) - np.where(np.roll(ids, 1) == 4, 1, 0)).clip(0)
    arrays = {name: rng.normal(0, 2, size=(n, cells)).astype(np.float32)
              for name in ("states1", "output1", "states2", "output2")}
    arrays["states1"][:, 3] = depth
    with h5py.File(folder / "train.h5", "w") as f:
        f["word_ids"] = ids.astype(np.int32)
        f["depth"] = depth.astype(np.int32)
    with h5py.File(folder / "states.hdf5", "w") as f:
        for name in ("states1", "output1", "states2"):
            f[name] = arrays[name]
    with h5py.File(folder / "extra.h5", "w") as f:
        f["output2"] = arrays["output2"]
    (folder / "words.dict").write_text("".join(f"{w} {i}\n" for i, w in enumerate(WORDS) if i > 0))
    (folder / "lstm.yml").write_text(LSTM_YML)
    return ids, depth, arrays


def test_lv001_import_round_trips(tmp_path, capsys):
    ids, depth, arrays = make_project(tmp_path / "project")
    assert main(["import-lstmvis", str(tmp_path / "project"), "--data-dir", str(tmp_path / "data")]) == 0
    assert "imported" in capsys.readouterr().out
    store = RunStore(tmp_path / "data")
    (run,) = store.list_runs()
    assert (run["name"], run["task"], run["status"], run["source"]) == (
        "generated brackets", "lstmvis", "completed", "lstmvis")
    assert run["spec"]["model"] == {"family": "lstm", "layers": 2, "hidden_size": 12}

    hidden = HiddenStates(store)
    snap, _ = hidden.open(run["id"])
    assert (snap.n_tokens, snap.n_cells, snap.step) == (600, 12, 0)
    assert snap.meta["layers"] == 2 and snap.meta["states"] == ["h", "c"]
    for key, name in (("l0.fwd.c", "states1"), ("l0.fwd.h", "output1"), ("l1.fwd.c", "states2"),
                      ("l1.fwd.h", "output2")):
        assert np.allclose(snap.window(key, 0, 600), arrays[name], atol=4e-3, rtol=1e-3), key  # float16
    assert snap.token_ids().tolist() == ids.tolist()
    assert snap.tokens(0, 8) == [WORDS[i] for i in ids[:8]]
    assert snap.track_names == ["depth"]
    assert snap.tracks()[0].tolist() == depth.astype(np.float32).tolist()
    # what the Hidden states page does with it: the cell summary finds the depth cell, Select and Match work
    summary = hidden.summary(run["id"], snap, "l0.fwd.c")
    assert summary["tracks"] == ["depth"] and int(np.argmax(np.abs(summary["r"][0]))) == 3
    assert summary["r"][0][3] == pytest.approx(1.0, abs=1e-3)
    deep = int(np.argmax(depth))  # the first token at the deepest nesting
    level = float(depth[deep]) - 0.5
    sel = hidden.select(snap, "l0.fwd.c", deep, deep + 1, threshold=level, off_before=0)
    assert 3 in sel.cells
    matches = hidden.match(run["id"], snap, "l0.fwd.c", [3], level, 1)
    assert matches and all(depth[m["start"]] == depth[deep] for m in matches)


def test_lv002_max_tokens_and_name(tmp_path):
    make_project(tmp_path / "p", n=300)
    assert main(["import-lstmvis", str(tmp_path / "p"), "--data-dir", str(tmp_path / "d"), "--name", "mine",
                 "--max-tokens", "100"]) == 0
    store = RunStore(tmp_path / "d")
    (run,) = store.list_runs()
    snap, _ = HiddenStates(store).open(run["id"])
    assert run["name"] == "mine" and snap.n_tokens == 100 and len(snap.tracks()[0]) == 100


@pytest.mark.parametrize("breakage,message", [
    ("no-yml", "no lstm.yml"),
    ("missing-dataset", "has no dataset 'states2'"),
    ("missing-file", "does not exist"),
    ("bad-dict", "expected 'word id'"),
    ("cells-differ", "different numbers of cells"),
    ("states-shorter", "'output2' in extra.h5 has 40 rows but the word sequence has 50 tokens"),
    ("track-shorter", "meta 'depth' ('depth') has 30 values but the word sequence has 50 tokens"),
    ("invalid-yaml", "lstm.yml is not valid YAML (line 3, column 1): expected ',' or ']'"),
    ("yaml-list", "lstm.yml must be a mapping of sections"),
    ("empty-yaml", "lstm.yml is empty"),
    ("empty-words", "the word sequence 'word_ids' in train.h5 is empty"),
    ("not-hdf5", "states.hdf5 (file 'states' of lstm.yml) is not a readable HDF5 file"),
    ("id-outside-dict", "has word id 12, which words.dict does not define (it has ids up to 9)"),
    ("types-not-list", "lstm.yml lists no states: types"),
])
def test_lv003_broken_projects_are_refused_with_a_reason(tmp_path, capsys, breakage, message):
    folder = tmp_path / "p"
    make_project(folder, n=50)
    if breakage == "no-yml":
        (folder / "lstm.yml").unlink()
    elif breakage == "missing-dataset":
        with h5py.File(folder / "states.hdf5", "a") as f:
            del f["states2"]
    elif breakage == "missing-file":
        (folder / "extra.h5").unlink()
    elif breakage == "bad-dict":
        (folder / "words.dict").write_text("the 1\nnot-a-pair\n")
    elif breakage in ("cells-differ", "states-shorter"):
        with h5py.File(folder / "extra.h5", "a") as f:
            del f["output2"]
            f["output2"] = np.zeros((50, 7) if breakage == "cells-differ" else (40, 12), np.float32)
    elif breakage in ("track-shorter", "empty-words", "id-outside-dict"):
        with h5py.File(folder / "train.h5", "a") as f:
            if breakage == "track-shorter":
                del f["depth"]
                f["depth"] = np.zeros(30, np.int32)
            elif breakage == "empty-words":
                del f["word_ids"]
                f["word_ids"] = np.zeros(0, np.int32)
            else:
                ids = f["word_ids"][:]
                ids[17] = 12
                f["word_ids"][:] = ids
    elif breakage == "not-hdf5":
        (folder / "states.hdf5").write_text("states,as,csv\n1,2,3\n")
    else:
        (folder / "lstm.yml").write_text({"invalid-yaml": "files:\n  states: [unclosed\n",
                                          "yaml-list": "- files\n- states\n", "empty-yaml": "\n",
                                          "types-not-list": LSTM_YML.split("states:\n  file")[0]
                                          + "states:\n  file: states\n  types: states1\n"}[breakage])
    assert main(["import-lstmvis", str(folder), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1  # one line, naming the file and the problem
    assert RunStore(tmp_path / "d").list_runs() == []  # nothing stored
