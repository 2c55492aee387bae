"""The deepscope command: --set parsing, bad input explained with exit code 2, runs listing."""
from __future__ import annotations

import pytest

from backend.cli import main, parse_sets


def test_parse_sets_nests_and_types_values():
    assert parse_sets(["lr=0.01", "channels=8,16", "model.family=gru", "clip_norm=none", "bidirectional=true"]) == {
        "lr": 0.01, "model": {"channels": [8, 16], "family": "gru", "bidirectional": True}, "clip_norm": None}


def test_parse_sets_rejects_a_pair_without_value():
    with pytest.raises(ValueError, match="key=value"):
        parse_sets(["lr"])


def test_train_with_bad_spec_explains_and_stores_nothing(tmp_path, capsys):
    code = main(["train", "digits-cnn", "--data-dir", str(tmp_path), "--set", "lr=-1", "--set", "family=resnet"])
    err = capsys.readouterr().err
    assert code == 2 and "lr: Input should be greater than 0" in err and "model.family" in err
    assert main(["runs", "--data-dir", str(tmp_path)]) == 0
    assert "no runs yet" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["code-lstm", "brackets-lstm", "recall-lstm"])
def test_a_bidirectional_language_model_is_refused_in_one_line(tmp_path, capsys, task):
    code = main(["train", task, "--data-dir", str(tmp_path), "--set", "model.bidirectional=true"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("deepscope train: invalid spec: model.bidirectional: a bidirectional language model would see "
                   "the token it must predict\n")
    assert main(["runs", "--data-dir", str(tmp_path)]) == 0 and "no runs yet" in capsys.readouterr().out


def test_train_unknown_task_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "imagenet", "--data-dir", str(tmp_path)]) == 2
    assert "unknown task 'imagenet'" in capsys.readouterr().err


def test_train_runs_and_lists(tmp_path, capsys):
    code = main(["train", "digits-cnn", "--data-dir", str(tmp_path), "--set", "steps=30", "--set", "channels=4"])
    assert code == 0
    main(["runs", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "completed" in out and "30" in out
