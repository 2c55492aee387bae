"""Users' own annotation tracks: one value per token of the probe text, from a file.

Accepted: ``.npy`` (a 1-D array); text with one number per line (blank lines and
``#`` comments skipped); CSV with a header, whose first numeric column is taken
(named after its header). Errors say which line is wrong.

Example::

    name, values = parse_track_file(open("depth.csv", "rb").read(), "depth.csv")
    add_user_track(store, run_id, name, values)     # backend.store.hidden
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

MAX_TRACK_BYTES = 64 * 2**20


class TrackFileError(ValueError):
    """A track file that cannot be read; the message says where and why."""


def parse_track_file(content: bytes, filename: str = "") -> tuple[str, np.ndarray]:
    """``(suggested name, float32 values)`` from the bytes of a track file."""
    if len(content) > MAX_TRACK_BYTES:
        raise TrackFileError(f"the file is {len(content) / 2**20:.0f} MiB; tracks are limited to 64 MiB")
    stem = Path(filename).stem or "my track"
    if content[:6] == b"\x93NUMPY":
        try:
            arr = np.load(io.BytesIO(content), allow_pickle=False)
        except ValueError as exc:
            raise TrackFileError(f"not a readable .npy array: {exc}") from None
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
            raise TrackFileError(f"a .npy track must be a 1-D numeric array, not {arr.ndim}-D {arr.dtype}")
        return stem, arr.astype(np.float32)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrackFileError("the file is neither a .npy array nor UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].lstrip().startswith("#")]
    if not rows:
        raise TrackFileError("the file has no values")
    name, skipped = stem, 0
    if not _is_number(rows[0][0]):
        header, rows, skipped = rows[0], rows[1:], 1
        name = header[0].strip() or stem
    values = np.empty(len(rows), dtype=np.float32)
    for i, row in enumerate(rows):
        cell = row[0].strip()
        if not _is_number(cell):
            raise TrackFileError(f"value {i + 1 + skipped}: {cell!r} is not a number")
        values[i] = float(cell)
    return name, values


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
