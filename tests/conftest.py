"""Shared fixtures: temporary stores and tiny, fast specs."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("DEEPSCOPE_TORCH_THREADS", "1")


@pytest.fixture
def store(tmp_path):
    from backend.store import RunStore

    return RunStore(tmp_path / "data")


def tiny_spec(task: str = "digits-cnn", **overrides):
    """A spec small enough to train hundreds of steps per second on CPU."""
    from backend.spec import RunSpec

    base = {"digits-cnn": dict(model={"channels": [4, 8], "dropout": 0.0}, batch_size=32, log_every=5,
                               eval_every=50, checkpoint_every=50),
            "code-lstm": dict(model={"hidden_size": 16, "embedding_dim": 8}, batch_size=8, seq_len=16,
                              log_every=5, eval_every=50, checkpoint_every=50)}[task]
    model = {**base.pop("model"), **overrides.pop("model", {})}
    return RunSpec.for_task(task, model=model, **{**base, **overrides})
