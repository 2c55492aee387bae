"""ProjectionData on a real RunStore: embeddings snapshots with planted structure, maps written by hand.

The maps are PCA coordinates written with ``write_projection`` (the analysis worker is not needed):
the page's reads -- steps, fixed ranges, nearest neighbours and analogies in the original space,
lookups with close spellings, the perplexity check and the worker's progress -- are checked here.
:func:`make_projection_run` is also the data of the browser test and the screenshots.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from backend.analysis.projection.core import pca
from backend.store import RunStore
from backend.store.projections import (REQUESTS_FILE, ProjectionSettings, request_projection, write_projection,
                                       write_source_snapshot, write_status)
from dashboard.views.hidden_states.data import ViewError
from dashboard.views.projections.data import ProjectionData, colour_choices, fixed_ranges, positions

THEMES = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "orange", "peach", "pear", "plum",
              "kiwi"],
    "animal": ["cat", "dog", "horse", "tiger", "lion", "mouse", "rabbit", "sheep", "goat", "wolf", "bear", "fox"],
    "colour": ["red", "green", "blue", "yellow", "purple", "black", "white", "brown", "pink", "grey", "violet",
               "cyan"],
    "number": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
    "verb": ["run", "walk", "jump", "swim", "read", "write", "sing", "dance", "cook", "sleep", "think", "speak"],
    "country": ["france", "spain", "italy", "japan", "china", "india", "brazil", "canada", "mexico", "egypt",
                "kenya", "peru"],
}
ROYALS = ["king", "queen", "man", "woman"]
N_WORDS = 300
DIM = 32
STEPS = (0, 100, 200)
CLASSES = ["negative", "neutral", "positive"]


def planted_tokens(strength: float = 1.0, seed: int = 0) -> dict:
    """300 words in 32-d: 6 themed clusters of 12, king/queen/man/woman with king - man + woman = queen,
    and 224 filler words scattered at random. ``strength`` < 1 mixes in noise (early training)."""
    rng = np.random.default_rng(seed)
    words = [w for ws in THEMES.values() for w in ws] + ROYALS
    words += [f"w{i:03d}" for i in range(N_WORDS - len(words))]
    x = np.zeros((N_WORDS, DIM))
    i = 0
    for _theme in THEMES:
        centre = rng.normal(size=DIM) * 2.0
        for _ in range(12):
            x[i] = centre + rng.normal(size=DIM) * 0.35
            i += 1
    person, royal, female = (rng.normal(size=DIM) * 1.5 for _ in range(3))
    for w, v in zip(ROYALS, (person + royal, person + royal + female, person, person + female)):
        x[i] = v + rng.normal(size=DIM) * 0.05
        i += 1
    x[i:] = rng.normal(size=(N_WORDS - i, DIM)) * 1.2
    noise = np.random.default_rng(seed + 99).normal(size=x.shape) * 1.2
    x = strength * x + (1 - strength) * noise
    freq = (10_000 / np.arange(1, N_WORDS + 1)).astype(np.int64)  # Zipf
    return {"x": x.astype(np.float32), "text": words, "freq": freq, "what": "token embeddings"}


def planted_inputs(strength: float = 1.0, n: int = 120, seed: int = 1) -> dict:
    """``n`` probe inputs of 3 classes (features that separate as ``strength`` grows), with predictions."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    centres = rng.normal(size=(3, 16)) * 2.5
    x = strength * centres[label] + rng.normal(size=(n, 16))
    pred = np.where(rng.random(n) < 0.5 + 0.45 * strength, label, (label + 1) % 3)
    texts = [f"review {i}: {['awful', 'so-so', 'lovely'][c]} film" for i, c in enumerate(label)]
    return {"x": x.astype(np.float32), "text": texts, "label": label.astype(np.int32), "pred": pred.astype(np.int32),
            "classes": CLASSES, "what": "features the output layer reads, per input"}


def make_projection_run(store: RunStore, name: str = "planted", steps=STEPS, maps: bool = True,
                        status: str = "completed") -> tuple[str, ProjectionSettings]:
    """A run with an embeddings snapshot per step (``tokens`` and ``penultimate``) and, with ``maps``,
    a PCA map of the tokens at each: the settings of the maps come back too."""
    run_id = store.create_run(name, "sentiment-rnn", {"model": {"family": "lstm"}}, status=status)
    settings = ProjectionSettings(source="tokens", method="pca")
    for k, step in enumerate(steps):
        strength = (k + 1) / len(steps)
        sid = write_source_snapshot(store, run_id, step, {"tokens": planted_tokens(strength),
                                                          "penultimate": planted_inputs(strength)})
        if maps:
            x = planted_tokens(strength)["x"]
            coords, explained = pca(x / np.linalg.norm(x, axis=1, keepdims=True), 2)
            write_projection(store, run_id, step, settings, coords * (1 + k), np.arange(N_WORDS),
                             {"source_id": sid, "warm_from": None, "seconds": 0.01,
                              "explained": explained.tolist()})
    return run_id, settings


