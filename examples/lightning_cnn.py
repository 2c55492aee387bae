"""A small CNN on scikit-learn's 8x8 digits with PyTorch Lightning, recorded by deepscope's callback.

    .venv/bin/pip install -e ".[lightning]"
    .venv/bin/python examples/lightning_cnn.py --steps 300
    .venv/bin/deepscope serve              # Training: curves; Kernels: filters and feature maps;
                                           # Projections: the features the classifier reads

The callback watches the LightningModule: conv kernels and the feature maps of the first 8 probe
images, and (labels given) the penultimate features of 300 held-out digits. Offline, ~20 s on 2 cores.
"""
from __future__ import annotations

import argparse
import warnings

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepscope.lightning import DeepscopeCallback


class DigitsCNN(L.LightningModule):
    def __init__(self, lr: float = 3e-3, channels: int = 16):
        super().__init__()
        self.save_hyperparameters()  # the run's config
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def training_step(self, batch, _batch_idx):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def validation_step(self, batch, _batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def digits() -> tuple[TensorDataset, TensorDataset]:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, val = perm[:1500], perm[1500:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--name", default="lightning digits-cnn")
    p.add_argument("--data-dir", default=None, help="deepscope data folder (default $DEEPSCOPE_DATA_DIR or "
                                                    "./deepscope-data)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # tiny in-memory data
    L.seed_everything(0, verbose=False)
    train, val = digits()
    x_val, y_val = val.tensors
    callback = DeepscopeCallback(name=args.name, data_dir=args.data_dir, task="digits (sklearn)",
                                 probe=x_val, labels=y_val, log_every=10)
    trainer = L.Trainer(max_steps=args.steps, val_check_interval=min(100, args.steps), check_val_every_n_epoch=None,
                        callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(DigitsCNN(lr=args.lr), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=256))
    run = callback.run
    print(f"run {run.id} {run.status} at step {run.step}; val/acc {float(trainer.callback_metrics['val/acc']):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
