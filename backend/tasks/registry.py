"""Built-in task descriptions: what each task feeds a model, without loading data.

Pure Python (no torch, no data), so the spec validator and the dashboard's form
can ask for input shapes, vocabularies and defaults cheaply.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Literal

# Character vocabulary of the code language model: fixed, so that a model's
# size is known before any file is read. Index 0 is "unknown character".
CODE_CHARS = "\n\t" + "".join(chr(c) for c in range(32, 127))
CODE_VOCAB = ["\ufffd"] + list(CODE_CHARS)

# Character vocabulary of the nested-bracket task: newline, the two brackets and a few
# filler letters. Index 0 is "unknown character", as in CODE_VOCAB.
BRACKET_LETTERS = "abcd"
BRACKET_CHARS = "\n()" + BRACKET_LETTERS
BRACKET_VOCAB = ["\ufffd"] + list(BRACKET_CHARS)


@dataclass(frozen=True)
class TaskInfo:
    """What a task gives a model and what it asks of it."""

    name: str
    kind: Literal["image", "lm"]  # image classification or next-token language model
    description: str
    families: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()  # image tasks: (channels, height, width)
    n_classes: int = 0  # image tasks
    vocab_size: int = 0  # language-model tasks
    class_names: tuple[str, ...] = ()
    probe_tokens: int = 20480  # language-model tasks: tokens of the held-out hidden-state probe text

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.kind == "image" else self.vocab_size


TASKS: dict[str, TaskInfo] = {
    "digits-cnn": TaskInfo(
        name="digits-cnn",
        kind="image",
        description="Handwritten digits 0-9 (scikit-learn's 8x8 digits, 1,797 images): classify each image.",
        families=("cnn", "mlp", "rnn", "gru", "lstm"),
        input_shape=(1, 8, 8),
        n_classes=10,
        class_names=tuple(string.digits),
        defaults={
            "model": {"family": "cnn", "channels": [16, 32], "kernel_sizes": [3], "pooling": "max",
                      "activation": "relu", "dropout": 0.1, "hidden_size": 64, "layers": 1},
            "optimizer": "adam", "lr": 0.003, "batch_size": 64, "steps": 3000,
            "log_every": 10, "eval_every": 100,
        },
    ),
    "code-lstm": TaskInfo(
        name="code-lstm",
        kind="lm",
        description=("Character-level language model over Python's standard-library sources: predict the next "
                     "character. Train/validation split by file."),
        families=("lstm", "gru", "rnn"),
        vocab_size=len(CODE_VOCAB),
        defaults={
            "model": {"family": "lstm", "layers": 1, "hidden_size": 128, "embedding_dim": 32, "dropout": 0.0},
            "optimizer": "adam", "lr": 0.004, "batch_size": 32, "seq_len": 64, "steps": 5000,
            "clip_norm": 1.0, "log_every": 10, "eval_every": 200,
        },
    ),
    "brackets-lstm": TaskInfo(
        name="brackets-lstm",
        kind="lm",
        description=("Generated text of nested brackets and filler letters, like 'a(b(()c)d)': predict the next "
                     "character. A ')' gets likelier the deeper the nesting, is impossible at depth 0 and certain "
                     "at depth 8, so the model must count open brackets; look for a cell that tracks the depth."),
        families=("lstm", "gru", "rnn"),
        vocab_size=len(BRACKET_VOCAB),
        defaults={
            "model": {"family": "lstm", "layers": 1, "hidden_size": 32, "embedding_dim": 8, "dropout": 0.0},
            "optimizer": "adam", "lr": 0.01, "batch_size": 32, "seq_len": 128, "steps": 1000,
            "clip_norm": 1.0, "log_every": 10, "eval_every": 200,
        },
    ),
}

# Token texts of each language-model task, by id.
VOCABS: dict[str, tuple[str, ...]] = {"code-lstm": tuple(CODE_VOCAB), "brackets-lstm": tuple(BRACKET_VOCAB)}


def get_task(name: str) -> TaskInfo:
    """The task called ``name``; raises KeyError with the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; built-in tasks: {', '.join(sorted(TASKS))}") from None
