"""``deepscope.lightning.DeepscopeCallback``: a fit that raises leaves a failed run with its metrics.

Codes: lt0xx. Skipped when PyTorch Lightning is not installed (the ``lightning`` extra).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning")

import deepscope  # noqa: E402
from backend.store import RunStore  # noqa: E402
from deepscope.lightning import DeepscopeCallback  # noqa: E402


class Tiny(L.LightningModule):
    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))

    def training_step(self, batch, _i):
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError(f"diverged at step {self.global_step}")
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss_logged", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module, callback, steps=6):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,)))
    trainer = L.Trainer(max_steps=steps, callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(data, batch_size=8))


def test_lt001_exception_marks_the_run_failed_and_keeps_metrics(tmp_path):
    callback = DeepscopeCallback(data_dir=str(tmp_path), probe=torch.randn(4, 1, 8, 8), log_every=1)
    with pytest.raises(RuntimeError, match="diverged at step 3"):
        fit(Tiny(fail_at=3), callback)
    store = RunStore(tmp_path)
    (run,) = store.list_runs()
    assert run["status"] == "failed" and "diverged at step 3" in run["error"] and "Traceback" in run["error"]
    series, _ = store.scalar_series(run["id"])
    assert series["train/loss"]["step"].tolist() == [1, 2, 3]  # global_step after each finished step
    assert run["spec"]["fail_at"] == 3 and run["spec"]["model"]["family"] == "cnn"
    assert store.list_snapshots(run["id"], "kernels")  # watched: the first snapshot is there


def test_lt002_completes_and_leaves_a_given_run_open(tmp_path):
    callback = DeepscopeCallback(data_dir=str(tmp_path), log_every=2)
    fit(Tiny(), callback, steps=4)
    (row,) = RunStore(tmp_path).list_runs()
    assert row["status"] == "completed" and row["step"] == 4

    run = deepscope.init(data_dir=tmp_path / "mine")
    fit(Tiny(), DeepscopeCallback(run=run, watch=False), steps=2)
    assert run.status == "running"  # the caller's run: the callback does not finish it
    run.log({"test/acc": 0.5}, step=2)
    run.finish()
    assert set(RunStore(tmp_path / "mine").scalar_names(run.id)) >= {"train/loss", "train/loss_logged", "test/acc"}
