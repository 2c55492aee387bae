"""Hidden-state probe on real runs: snapshots land in the store and read back as windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models import build_model
from backend.probes.hidden import capture_model
from backend.probes.hooks import HiddenStateProbe
from backend.store.hidden import KIND, HiddenSnapshot, SnapshotUnavailable, add_user_track
from backend.store import StoreError
from backend.tasks import get_task
from backend.tasks.probe import probe_corpus
from backend.training.worker import run_training
from tests.conftest import tiny_spec


def _run(store, **overrides):
    spec = tiny_spec("code-lstm", **overrides)
    return store.create_run("probe test", spec.task, spec.model_dump())


def test_probe_snapshots_at_start_cadence_and_end(store):
    run_id = _run(store, steps=25, probe_every=10, model={"layers": 2, "family": "gru"})
    assert run_training(store, run_id) == "completed"
    snaps = store.list_snapshots(run_id, KIND)
    assert [s["step"] for s in snaps] == [0, 10, 20, 25]
    snap = HiddenSnapshot(store, snaps[-1])
    assert snap.n_tokens >= 20_000 and snap.n_cells == 16
    assert set(snap.keys) == {f"l{layer}.fwd.{s}" for layer in (0, 1) for s in "hrzn"}
    assert snap.track_names == ["bracket depth", "in string", "in comment", "indent", "column"]
    assert "".join(snap.tokens(0, 40)) == probe_corpus(get_task("code-lstm")).text[:40]
    window = snap.window("l1.fwd.h", 100, 164)
    assert window.shape == (64, 16) and np.abs(window).max() <= 1.0
    assert snap.corr("l0.fwd.h").shape == (5, 16)
    sat = snap.saturation("l0.fwd.z")
    assert sat.shape == (2, 16) and (sat.sum(0) <= 1.0 + 1e-6).all()
    assert snap.saturation("l0.fwd.h") is None


def test_snapshot_holds_what_the_model_computes_at_that_step(store, tmp_path):
    """The last snapshot equals a fresh capture from the final checkpoint's weights."""
    run_id = _run(store, steps=12, probe_every=6)
    run_training(store, run_id)
    snap = HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    ckpt = torch.load(sorted((store.run_dir(run_id) / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    model = build_model(tiny_spec("code-lstm"))
    model.load_state_dict(ckpt["model"])
    ids = torch.as_tensor(probe_corpus(get_task("code-lstm")).ids)
    fresh = capture_model(model, ids)
    np.testing.assert_allclose(snap.window("l0.fwd.c", 0, 3000), fresh[(0, "fwd", "c")][:3000].astype(np.float32),
                               atol=2e-3)
    cols = snap.columns("l0.fwd.c", [0, 5])
    np.testing.assert_array_equal(cols, fresh[(0, "fwd", "c")][:, [0, 5]].T)


def test_user_track_must_fit_the_corpus_and_is_merged(store):
    run_id = _run(store, steps=5, probe_every=5)
    run_training(store, run_id)
    n = HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1]).n_tokens
    with pytest.raises(StoreError, match="one value per token"):
        add_user_track(store, run_id, "mine", np.zeros(n - 1))
    with pytest.raises(StoreError, match="missing or infinite"):
        add_user_track(store, run_id, "mine", np.full(n, np.nan))
    values = (np.arange(n) % 7).astype(np.float32)
    add_user_track(store, run_id, "mod 7", values)
    snap = HiddenSnapshot(store, store.list_snapshots(run_id, KIND)[-1],
                          store.list_snapshots(run_id, "hidden-track"))
    assert snap.track_names[-1] == "mod 7"
    np.testing.assert_array_equal(snap.tracks(10, 20)[-1], values[10:20])
    assert snap.corr("l0.fwd.h").shape == (6, 16)


def test_missing_files_read_as_unavailable(store):
    run_id = _run(store, steps=5, probe_every=5)
    run_training(store, run_id)
    row = store.list_snapshots(run_id, KIND)[-1]
    (store.data_dir / row["arrays"]["l0.fwd.c"]).unlink()
    with pytest.raises(SnapshotUnavailable, match="still being written"):
        HiddenSnapshot(store, row)


def test_probe_turns_itself_off_for_models_without_recurrent_layer(store):
    from backend.training.trainer import Trainer
    from backend.tasks.data import load_task_data

    spec = tiny_spec("digits-cnn", steps=3)
    probe = HiddenStateProbe(store, "nope", probe_corpus(get_task("brackets-lstm")))
    Trainer(spec, load_task_data(get_task("digits-cnn")), hooks=[probe]).run()
    probe.close()
    assert probe.enabled is False
