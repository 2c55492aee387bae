"""Users' own labelled texts: a CSV file trains sentiment-lstm / sentiment-cnn, and a bad file is
refused in the spec, the form and the CLI with the file's problem, storing nothing."""
from __future__ import annotations

import csv

import pytest

from backend.cli import main
from backend.models import build_model
from backend.spec import RunSpec, count_params, parse_spec
from backend.store.projections import SOURCE_KIND, SourceSnapshot
from backend.tasks.sentiment.core import generate_sentiment
from backend.tasks.user_text import task_info
from backend.training.worker import run_training
from dashboard.views.new_run.form import form_values, validate_form
from dashboard.uploads import FormFiles


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"])
        for i, ex in enumerate(generate_sentiment(400, seed=7)):
            writer.writerow([i, ex.text.capitalize(), "pos" if ex.label else "neg"])
    return path


def test_a_csv_file_trains_with_its_own_classes_and_vocabulary(store, reviews):
    info = task_info("sentiment-lstm", str(reviews))
    assert info.class_names == ("neg", "pos") and info.n_classes == 2 and 50 < info.vocab_size < 400
    for task in ("sentiment-lstm", "sentiment-cnn"):
        spec = RunSpec.for_task(task, data_file=str(reviews), steps=60, probe_every=30)
        assert count_params(spec)[0] == sum(p.numel() for p in build_model(spec).parameters())
        run_id = store.create_run(task, task, spec.model_dump())
        assert run_training(store, run_id, device="cpu") == "completed", store.get_run(run_id)["error"]
        series, _ = store.scalar_series(run_id, ["val/acc"])
        assert len(series["val/acc"]["value"]) >= 1
        snap = SourceSnapshot(store, store.list_snapshots(run_id, SOURCE_KIND)[-1])
        features = "final_hidden" if task == "sentiment-lstm" else "penultimate"
        assert snap.sources[features]["n"] == 80 and snap.sources[features]["classes"] == ["neg", "pos"]
        assert all(t == t.lower() for t in snap.texts(features))  # the user's texts, tokenised


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("words,sentiment\nnice,1\n", "no column 'text'"),
    ("text,label\n" + "fine,good\n" * 12, "at least 2 distinct labels"),
    ("text,label\nok,1\nbad,0\n", "too few to train"),
])
def test_a_bad_file_is_refused_with_its_problem(tmp_path, capsys, content, expected):
    path = tmp_path / "mine.csv"
    if content is not None:
        path.write_text(content)
    spec, errors = parse_spec({"task": "sentiment-lstm", "model": {"family": "lstm"}, "data_file": str(path)})
    assert spec is None and any(e.startswith("data_file:") and expected in e for e in errors), errors

    values = form_values(RunSpec.for_task("sentiment-lstm"))
    values["data_file"] = str(path)
    result = validate_form("sentiment-lstm", values, FormFiles(roots=(tmp_path,)))
    assert result.spec is None and expected in result.field_errors.get("data_file", ""), result

    data_dir = tmp_path / "store"
    assert main(["train", "sentiment-lstm", "--data-dir", str(data_dir), "--set", f"data_file={path}"]) == 2
    assert expected in capsys.readouterr().err
    assert main(["runs", "--data-dir", str(data_dir)]) == 0
    assert "no runs yet" in capsys.readouterr().out


def test_a_data_file_only_fits_the_sentiment_tasks(reviews):
    spec, errors = parse_spec({"task": "digits-cnn", "data_file": str(reviews)})
    assert spec is None and any("applies to sentiment-cnn and sentiment-lstm only" in e for e in errors), errors
