"""The Training page's "Generated text" card, without a browser (dashboard/views/training/samples.py)."""
from __future__ import annotations

import numpy as np
import pytest
from dash.exceptions import PreventUpdate

from backend.store.samples import write_samples_snapshot
from backend.tasks.registry import VOCABS
from dashboard.views.training.samples import card_update

VOCAB = VOCABS["brackets-lstm"]  # 1 "\n", 2 "(", 3 ")", 4.. "abcd"
TEMPS = [0.0, 0.5, 1.0]


def text_of(node) -> str:
    """All text under a Dash component tree."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, (list, tuple)):
        return "".join(text_of(n) for n in node)
    return text_of(getattr(node, "children", None))


def find(node, class_name: str) -> list:
    """Components whose className contains ``class_name``."""
    out = []
    if isinstance(node, (list, tuple)):
        for n in node:
            out += find(n, class_name)
    elif node is not None and not isinstance(node, str):
        if class_name in (getattr(node, "className", "") or "").split():
            out.append(node)
        out += find(getattr(node, "children", None), class_name)
    return out


def record(store, run_id, step, letter_by_temp):
    """A snapshot whose sample at temperature t is 6 copies of letter_by_temp[i]."""
    rows = np.array([[VOCAB.index(ch)] * 6 for ch in letter_by_temp])
    write_samples_snapshot(store, run_id, step, [2, 2, 3], rows, TEMPS, VOCAB,
                           {"source": "test text", "every": 50, "seed": 0})


@pytest.fixture
def runs(store):
    lm = store.create_run("brackets", "brackets-lstm", {"model": {"family": "lstm"}})
    other = store.create_run("digits", "digits-cnn", {"model": {"family": "cnn"}})
    record(store, lm, 0, "abc")
    record(store, lm, 50, "bcd")
    record(store, lm, 100, "cda")
    return store, store.get_run(lm), store.get_run(other)


def test_no_card_for_runs_of_other_tasks(runs):
    store, _, digits = runs
    out = card_update(store, [digits], None, None, None, None)
    assert out["card_style"] == {"display": "none"} and out["body"] == []
    with pytest.raises(PreventUpdate):
        card_update(store, [digits], None, None, None, out["state"])


def test_newest_beside_the_first_step_at_the_chosen_temperature(runs):
    store, lm, _ = runs
    out = card_update(store, [lm], None, None, None, None)
    assert out["card_style"] == {} and out["run_field_style"] == {"display": "none"}  # one run: no run choice
    assert out["temperature"] == 0.5 and [o["value"] for o in out["temp_options"]] == TEMPS
    assert out["temp_options"][0]["label"] == "0 (greedy)"
    assert out["compare"] == 0 and [o["value"] for o in out["compare_options"]] == [0, 50]
    boxes = find(out["body"], "sample-box")
    assert [text_of(find(b, "sample-title")) for b in boxes] == ["Step 0 · before training",
                                                                  "Step 100 · newest, updates as the run trains"]
    assert [text_of(find(b, "sample-prompt")) for b in boxes] == ["(()", "(()"]
    assert [text_of(find(b, "sample-cont")) for b in boxes] == ["bbbbbb", "dddddd"]  # 0.5 is the second sample
    assert "A new sample every 50 steps" in text_of(out["body"])
    with pytest.raises(PreventUpdate):  # nothing new: nothing sent
        card_update(store, [lm], lm["id"], 0.5, 0, out["state"])

    greedy = card_update(store, [lm], lm["id"], 0, 50, out["state"])  # the user picks T=0 and step 50
    assert [text_of(find(b, "sample-cont")) for b in find(greedy["body"], "sample-box")] == ["bbbbbb", "cccccc"]
    record(store, lm["id"], 150, "ddd")  # a new snapshot arrives: the newest moves, the choices stay
    newer = card_update(store, [lm], lm["id"], 0, 50, greedy["state"])
    assert (newer["temperature"], newer["compare"]) == (0, 50)
    assert "Step 150" in text_of(newer["body"]) and [o["value"] for o in newer["compare_options"]] == [0, 50, 100]


def test_several_runs_get_a_run_choice_and_empty_runs_say_why(runs):
    store, lm, digits = runs
    fresh = store.get_run(store.create_run("fresh", "code-lstm", {"model": {"family": "lstm"}}))
    out = card_update(store, [digits, lm, fresh], None, None, None, None)
    assert out["run_field_style"] == {} and [o["value"] for o in out["run_options"]] == [lm["id"], fresh["id"]]
    assert out["run"] == lm["id"]
    other = card_update(store, [digits, lm, fresh], fresh["id"], 0.5, 0, out["state"])
    assert other["temp_options"] == [] and "Waiting for the first samples" in text_of(other["body"])
    store.set_status(fresh["id"], "completed")
    done = card_update(store, [store.get_run(fresh["id"])], None, None, None, None)
    assert "recorded no text samples" in text_of(done["body"])
    bidi = store.get_run(store.create_run("bi", "code-lstm", {"model": {"family": "lstm", "bidirectional": True}}))
    assert "bidirectional" in text_of(card_update(store, [bidi], None, None, None, None)["body"])


def test_a_single_snapshot_says_earlier_samples_follow(store):
    rid = store.create_run("one", "brackets-lstm", {})
    record(store, rid, 0, "abc")
    out = card_update(store, [store.get_run(rid)], None, 1.0, None, None)
    assert out["compare"] is None and out["compare_options"] == []
    assert "once the next snapshot is written" in text_of(out["body"])
    assert text_of(find(out["body"], "sample-cont")) == "cccccc"
