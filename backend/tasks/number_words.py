"""Numbers written in English words, to digits: a generated sequence-to-sequence task whose output grows with its input.

``"seventeen"`` -> ``"17"``, ``"three hundred and forty-two thousand and seventeen"`` -> ``"342017"``,
``"four million and six"`` -> ``"4000006"``. Numbers have 1 to 7 digits (the digit count uniform, then the
number uniform among those of that many digits), so inputs run from 3 characters (``"six"``) to about 90,
and the output from 1 to 7 digits. Unlike dates-seq2seq (always 10 characters out), a longer input means
more to remember: a decoder without attention gets everything through the encoder's final state, and that
one vector must carry up to 7 digits read up to 90 characters earlier. This is the task of the classic
finding (Cho et al. 2014, Bahdanau et al. 2015): without attention, accuracy falls with input length.

British style: ``"and"`` before the tens and ones of each group after ``"hundred"`` and before a last group
under 100 (``"two thousand and five"``), hyphens in ``"forty-two"``.

**What determines an output digit** (the alignment share, :mod:`backend.training.seq_metrics`): a non-zero
digit is written by one word, and its span is that word: the count before ``"hundred"`` for a hundreds digit
(``"three"`` of ``"three hundred"``), the tens word for a tens digit (``"forty"`` of ``"forty-two"``), the
ones word for a ones digit (``"two"``), and a teen word (``"seventeen"``) for both digits it writes. A zero
is written by leaving something out (``"and six"`` has no tens word): no single input character
determines it, so it has no span (``-1``), like the end token.

Pure Python and numpy; the vocabulary ids of special tokens are those of :mod:`backend.tasks.dates`
(0 padding, 1 start, 2 end, 3 unknown), so the same encoder-decoder, metrics and probe read both tasks.

Example::

    ex = render_number(342017)
    ex.text, ex.target                        # ('three hundred and forty-two thousand and seventeen', '342017')
    ex.text[slice(*ex.spans[0])]              # 'three'
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .dates import BOS, EOS, PAD, UNK  # noqa: F401 - the shared special ids

NUMBER_CHARS = string.digits + string.ascii_lowercase + " -"
NUMBER_VOCAB: tuple[str, ...] = ("<pad>", "<s>", "</s>", "\ufffd") + tuple(NUMBER_CHARS)
NUMBER_MAX_DIGITS = 7
NUMBER_MAX_IN = 96  # characters of the longest input (7,777,777 is the longest: 87)
NUMBER_OUT_LEN = NUMBER_MAX_DIGITS + 1  # the digits and the end token (padded with end tokens)
NUMBER_SEEDS = {"train": 111, "val": 222}
NUMBER_SIZES = {"train": 40_000, "val": 2_000}

ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = ((1_000_000, "million"), (1000, "thousand"), (1, ""))
_CHAR_ID = {c: i for i, c in enumerate(NUMBER_VOCAB)}


@dataclass(frozen=True)
class NumberExample:
    """One number in words, its digits and, per output character (with the end token), the input span
    ``(start, end)`` of the word that writes it, ``(-1, -1)`` for none (a zero, the end token)."""

    text: str
    target: str
    spans: tuple[tuple[int, int], ...]


def _group(n: int, after_larger: bool) -> list[tuple[str, int | None]]:
    """Words of ``0 < n < 1000`` as ``(word, place)``: place 2, 1, 0 is the digit (hundreds, tens, ones)
    the word writes, None for a word that writes none ("hundred", "and"); a teen word gets place 1 and
    writes the ones digit too."""
    words: list[tuple[str, int | None]] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [(ONES[hundreds], 2), ("hundred", None)]
    if rest and (hundreds or after_larger):
        words.append(("and", None))
    if 10 <= rest < 20:
        words.append((ONES[rest], 1))
    elif rest:
        tens, ones = divmod(rest, 10)
        if tens and ones:
            words.append((f"{TENS[tens]}-{ONES[ones]}", -1))  # a hyphenated pair: split below
        elif tens:
            words.append((TENS[tens], 1))
        else:
            words.append((ONES[ones], 0))
    return words


def render_number(n: int) -> NumberExample:
    """``n`` (1 to 9,999,999) in words, its digits and the span of each output digit (module docstring).

    >>> ex = render_number(4000006)
    >>> ex.text, ex.target, ex.spans[0], ex.spans[1], ex.spans[6]
    ('four million and six', '4000006', (0, 4), (-1, -1), (17, 20))
    """
    if not 1 <= n < 10 ** NUMBER_MAX_DIGITS:
        raise ValueError(f"numbers from 1 to {10 ** NUMBER_MAX_DIGITS - 1:,}, not {n}")
    target = str(n)
    pieces: list[str] = []
    where: dict[int, tuple[int, int]] = {}  # power of ten of a digit -> span of the word that writes it
    pos = 0

    def add(word: str, power: int | None) -> None:
        nonlocal pos
        start = pos + (1 if pieces else 0)
        pieces.append(word)
        pos = start + len(word)
        if power is not None:
            where[power] = (start, start + len(word))

    for scale, name in SCALES:
        chunk = (n // scale) % 1000
        if not chunk:
            continue
        base = len(str(scale)) - 1  # 6, 3, 0
        for word, place in _group(chunk, after_larger=scale == 1 and n >= 1000):
            if place == -1:  # "forty-two": the tens word and the ones word within one hyphenated word
                tens, ones = word.split("-")
                start = pos + (1 if pieces else 0)
                add(word, None)
                where[base + 1] = (start, start + len(tens))
                where[base] = (start + len(tens) + 1, start + len(word))
            elif place == 1 and word in ONES:  # a teen word writes two digits
                add(word, base + 1)
                where[base] = where[base + 1]
            else:
                add(word, None if place is None else base + place)
        if name:
            add(name, None)
    text = " ".join(pieces)
    spans = tuple(where.get(len(target) - 1 - i, (-1, -1)) if d != "0" else (-1, -1) for i, d in enumerate(target))
    return NumberExample(text=text, target=target, spans=spans + ((-1, -1),))


def generate_numbers(n: int, seed: int) -> list[NumberExample]:
    """``n`` random numbers: a digit count uniform over 1-7, then a number of that many digits.

    >>> [ex.target for ex in generate_numbers(3, seed=0)]
    ['342808', '37704', '1368']
    """
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, NUMBER_MAX_DIGITS + 1, size=n)
    values = [int(rng.integers(max(1, 10 ** (d - 1)), 10 ** d)) for d in digits]
    return [render_number(v) for v in values]


def probe_numbers() -> list[NumberExample]:
    """The attention probe's fixed inputs: 8 numbers, one word to seven digits."""
    return [render_number(v) for v in (7, 42, 615, 3008, 90417, 342017, 4000006, 7654321)]


