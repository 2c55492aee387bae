"""deepscope for PyTorch Lightning: a callback over the client API (``pip install deepscope[lightning]``).

Example::

    from deepscope.lightning import DeepscopeCallback
    trainer = lightning.Trainer(max_steps=500, callbacks=[DeepscopeCallback(probe=x_val[:256], labels=y_val[:256])])
    trainer.fit(module, train_loader)

The callback opens a run when fitting starts (config: the module's hyperparameters), watches the
LightningModule with the same probes as built-in runs, logs the batch loss and
``trainer.callback_metrics`` every ``log_every`` steps and after validation, marks the run failed
(with the traceback) when fitting raises, and finishes it when fitting ends.
"""
from __future__ import annotations

import traceback
from typing import Any, Mapping, Sequence

import torch

from .run import Run, init

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name of the same library
    try:
        from pytorch_lightning import Callback  # type: ignore[no-redef]
    except ImportError as exc:
        raise ImportError("deepscope.lightning needs PyTorch Lightning: pip install 'deepscope[lightning]'") from exc


class DeepscopeCallback(Callback):
    """Records a Lightning fit as a deepscope run (see the module docstring).

    ``name``, ``config``, ``data_dir``, ``store_url``, ``task``: as :func:`deepscope.init`
    (``config`` defaults to the module's ``hparams``). ``probe``, ``vocab``, ``labels``, ``layers``,
    ``every``: as :meth:`Run.watch` (``watch=False`` records metrics only). ``log_every``: steps between
    metric rows (default: the trainer's ``log_every_n_steps``). ``run``: an open run to use instead.
    """

    def __init__(self, name: str | None = None, config: Mapping[str, Any] | None = None, data_dir: str | None = None,
                 store_url: str | None = None, task: str | None = None, probe: Any = None,
                 vocab: Sequence[str] | None = None, labels: Any = None, layers: str | Sequence[str] | None = None,
                 every: int | None = None, log_every: int | None = None, watch: bool = True, run: Run | None = None):
        super().__init__()
        self.init_args = {"name": name, "config": config, "data_dir": data_dir, "store_url": store_url, "task": task}
        self.watch_args = {"probe": probe, "vocab": vocab, "labels": labels, "layers": layers, "every": every}
        self.log_every, self.do_watch, self.run = log_every, watch, run
        self.owns_run = run is None  # a run given here is the caller's to finish
        self._logged: dict[str, int] = {}  # metric -> last step it was written at (no duplicate rows)

    # -- fit starts and ends ------------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:  # one writer per run: rank 0
            return
        if self.run is None:
            args = dict(self.init_args)
            if args["config"] is None:
                args["config"] = dict(getattr(pl_module, "hparams", {}) or {})
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            self.run = init(**args, total_steps=total)
        self.run.step = max(self.run.step, int(trainer.global_step))
        if self.do_watch:
            self.run.watch(pl_module, **self.watch_args)
        if self.log_every is None:
            self.log_every = max(1, int(getattr(trainer, "log_every_n_steps", 50) or 50))

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.run is not None:
            self._log(trainer, {})
            if self.owns_run:
                self.run.finish("completed")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.run is None or not self.owns_run:
            return
        if isinstance(exception, KeyboardInterrupt):
            self.run.finish("stopped")
        else:
            self.run.finish("failed", error="".join(traceback.format_exception(exception)))

    # -- metrics ------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.run is None:
            return
        step = int(trainer.global_step)
        if step % self.log_every == 0 or step <= 1:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            self._log(trainer, {"train/loss": loss} if isinstance(loss, torch.Tensor) else {})
        else:
            self.run.log({}, step=step)  # no rows; the step advances, so snapshots keep their cadence

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.run is not None and not trainer.sanity_checking:
            self._log(trainer, {})

    def _log(self, trainer, extra: dict) -> None:
        step = int(trainer.global_step)
        metrics = {k: v for k, v in {**trainer.callback_metrics, **extra}.items()
                   if _is_scalar(v) and self._logged.get(k) != step}
        self._logged.update(dict.fromkeys(metrics, step))
        self.run.log(metrics, step=step)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)
