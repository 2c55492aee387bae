"""The New-run form logic, the Runs table rows and run controls, without a browser."""
from __future__ import annotations

import pytest

from backend.spec import RunSpec
from backend.store import StoreError
from dashboard.views.training.controls import apply_control
from dashboard.views.runs.table import compare_href, flatten_picks, run_row
from dashboard.views.new_run.form import family_options, form_values, relevant_fields, start_run, validate_form


@pytest.mark.parametrize("task", ["digits-cnn", "code-lstm"])
def test_task_defaults_validate(task):
    result = validate_form(task, form_values(RunSpec.for_task(task)))
    assert result.spec is not None and not result.field_errors
    assert "parameters" in result.cost


def test_bad_comma_list_is_reported_on_its_field():
    values = form_values(RunSpec.for_task("digits-cnn")) | {"channels": "16, lots"}
    result = validate_form("digits-cnn", values)
    assert result.spec is None and "comma" in result.field_errors["channels"]


def test_pydantic_messages_land_on_the_right_field():
    values = form_values(RunSpec.for_task("digits-cnn")) | {"kernel_sizes": "4"}
    result = validate_form("digits-cnn", values)
    assert result.spec is None and "odd" in result.field_errors["kernel_sizes"]


def test_family_that_does_not_fit_the_task_is_a_general_error():
    values = form_values(RunSpec.for_task("code-lstm")) | {"family": "cnn"}
    result = validate_form("code-lstm", values)
    assert result.spec is None and any("does not fit" in m for m in result.general_errors)
    assert family_options("code-lstm") == ["lstm", "gru", "rnn", "transformer"]


def test_missing_required_number_is_named():
    values = form_values(RunSpec.for_task("digits-cnn")) | {"lr": None}
    assert validate_form("digits-cnn", values).field_errors["lr"] == "required"


def test_irrelevant_fields_follow_family_and_optimizer():
    cnn = relevant_fields("digits-cnn", "cnn", "adam")
    assert "channels" in cnn and "bidirectional" not in cnn and "momentum" not in cnn
    lstm = relevant_fields("sentiment-lstm", "lstm", "momentum")
    assert {"bidirectional", "embedding_dim", "momentum"} <= lstm and "channels" not in lstm and "heads" not in lstm
    lm = relevant_fields("code-lstm", "lstm", "adam")
    assert "embedding_dim" in lm and "bidirectional" not in lm  # a language model must not read ahead
    transformer = relevant_fields("code-lstm", "transformer", "adam")
    assert {"layers", "hidden_size", "heads", "dropout"} <= transformer
    assert not {"embedding_dim", "bidirectional", "channels", "activation"} & transformer


def test_transformer_from_the_form_with_heads_checked_on_their_field():
    values = form_values(RunSpec.for_task("brackets-lstm")) | {"family": "transformer", "heads": 2}
    result = validate_form("brackets-lstm", values)
    assert result.spec is not None and result.spec.model.heads == 2 and "parameters" in result.cost
    bad = validate_form("brackets-lstm", values | {"hidden_size": 30, "heads": 4})
    assert bad.spec is None and "divide" in bad.field_errors["heads"]


@pytest.mark.parametrize("task", ["code-lstm", "brackets-lstm", "recall-lstm"])
def test_a_bidirectional_language_model_is_refused_next_to_its_field(task):
    values = form_values(RunSpec.for_task(task)) | {"bidirectional": ["on"]}
    result = validate_form(task, values)
    assert result.spec is None and not result.general_errors
    assert result.field_errors == {"bidirectional": "a bidirectional language model would see the token it must predict"}
    # a text classifier may read both ways
    ok = validate_form("sentiment-lstm", form_values(RunSpec.for_task("sentiment-lstm")) | {"bidirectional": ["on"]})
    assert ok.spec is not None and ok.spec.model.bidirectional


class FakeJobs:
    def __init__(self, fail: str | None = None):
        self.calls, self.fail = [], fail

    def start(self, spec):
        self.calls.append(("start", spec.task))
        return "newrun123"

    def resume(self, run_id):
        self.calls.append(("resume", run_id))

    def control(self, run_id, kind, value=None):
        if self.fail:
            raise StoreError(self.fail)
        self.calls.append((kind, run_id, value))


def test_start_run_refuses_invalid_and_starts_valid():
    jobs = FakeJobs()
    ok, msg = start_run(jobs, "digits-cnn", form_values(RunSpec.for_task("digits-cnn")) | {"batch_size": 0})
    assert not ok and "Batch size" in msg and jobs.calls == []
    ok, run_id = start_run(jobs, "digits-cnn", form_values(RunSpec.for_task("digits-cnn")))
    assert ok and run_id == "newrun123" and jobs.calls == [("start", "digits-cnn")]


class FakeStore:
    def __init__(self, status):
        self.run = {"id": "r1", "name": "run one", "status": status}

    def get_run(self, run_id):
        return self.run if run_id == "r1" else None


def test_resume_of_a_stopped_run_restarts_it():
    jobs = FakeJobs()
    ok, _ = apply_control(jobs, FakeStore("stopped"), "r1", "resume")
    assert ok and jobs.calls == [("resume", "r1")]


def test_resume_of_a_paused_run_is_a_control():
    jobs = FakeJobs()
    ok, _ = apply_control(jobs, FakeStore("paused"), "r1", "resume")
    assert ok and jobs.calls == [("resume", "r1", None)]


def test_control_errors_become_messages():
    ok, msg = apply_control(FakeJobs(fail="run r1 has already completed"), FakeStore("running"), "r1", "pause")
    assert not ok and msg == "run r1 has already completed"
    ok, msg = apply_control(FakeJobs(), FakeStore("running"), "r1", "set_lr", None)
    assert not ok and "learning rate" in msg.lower()
    ok, msg = apply_control(FakeJobs(), FakeStore("running"), "nope", "stop")
    assert not ok and "nope" in msg


def test_runs_table_rows_and_compare_link():
    row = run_row({"id": "a", "name": "n", "task": "digits-cnn", "status": "running", "step": 1200,
                   "created_at": 0.0}, {"family": "cnn", "steps": 3000, "params": 6090})
    assert row["step"] == "1,200 / 3,000" and row["params"] == "6,090"
    assert flatten_picks([["a"], [], ["c"]]) == ["a", "c"]
    assert compare_href(["a", "c"]) == "/?run=a,c" and compare_href([]) == "/"


def test_text_in_number_fields_is_explained_not_a_crash():
    from backend.spec import RunSpec
    from dashboard.views.new_run.form import form_values, validate_form

    values = form_values(RunSpec.for_task("brackets-lstm"))
    values.update(steps="many", lr="fast", probe_every="2.5")
    result = validate_form("brackets-lstm", values)
    assert result.spec is None
    assert result.field_errors == {"steps": "must be a number", "lr": "must be a number",
                                   "probe_every": "must be a whole number"}
    values.update(steps="300", lr="0.01", probe_every="")
    ok = validate_form("brackets-lstm", values)
    assert ok.spec is not None and ok.spec.probe_every is None and ok.spec.steps == 300


@pytest.mark.parametrize("action", ["pause", "stop", "resume", "set_lr"])
def test_runs_of_a_users_own_script_cannot_be_steered_and_say_why(action):
    jobs, store = FakeJobs(), FakeStore("running")
    store.run["source"] = "client"
    ok, msg = apply_control(jobs, store, "r1", action, 0.01)
    assert not ok and "your own script" in msg and jobs.calls == []
