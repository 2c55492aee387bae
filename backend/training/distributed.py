"""Training one run on several processes: torchrun starts them, DistributedDataParallel keeps them in step.

    deepscope train digits-cnn --nproc 2        # or --set processes=2, or "Processes" in the New run form

A run whose spec has ``processes > 1`` is trained by ``torchrun --standalone`` (``python -m
torch.distributed.run``, torch's own launcher) running ``python -m backend.training.worker`` once per
process; the process that asked (``deepscope train``, ``resume``, or the job manager's worker) supervises it
(:func:`backend.training.torchrun.launch`). Gloo on CPU, NCCL on GPUs (one GPU per process, ``cuda:LOCAL_RANK``).

- **One run, written by rank 0.** Only rank 0 writes metrics, snapshots, checkpoints, the status and the
  heartbeat; the other ranks read the spec and, on resume, the checkpoint rank 0 names.
- **Batches.** ``batch_size`` is the global batch: each step draws it exactly as one process would (the
  same permutation and position for images, the same random windows or word pairs for text, from the same
  generator on every rank) and rank r trains on its r-th slice of ``batch_size / processes`` samples, so
  ranks see disjoint samples and the sampler state in a checkpoint (permutation, position, generator) is
  every rank's. DDP averages the gradients: a step equals the single-process step on the whole batch.
- **Metrics.** Loss and accuracy of a log period are summed over the ranks with one ``all_reduce`` at the
  log step (:class:`~backend.training.store_hooks.MetricsHook` ``ranks=``); gradient norms are rank 0's
  gradients, which DDP has already averaged.
- **Controls.** Rank 0 reads the store (:class:`~backend.training.store_hooks.ControlHook`) at sync steps
  and broadcasts the decision (stop, learning rate, paused) to every rank (:class:`.rank_hooks.ControlSync`).
- **Failures.** A rank that dies makes torchrun stop the others; the supervisor then marks the run
  ``failed`` naming the process that ended first (torchrun's root cause: rank, pid, exit code or signal),
  in front of rank 0's own error when rank 0 recorded one (e.g. the lost connection to that peer). A
  clean end (completed, stopped, interrupted by a store outage) is rank 0's to record. ``deepscope resume``
  continues the run on as many processes from its last checkpoint.

Example::

    problem = check_processes(2, "cpu")     # None, or one line saying what is wrong
    ranks = init_ranks()                    # in a process torchrun started: Ranks(rank=0, size=2, ...)
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..spec import MAX_PROCESSES

TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a rank that is alive but busy (rank 0's probes)
TORCHRUN = "torch.distributed.run"  # torchrun's module: `python -m torch.distributed.run` needs no PATH lookup


class DistributedError(RuntimeError):
    """The processes cannot be started: the message says why, in one line."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the run's processes, and the collectives the trainer and hooks use."""

    rank: int
    size: int
    local_rank: int
    device: torch.device  # where this rank trains and where collective tensors live

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over the ranks (one all_reduce, float64)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (the others pass placeholders of the same length)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.tolist()

    def gather(self, values: list[float]) -> list[list[float]]:
        """Every rank's ``values``, by rank."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        out = [torch.empty_like(t) for _ in range(self.size)]
        dist.all_gather(out, t)
        return [o.tolist() for o in out]

    def share(self, obj):
        """Rank 0's ``obj`` (any picklable value; rank 0 produces it, so nothing from the data folder is
        unpickled) on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, 0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (its first dimension divides by ``size``)."""
        b = len(batch) // self.size
        return batch[self.rank * b:(self.rank + 1) * b]

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (its parameters are rank 0's from here on)."""
        from torch.nn.parallel import DistributedDataParallel

        # a conv weight with one input channel gets gradients whose size-1 dimension has another stride than
        # DDP's bucket: the reducer copies them (a few bytes) and warns once per process; nothing to fix
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def seed(self, seed: int, step: int) -> None:
        """Per-rank randomness (dropout, noise) for ranks other than 0, reproducible from (seed, rank, step).
        Rank 0 keeps the single-process stream, so its curve is the one a single process would draw."""
        if not self.is_main:
            torch.manual_seed((seed * 1_000_003 + self.rank * 7919 + step) % 2**63)


def env_rank(environ=os.environ) -> int:
    """This process's global rank under torchrun (``RANK``, else ``LOCAL_RANK``), 0 outside it."""
    for key in ("RANK", "LOCAL_RANK"):
        raw = (environ.get(key) or "").strip()
        if raw.isdigit():
            return int(raw)
    return 0


def under_torchrun(environ=os.environ) -> bool:
    """Whether torchrun (or another launcher that sets its variables) started this process."""
    return all(environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init_ranks(device: str | None = None) -> Ranks:
    """Join the process group torchrun set up: NCCL and ``cuda:LOCAL_RANK`` on a GPU, else gloo on the CPU."""
    import torch.distributed as dist

    from .device import pick_device

    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), local, dev)


def close_ranks() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_processes(n: int, device: str | None = None) -> str | None:
    """None when ``n`` processes can train here, else one line saying why not (bad count, no torchrun,
    more processes than GPUs or CPU cores)."""
    from ..threads import available_cores

    if n < 1:
        return f"the number of processes must be 1 or more (got {n})"
    if n > MAX_PROCESSES:
        return f"at most {MAX_PROCESSES} processes (got {n})"
    if n == 1:
        return None
    import torch.distributed as dist

    if not dist.is_available() or importlib.util.find_spec(TORCHRUN) is None:
        return "torchrun is missing: this torch build has no torch.distributed; install a full torch wheel"
    if device_kind(device) == "cuda":
        gpus = torch.cuda.device_count()
        if not dist.is_nccl_available():
            return "this torch build has no NCCL: multi-GPU training needs it (or train on the CPU: --device cpu)"
        if n > gpus:
            return f"{n} processes need {n} GPUs (one each); this host has {gpus}"
        return None
    if not dist.is_gloo_available():
        return "this torch build has no gloo backend for training on several CPU processes"
    cores = available_cores()
    if n > cores:
        return f"{n} processes on {cores} CPU core(s) would only slow each other down; use at most {cores}"
    return None


def device_kind(device: str | None) -> str:
    """``cuda`` or ``cpu``: what ``device`` (else ``$DEEPSCOPE_DEVICE``, else a GPU when present) trains on."""
    name = device or os.environ.get("DEEPSCOPE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return "cuda" if name.startswith("cuda") else "cpu"
