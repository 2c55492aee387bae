"""Dates written many ways, to ISO form: a generated sequence-to-sequence task with reordering.

``"Tuesday 3rd of May 2021"``, ``"05/03/21"``, ``"3 May 21"``, ``"May 3, 2021"``, ``"03.05.2021"``, ...
all become ``"2021-05-03"``. The year comes last in most inputs and first in the output, and slashes
(month/day/year, US) and dots (day.month.year) order the same numbers differently, so a model that
reads the input left to right must reorder it: its attention is visibly not diagonal. Inputs run from
6 characters (``"5/3/21"``) to about 40 (``"Wednesday, the 28th of September, 1977"``), so accuracy can be
split by input length.

**What determines an output character** (the alignment share, :func:`backend.training.seq_metrics`):
each output digit belongs to a field, year (output characters 0-3), month (5-6) or day (8-9), and the
input span that determines it is the whole written field: the year's 2 or 4 digits, the month's digits
or word (``"May"``, ``"Sep"``, ``"September"``), the day's digits with an ordinal suffix if it has one
(``"3rd"``). The two ``-`` and the end token are determined by no input character (they are constant)
and have no span (``-1``); a weekday word determines nothing (it is redundant with the date).
Two-digit years mean 1950-2049 (``"77"`` is 1977, ``"21"`` is 2021), so the century is determined by
the two digits too.

Pure Python and numpy: the registry imports the vocabulary, the trainer the tensors (data.py).

Example::

    ex = generate_dates(3, seed=0)[0]
    ex.text, ex.target, ex.spans[0]      # ('24.01.2035', '2035-01-24', (6, 10))
"""
from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# Character vocabulary, fixed before any data exists (the spec sizes the model from it). Input and
# output share it: 0 padding, 1 start of the output, 2 end of the output, 3 an unknown character.
PAD, BOS, EOS, UNK = 0, 1, 2, 3
DATE_CHARS = string.digits + string.ascii_letters + " ,./-"
DATE_VOCAB: tuple[str, ...] = ("<pad>", "<s>", "</s>", "\ufffd") + tuple(DATE_CHARS)
DATE_MAX_IN = 40  # characters of the longest input (the longest format with the longest names is 38)
DATE_OUT_LEN = 11  # "YYYY-MM-DD" and the end token
DATE_SEEDS = {"train": 101, "val": 202, "probe": 303}
DATE_SIZES = {"train": 40_000, "val": 2_000}
FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1).toordinal(), dt.date(2049, 12, 31).toordinal()

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CHAR_ID = {c: i for i, c in enumerate(DATE_VOCAB)}
FIELD_OF_OUTPUT = ("year",) * 4 + (None,) + ("month",) * 2 + (None,) + ("day",) * 2 + (None,)  # per output char


@dataclass(frozen=True)
class DateExample:
    """One input text, its ISO target and, per output character (with the end token), the input span
    ``(start, end)`` that determines it, ``(-1, -1)`` for none."""

    text: str
    target: str
    format: str
    spans: tuple[tuple[int, int], ...]


def _ordinal(d: int) -> str:
    return str(d) + ("th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th"))


# Each format is a list of parts: a literal string or a field ("year", "month", "day", "weekday") as written.
Part = tuple[str | None, str]  # (field or None for literal text, text)
FORMATS: dict[str, Callable[[dt.date], list[Part]]] = {
    "m/d/yy": lambda d: [("month", str(d.month)), (None, "/"), ("day", str(d.day)), (None, "/"),
                         ("year", f"{d.year % 100:02d}")],
    "mm/dd/yy": lambda d: [("month", f"{d.month:02d}"), (None, "/"), ("day", f"{d.day:02d}"), (None, "/"),
                           ("year", f"{d.year % 100:02d}")],
    "mm/dd/yyyy": lambda d: [("month", f"{d.month:02d}"), (None, "/"), ("day", f"{d.day:02d}"), (None, "/"),
                             ("year", str(d.year))],
    "dd.mm.yyyy": lambda d: [("day", f"{d.day:02d}"), (None, "."), ("month", f"{d.month:02d}"), (None, "."),
                             ("year", str(d.year))],
    "yyyy/mm/dd": lambda d: [("year", str(d.year)), (None, "/"), ("month", f"{d.month:02d}"), (None, "/"),
                             ("day", f"{d.day:02d}")],
    "d Mon yy": lambda d: [("day", str(d.day)), (None, " "), ("month", MONTHS[d.month - 1][:3]), (None, " "),
                           ("year", f"{d.year % 100:02d}")],
    "d Month yyyy": lambda d: [("day", str(d.day)), (None, " "), ("month", MONTHS[d.month - 1]), (None, " "),
                               ("year", str(d.year))],
    "Month d, yyyy": lambda d: [("month", MONTHS[d.month - 1]), (None, " "), ("day", str(d.day)), (None, ", "),
                                ("year", str(d.year))],
    "Mon dth, yyyy": lambda d: [("month", MONTHS[d.month - 1][:3]), (None, " "), ("day", _ordinal(d.day)),
                                (None, ", "), ("year", str(d.year))],
    "Wkd d Mon yyyy": lambda d: [("weekday", WEEKDAYS[d.weekday()][:3]), (None, " "), ("day", str(d.day)),
                                 (None, " "), ("month", MONTHS[d.month - 1][:3]), (None, " "), ("year", str(d.year))],
    "Weekday dth of Month yyyy": lambda d: [("weekday", WEEKDAYS[d.weekday()]), (None, " "),
                                            ("day", _ordinal(d.day)), (None, " of "),
                                            ("month", MONTHS[d.month - 1]), (None, " "), ("year", str(d.year))],
    "Weekday, the dth of Month, yyyy": lambda d: [("weekday", WEEKDAYS[d.weekday()]), (None, ", the "),
                                                  ("day", _ordinal(d.day)), (None, " of "),
                                                  ("month", MONTHS[d.month - 1]), (None, ", "),
                                                  ("year", str(d.year))],
    "Weekday, Month d, yyyy": lambda d: [("weekday", WEEKDAYS[d.weekday()]), (None, ", "),
                                         ("month", MONTHS[d.month - 1]), (None, " "), ("day", str(d.day)),
                                         (None, ", "), ("year", str(d.year))],
}


