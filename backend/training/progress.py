"""A tqdm progress bar as a hook, for ``deepscope train``."""
from __future__ import annotations

from tqdm import tqdm

from .hooks import Hook


class ProgressHook(Hook):
    """Shows steps done, the latest loss and validation accuracy."""

    def __init__(self, every: int = 10):
        self.every = every
        self.bar: tqdm | None = None
        self._val = ""

    def on_train_start(self, trainer) -> None:
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step", dynamic_ncols=True)

    def on_step_end(self, trainer, out) -> None:
        if out.step % self.every == 0 and self.bar is not None:
            self.bar.update(out.step - self.bar.n)
            self.bar.set_postfix_str(f"loss {out.loss.item():.3f}{self._val}")

    def on_eval_end(self, trainer, step, metrics) -> None:
        if "val/acc" in metrics:
            self._val = f" val_acc {metrics['val/acc']:.3f}"

    def on_train_end(self, trainer, status) -> None:
        if self.bar is not None:
            self.bar.update(trainer.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
