"""A real run, the real analysis worker, the page's data layer: maps appear for every snapshot,
stay still between snapshots, and neighbours are answered from the run's own vectors."""
from __future__ import annotations

import numpy as np

from backend.analysis.projection.compare import mean_displacement
from backend.analysis.projection.compute import RESTRUCTURE_BELOW
from backend.analysis.projection.worker import run_once
from backend.spec import RunSpec
from backend.store.projections import PROJECTION_KIND, SOURCE_KIND, load_projection
from backend.training.worker import run_training
from dashboard.data import DashboardData


def test_sentiment_lstm_run_gets_stable_maps_and_neighbours(store):
    spec = RunSpec.for_task("sentiment-lstm", steps=300, probe_every=100)
    run_id = store.create_run("e2e", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed"
    assert [r["step"] for r in store.list_snapshots(run_id, SOURCE_KIND)] == [0, 100, 200, 300]

    assert run_once(store) > 0
    maps = store.list_snapshots(run_id, PROJECTION_KIND)
    keys = {r["meta"]["key"] for r in maps}
    assert {k.split("-")[0] for k in keys} == {"tokens", "final_hidden"}
    for key in keys:  # one map per snapshot, each after the first warm-started from the one before
        rows = sorted((r for r in maps if r["meta"]["key"] == key), key=lambda r: r["step"])
        assert [r["step"] for r in rows] == [0, 100, 200, 300]
        assert rows[0]["meta"]["warm_from"] is None and all(r["meta"]["warm_from"] for r in rows[1:])
        for before, after in zip(rows, rows[1:]):
            (a, ra), (b, rb) = load_projection(store, before), load_projection(store, after)
            meta = after["meta"]
            assert np.array_equal(ra, rb)
            # a small step of training continues the map and it barely moves; a large one (neighbourhoods
            # replaced, early in training) reruns the schedule from it and may move as far as it needs
            if meta["restructured"]:
                assert meta["neighbourhood_overlap"] < RESTRUCTURE_BELOW
            else:
                assert meta["neighbourhood_overlap"] >= RESTRUCTURE_BELOW and mean_displacement(b, a) < 0.25
    assert run_once(store) == 0  # nothing left to do

    data = DashboardData(store)
    near = data.projections.neighbours(run_id, 300, "tokens", "good", 5)
    assert near["text"] == "good" and near["step"] == 300 and len(near["items"]) == 5
    assert "good" not in [item["text"] for item in near["items"]]
    sims = [item["sim"] for item in near["items"]]
    assert sims == sorted(sims, reverse=True) and all(-1 <= v <= 1 for v in sims)


def test_a_character_language_model_maps_its_characters(store):
    """code-lstm (the demo's long run) records its 98 character embeddings for the Projections page, blanks
    shown as ⏎ ␣ ⇥; brackets-lstm's 8 characters are too few for a map and record none."""
    spec = RunSpec.for_task("code-lstm", steps=60, probe_every=30, eval_every=30)
    run_id = store.create_run("chars", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed"
    assert [r["step"] for r in store.list_snapshots(run_id, SOURCE_KIND)] == [0, 30, 60]
    data = DashboardData(store)
    info = data.projections.sources(run_id)["tokens"]
    assert info["n"] == 98 and info["what"] == "character embeddings"
    assert "label" in info["fields"] and info["classes"][:3] == ["lower-case letter", "upper-case letter", "digit"]
    snap, _ = data.projections.open(run_id)
    labels = dict(zip(snap.texts("tokens").tolist(), snap.column("tokens", "label").tolist()))
    assert [info["classes"][labels[c]] for c in ("e", "Q", "7", "(", "␣")] == [
        "lower-case letter", "upper-case letter", "digit", "bracket", "blank"]

    assert run_once(store) > 0
    keys = {r["meta"]["key"] for r in store.list_snapshots(run_id, PROJECTION_KIND)}
    assert {k.split("-")[0] for k in keys} == {"tokens"}
    near = data.projections.neighbours(run_id, 60, "tokens", "␣", 5)  # the space character, as the map labels it
    assert near["text"] == "␣" and len(near["items"]) == 5 and "␣" not in [i["text"] for i in near["items"]]

    brackets = RunSpec.for_task("brackets-lstm", steps=20, probe_every=10)
    other = store.create_run("brackets", brackets.task, brackets.model_dump())
    assert run_training(store, other, device="cpu") == "completed"
    assert store.list_snapshots(other, SOURCE_KIND) == []