@pytest.fixture
def run(tmp_path):
    store = RunStore(tmp_path / "data")
    run_id, settings = make_projection_run(store)
    return ProjectionData(store), run_id, settings


def test_sources_maps_steps_and_fixed_ranges(run):
    pd, run_id, settings = run
    sources = pd.sources(run_id)
    assert set(sources) == {"tokens", "penultimate"}
    assert sources["tokens"]["fields"] == ["freq"] and sources["penultimate"]["fields"] == ["label", "pred"]
    assert sources["tokens"]["n"] == N_WORDS and sources["tokens"]["what"] == "token embeddings"
    key = settings.key()
    assert pd.map_steps(run_id, key) == list(STEPS)
    assert pd.newest_settings(run_id) == settings

    frame = pd.map_at(run_id, key, 150)  # the newest at or before 150
    assert frame["step"] == 100 and frame["coords"].shape == (N_WORDS, 2) and frame["index"] == 1
    assert frame["meta"]["key"] == key and len(frame["meta"]["explained"]) == 2

    ranges = pd.ranges(run_id, key)
    every = np.concatenate([pd.map_at(run_id, key, s)["coords"] for s in STEPS])
    lo, hi = every.min(axis=0), every.max(axis=0)
    for axis, (a, b) in enumerate(ranges):
        span = hi[axis] - lo[axis]
        assert a == pytest.approx(lo[axis] - 0.05 * span, rel=1e-5) and b == pytest.approx(hi[axis] + 0.05 * span, rel=1e-5)
    assert fixed_ranges([1.0], [1.0]) == [[0.0, 2.0]]

    with pytest.raises(ViewError, match="not ready"):
        pd.map_at(run_id, ProjectionSettings(source="tokens").key(), 0)


def test_neighbours_of_a_planted_word_are_its_cluster(run):
    pd, run_id, _ = run
    near = pd.neighbours(run_id, None, "tokens", "apple")
    assert near["step"] == STEPS[-1] and near["text"] == "apple" and len(near["items"]) == 10
    assert {it["text"] for it in near["items"]} <= set(THEMES["fruit"]) - {"apple"}
    sims = [it["sim"] for it in near["items"]]
    assert sims == sorted(sims, reverse=True) and sims[0] <= 1.0

    by_case = pd.neighbours(run_id, None, "tokens", "TIGER")  # case-insensitive exact match
    assert by_case["text"] == "tiger" and {it["text"] for it in by_case["items"]} <= set(THEMES["animal"])
    by_row = pd.neighbours(run_id, None, "tokens", by_case["row"])
    assert by_row["items"] == by_case["items"]


def test_analogy_king_minus_man_plus_woman_is_queen(run):
    pd, run_id, _ = run
    found = pd.analogy(run_id, None, "tokens", "king", "man", "woman")
    assert found["items"][0]["text"] == "queen"
    assert len(found["items"]) == 5 and not {"king", "man", "woman"} & {it["text"] for it in found["items"]}
    assert found["texts"] == {"a": "king", "b": "man", "c": "woman"}

    with pytest.raises(ViewError, match="no token 'kingg' in this source; close spellings: 'king'"):
        pd.analogy(run_id, None, "tokens", "kingg", "man", "woman")
    with pytest.raises(ViewError, match="Type three tokens"):
        pd.analogy(run_id, None, "tokens", "king", "", "woman")


def test_unknown_word_says_so_with_close_spellings(run):
    pd, run_id, _ = run
    with pytest.raises(ViewError) as err:
        pd.neighbours(run_id, None, "tokens", "banan")
    msg = str(err.value)
    assert msg.startswith("no token 'banan' in this source") and "'banana'" in msg
    with pytest.raises(ViewError, match=r"^no token 'xyzzyq' in this source\.$"):
        pd.neighbours(run_id, None, "tokens", "xyzzyq")
    with pytest.raises(ViewError, match="no input 'review 999"):
        pd.neighbours(run_id, None, "penultimate", "review 999: awful film")
    found = pd.neighbours(run_id, None, "penultimate", "REVIEW 3: awful film")  # inputs by their text
    assert found["row"] == 3


