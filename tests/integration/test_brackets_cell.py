"""The LSTMVis case study, live: on brackets-lstm a cell learns to count nesting depth."""
from __future__ import annotations

import time

import numpy as np
import pytest

from backend.spec import RunSpec
from backend.store.hidden import KIND, HiddenSnapshot
from backend.training.worker import run_training


@pytest.mark.slow
def test_a_cell_tracks_bracket_depth_after_the_default_budget(store):
    spec = RunSpec.for_task("brackets-lstm")  # the default budget: 1000 steps, LSTM 32 (about 10 s on 1 thread)
    run_id = store.create_run("brackets", spec.task, spec.model_dump())
    t0 = time.perf_counter()
    assert run_training(store, run_id, device="cpu") == "completed"
    elapsed = time.perf_counter() - t0
    snaps = store.list_snapshots(run_id, KIND)
    assert snaps[0]["step"] == 0 and snaps[-1]["step"] == spec.steps

    def best(row):
        snap = HiddenSnapshot(store, row)
        depth = snap.track_names.index("depth")
        return max(float(np.abs(snap.corr(f"l0.fwd.{s}")[depth]).max()) for s in ("h", "c"))

    trained, untrained = best(snaps[-1]), best(snaps[0])
    print(f"best |r| with depth: trained {trained:.3f}, untrained {untrained:.3f}, {elapsed:.1f} s")
    assert trained >= 0.8
    assert trained - untrained >= 0.2  # learned, not an accident of random weights
