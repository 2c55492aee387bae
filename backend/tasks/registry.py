"""Built-in task descriptions: what each task feeds a model, without loading data.

Pure Python (no torch, no data), so the spec validator and the dashboard's form
can ask for input shapes, vocabularies and defaults cheaply.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Literal

from .dates import DATE_MAX_IN, DATE_VOCAB
from .images import IMAGE_NAMES
from .number_words import NUMBER_MAX_IN, NUMBER_VOCAB
from .recall import RECALL_GAP, RECALL_VOCAB
from .sentiment.core import SENTIMENT_LABELS, SENTIMENT_MAX_LEN, SENTIMENT_VOCAB
from .tagging import TAG_MAX_LEN, TAG_PROBE_TOKENS, TAG_VOCAB, TAGS

# prose-word2vec: the 1,000 most frequent words of pydoc's topics (each seen at least 7 times), plus "<unk>" at
# id 0 (backend.tasks.prose). 2,000 words mapped as an even blob: three in four of them occur under 20 times in
# the 64,000-word text, too seldom to learn where they belong (bench/projection_quality.py)
W2V_VOCAB_SIZE = 1001

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
    # image: classify images; lm: next-token language model; recon: reconstruct image patches (autoencoder);
    # text: classify token sequences (input_shape is (max tokens,)); w2v: word2vec (skip-gram pairs);
    # seq2seq: token sequence to token sequence, one vocabulary for both (input_shape is (max input tokens,));
    # tag: a class for every token of a sequence (input_shape is (max tokens,), class_names the tags)
    kind: Literal["image", "lm", "recon", "text", "w2v", "seq2seq", "tag"]
    description: str
    families: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()  # image and recon tasks: (channels, height, width)
    n_classes: int = 0  # image tasks
    vocab_size: int = 0  # language-model and text tasks
    class_names: tuple[str, ...] = ()
    probe_tokens: int = 20480  # language-model tasks: tokens of the held-out hidden-state probe text

    @property
    def n_outputs(self) -> int:
        return {"image": self.n_classes, "text": self.n_classes, "lm": self.vocab_size, "tag": self.n_classes,
                "seq2seq": self.vocab_size}.get(self.kind, 0)


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
        families=("lstm", "gru", "rnn", "transformer"),
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
        families=("lstm", "gru", "rnn", "transformer"),
        vocab_size=len(BRACKET_VOCAB),
        defaults={
            "model": {"family": "lstm", "layers": 1, "hidden_size": 32, "embedding_dim": 8, "dropout": 0.0},
            "optimizer": "adam", "lr": 0.01, "batch_size": 32, "seq_len": 128, "steps": 1000,
            "clip_norm": 1.0, "log_every": 10, "eval_every": 200,
        },
    ),
    "recall-lstm": TaskInfo(
        name="recall-lstm",
        kind="lm",
        description=(f"Remember a key for {RECALL_GAP} steps: lines like 'A' + {RECALL_GAP} random letters + '?A', "
                     f"where the letter after '?' repeats the key (A-D) seen {RECALL_GAP + 1} characters earlier. "
                     "Only a model that carries the key that far predicts it; a plain tanh RNN's gradient fades "
                     "long before, an LSTM's or GRU's reaches back (the Lab's gradient-flow preset)."),
        families=("lstm", "gru", "rnn", "transformer"),
        vocab_size=len(RECALL_VOCAB),
        defaults={
            "model": {"family": "lstm", "layers": 1, "hidden_size": 32, "embedding_dim": 8, "dropout": 0.0},
            "optimizer": "adam", "lr": 0.01, "batch_size": 32, "seq_len": 48, "steps": 1500,
            "clip_norm": 1.0, "log_every": 10, "eval_every": 100,
        },
    ),
    "natural-patches": TaskInfo(
        name="natural-patches",
        kind="recon",
        description=("9x9 patches of 13 photographs that ship with scikit-image and scikit-learn (grayscale, "
                     "2x downsampled, whitened): a sparse autoencoder with 32 filters rebuilds each patch from its "
                     "3 strongest filter responses. Its filters turn from noise into oriented edge detectors "
                     "(Gabor-like), as in the first layer of image CNNs and in the visual cortex."),
        families=("sparse-ae",),
        input_shape=(1, 9, 9),
        defaults={
            "model": {"family": "sparse-ae", "channels": [32], "kernel_sizes": [9], "top_k": 3, "noise": 0.3},
            "optimizer": "adam", "lr": 0.001, "batch_size": 128, "steps": 3000,
            "log_every": 20, "eval_every": 250, "probe_every": 150,
        },
    ),
    "patches-cnn": TaskInfo(
        name="patches-cnn",
        kind="image",
        description=("Which photograph is this 32x32 colour patch from? 13 classes (whitened photographs that ship "
                     "with scikit-image and scikit-learn; training patches from the left three quarters of each "
                     "photo, validation from the rest). A CNN with 9x9 first-layer kernels: compare how "
                     "Gabor-like its kernels become with the natural-patches autoencoder's."),
        families=("cnn", "mlp"),
        input_shape=(3, 32, 32),
        n_classes=len(IMAGE_NAMES),
        class_names=IMAGE_NAMES,
        defaults={
            "model": {"family": "cnn", "channels": [16, 32], "kernel_sizes": [9, 5], "pooling": "max",
                      "activation": "relu", "dropout": 0.1, "hidden_size": 64, "layers": 1},
            "optimizer": "adam", "lr": 0.002, "batch_size": 64, "steps": 1500,
            "log_every": 10, "eval_every": 200,
        },
    ),
    "sentiment-cnn": TaskInfo(
        name="sentiment-cnn",
        kind="text",
        description=("Is this short review positive or negative? Generated sentences where the words alone do not "
                     "decide: 'not bad' is positive, and after 'but' the second clause wins ('great cast but far too "
                     "long'). A text CNN (Kim 2014) slides filters over 2-, 3- and 4-word windows and keeps each "
                     "filter's best match: see which n-grams each filter has learnt to detect."),
        families=("textcnn",),
        input_shape=(SENTIMENT_MAX_LEN,),
        n_classes=len(SENTIMENT_LABELS),
        class_names=SENTIMENT_LABELS,
        vocab_size=len(SENTIMENT_VOCAB),
        defaults={
            "model": {"family": "textcnn", "channels": [32], "kernel_sizes": [2, 3, 4], "embedding_dim": 32,
                      "dropout": 0.3},
            "optimizer": "adam", "lr": 0.003, "batch_size": 64, "steps": 1500,
            "log_every": 10, "eval_every": 100, "probe_every": 100,
        },
    ),
    "prose-word2vec": TaskInfo(
        name="prose-word2vec",
        kind="w2v",
        description=("Word vectors (skip-gram with negative sampling, Mikolov et al. 2013) learnt from the English "
                     "reference text that ships with Python (pydoc's help topics): each word learns to predict the "
                     "words around it. Words used alike end up near each other: look up a word's neighbours and "
                     "try analogies on Projections."),
        families=("skipgram",),
        vocab_size=W2V_VOCAB_SIZE,
        defaults={
            "model": {"family": "skipgram", "embedding_dim": 64},
            "optimizer": "adam", "lr": 0.003, "batch_size": 512, "steps": 4000,
            "log_every": 20, "eval_every": 250,
        },
    ),
    "sentiment-lstm": TaskInfo(
        name="sentiment-lstm",
        kind="text",
        description=("The generated reviews of sentiment-cnn ('not bad', 'great cast but far too long'), read word by "
                     "word by a recurrent network that classifies from its final hidden state (many-to-one)."),
        families=("lstm", "gru", "rnn"),
        input_shape=(SENTIMENT_MAX_LEN,),
        n_classes=len(SENTIMENT_LABELS),
        class_names=SENTIMENT_LABELS,
        vocab_size=len(SENTIMENT_VOCAB),
        defaults={
            "model": {"family": "lstm", "layers": 1, "hidden_size": 64, "embedding_dim": 32, "dropout": 0.0},
            "optimizer": "adam", "lr": 0.003, "batch_size": 64, "steps": 1500, "clip_norm": 1.0,
            "log_every": 10, "eval_every": 100,
        },
    ),
}

# Sequence tasks (issue 16): a block of their own, kept apart from the tasks above.
TASKS.update({
    "dates-seq2seq": TaskInfo(
        name="dates-seq2seq",
        kind="seq2seq",
        description=("Dates written many ways ('Tuesday 3rd of May 2021', '05/03/21', '3 May 21', 'May 3, 2021', "
                     "'03.05.2021') to ISO form ('2021-05-03'), character by character. An encoder reads the "
                     "input, a decoder writes the output; with attention it looks back at the input at every "
                     "output character. The year comes last in the input and first in the output, so the "
                     "attention map is not diagonal: watch it find the year, then the month, then the day."),
        families=("gru", "lstm", "rnn"),
        input_shape=(DATE_MAX_IN,),
        vocab_size=len(DATE_VOCAB),
        defaults={
            "model": {"family": "gru", "layers": 1, "hidden_size": 64, "embedding_dim": 32, "bidirectional": True,
                      "attention": "additive", "dropout": 0.0},
            "optimizer": "adam", "lr": 0.005, "batch_size": 64, "steps": 400, "clip_norm": 1.0,
            "teacher_forcing": 1.0, "log_every": 10, "eval_every": 200,
        },
    ),
    "tags-bidir": TaskInfo(
        name="tags-bidir",
        kind="tag",
        description=("Tag every word of generated sentences (DET, ADJ, NOUN, VERB, ...). A quarter of the words "
                     "are ambiguous and only the next word decides: 'the cold wind' (ADJ) against 'the cold "
                     "spreads' (NOUN), 'that dog sleeps' (DET) against 'that sleeps' (PRON). A tagger that reads "
                     "only left to right must guess there; a bidirectional one knows."),
        families=("gru", "lstm", "rnn"),
        input_shape=(TAG_MAX_LEN,),
        n_classes=len(TAGS),
        class_names=TAGS,
        vocab_size=len(TAG_VOCAB),
        probe_tokens=TAG_PROBE_TOKENS,
        defaults={
            "model": {"family": "gru", "layers": 1, "hidden_size": 32, "embedding_dim": 16, "bidirectional": True,
                      "dropout": 0.0},
            "optimizer": "adam", "lr": 0.01, "batch_size": 64, "steps": 300, "clip_norm": 1.0,
            "log_every": 10, "eval_every": 100,
        },
    ),
})

# Length-sensitive sequence to sequence (issue 16, the attention preset): a block of its own.
TASKS.update({
    "numbers-seq2seq": TaskInfo(
        name="numbers-seq2seq",
        kind="seq2seq",
        description=("Numbers written in words to digits: 'three hundred and forty-two thousand and seventeen' "
                     "-> '342017', 'four million and six' -> '4000006'. One to seven digits, so the longer the "
                     "input, the more digits the output has. Without attention the decoder gets everything "
                     "through the encoder's final state, and long numbers suffer (sequence accuracy by input "
                     "length third); with attention it looks up the word that writes each digit."),
        families=("gru", "lstm", "rnn"),
        input_shape=(NUMBER_MAX_IN,),
        vocab_size=len(NUMBER_VOCAB),
        defaults={
            "model": {"family": "gru", "layers": 1, "hidden_size": 64, "embedding_dim": 32, "bidirectional": True,
                      "attention": "additive", "dropout": 0.0},
            "optimizer": "adam", "lr": 0.005, "batch_size": 64, "steps": 400, "clip_norm": 1.0,
            "teacher_forcing": 1.0, "log_every": 10, "eval_every": 200,
        },
    ),
})

# Token texts of each language-model task, by id.
VOCABS: dict[str, tuple[str, ...]] = {"code-lstm": tuple(CODE_VOCAB), "brackets-lstm": tuple(BRACKET_VOCAB),
                                      "recall-lstm": tuple(RECALL_VOCAB),
                                      "sentiment-cnn": SENTIMENT_VOCAB, "sentiment-lstm": SENTIMENT_VOCAB,
                                      "dates-seq2seq": DATE_VOCAB, "tags-bidir": TAG_VOCAB}
VOCABS["numbers-seq2seq"] = NUMBER_VOCAB


# a map of fewer points shows nothing (t-SNE needs perplexity < points; the analysis worker skips them)
MIN_PROJECTION_POINTS = 10


def records_projections(info: TaskInfo) -> bool:
    """Whether built-in runs of this task get the embedding probe (the Projections page): classifiers
    and word2vec, and the token embeddings of character language models, encoder-decoders (their input
    characters) and the tagger (its words) whose vocabulary has enough entries to map (code-lstm's 98,
    dates-seq2seq's 71, tags-bidir's 77; not brackets-lstm's 8).

    >>> [records_projections(TASKS[t]) for t in ("digits-cnn", "code-lstm", "brackets-lstm", "natural-patches")]
    [True, True, False, False]
    >>> [records_projections(TASKS[t]) for t in ("dates-seq2seq", "numbers-seq2seq", "tags-bidir")]
    [True, True, True]
    """
    if info.kind in ("lm", "seq2seq", "tag"):
        return info.vocab_size >= MIN_PROJECTION_POINTS
    return info.kind in ("image", "text", "w2v")


def get_task(name: str) -> TaskInfo:
    """The task called ``name``; raises KeyError with the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; built-in tasks: {', '.join(sorted(TASKS))}") from None
