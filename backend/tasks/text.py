"""Text of the built-in language-model tasks as numpy ids: no torch, so probes and the
dashboard can read it without loading the training stack.

``stdlib_sources`` lists the Python standard library's own modules (the ``code-lstm``
corpus); ``encode_chars`` maps text to ids of a character vocabulary.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .registry import CODE_VOCAB

MAX_CODE_CHARS = 4_000_000  # enough text for minutes of training; reading it takes ~1 s


def encode_chars(text: str, vocab: Sequence[str] = CODE_VOCAB) -> np.ndarray:
    """Map text to int64 ids of a character ``vocab`` (default: the code vocabulary) whose
    index 0 is "unknown"; characters outside it become 0. One id per character."""
    known = {ch: i for i, ch in enumerate(vocab) if i > 0}
    size = max(128, max((ord(ch) + 1 for ch in known), default=0))
    lut = np.zeros(size, dtype=np.int64)
    for ch, i in known.items():
        lut[ord(ch)] = i
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    out = np.zeros(len(codes), dtype=np.int64)
    inside = codes < size
    out[inside] = lut[codes[inside]]
    return out


# what kind of character each entry of a character vocabulary is: the colours of a character-embedding map
CHAR_CLASSES = ("lower-case letter", "upper-case letter", "digit", "bracket", "quote", "other symbol",
                "blank", "unknown")


def char_class(ch: str) -> int:
    """The index in :data:`CHAR_CLASSES` of a character (a vocabulary entry).

    >>> [CHAR_CLASSES[char_class(c)] for c in ("a", "Q", "7", "(", "'", "+", "\\n", "\\ufffd")]
    ['lower-case letter', 'upper-case letter', 'digit', 'bracket', 'quote', 'other symbol', 'blank', 'unknown']
    """
    if ch == "\ufffd" or len(ch) != 1:
        return 7
    if ch.isspace():
        return 6
    if ch.isdigit():
        return 2
    if ch.isalpha():
        return 1 if ch.isupper() else 0
    if ch in "()[]{}<>":
        return 3
    if ch in "'\"`":
        return 4
    return 5


def iter_stdlib_sources() -> Iterator[tuple[str, str]]:
    """(file name, text) of every readable top-level standard-library module, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = False
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found = True
        yield path.name, text
    if not found:
        raise FileNotFoundError(f"no Python sources found under {root}")


def stdlib_sources(limit_chars: int = MAX_CODE_CHARS) -> list[tuple[str, str]]:
    """(file name, text) of standard-library modules, sorted by name, up to ``limit_chars``.

    File ``i`` of this list is a validation file of ``code-lstm`` when ``i % 10 == 0``
    (see :func:`is_code_val_file`), a training file otherwise.
    """
    files, total = [], 0
    for name, text in iter_stdlib_sources():
        files.append((name, text))
        total += len(text)
        if total >= limit_chars:
            break
    return files


def is_code_val_file(index: int) -> bool:
    """Whether file ``index`` of :func:`stdlib_sources` belongs to code-lstm's validation split."""
    return index % 10 == 0
