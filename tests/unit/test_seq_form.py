"""The New-run form's sequence-to-sequence fields (issue 16): attention and teacher forcing, used by seq2seq
tasks only, validated with their messages next to the field."""
from __future__ import annotations

import pytest

from backend.spec import RunSpec
from dashboard.views.new_run.form import FIELD_GROUPS, form_values, relevant_fields, validate_form

SEQ_FIELDS = {"attention", "teacher_forcing", "teacher_forcing_schedule", "teacher_forcing_floor"}


def test_seq2seq_fields_are_in_the_form_and_filled_from_the_spec():
    grouped = {n for _, names in FIELD_GROUPS for n in names}
    assert SEQ_FIELDS <= grouped
    values = form_values(RunSpec.for_task("dates-seq2seq", teacher_forcing=0.5, model={"attention": "none"}))
    assert values["attention"] == "none" and values["teacher_forcing"] == 0.5
    assert values["teacher_forcing_schedule"] == "constant" and values["teacher_forcing_floor"] == 0.0


@pytest.mark.parametrize("task", ["dates-seq2seq", "numbers-seq2seq"])
def test_seq2seq_fields_count_for_seq2seq_tasks_only(task):
    assert SEQ_FIELDS | {"embedding_dim", "bidirectional"} <= relevant_fields(task, "gru", "adam")
    tagger = relevant_fields("tags-bidir", "gru", "adam")
    assert {"embedding_dim", "bidirectional"} <= tagger and not SEQ_FIELDS & tagger
    for other in ("code-lstm", "digits-cnn", "sentiment-lstm"):
        assert not SEQ_FIELDS & relevant_fields(other, "lstm", "adam")


def test_seq2seq_settings_from_the_form_reach_the_spec():
    values = form_values(RunSpec.for_task("dates-seq2seq")) | {
        "attention": "multiplicative", "teacher_forcing": 0.8, "teacher_forcing_schedule": "linear",
        "teacher_forcing_floor": 0.3}
    result = validate_form("dates-seq2seq", values)
    assert result.spec is not None, result.field_errors
    assert result.spec.model.attention == "multiplicative"
    assert (result.spec.teacher_forcing, result.spec.teacher_forcing_schedule,
            result.spec.teacher_forcing_floor) == (0.8, "linear", 0.3)
    plain = validate_form("dates-seq2seq", values | {"attention": "none"})
    assert plain.spec is not None and plain.cost != result.cost  # no attention: fewer parameters


def test_seq2seq_errors_land_next_to_their_field():
    values = form_values(RunSpec.for_task("dates-seq2seq"))
    above = validate_form("dates-seq2seq", values | {"teacher_forcing_schedule": "linear", "teacher_forcing": 0.5,
                                                     "teacher_forcing_floor": 0.9})
    assert above.spec is None and not above.general_errors
    assert "must not be above" in above.field_errors["teacher_forcing_floor"]
    too_much = validate_form("dates-seq2seq", values | {"teacher_forcing": 1.5})
    assert set(too_much.field_errors) == {"teacher_forcing"}
    odd = validate_form("dates-seq2seq", values | {"attention": "sideways"})
    assert set(odd.field_errors) == {"attention"}
    assert validate_form("dates-seq2seq", values | {"teacher_forcing_floor": None}).field_errors == {
        "teacher_forcing_floor": "required"}
