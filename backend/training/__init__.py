"""Trainer loop, hooks, optimizers, device/AMP and checkpoints."""
from .hooks import Hook, StepOutput
from .trainer import Trainer

__all__ = ["Trainer", "Hook", "StepOutput"]
