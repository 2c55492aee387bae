"""Named hooks the trainer fires. Logging, control, checkpoints and probes are hooks.

Subclass :class:`Hook` and override what you need::

    class PrintLoss(Hook):
        def on_step_end(self, trainer, out):
            if out.step % 100 == 0:
                print(out.step, out.loss.item())

Hooks must be cheap on steps where they have nothing to do: the trainer calls
them every step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


@dataclass
class StepOutput:
    """What one training step produced. Tensors stay on the device (no sync)."""

    step: int
    loss: torch.Tensor  # detached mean loss of the batch
    correct: torch.Tensor  # number of correct predictions in the batch
    count: int  # number of predictions (tokens or samples)
    samples: int  # sequences or images in the batch
    grad_norm: torch.Tensor | None = None  # global norm before clipping, when clipping is on


class Hook:
    """Base class: every method is a no-op."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_after_backward(self, trainer: "Trainer", step: int) -> None:
        """Gradients are present and not yet clipped or unscaled-then-stepped."""

    def on_step_end(self, trainer: "Trainer", out: StepOutput) -> None: ...

    def on_eval_end(self, trainer: "Trainer", step: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: "Trainer", status: str) -> None:
        """``status`` is ``completed`` or ``stopped``; not called when training raised."""

    def close(self) -> None:
        """Release resources (threads, files); called once whatever happened."""


def fire(hooks: list[Hook], event: str, *args: Any) -> None:
    for hook in hooks:
        getattr(hook, event)(*args)
