"""prose-word2vec: skip-gram vectors of pydoc's English text have neighbours a person recognises,
and the embedding probe records them (with the other projection sources of other tasks)."""
from __future__ import annotations

import numpy as np
import pytest

from backend.spec import RunSpec
from backend.store.projections import SOURCE_KIND, SourceSnapshot
from backend.training.worker import run_training

# What a Python programmer expects near a word, and how many of its 10 nearest (cosine) must be such.
EXPECTED = {
    "true": ({"false"}, 1),
    "int": ({"bool", "float", "oct", "bin", "hex", "complex", "str", "bytes", "long", "integer"}, 1),
    "str": ({"zfill", "swapcase", "isupper", "islower", "strip", "lstrip", "rstrip", "join", "split", "lower",
             "upper", "replace", "isdecimal", "isdigit", "removesuffix", "removeprefix", "casefold", "center",
             "ljust", "rjust", "encode", "startswith", "endswith", "partition", "bytes", "string"}, 2),
    "while": ({"if", "elif", "for", "else", "if_stmt", "while_stmt", "for_stmt", "try", "loop"}, 1),
}


def neighbours(snap: SourceSnapshot, word: str, k: int = 10) -> list[str]:
    x, text = snap.points("tokens"), list(snap.texts("tokens"))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    i = text.index(word)
    order = np.argsort(-(x @ x[i]))
    return [text[j] for j in order if j != i][:k]


def recognised(snap: SourceSnapshot) -> dict[str, list[str]]:
    """Words whose neighbours meet EXPECTED, with the neighbours found."""
    out = {}
    for word, (expected, need) in EXPECTED.items():
        near = neighbours(snap, word)
        if len(expected & set(near)) >= need:
            out[word] = near
    return out


@pytest.mark.slow
def test_default_budget_gives_recognisable_neighbours(store):
    spec = RunSpec.for_task("prose-word2vec")
    run_id = store.create_run("w2v", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed"
    snaps = [SourceSnapshot(store, row) for row in store.list_snapshots(run_id, SOURCE_KIND)]
    first, last = snaps[0], snaps[-1]
    assert last.step == 4000 and last.sources["tokens"]["n"] == 2001
    assert list(last.texts("tokens")[:3]) == ["<unk>", "the", "a"]
    freq = last.column("tokens", "freq")
    assert freq[1] == freq.max() and freq[0] == 0  # "the" is the most frequent word
    trained = recognised(last)
    # measured (seed 0): true -> false; int -> oct, bin, bool; str -> zfill, swapcase, isupper, strip, join;
    # while -> elif, while_stmt, if_stmt
    assert len(trained) >= 3, {w: neighbours(last, w) for w in EXPECTED}
    assert len(recognised(first)) <= 1, "the untrained vectors should not look meaningful"


def test_probe_records_the_sources_each_task_has(store):
    cases = {"sentiment-lstm": {"tokens", "final_hidden"}, "sentiment-cnn": {"tokens", "penultimate"},
             "digits-cnn": {"penultimate"}, "prose-word2vec": {"tokens"}}
    for task, sources in cases.items():
        spec = RunSpec.for_task(task, steps=20, probe_every=10)
        run_id = store.create_run(task, task, spec.model_dump())
        assert run_training(store, run_id, device="cpu") == "completed", store.get_run(run_id)["error"]
        rows = store.list_snapshots(run_id, SOURCE_KIND)
        assert [r["step"] for r in rows] == [0, 10, 20]
        snap = SourceSnapshot(store, rows[-1])
        assert set(snap.sources) == sources, task
        for name in sources - {"tokens"}:  # classifier features: labels, predictions, readable texts
            n = snap.sources[name]["n"]
            assert snap.points(name).shape[0] == n == len(snap.texts(name)) == len(snap.column(name, "pred"))
            assert set(np.unique(snap.column(name, "label"))) <= set(range(len(snap.sources[name]["classes"])))
        if "tokens" in sources and task != "prose-word2vec":  # the all-zero padding row is left out
            assert "<pad>" not in set(snap.texts("tokens")) and "<unk>" in set(snap.texts("tokens"))
            assert snap.sources["tokens"]["n"] == len(snap.texts("tokens")) == 274
        if task.startswith("sentiment"):
            text = snap.texts(sources.difference({"tokens"}).pop())[0]
            assert " " in text and "<pad>" not in text  # the review itself, without padding