def encode_numbers(examples: Sequence[NumberExample]) -> dict[str, np.ndarray]:
    """Arrays of ``examples``, as :func:`backend.tasks.dates.encode_dates`: ``x`` ``(n, NUMBER_MAX_IN)`` input
    ids, ``y`` ``(n, NUMBER_OUT_LEN)`` the digits then end tokens, ``spans`` ``(n, NUMBER_OUT_LEN, 2)``
    (-1 after the end token) and ``lengths`` ``(n,)`` input characters."""
    n = len(examples)
    x = np.zeros((n, NUMBER_MAX_IN), np.int64)
    y = np.full((n, NUMBER_OUT_LEN), EOS, np.int64)
    spans = np.full((n, NUMBER_OUT_LEN, 2), -1, np.int64)
    for i, ex in enumerate(examples):
        x[i, :len(ex.text)] = encode_number_text(ex.text)[:NUMBER_MAX_IN]
        y[i, :len(ex.target)] = [_CHAR_ID[c] for c in ex.target]
        spans[i, :len(ex.spans)] = ex.spans
    lengths = np.array([min(len(ex.text), NUMBER_MAX_IN) for ex in examples], np.int64)
    return {"x": x, "y": y, "spans": spans, "lengths": lengths}


def encode_number_text(text: str) -> list[int]:
    """Input ids of ``text`` (lower-cased; characters outside the vocabulary read as unknown)."""
    return [_CHAR_ID.get(c, UNK) for c in text.lower()]
