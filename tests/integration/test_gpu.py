"""The CUDA path: mixed precision and cuDNN recurrent layers. Skipped without a GPU (CI has none)."""
from __future__ import annotations

import pytest
import torch

from backend.tasks import get_task
from backend.tasks.data import load_task_data
from backend.training.device import amp_dtype
from backend.training.trainer import Trainer
from tests.conftest import tiny_spec

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("task", ["digits-cnn", "code-lstm"])
def test_cuda_mixed_precision_trains(task):
    spec = tiny_spec(task, steps=150, lr=0.01)
    trainer = Trainer(spec, load_task_data(get_task(task)), device="cuda")
    assert trainer.amp in (torch.bfloat16, torch.float16) and trainer.amp == amp_dtype(trainer.device)
    first = trainer.train_step().loss.item()
    assert trainer.run() == "completed"
    metrics = trainer.evaluate()
    assert next(trainer.model.parameters()).is_cuda
    assert metrics["val/loss"] < first
