"""Checkpoints: model, optimizer, scaler, step and sampler state, written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

KEEP = 3


def save_checkpoint(trainer: "Trainer", folder: Path) -> Path:
    """Write ``step-XXXXXXXXX.pt`` under ``folder`` and keep the newest few."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{trainer.step:09d}.pt"
    tmp = folder / f".tmp-{path.name}"
    torch.save({
        "step": trainer.step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "perm": trainer._perm,
        "pos": trainer._pos,
        "spec": trainer.spec.model_dump(),
    }, tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(Path(folder).glob("step-*.pt"))
    return found[-1] if found else None


def load_checkpoint(trainer: "Trainer", path: Path) -> int:
    """Restore ``trainer`` from ``path``; returns the step it continues from."""
    state = torch.load(path, map_location=trainer.device, weights_only=False)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    trainer._perm, trainer._pos = state["perm"], state["pos"]
    trainer.step = int(state["step"])
    return trainer.step
