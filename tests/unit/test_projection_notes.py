"""What the Projections page says about a run without embeddings snapshots: why, and whether to wait."""
from __future__ import annotations

from dashboard.views.projections.controls import _no_snapshot_note
from tests.unit.test_samples_card import text_of


def _note(task: str, status: str = "running", source: str = "builtin") -> str:
    return text_of(_no_snapshot_note({"id": "r1", "name": "demo", "task": task, "status": status,
                                      "source": source}))


def test_a_task_that_never_records_embeddings_says_so_instead_of_asking_to_wait():
    patches = _note("natural-patches")
    assert "natural-patches task record no embeddings" in patches and "no token embedding" in patches
    assert "updates by itself" not in patches
    brackets = _note("brackets-lstm")
    assert "its 8 characters are too few points for a map" in brackets


def test_a_run_that_will_record_them_asks_to_wait_and_a_finished_one_says_why_not():
    assert "records the first one when training starts" in _note("code-lstm")
    assert "records the first one when training starts" in _note("digits-cnn", status="queued")
    assert "has no embeddings snapshots" in _note("digits-cnn", status="completed")
    # a user's script (watch()) is not a built-in task: no claim about what it records
    assert "records the first one" in _note("natural-patches", source="client")
