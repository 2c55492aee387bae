"""Data of the built-in tasks, loaded offline (no downloads).

``digits-cnn``: scikit-learn's 8x8 digits. ``code-lstm``: the Python standard
library's own sources as characters, split into train and validation by file.
``brackets-lstm``: generated nested-bracket text (training and validation drawn with
different seeds). ``recall-lstm``: generated key-recall episodes (``backend.tasks.recall``).
``natural-patches`` and ``patches-cnn``: patches of whitened photographs
bundled with scikit-image and scikit-learn (``backend.tasks.images``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import images
from .annotations import BRACKET_SEEDS, BRACKET_TRAIN_CHARS, BRACKET_VAL_CHARS, generate_brackets
from .registry import BRACKET_VOCAB, VOCABS, TaskInfo
from .text import MAX_CODE_CHARS, encode_chars, is_code_val_file, stdlib_sources

__all__ = ["TaskData", "load_task_data", "encode_chars", "stdlib_sources", "MAX_CODE_CHARS"]


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
    probe_x: torch.Tensor | None = None  # inputs whose feature maps probes record (default: x_val[:8])
    vocab: tuple[str, ...] | None = None  # text tasks: token strings by id
    token_counts: np.ndarray | None = None  # text tasks: corpus frequency of each vocabulary entry
    noise: torch.Tensor | None = None  # word2vec: negative-sampling probabilities over the vocabulary
    # sequence tasks: what validation metrics need per sample besides x/y (dates: "spans", "lengths";
    # tagging: "ambiguous"), tensors aligned with x_val
    val_extra: dict[str, torch.Tensor] | None = None

    @property
    def train_size(self) -> int:
        """Samples in an epoch: inputs, or tokens of the training stream (word2vec: its words)."""
        return len(self.x_train) if self.x_train is not None else len(self.train_ids)

    def to(self, device: torch.device) -> "TaskData":
        for name in ("x_train", "y_train", "x_val", "y_val", "train_ids", "val_ids", "probe_x", "noise"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device))
        if self.val_extra:
            self.val_extra = {k: v.to(device) for k, v in self.val_extra.items()}
        return self


def load_task_data(info: TaskInfo, seed: int = 0, data_file: str | None = None) -> TaskData:
    """Load a task's data; the split is fixed by ``seed`` (digits-cnn, a user's file; the built-in
    text tasks' splits are fixed). ``data_file``: a CSV of the user's own texts (sentiment tasks)."""
    if data_file:
        from .user_text import load_user_text

        return load_user_text(info, data_file, seed)
    if info.name == "digits-cnn":
        return _digits(info, seed)
    if info.name == "code-lstm":
        return _code(info)
    if info.name == "brackets-lstm":
        return _brackets(info)
    if info.name == "recall-lstm":
        return _recall(info)
    if info.name == "natural-patches":
        return _natural_patches(info, seed)
    if info.name == "patches-cnn":
        return _patches_cnn(info, seed)
    if info.name in ("sentiment-cnn", "sentiment-lstm"):
        return _sentiment(info)
    if info.name == "prose-word2vec":
        return _prose(info)
    if info.name == "dates-seq2seq":
        return _dates(info)
    if info.name == "tags-bidir":
        return _tags(info)
    if info.name == "numbers-seq2seq":
        return _numbers(info)
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


def _code(info: TaskInfo) -> TaskData:
    files = stdlib_sources()
    train = "".join(t for i, (_, t) in enumerate(files) if not is_code_val_file(i))
    val = "".join(t for i, (_, t) in enumerate(files) if is_code_val_file(i))
    return _lm_data(info, encode_chars(train), encode_chars(val))


def _lm_data(info: TaskInfo, train: np.ndarray, val: np.ndarray) -> TaskData:
    """A character LM's streams, with its vocabulary and each character's count in the training text
    (the Projections page maps the character embeddings)."""
    vocab = VOCABS[info.name]
    return TaskData(info, train_ids=torch.from_numpy(train), val_ids=torch.from_numpy(val), vocab=vocab,
                    token_counts=np.bincount(train, minlength=len(vocab)).astype(np.int64))


def _brackets(info: TaskInfo) -> TaskData:
    train = generate_brackets(BRACKET_TRAIN_CHARS, BRACKET_SEEDS["train"])
    val = generate_brackets(BRACKET_VAL_CHARS, BRACKET_SEEDS["val"])
    return _lm_data(info, encode_chars(train, BRACKET_VOCAB), encode_chars(val, BRACKET_VOCAB))


def _recall(info: TaskInfo) -> TaskData:
    from .recall import RECALL_SEEDS, RECALL_TRAIN_CHARS, RECALL_VAL_CHARS, RECALL_VOCAB, generate_recall

    train = generate_recall(RECALL_TRAIN_CHARS, RECALL_SEEDS["train"])
    val = generate_recall(RECALL_VAL_CHARS, RECALL_SEEDS["val"])
    return _lm_data(info, encode_chars(train, RECALL_VOCAB), encode_chars(val, RECALL_VOCAB))


# natural-patches: training patches from 11 photographs, validation from the other two (china, flower),
# so the validation error measures a code for natural images, not for these photos.
PATCH_TRAIN, PATCH_VAL, PATCH_PROBE_SIZE = 100_000, 4096, 48
PATCH_VAL_IMAGES = ("china", "flower")


def _natural_patches(info: TaskInfo, seed: int) -> TaskData:
    _, size, _ = info.input_shape
    imgs = images.natural_images(gray=True)
    train = [(n, im) for n, im in imgs if n not in PATCH_VAL_IMAGES]
    val = [(n, im) for n, im in imgs if n in PATCH_VAL_IMAGES]
    x_train = images.sample_patches(train, PATCH_TRAIN, size, seed)
    x_val = images.sample_patches(val, PATCH_VAL, size, seed + 1)
    # probe inputs: larger crops, so feature maps show where in a scene each filter responds
    probe = images.sample_patches(val + train[:6], 8, PATCH_PROBE_SIZE, 12345, centre=False)
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(x_train), x_val=as_t(x_val), probe_x=as_t(probe))


# patches-cnn: every photo is a class; training patches from its left three quarters, validation from the rest.
PATCHES_PER_IMAGE = {"train": 1500, "val": 200}


def _patches_cnn(info: TaskInfo, seed: int) -> TaskData:
    _, size, _ = info.input_shape
    imgs = images.natural_images(gray=False)
    x_train, y_train = images.labelled_patches(imgs, PATCHES_PER_IMAGE["train"], size, seed, (0.0, 0.75))
    x_val, y_val = images.labelled_patches(imgs, PATCHES_PER_IMAGE["val"], size, seed + 1, (0.75, 1.0))
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(x_train), y_train=as_t(y_train), x_val=as_t(x_val), y_val=as_t(y_val))


# sentiment-cnn: generated reviews (backend.tasks.sentiment.core); the probe texts are a third corpus.
SENTIMENT_SIZES = {"train": 20_000, "val": 2_000, "probe": 512}


def _sentiment(info: TaskInfo) -> TaskData:
    from .sentiment.core import SENTIMENT_SEEDS, encode, generate_sentiment, word_counts

    vocab, max_len = VOCABS[info.name], info.input_shape[0]
    out, counts = {}, None
    for part, n in SENTIMENT_SIZES.items():
        examples = generate_sentiment(n, SENTIMENT_SEEDS[part])
        ids, _ = encode([ex.tokens for ex in examples], vocab, max_len)
        out[part] = (torch.from_numpy(ids), torch.tensor([ex.label for ex in examples], dtype=torch.int64))
        if part == "train":
            counts = word_counts([ex.tokens for ex in examples], vocab)
    return TaskData(info, x_train=out["train"][0], y_train=out["train"][1], x_val=out["val"][0],
                    y_val=out["val"][1], probe_x=out["probe"][0], vocab=vocab, token_counts=counts)


def _prose(info: TaskInfo) -> TaskData:
    from .prose import prose_corpus

    corpus = prose_corpus(info.vocab_size)
    return TaskData(info, train_ids=torch.from_numpy(corpus.train_ids), val_ids=torch.from_numpy(corpus.val_ids),
                    vocab=corpus.vocab, token_counts=corpus.counts,
                    noise=torch.from_numpy(corpus.noise).float())


def _dates(info: TaskInfo) -> TaskData:
    """dates-seq2seq: generated dates (backend.tasks.dates), training and validation from their own seeds."""
    from .dates import DATE_SEEDS, DATE_SIZES, encode_dates, generate_dates

    train, val = (encode_dates(generate_dates(DATE_SIZES[p], DATE_SEEDS[p])) for p in ("train", "val"))
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(train["x"]), y_train=as_t(train["y"]), x_val=as_t(val["x"]),
                    y_val=as_t(val["y"]), vocab=VOCABS[info.name],
                    val_extra={"spans": as_t(val["spans"]), "lengths": as_t(val["lengths"])})


def _tags(info: TaskInfo) -> TaskData:
    """tags-bidir: generated tagged sentences (backend.tasks.tagging)."""
    from .tagging import TAG_SEEDS, TAG_SIZES, encode_sentences, generate_sentences

    train, val = (encode_sentences(generate_sentences(TAG_SIZES[p], TAG_SEEDS[p])) for p in ("train", "val"))
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(train["x"]), y_train=as_t(train["y"]), x_val=as_t(val["x"]),
                    y_val=as_t(val["y"]), vocab=VOCABS[info.name], val_extra={"ambiguous": as_t(val["ambiguous"])})


def _numbers(info: TaskInfo) -> TaskData:
    """numbers-seq2seq: numbers in words and their digits (backend.tasks.number_words), seeded splits."""
    from .number_words import NUMBER_SEEDS, NUMBER_SIZES, encode_numbers, generate_numbers

    train, val = (encode_numbers(generate_numbers(NUMBER_SIZES[p], NUMBER_SEEDS[p])) for p in ("train", "val"))
    as_t = torch.from_numpy
    return TaskData(info, x_train=as_t(train["x"]), y_train=as_t(train["y"]), x_val=as_t(val["x"]),
                    y_val=as_t(val["y"]), vocab=VOCABS[info.name],
                    val_extra={"spans": as_t(val["spans"]), "lengths": as_t(val["lengths"])})
