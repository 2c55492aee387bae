"""Users' own labelled texts for the sentiment tasks: reading a CSV file with clear errors.

:func:`load_sentiment_csv` reads a UTF-8 CSV with a header row (columns ``text`` and
``label`` by default) and returns its texts, label ids and label names; every problem
(missing file, not UTF-8, wrong separator, empty cell, a single label) raises
:class:`SentimentFileError` whose message names the file and, where one is at fault, the row.
Tokenising and encoding the texts is :mod:`backend.tasks.words`'; training on them is
:mod:`backend.tasks.user_text`'s. Standard library only.

Example::

    texts, labels, names = load_sentiment_csv("reviews.csv")   # names e.g. ("neg", "pos")
    try:
        load_sentiment_csv("reviews.tsv")
    except SentimentFileError as exc:
        print(exc)   # reviews.tsv: no column 'text'; the columns are 'text\\tlabel' (is it comma-separated?)
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ...datafiles import READ_LIMIT, DataFileError, read_data_file


class SentimentFileError(ValueError):
    """A sentiment CSV that cannot be used; the message says where and why.

    ``plain`` says the same without quoting the file's content (column names, labels, bytes), for
    files the reader did not supply themselves: ``SentimentFileError("a.csv: only 'x'", plain="a.csv: one label")``.
    """

    def __init__(self, message: str, plain: str | None = None):
        super().__init__(message)
        self.plain = plain or message


def load_sentiment_csv(path: str | Path, text_column: str = "text", label_column: str = "label",
                       limit: int = READ_LIMIT) -> tuple[list[str], list[int], tuple[str, ...]]:
    """(texts, label ids, label names) of a UTF-8 CSV file with a header row.

    Labels may be names ("pos"/"neg") or integers; ids index the sorted distinct names
    (integers sorted numerically), e.g. ``("neg", "pos")``. Blank lines are skipped;
    texts and labels are stripped of surrounding spaces. Only a regular file of at most
    ``limit`` bytes is read (:func:`backend.datafiles.read_data_file`). Raises
    :class:`SentimentFileError` naming the file, and the row where one is at fault.
    """
    try:
        content = read_data_file(path, limit=limit)
    except DataFileError as exc:
        raise SentimentFileError(str(exc)) from None
    return parse_sentiment_csv(content, str(path), text_column, label_column)


def parse_sentiment_csv(content: bytes, path: str, text_column: str = "text",
                        label_column: str = "label") -> tuple[list[str], list[int], tuple[str, ...]]:
    """:func:`load_sentiment_csv` of bytes already read; ``path`` names them in messages.

    >>> parse_sentiment_csv(b"text,label\\ngood,pos\\nbad,neg\\n", "mine.csv")
    (['good', 'bad'], [1, 0], ('neg', 'pos'))
    """
    nul = content.find(b"\x00")
    if nul >= 0:  # a sparse or binary file: say so rather than let csv fail on line 1
        raise SentimentFileError(f"{path}: binary data (a NUL byte at offset {nul}), not CSV text")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SentimentFileError(f"{path}: not UTF-8 text (byte 0x{content[exc.start]:02x} at offset "
                                 f"{exc.start}); save it as UTF-8",
                                 plain=f"{path}: not UTF-8 text (at offset {exc.start}); save it as UTF-8") from None
    if not text.strip():
        raise SentimentFileError(f"{path}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:  # e.g. only empty quoted cells
            raise SentimentFileError(f"{path}: the file is empty")
        columns = [cell.strip() for cell in header]
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            hint = " (is it comma-separated?)" if len(columns) == 1 and re.search(r"[;\t|]", columns[0]) else ""
            raise SentimentFileError(f"{path}: no column {missing[0]!r}; the columns are "
                                     f"{', '.join(repr(c) for c in columns)}{hint}",
                                     plain=f"{path}: no column {missing[0]!r} in its first row "
                                           f"({len(columns)} columns){hint}")
        ti, li = columns.index(text_column), columns.index(label_column)
        texts, raw = [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"row {len(texts) + 1} (line {reader.line_num})"
            body = row[ti].strip() if ti < len(row) else ""
            label = row[li].strip() if li < len(row) else ""
            if not body:
                raise SentimentFileError(f"{path}: {where} has an empty {text_column!r}")
            if not label:
                raise SentimentFileError(f"{path}: {where} has an empty {label_column!r}")
            texts.append(body)
            raw.append(label)
    except csv.Error as exc:
        raise SentimentFileError(f"{path}: line {reader.line_num}: {exc}") from None
    if not texts:
        raise SentimentFileError(f"{path}: the file has a header but no rows")
    if all(re.fullmatch(r"[+-]?\d{1,18}", lab) for lab in raw):  # bounded: int() refuses 4300+ digits
        raw = [str(int(lab)) for lab in raw]
        names = tuple(sorted(set(raw), key=int))
    else:
        names = tuple(sorted(set(raw)))
    if len(names) < 2:
        raise SentimentFileError(f"{path}: needs at least 2 distinct labels in {label_column!r}, "
                                 f"found only {names[0]!r}",
                                 plain=f"{path}: needs at least 2 distinct labels in {label_column!r}, found only one")
    ids = {name: i for i, name in enumerate(names)}
    return texts, [ids[lab] for lab in raw], names
