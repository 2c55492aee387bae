"""Immutable array files: written to a temporary name, then renamed.

``os.replace`` is atomic on POSIX filesystems, so a reader sees either no file
or the whole file, never half of one. Readers memory-map the file so a page
reading a window of a large snapshot never loads all of it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def write_array(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` (.npy) atomically and return the path.

    >>> p = write_array(Path(tempfile.mkdtemp()) / "a.npy", np.arange(3))
    >>> read_array(p).tolist()
    [0, 1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"array files are immutable and {path} already exists")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_array(path: Path, mmap: bool = True) -> np.ndarray:
    """Read an array written by :func:`write_array`, memory-mapped by default."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
