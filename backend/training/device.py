"""Device and mixed-precision choice: CUDA with autocast when present, else CPU."""
from __future__ import annotations

import contextlib
import os

import torch


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


def configure_threads() -> int:
    """Torch intra-op threads from ``DEEPSCOPE_TORCH_THREADS`` (default: all cores)."""
    n = int(os.environ.get("DEEPSCOPE_TORCH_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