def test_too_few_points_for_the_perplexity(run):
    pd, run_id, _ = run
    msg = pd.check(run_id, ProjectionSettings(source="tokens", perplexity=200))
    assert msg.startswith("t-SNE with perplexity 200 needs at least 601 points; this source has 300")
    # the points drawn, not the source, count: 50 of 300 points are too few for perplexity 30
    assert "this source has 50" in pd.check(run_id, ProjectionSettings(source="tokens", n_points=50))
    assert pd.check(run_id, ProjectionSettings(source="tokens", perplexity=30)) is None
    assert pd.check(run_id, ProjectionSettings(source="tokens", method="pca", n_points=10)) is None
    assert "no source 'final_hidden'" in pd.check(run_id, ProjectionSettings(source="final_hidden"))


def test_a_source_without_labels_cannot_be_coloured_by_label(run):
    pd, run_id, _ = run
    why = colour_choices(pd.sources(run_id)["tokens"]["fields"], "tokens")
    assert why["label"] == "this source has no labels (token embeddings have no classes)"
    assert why["prediction"] and why["correct"] and why["frequency"] is None and why["none"] is None
    why = colour_choices(pd.sources(run_id)["penultimate"]["fields"], "penultimate")
    assert why["label"] is None and why["correct"] is None
    assert why["frequency"] == "frequencies are counted for tokens, not for inputs"
    data = pd.source_data(run_id, None, "tokens")
    assert data.label is None and data.pred is None and data.freq is not None


def test_members_and_positions(run):
    pd, run_id, _ = run
    assert pd.members(run_id, 0, "tokens", [0, 12, 9999]) == ["apple", "cat"]
    assert positions(np.array([5, 1, 9]), [9, 1, 2]).tolist() == [2, 1, -1]
    assert positions(np.array([], dtype=np.int32), [3]).tolist() == [-1]


def test_progress_from_the_worker_status(run):
    pd, run_id, _ = run
    store = pd.store
    tsne = ProjectionSettings(source="tokens", perplexity=20)
    key = tsne.key()
    assert pd.progress(run_id, key, 0, 3) == ("info", "No map with these settings yet: 0 of 3 snapshots have one.")

    request_projection(store, run_id, tsne)
    asked = pd.request_time(run_id, key)
    assert asked is not None and abs(asked - time.time()) < 5
    assert pd.progress(run_id, key, 0, 3, now=asked + 1)[1].startswith("Asked the analysis worker for this map")
    kind, msg = pd.progress(run_id, key, 0, 3, now=asked + 60)  # no worker status a minute later
    assert kind == "warning" and msg.startswith("Waiting for the analysis worker; it runs with `deepscope serve`")

    write_status(store, run_id, key=key, step=400, state="computing", iteration=120, total=500)
    assert pd.progress(run_id, key, 1, 3) == ("info", "computing step 400: iteration 120 of 500 · 1 of 3 maps ready")

    write_status(store, run_id, key="penultimate-pca-2d-n5000-s0", step=100, state="computing")
    kind, msg = pd.progress(run_id, key, 1, 3)
    assert "busy with another map" in msg and "queued" in msg

    write_status(store, run_id, key=key, step=400, state="error",
                 message="t-SNE with perplexity 20 needs at least 61 points; this source has 40")
    kind, msg = pd.progress(run_id, key, 1, 3)
    assert kind == "danger" and "needs at least 61 points" in msg
    assert pd.progress(run_id, ProjectionSettings(source="tokens", method="pca").key(), 3, 3) is None

    (store.run_dir(run_id) / REQUESTS_FILE).write_text("not json")  # a file being replaced reads as none
    assert pd.request_time(run_id, key) is None
    assert json.loads(json.dumps(pd.progress(run_id, key, 1, 3)))  # plain data


def test_a_run_without_snapshots(tmp_path):
    store = RunStore(tmp_path / "data")
    run_id = store.create_run("bare", "digits-mlp", {"model": {"family": "mlp"}}, status="completed")
    pd = ProjectionData(store)
    assert pd.sources(run_id) == {} and pd.snapshots(run_id) == [] and not pd.has_snapshots(run_id)
    with pytest.raises(ViewError, match="no embeddings snapshot"):
        pd.neighbours(run_id, None, "tokens", "king")
    assert pd.newest_settings(run_id) is None and pd.ranges(run_id, "x") is None
