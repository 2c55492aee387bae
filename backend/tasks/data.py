"""Data of the built-in tasks, loaded offline (no downloads).

``digits-cnn``: scikit-learn's 8x8 digits. ``code-lstm``: the Python standard
library's own sources as characters, split into train and validation by file.
"""
from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .registry import CODE_CHARS, TaskInfo

MAX_CODE_CHARS = 4_000_000  # enough text for minutes of training; reading it takes ~1 s


@dataclass
class TaskData:
    """Tensors of one task. Image tasks fill x/y; language-model tasks fill the id streams."""

    info: TaskInfo
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    train_ids: torch.Tensor | None = None
    val_ids: torch.Tensor | None = None

    @property
    def train_size(self) -> int:
        return len(self.y_train) if self.y_train is not None else len(self.train_ids)

    def to(self, device: torch.device) -> "TaskData":
        for name in ("x_train", "y_train", "x_val", "y_val", "train_ids", "val_ids"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device))
        return self


def load_task_data(info: TaskInfo, seed: int = 0) -> TaskData:
    """Load a built-in task's data; the split is fixed by ``seed``."""
    if info.name == "digits-cnn":
        return _digits(info, seed)
    if info.name == "code-lstm":
        return _code(info)
    raise KeyError(f"no data loader for task {info.name!r}")


def _digits(info: TaskInfo, seed: int) -> TaskData:
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = (ds.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    y = ds.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = len(y) // 5
    val, train = order[:n_val], order[n_val:]
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(x[train, None]), y_train=as_t(y[train]),
                    x_val=as_t(x[val, None]), y_val=as_t(y[val]))


def encode_chars(text: str) -> np.ndarray:
    """Map text to ids of the code vocabulary; characters outside it become 0 (unknown)."""
    lut = np.zeros(128, dtype=np.int64)
    for i, ch in enumerate(CODE_CHARS, start=1):
        lut[ord(ch)] = i
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    out = np.zeros(len(codes), dtype=np.int64)
    ascii_mask = codes < 128
    out[ascii_mask] = lut[codes[ascii_mask]]
    return out


def stdlib_sources(limit_chars: int = MAX_CODE_CHARS) -> list[tuple[str, str]]:
    """(file name, text) of standard-library modules, sorted by name, up to ``limit_chars``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files, total = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        files.append((path.name, text))
        total += len(text)
        if total >= limit_chars:
            break
    if not files:
        raise FileNotFoundError(f"no Python sources found under {root}")
    return files


def _code(info: TaskInfo) -> TaskData:
    files = stdlib_sources()
    train = "".join(t for i, (_, t) in enumerate(files) if i % 10 != 0)
    val = "".join(t for i, (_, t) in enumerate(files) if i % 10 == 0)
    return TaskData(info, train_ids=torch.from_numpy(encode_chars(train)),
                    val_ids=torch.from_numpy(encode_chars(val)))