def render(date: dt.date, fmt: str) -> DateExample:
    """``date`` written in format ``fmt`` (a key of :data:`FORMATS`), with its target and spans.

    >>> ex = render(dt.date(2021, 5, 3), "Weekday dth of Month yyyy")
    >>> ex.text, ex.target, ex.text[slice(*ex.spans[5])]
    ('Monday 3rd of May 2021', '2021-05-03', 'May')
    """
    text, where = "", {}
    for field, piece in FORMATS[fmt](date):
        if field is not None:
            where[field] = (len(text), len(text) + len(piece))
        text += piece
    spans = tuple(where[f] if f else (-1, -1) for f in FIELD_OF_OUTPUT)
    return DateExample(text=text, target=date.isoformat(), format=fmt, spans=spans)


def generate_dates(n: int, seed: int, formats: Sequence[str] | None = None) -> list[DateExample]:
    """``n`` random dates of 1950-2049, each in a random format (uniform over :data:`FORMATS`)."""
    rng = np.random.default_rng(seed)
    names = list(formats or FORMATS)
    days = rng.integers(FIRST_DAY, LAST_DAY + 1, size=n)
    picks = rng.integers(0, len(names), size=n)
    return [render(dt.date.fromordinal(int(d)), names[int(f)]) for d, f in zip(days, picks)]


def probe_dates() -> list[DateExample]:
    """The attention probe's fixed inputs: 8 dates, short numeric forms to long written-out ones."""
    picks = [(dt.date(2021, 5, 3), "m/d/yy"), (dt.date(1987, 11, 24), "dd.mm.yyyy"),
             (dt.date(2004, 2, 9), "yyyy/mm/dd"), (dt.date(1999, 12, 31), "d Mon yy"),
             (dt.date(2016, 7, 14), "Month d, yyyy"), (dt.date(1962, 3, 22), "Wkd d Mon yyyy"),
             (dt.date(2021, 5, 3), "Weekday dth of Month yyyy"),
             (dt.date(1977, 9, 28), "Weekday, the dth of Month, yyyy")]
    return [render(d, f) for d, f in picks]


def encode_dates(examples: Sequence[DateExample]) -> dict[str, np.ndarray]:
    """Arrays of ``examples``: ``x`` int64 ``(n, DATE_MAX_IN)`` input ids (0 = padding), ``y`` int64
    ``(n, DATE_OUT_LEN)`` target ids ending with ``EOS``, ``spans`` int64 ``(n, DATE_OUT_LEN, 2)`` and
    ``lengths`` int64 ``(n,)`` input characters."""
    n = len(examples)
    x = np.zeros((n, DATE_MAX_IN), np.int64)
    y = np.full((n, DATE_OUT_LEN), EOS, np.int64)
    spans = np.array([ex.spans for ex in examples], np.int64).reshape(n, DATE_OUT_LEN, 2)
    for i, ex in enumerate(examples):
        x[i, :len(ex.text)] = [_CHAR_ID.get(c, UNK) for c in ex.text[:DATE_MAX_IN]]
        y[i, :len(ex.target)] = [_CHAR_ID[c] for c in ex.target]
    lengths = np.array([min(len(ex.text), DATE_MAX_IN) for ex in examples], np.int64)
    return {"x": x, "y": y, "spans": spans, "lengths": lengths}


def decode_ids(ids: Sequence[int]) -> str:
    """The text of output ids, up to the end token: ``decode_ids([6, 8, EOS, 9]) == '02'``."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(DATE_VOCAB[i] if 0 <= i < len(DATE_VOCAB) and i > UNK else "")
    return "".join(out)
