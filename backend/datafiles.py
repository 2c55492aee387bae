"""Reading a data file that someone named: regular files only, bounded in size, optionally only
inside folders the operator allows.

A path from a user may name a device (``/dev/zero`` never ends), a named pipe (opening it waits
for a writer forever), a huge sparse file, a ``/proc`` file full of secrets or a symlink out of
an allowed folder. :func:`check_data_file` refuses all of these before anything is opened, and
:func:`read_data_file` reads at most ``limit + 1`` bytes so a file that grows, or a special file
that reports size 0, still cannot exhaust memory. Errors say what is wrong and never quote the
file's content. Standard library only.

Example::

    content = read_data_file("reviews.csv")                        # bytes; CLI: any regular file
    content = read_data_file(name, roots=(Path("/srv/data"),))     # dashboard: inside the roots only
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

# Generous for the CLI and the client API (a 128 MiB CSV is ~1M reviews) yet far below what would
# exhaust a small machine; the dashboard uses its own, smaller UPLOAD_LIMIT.
READ_LIMIT = 128 * 2**20
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))


class DataFileError(ValueError):
    """A data file that may not or cannot be read; the message names the path, never its content."""


def human_size(n: int) -> str:
    """``human_size(20 * 2**20) == '20 MiB'``."""
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} MiB"


def check_data_file(path: str | os.PathLike, roots: Iterable[Path] | None = None,
                    limit: int = READ_LIMIT) -> Path:
    """The resolved path of a regular file of at most ``limit`` bytes (inside one of ``roots``
    after resolving symlinks, when ``roots`` is given), or :class:`DataFileError`.

    Opens nothing: ``stat`` of a FIFO or a device returns at once.

    >>> check_data_file("/dev/zero")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    DataFileError: /dev/zero: not a regular file (a device, pipe or folder cannot be read as data)
    """
    resolved = _resolve(path)
    if roots is not None and not _inside(resolved, roots):  # before any stat: no oracle of what exists outside
        raise DataFileError(f"{path}: not inside a data folder this server allows; upload the file instead")
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    _check_stat(path, st, limit)
    return resolved


def read_data_file(path: str | os.PathLike, limit: int = READ_LIMIT,
                   roots: Iterable[Path] | None = None) -> bytes:
    """The bytes of the file :func:`check_data_file` accepts, reading at most ``limit + 1`` bytes.

    >>> read_data_file("/etc/hostname", limit=4096)  # doctest: +SKIP
    b'myhost\\n'
    """
    resolved = check_data_file(path, roots, limit)
    try:  # O_NONBLOCK: a FIFO swapped in after the check opens at once instead of waiting for a writer
        fd = os.open(resolved, _OPEN_FLAGS)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    with os.fdopen(fd, "rb") as fh:
        _check_stat(path, os.fstat(fd), limit)  # the file opened, not the one checked (a swap races)
        try:
            content = fh.read(limit + 1)
        except OSError as exc:
            raise DataFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if content is None or len(content) > limit:  # grew, or a special file that reports size 0
        raise DataFileError(f"{path}: larger than the limit of {human_size(limit)}")
    return content


def find_in_roots(name: str, roots: Iterable[Path]) -> Path | None:
    """The first ``root / name`` that exists, for a name relative to one of the roots (no checks)."""
    for root in roots:
        try:
            candidate = Path(root) / name
            if candidate.exists():
                return candidate
        except (OSError, ValueError):  # NUL bytes, names too long
            continue
    return None


def _resolve(path: str | os.PathLike) -> Path:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        raise DataFileError("a data file must be given as a path")
    if "\x00" in text:
        raise DataFileError("a path cannot contain a NUL character")
    try:  # not strict: whether a file outside the roots exists is none of the caller's business
        return Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops, no home folder for "~"
        raise DataFileError(f"{text}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def _inside(resolved: Path, roots: Iterable[Path]) -> bool:
    for root in roots:
        try:
            if resolved.is_relative_to(Path(root).resolve()):
                return True
        except (OSError, RuntimeError):
            continue
    return False


def _check_stat(path, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise DataFileError(f"{path}: not a regular file (a device, pipe or folder cannot be read as data)")
    if st.st_size > limit:
        raise DataFileError(f"{path}: {human_size(st.st_size)}, larger than the limit of {human_size(limit)}")
