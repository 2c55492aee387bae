"""Device and mixed-precision choice: CUDA with autocast when present, else CPU; torch's thread pools."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable

import torch

log = logging.getLogger(__name__)


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` ("cpu"/"cuda"), else env ``DEEPSCOPE_DEVICE``, else CUDA when available."""
    name = prefer or os.environ.get("DEEPSCOPE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but no GPU is available; use device cpu")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (needs a grad scaler); None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_threads(say: Callable[[str], object] | None = None) -> int:
    """Apply the thread policy (:mod:`backend.threads`) to torch in this process and say what was chosen;
    returns the intra-op thread count.

    ``DEEPSCOPE_TORCH_THREADS`` wins; a count the job manager passed keeps its reason; otherwise the count
    follows the cores and the load. Sets both intra-op and inter-op pools; the inter-op pool can be sized
    only before torch's first parallel work, so a later call leaves it as it is. ``say`` (default: log at
    INFO) gets ``torch threads: 1 (2 cores, load 3.1: one thread on 2 cores or fewer)``.
    OpenMP's wait policy is read when torch loads: :func:`backend.threads.configure_process` sets it first.
    """
    from ..threads import thread_choice

    choice = thread_choice()
    torch.set_num_threads(choice.threads)
    try:
        torch.set_num_interop_threads(choice.threads)
    except RuntimeError:  # "cannot set number of interop threads after parallel work has started"
        pass
    (say or log.info)(choice.describe())
    return torch.get_num_threads()
