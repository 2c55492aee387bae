"""Users' own labelled texts (a CSV file with ``text`` and ``label`` columns) for the sentiment tasks.

A run of ``sentiment-cnn`` or ``sentiment-lstm`` with ``data_file`` set trains on that file instead
of the generated reviews: its texts are tokenised like the built-in corpus
(:func:`backend.tasks.words.tokenize`), the vocabulary is its ``USER_VOCAB_MAX - 2`` most
frequent words plus ``<pad>``/``<unk>``, texts are cut at ``USER_MAX_LEN`` tokens (or at the longest
text, when shorter), and a fixed 20 % of the rows (by ``seed``) is held out for validation.
The task's description (classes, vocabulary size, length) follows the file, so the form and
the CLI report the model's real size before it is built, and a bad file is refused there.

Example::

    info = task_info("sentiment-lstm", "reviews.csv")   # TaskInfo with the file's classes and vocabulary
    data = load_user_text(info, "reviews.csv", seed=0)   # TaskData: x/y train and validation
"""
from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..datafiles import READ_LIMIT, DataFileError, check_data_file
from .registry import TASKS, TaskInfo, get_task
from .sentiment.csv_file import SentimentFileError, load_sentiment_csv
from .words import build_vocab, encode, tokenize, word_counts

USER_TEXT_TASKS = ("sentiment-cnn", "sentiment-lstm")
USER_VOCAB_MAX = 20_000
USER_MAX_LEN = 128
VAL_SHARE = 0.2
MIN_ROWS = 10
CACHE_SIZE = 8  # files read (or refused) recently; a few MB each
_CACHE: OrderedDict[tuple, "UserText | _Refusal"] = OrderedDict()
_LOCK = threading.Lock()  # Flask serves callbacks from several threads


@dataclasses.dataclass(frozen=True)
class UserText:
    texts: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    vocab: tuple[str, ...]
    max_len: int


def read_user_text(path: str | os.PathLike, limit: int = READ_LIMIT) -> UserText:
    """The file, tokenised, with its vocabulary; only a regular file of at most ``limit`` bytes.

    Cached while the file is unchanged (path, mtime, size, inode), refusals too: the form
    validates on every keystroke. Raises :class:`~backend.tasks.sentiment.csv_file.SentimentFileError`
    saying what is wrong and where.

    >>> read_user_text("/dev/zero")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    SentimentFileError: /dev/zero: not a regular file (a device, pipe or folder cannot be read as data)
    """
    try:
        resolved = check_data_file(path, limit=limit)  # stat only: a FIFO or /dev/zero is refused unopened
        st = resolved.stat()
    except (DataFileError, OSError) as exc:
        raise SentimentFileError(str(exc) if isinstance(exc, DataFileError) else f"{path}: cannot be read") from None
    key = (str(resolved), st.st_mtime_ns, st.st_size, st.st_ino, limit)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        try:
            hit = _read(str(resolved), limit)
        except SentimentFileError as exc:
            hit = _Refusal(str(exc), exc.plain)
        with _LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    if isinstance(hit, _Refusal):
        raise SentimentFileError(hit.message, hit.plain)  # a fresh error: re-raising one object grows its traceback
    return hit


@dataclasses.dataclass(frozen=True)
class _Refusal:
    message: str
    plain: str


def _read(path: str, limit: int) -> UserText:
    texts, labels, classes = load_sentiment_csv(path, limit=limit)
    if len(texts) < MIN_ROWS:
        raise SentimentFileError(f"{path}: {len(texts)} rows are too few to train and validate on; give at "
                                 f"least {MIN_ROWS}")
    tokens = tuple(tuple(tokenize(t)) for t in texts)
    vocab = build_vocab(tokens, max_size=USER_VOCAB_MAX)
    longest = max((len(t) for t in tokens), default=1)
    return UserText(tuple(texts), tokens, np.asarray(labels, dtype=np.int64), classes, vocab,
                    max(1, min(USER_MAX_LEN, longest)))


def task_info(task: str, data_file: str | None = None) -> TaskInfo:
    """The task's description; with ``data_file``, the one its file gives (classes, vocabulary, length).

    Raises ValueError (a :class:`SentimentFileError` for the file's problems) with a readable message.

    >>> task_info("sentiment-lstm").n_classes
    2
    """
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"unknown task {task!r}; built-in tasks: {', '.join(sorted(TASKS))}")
    info = get_task(task)
    if not data_file:
        return info
    if task not in USER_TEXT_TASKS:
        raise ValueError(f"a data file of your own applies to {' and '.join(USER_TEXT_TASKS)} only, not {task!r}")
    data = read_user_text(data_file)
    return dataclasses.replace(
        info, description=f"{info.name} on {Path(data_file).name}: {len(data.texts):,} texts, classes "
                          f"{', '.join(data.classes)}",
        input_shape=(data.max_len,), n_classes=len(data.classes), class_names=data.classes,
        vocab_size=len(data.vocab))


def load_user_text(info: TaskInfo, data_file: str, seed: int):
    """TaskData of the file: a seeded 80/20 split, probe texts from the validation part."""
    import torch

    from .data import TaskData

    data = read_user_text(data_file)
    ids, _ = encode(data.tokens, data.vocab, data.max_len)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = max(1, int(round(VAL_SHARE * len(ids))))
    val, train = order[:n_val], order[n_val:]
    counts = word_counts([data.tokens[i] for i in train], data.vocab)
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(ids[train]), y_train=as_t(data.labels[train]), x_val=as_t(ids[val]),
                    y_val=as_t(data.labels[val]), probe_x=as_t(ids[val][:512]), vocab=data.vocab,
                    token_counts=counts)
