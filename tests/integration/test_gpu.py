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


@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU])
def test_replay_on_cuda_equals_cudnn(cls):
    """The probe's unrolled replay on the GPU matches the fused cuDNN module it reads."""
    from backend.probes.replay import replay

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rnn = cls(16, 32, num_layers=2, bidirectional=True, batch_first=True).cuda()
    x = torch.randn(8, 100, 16, device="cuda")
    with torch.no_grad():
        out, _ = rnn(x)
    states = replay(rnn, x)
    last = torch.cat([states[(1, d)]["h"] for d in ("fwd", "bwd")], -1).transpose(0, 1)
    torch.testing.assert_close(last, out, atol=1e-5, rtol=0)


def test_probe_hook_on_cuda_writes_snapshots(store):
    from backend.store.hidden import KIND, HiddenSnapshot
    from backend.training.worker import run_training

    spec = tiny_spec("code-lstm", steps=20, probe_every=10)
    run_id = store.create_run("gpu probe", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cuda") == "completed"
    snaps = store.list_snapshots(run_id, KIND)
    assert [s["step"] for s in snaps] == [0, 10, 20]
    assert HiddenSnapshot(store, snaps[-1]).window("l0.fwd.c", 0, 10).shape == (10, 16)
