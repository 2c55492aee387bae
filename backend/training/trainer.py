"""The training loop. It knows the spec, the data and its hooks; nothing about logging.

Example::

    spec = RunSpec.for_task("digits-cnn", steps=200)
    trainer = Trainer(spec, load_task_data(get_task(spec.task)))
    trainer.run()   # "completed"

Under torchrun (``ranks``, see :mod:`.distributed`) every process draws the global batch as one process
would and trains on its own slice of it through DistributedDataParallel; only rank 0 evaluates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import build_model
from ..models.seq2seq import teacher_forcing_at
from ..spec import W2V_NEGATIVES, W2V_WINDOW, RunSpec, total_steps
from ..tasks.data import TaskData
from ..tasks.tagging import IGNORE
from .device import amp_dtype, autocast, pick_device
from .distributed import Ranks
from .hooks import Hook, StepOutput, fire
from .metrics import classification_metrics
from .optim import make_optimizer
from .seq_metrics import evaluate_sequences

LM_EVAL_WINDOWS = 256
W2V_EVAL_PAIRS = 8192


class Trainer:
    """Runs ``spec`` on ``data`` from ``step`` to its total, firing ``hooks``."""

    def __init__(self, spec: RunSpec, data: TaskData, hooks: list[Hook] | None = None,
                 device: torch.device | str | None = None, model: torch.nn.Module | None = None,
                 ranks: Ranks | None = None):
        self.spec = spec
        self.ranks = ranks if ranks is not None and ranks.size > 1 else None
        self.info = data.info
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        torch.manual_seed(spec.seed)
        self.model = (model or build_model(spec)).to(self.device)
        if self.ranks is not None:
            self.ranks.seed(spec.seed, 0)  # the weights are equal (DDP broadcasts rank 0's); dropout is not
        self._ddp: torch.nn.Module | None = None  # the DDP wrapper of the model, made in run()
        self.optimizer = make_optimizer(spec, self.model.parameters())
        self.data = data.to(self.device)
        self.hooks: list[Hook] = list(hooks or [])
        self.amp = amp_dtype(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.step = 0
        self.total_steps = total_steps(spec, data.train_size)
        self.should_stop = False
        self.stop_reason: str | None = None  # set by a hook that ends the run early for a reason (store outage)
        self._perm: torch.Tensor | None = None
        self._pos = 0
        self._after_step = getattr(self.model, "after_step", None)

    # -- batches ------------------------------------------------------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training batch: an epoch permutation for images (the target of a
        reconstruction task is its input), random windows for text."""
        b = self.spec.batch_size  # the global batch: with several processes, this one trains on its slice
        if self.info.kind == "w2v":
            center, context = self._pairs(self.data.train_ids, b, self.generator)
            return self._shard(center), self._shard(context)
        if self.info.kind == "lm":
            ids, t = self.data.train_ids, self.spec.seq_len
            starts = torch.randint(0, len(ids) - t - 1, (b,), generator=self.generator).to(self.device)
            pos = self._shard(starts)[:, None] + torch.arange(t + 1, device=self.device)
            window = ids[pos]
            return window[:, :-1], window[:, 1:]
        n = len(self.data.x_train)
        if self._perm is None or self._pos + b > n:
            self._perm, self._pos = torch.randperm(n, generator=self.generator), 0
        idx = self._shard(self._perm[self._pos:self._pos + b]).to(self.device)
        self._pos += b
        x = self.data.x_train[idx]
        return x, (x if self.info.kind == "recon" else self.data.y_train[idx])

    @property
    def _net(self) -> torch.nn.Module:
        """What the training step calls: the DDP wrapper with several processes, else the model."""
        return self._ddp if self._ddp is not None else self.model

    def _shard(self, batch: torch.Tensor) -> torch.Tensor:
        return batch if self.ranks is None else self.ranks.shard(batch)

    def _pairs(self, ids: torch.Tensor, b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Skip-gram ``(center, context)`` pairs: random positions, and a context word within a window
        of random width 1..W2V_WINDOW on either side (word2vec's dynamic window)."""
        n = len(ids)
        pos = torch.randint(W2V_WINDOW, n - W2V_WINDOW, (b,), generator=generator)
        width = torch.randint(1, W2V_WINDOW + 1, (b,), generator=generator)
        offset = (torch.rand(b, generator=generator) * 2 * width).long() - width
        offset = torch.where(offset >= 0, offset + 1, offset)  # -width..-1, 1..width
        return ids[pos.to(ids.device)], ids[(pos + offset).to(ids.device)]

    def _negatives(self, b: int, generator: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.data.noise, b * W2V_NEGATIVES, replacement=True,
                                 generator=generator).view(b, W2V_NEGATIVES).to(self.device)

    # -- steps ----------------------------------------------------------------
    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's output and the task's loss: cross-entropy (classification, language models),
        mean squared error (reconstruction) or the skip-gram loss (word2vec: no output to score)."""
        if self.info.kind == "w2v":  # negatives drawn for the global batch, as the pairs
            negatives = self._shard(self._negatives(self.spec.batch_size, self.generator))
            loss = (self._ddp(x, y, negatives) if self._ddp is not None else self.model.loss(x, y, negatives)).float()
            return loss, loss
        if self.info.kind == "seq2seq":  # the decoder reads the target's previous tokens (teacher forcing)
            logits = self._net(x, y, teacher_forcing=teacher_forcing_at(self.spec, self.step + 1, self.total_steps))
        else:
            logits = self._net(x)
        if self.info.kind == "recon":
            return logits, F.mse_loss(logits.float(), y.float())
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def train_step(self) -> StepOutput:
        """One optimisation step; hooks see gradients before clipping."""
        x, y = self.next_batch()
        self._net.train()
        with autocast(self.device, self.amp):
            logits, loss = self._forward_loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.step += 1
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        fire(self.hooks, "on_after_backward", self, self.step)
        grad_norm = None
        if self.spec.clip_norm:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self._after_step is not None:
            self._after_step()  # e.g. the sparse autoencoder's unit-length filters
        if self.info.kind in ("recon", "w2v"):  # no predictions to count
            return StepOutput(step=self.step, loss=loss.detach(), correct=torch.zeros((), device=loss.device),
                              count=0, samples=x.shape[0], grad_norm=grad_norm)
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).sum()
            count = y.numel()
            if self.info.kind == "tag":  # padding is labelled IGNORE and counts neither way
                real = y != IGNORE
                correct, count = ((logits.argmax(-1) == y) & real).sum(), int(real.sum())
        return StepOutput(step=self.step, loss=loss.detach(), correct=correct, count=count,
                          samples=x.shape[0], grad_norm=grad_norm)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy (precision/recall/F1 for classification)."""
        self.model.eval()
        if self.info.kind == "lm":
            return self._evaluate_lm()
        if self.info.kind == "recon":
            return self._evaluate_recon()
        if self.info.kind == "w2v":
            return self._evaluate_w2v()
        if self.info.kind in ("seq2seq", "tag"):
            return evaluate_sequences(self)
        logits = torch.cat([self.model(xb) for xb in self.data.x_val.split(1024)]).float()
        y = self.data.y_val
        out = {"val/loss": F.cross_entropy(logits, y).item()}
        out.update(classification_metrics(logits.argmax(-1), y, self.info.n_classes, prefix="val/"))
        return out

    def _evaluate_recon(self) -> dict[str, float]:
        """Reconstruction error, and the share of the input's variance the reconstruction explains."""
        x = self.data.x_val.float()
        rec = torch.cat([self.model(xb) for xb in x.split(1024)]).float()
        sse = float(((rec - x) ** 2).sum())
        sst = float(((x - x.mean(dim=0, keepdim=True)) ** 2).sum())
        return {"val/loss": sse / x.numel(), "val/explained_variance": 1.0 - sse / max(sst, 1e-12)}

    def _evaluate_w2v(self) -> dict[str, float]:
        """Skip-gram loss on fixed validation pairs and negatives (the same every evaluation)."""
        g = torch.Generator().manual_seed(1234)
        center, context = self._pairs(self.data.val_ids, W2V_EVAL_PAIRS, g)
        negatives = torch.multinomial(self.data.noise.cpu(), W2V_EVAL_PAIRS * W2V_NEGATIVES, replacement=True,
                                      generator=g).view(-1, W2V_NEGATIVES).to(self.device)
        return {"val/loss": float(self.model.loss(center, context, negatives))}

    def _evaluate_lm(self) -> dict[str, float]:
        ids, t = self.data.val_ids, self.spec.seq_len
        starts = torch.linspace(0, len(ids) - t - 2, LM_EVAL_WINDOWS, device=self.device).long()
        loss_sum, correct, count = 0.0, 0, 0
        for chunk in starts.split(64):
            window = ids[chunk[:, None] + torch.arange(t + 1, device=self.device)]
            with autocast(self.device, self.amp):
                logits = self.model(window[:, :-1]).float()
            y = window[:, 1:]
            loss_sum += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            count += y.numel()
        loss = loss_sum / count
        return {"val/loss": loss, "val/acc": correct / count, "val/perplexity": float(torch.tensor(loss).exp())}

    # -- loop -----------------------------------------------------------------
    def run(self) -> str:
        """Train until the total step count or a stop request; returns the final status."""
        if self.ranks is not None and self._ddp is None:  # after a resume loaded the checkpoint
            self._ddp = self.ranks.wrap(_Loss(self.model) if self.info.kind == "w2v" else self.model)
        fire(self.hooks, "on_train_start", self)
        while self.step < self.total_steps and not self.should_stop:
            out = self.train_step()
            fire(self.hooks, "on_step_end", self, out)
            if self.ranks is not None and not self.ranks.is_main:
                continue  # rank 0 evaluates; the others wait for it at the next step's gradient sync
            if self.step % self.spec.eval_every == 0 or self.step == self.total_steps:
                metrics = self.evaluate()
                fire(self.hooks, "on_eval_end", self, self.step, metrics)
        status = "stopped" if self.should_stop and self.step < self.total_steps else "completed"
        fire(self.hooks, "on_train_end", self, status)
        return status

    def close(self) -> None:
        for hook in self.hooks:
            hook.close()


class _Loss(torch.nn.Module):
    """A word2vec model's ``loss`` as its ``forward``: DDP synchronises gradients of what ``forward`` computed."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return self.model.loss(center, context, negatives)
