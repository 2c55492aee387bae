"""Kernel probe on real runs: conv weights and feature maps land in the store at the probe cadence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models import build_model
from backend.probes.kernels import KernelProbe, capture_feature_maps, capture_kernels, conv_layers
from backend.store.hidden import SnapshotUnavailable
from backend.store.kernels import KIND, KernelSnapshot
from backend.training.worker import run_training
from tests.conftest import tiny_spec


def test_cnn_run_records_weights_and_maps_at_start_cadence_and_end(store):
    spec = tiny_spec("digits-cnn", steps=25, probe_every=10)
    run_id = store.create_run("kernels", spec.task, spec.model_dump())
    assert run_training(store, run_id) == "completed"
    snaps = store.list_snapshots(run_id, KIND)
    assert [s["step"] for s in snaps] == [0, 10, 20, 25]
    snap = KernelSnapshot(store, snaps[-1])
    assert snap.conv_layers == ["features.0", "features.3"]
    assert snap.weights("features.0").shape == (4, 1, 3, 3) and snap.weights("features.3").shape == (8, 4, 3, 3)
    assert snap.map_layers == ["features.0", "features.2", "features.3", "features.5"]  # conv, pool, conv, pool
    assert snap.maps("features.0").shape == (8, 4, 8, 8) and snap.maps("features.5").shape == (8, 8, 2, 2)
    assert snap.inputs().shape == (8, 1, 8, 8)
    kinds = [layer["kind"] for layer in snap.meta["layers"]]
    assert kinds == ["conv2d", "pool", "conv2d", "pool"]
    first = KernelSnapshot(store, snaps[0]).weights("features.0")
    assert not np.allclose(first, snap.weights("features.0"))  # the kernels moved while training

    ckpt = torch.load(sorted((store.run_dir(run_id) / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    np.testing.assert_array_equal(snap.weights("features.0"), ckpt["model"]["features.0.weight"].numpy())


def test_feature_maps_are_what_the_layers_compute():
    torch.manual_seed(0)
    model = build_model(tiny_spec("digits-cnn"))
    x = torch.randn(3, 1, 8, 8)
    maps = capture_feature_maps(model, x)
    conv = conv_layers(model)["features.0"]
    with torch.no_grad():
        want = conv(x).numpy()
    np.testing.assert_allclose(maps["features.0"].astype(np.float32), want, atol=2e-3)
    assert model.training  # put back as it was
    assert set(capture_kernels(model)) == {"features.0", "features.3"}


def test_models_without_conv_layers_turn_the_probe_off(store):
    from backend.tasks import get_task
    from backend.tasks.data import load_task_data
    from backend.training.trainer import Trainer

    probe = KernelProbe(store, "nope")
    Trainer(tiny_spec("digits-cnn", steps=3, model={"family": "mlp"}), load_task_data(get_task("digits-cnn")),
            hooks=[probe]).run()
    probe.close()
    assert probe.enabled is False and store.list_snapshots("nope", KIND) == []


def test_missing_file_reads_as_unavailable(store):
    spec = tiny_spec("digits-cnn", steps=5, probe_every=5)
    run_id = store.create_run("kernels", spec.task, spec.model_dump())
    run_training(store, run_id)
    row = store.list_snapshots(run_id, KIND)[-1]
    (store.data_dir / row["arrays"]["w.features.0"]).unlink()
    with pytest.raises(SnapshotUnavailable, match="still being written"):
        KernelSnapshot(store, row)
