"""Immutable array files: written to a temporary name, then renamed.

``os.replace`` is atomic on POSIX filesystems, so a reader sees either no file
or the whole file, never half of one. Readers memory-map the file so a page
reading a window of a large snapshot never loads all of it.

A writer killed between the two leaves its temporary file behind (``.tmp-*``): no reader
ever opens one (index rows name only final files) and :func:`sweep_temp_files` deletes
those old enough to have no live writer.
"""
from __future__ import annotations

import functools
import os
import stat
import tempfile
import time
from pathlib import Path

import numpy as np

TEMP_PREFIX = ".tmp-"  # temporary files of atomic writes (arrays, checkpoints, layouts): never read


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".npy")
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
    if Path(path).name.startswith(TEMP_PREFIX):  # half-written, or left by a killed writer
        raise ValueError(f"{path} is a temporary file of an unfinished write, not an array")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


@functools.lru_cache(maxsize=4096)
def array_header(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a C-ordered .npy file (files are immutable: safe to cache)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        if fortran:
            raise ValueError(f"{path} is Fortran-ordered; deepscope writes C order")
        return tuple(shape), np.dtype(dtype), fh.tell()


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a .npy array with plain reads (no memory map).

    A mapped file's touched pages count in the reader's resident memory; a read
    copies just the rows asked for, so a dashboard can scan a 1 GB snapshot one
    window at a time and stay small.
    """
    shape, dtype, offset = array_header(str(path))
    n = shape[0] if shape else 1
    start, stop = max(0, int(start)), min(n, int(stop))
    row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    count = max(0, stop - start) * row
    out = np.fromfile(path, dtype=dtype, count=count, offset=offset + start * row * dtype.itemsize)
    return out.reshape((max(0, stop - start),) + tuple(shape[1:]))


def read_span(path: Path, row: int, start: int, stop: int) -> np.ndarray:
    """Elements ``start:stop`` of row ``row`` of a 2-D .npy array, with one plain read."""
    shape, dtype, offset = array_header(str(path))
    start, stop = max(0, int(start)), min(shape[1], int(stop))
    count = max(0, stop - start)
    return np.fromfile(path, dtype=dtype, count=count, offset=offset + (row * shape[1] + start) * dtype.itemsize)


def read_row_ranges(path: Path, starts, stops) -> list[np.ndarray]:
    """Rows ``start:stop`` for many ranges of one .npy file, through one open file (``os.pread``)."""
    shape, dtype, offset = array_header(str(path))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize if len(shape) > 1 else dtype.itemsize
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, stop in zip(starts, stops):
            start, stop = max(0, int(start)), min(shape[0], int(stop))
            n = max(0, stop - start)
            buf = os.pread(fd, n * row_bytes, offset + start * row_bytes)
            out.append(np.frombuffer(buf, dtype=dtype).reshape((n,) + tuple(shape[1:])))
    finally:
        os.close(fd)
    return out


def sweep_temp_files(root: Path, prefixes: tuple[str, ...] = (TEMP_PREFIX,), older_than_s: float = 60.0,
                     now: float | None = None) -> list[Path]:
    """Delete the files under ``root`` whose name starts with one of ``prefixes`` and that nobody has
    written to for ``older_than_s`` seconds; returns their paths.

    A live writer keeps its temporary file's modification time fresh until it renames it, so only
    files a killed writer left behind are old. Symbolic links are not followed.

    >>> sweep_temp_files(Path(tempfile.mkdtemp()))
    []
    """
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith(prefixes):
                continue
            path = Path(folder) / name
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue  # renamed or removed meanwhile: its writer finished
    return removed
