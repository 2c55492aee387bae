"""Small trained runs of the sequence tasks, shared by the tests of one pytest session (integration and browser):
each is trained once, in-process on one torch thread, into its own temporary store.

Example::

    data_dir, run_id = trained_run("dates-seq2seq", 200)       # ~15 s the first time, then cached
"""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch

from backend.spec import RunSpec
from backend.store import RunStore
from backend.training.worker import run_training


@functools.lru_cache(maxsize=None)
def _trained(task: str, steps: int, overrides: str) -> tuple[Path, str]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="deepscope-seqruns-"))
    atexit.register(shutil.rmtree, root, True)
    store = RunStore(root / "data")
    spec = RunSpec.for_task(task, steps=steps, eval_every=steps, probe_every=steps, seed=0, **json.loads(overrides))
    run_id = store.create_run(f"{task} ({steps} steps)", task, spec.model_dump())
    try:
        status = run_training(store, run_id)
    finally:
        torch.set_num_threads(before)
    assert status == "completed", store.get_run(run_id)["error"]
    return root / "data", run_id


def trained_run(task: str, steps: int, **overrides) -> tuple[Path, str]:
    """``(data folder, run id)`` of a completed run of ``task`` for ``steps`` steps (seed 0; ``overrides`` as
    :meth:`RunSpec.for_task` takes them), with its final checkpoint."""
    return _trained(task, steps, json.dumps(overrides, sort_keys=True))
