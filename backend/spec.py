"""Validated run specifications and what a model will cost before it is built.

A :class:`RunSpec` is settings only (no logic beyond validation). Errors name the
field and say what is allowed, so the form and the CLI can show them as is.

Example::

    spec = RunSpec.for_task("digits-cnn", lr=0.01)
    cost = estimate(spec)          # Cost(params=..., memory_bytes=...)
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Literal, Mapping

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .tasks import get_task
from .tasks.registry import TASKS, TaskInfo

Family = Literal["mlp", "cnn", "rnn", "gru", "lstm", "sparse-ae", "textcnn", "skipgram",
                 "transformer"]
Optimizer = Literal["sgd", "momentum", "adam", "adagrad", "rmsprop", "adadelta"]
RECURRENT = ("rnn", "gru", "lstm")

# Limits that keep one run from exhausting a small machine: errors, not crashes.
MAX_PARAMS = 50_000_000
MAX_MEMORY_BYTES = 4 * 2**30
MAX_PROCESSES = 64  # training processes of one run (torchrun); the host's cores or GPUs bound it further
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
W2V_NEGATIVES, W2V_WINDOW = 5, 5  # skip-gram: negatives per pair, context words on each side
TRANSFORMER_MLP = 4  # a transformer block's MLP width over d_model (backend.models.transformer.MLP_RATIO)
BIDIRECTIONAL_LM = "a bidirectional language model would see the token it must predict"


class ModelSpec(BaseModel):
    """The architecture. Fields a family does not use are ignored by it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN passes every range check

    family: Family = "cnn"
    layers: int = Field(1, ge=1, le=8, description="recurrent layers, or hidden layers of an MLP")
    hidden_size: int = Field(128, ge=1, le=4096, description="units per recurrent or MLP layer")
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1, max_length=8,
                                description="output channels of each conv layer (CNN)")
    kernel_sizes: list[int] = Field(default_factory=lambda: [3], min_length=1, max_length=8,
                                    description="kernel size of each conv layer; one value applies to all")
    pooling: Literal["max", "avg", "none"] = "max"
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] | None = Field(
        None, description="None: the family's usual one (relu for MLP/CNN, tanh for a plain RNN)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    embedding_dim: int = Field(32, ge=1, le=2048, description="token embedding size (text tasks)")
    bidirectional: bool = False
    top_k: int = Field(3, ge=1, le=1024, description="sparse autoencoder: filter responses kept per patch")
    noise: float = Field(0.0, ge=0.0, le=10.0, description="sparse autoencoder: sd of the noise added to its input")
    # -- transformer (hidden_size is d_model; embedding_dim is not used) --
    heads: int = Field(4, ge=1, le=64, description="transformer: attention heads; hidden_size must divide by it")

    @field_validator("heads")
    @classmethod
    def _heads_divide_width(cls, v: int, info: ValidationInfo) -> int:
        d = info.data.get("hidden_size")
        if info.data.get("family") == "transformer" and d is not None and d % v:
            raise ValueError(f"hidden size {d} (d_model) does not divide among {v} heads: each head reads an "
                             f"equal slice; choose heads that divide {d}")
        return v

    # sequence-to-sequence tasks (kind seq2seq) only; other kinds ignore it
    attention: Literal["additive", "multiplicative", "none"] = Field(
        "additive", description="sequence-to-sequence: how the decoder looks at the encoder's states: additive "
                                "(Bahdanau), multiplicative (Luong's general score) or none (the decoder starts "
                                "from the encoder's final state and sees nothing else)")

    @field_validator("attention", mode="before")
    @classmethod
    def _no_attention(cls, v: Any) -> Any:
        return "none" if v is None else v  # `--set attention=none` reads as None on the command line

    @field_validator("channels")
    @classmethod
    def _channels_positive(cls, v: list[int]) -> list[int]:
        if any(c < 1 or c > 1024 for c in v):
            raise ValueError("each channel count must be between 1 and 1024")
        return v

    @field_validator("kernel_sizes")
    @classmethod
    def _kernels_in_range(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if info.data.get("family") == "textcnn":  # n-gram widths: any from 1 to 15
            if any(k < 1 or k > 15 for k in v):
                raise ValueError("kernel sizes (n-gram widths) must be from 1 to 15")
        elif any(k < 1 or k > 15 or k % 2 == 0 for k in v):
            raise ValueError("kernel sizes must be odd numbers from 1 to 15 (odd sizes keep the image centred)")
        return v

    @model_validator(mode="after")
    def _kernels_match_channels(self) -> "ModelSpec":
        if self.family == "textcnn" and len(self.channels) != 1:
            raise ValueError("a text CNN has one conv layer per kernel size (n-gram width): give one channel count, "
                             "the number of filters of each width")
        if self.family == "cnn" and len(self.kernel_sizes) not in (1, len(self.channels)):
            raise ValueError(f"give one kernel size, or one per conv layer ({len(self.channels)}), "
                             f"not {len(self.kernel_sizes)}")
        if self.family == "sparse-ae" and (len(self.channels) != 1 or len(self.kernel_sizes) != 1):
            raise ValueError("a sparse autoencoder has one layer of filters: give one channel count (its number "
                             "of filters) and one kernel size")
        if self.bidirectional and self.family not in RECURRENT:
            raise ValueError("bidirectional applies to recurrent families (rnn, gru, lstm) only")
        return self

    def kernel_for(self, i: int) -> int:
        return self.kernel_sizes[0] if len(self.kernel_sizes) == 1 else self.kernel_sizes[i]


class RunSpec(BaseModel):
    """Everything a run needs: task, model, optimisation and cadence of logging."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN passes every range check

    task: str
    name: str | None = Field(None, max_length=200)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: Optimizer = "adam"
    lr: float = Field(0.003, gt=0, le=10, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="used by momentum and rmsprop")
    weight_decay: float = Field(0.0, ge=0, lt=1)
    clip_norm: float | None = Field(None, gt=0, le=1e6, description="clip the global gradient norm to this")
    batch_size: int = Field(64, ge=1, le=4096)
    steps: int = Field(2000, ge=1, le=10_000_000)
    epochs: float | None = Field(None, gt=0, le=10_000, description="if set, overrides steps")
    seq_len: int = Field(64, ge=4, le=2048, description="tokens per training sequence (text tasks)")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    log_every: int = Field(10, ge=1, le=100_000)
    eval_every: int = Field(200, ge=1, le=1_000_000)
    checkpoint_every: int = Field(1000, ge=1, le=10_000_000)
    data_file: str | None = Field(None, max_length=4096,
                                  description="sentiment tasks: a CSV file of your own (text and label columns)")
    processes: int = Field(1, ge=1, le=MAX_PROCESSES,
                           description="training processes (torchrun, DistributedDataParallel; one GPU each on a "
                                       "GPU host): each trains on batch_size / processes samples of every batch")
    probe_every: int | None = Field(None, ge=1, le=10_000_000,
                                    description="steps between probe snapshots (hidden states, kernels, "
                                                "embeddings); empty: about ten per run, "
                                                "spaced wider when the probes would cost over 1.5% of training time")
    # sequence-to-sequence tasks (kind seq2seq) only; other kinds ignore them
    teacher_forcing: float = Field(1.0, ge=0.0, le=1.0,
                                   description="sequence-to-sequence: chance that the decoder is fed the true "
                                               "previous character rather than its own prediction (1: always the "
                                               "true one, 0: always its own)")
    teacher_forcing_schedule: Literal["constant", "linear"] = Field(
        "constant", description="constant: teacher_forcing all run long; linear: from teacher_forcing at the "
                                "first step down to teacher_forcing_floor at the last")
    teacher_forcing_floor: float = Field(0.0, ge=0.0, le=1.0,
                                         description="where a linear teacher-forcing schedule ends")

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; built-in tasks: {', '.join(sorted(TASKS))}")
        return v

    @field_validator("teacher_forcing_floor")
    @classmethod
    def _floor_below_start(cls, v: float, info: ValidationInfo) -> float:
        start = info.data.get("teacher_forcing")
        if info.data.get("teacher_forcing_schedule") == "linear" and start is not None and v > start:
            raise ValueError(f"a linear schedule decays from teacher_forcing ({start:g}) down to this floor: it "
                             f"must not be above it, not {v:g}")
        return v

    @field_validator("data_file")
    @classmethod
    def _readable_data_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or not v.strip():
            return None
        if "task" not in info.data:  # the task was refused; its own message says why
            return v.strip()
        with _file_messages(info):  # ValueError naming the file, the row and the problem
            spec_info_for(info.data["task"], v.strip())
        return v.strip()

    @model_validator(mode="after")
    def _fits_task_and_machine(self, context: ValidationInfo) -> "RunSpec":
        with _file_messages(context):  # the file may have changed since the field was checked
            info = spec_info(self)
        if self.batch_size % self.processes:
            raise ValueError(f"batch size {self.batch_size} does not divide among {self.processes} processes: each "
                             "trains on an equal slice of every batch; choose a multiple of the process count")
        if self.model.family not in info.families:
            raise ValueError(f"model family {self.model.family!r} does not fit task {self.task!r}; "
                             f"choose one of {', '.join(info.families)}")
        if info.kind == "lm" and self.model.bidirectional:
            raise _field_error(("model", "bidirectional"), BIDIRECTIONAL_LM, True)
        if info.kind == "image" and self.model.family == "cnn":
            _check_cnn_shape(self.model, info)
        if self.model.family == "sparse-ae":
            _check_autoencoder(self.model, info)
        if self.model.family == "textcnn" and max(self.model.kernel_sizes) > info.input_shape[0]:
            raise ValueError(f"kernel size {max(self.model.kernel_sizes)} is longer than the task's "
                             f"{info.input_shape[0]}-token inputs")
        with _file_messages(context):
            cost = estimate(self)
        if cost.params > MAX_PARAMS:
            raise ValueError(f"the model has {cost.params:,} parameters, more than the limit of "
                             f"{MAX_PARAMS:,}; make it smaller")
        if cost.memory_bytes > MAX_MEMORY_BYTES:
            raise ValueError(f"the run needs about {cost.memory_bytes / 2**30:.1f} GiB, more than the limit of "
                             f"{MAX_MEMORY_BYTES / 2**30:.0f} GiB; reduce batch size, sequence length or sizes")
        return self

    @classmethod
    def for_task(cls, task: str, **overrides: Any) -> "RunSpec":
        """The task's default spec with ``overrides`` (``model`` may be a partial dict)."""
        info = get_task(task)
        data: dict[str, Any] = {k: v for k, v in info.defaults.items() if k != "model"}
        model = dict(info.defaults.get("model", {}))
        model.update(overrides.pop("model", {}) or {})
        data.update(overrides)
        return cls(task=task, model=model, **data)


def _field_error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """A validation error of the field at ``loc`` from a check of the whole spec, so that the form shows
    it next to that field (a plain ValueError here would belong to no field)."""
    return ValidationError.from_exception_data("RunSpec", [InitErrorDetails(
        type=PydanticCustomError("value_error", message), loc=loc, input=value)])


def spec_info(spec: "RunSpec") -> TaskInfo:
    """What the run's task gives a model: the built-in description, or the one its ``data_file`` gives."""
    return spec_info_for(spec.task, spec.data_file)


def spec_info_for(task: str, data_file: str | None) -> TaskInfo:
    """:func:`spec_info` of a task name and data file: ``spec_info_for("digits-cnn", None).n_classes == 10``."""
    if data_file:
        from .tasks.user_text import task_info

        return task_info(task, data_file)
    return get_task(task)


@contextmanager
def _file_messages(info: ValidationInfo) -> Iterator[None]:
    """Re-raise a data file's problem without quoting its content unless the caller may see it.

    ``parse_spec(data, quote_content=False)``: the dashboard quotes only files the user uploaded.
    """
    from .tasks.sentiment.csv_file import SentimentFileError

    try:
        yield
    except SentimentFileError as exc:
        quote = (info.context or {}).get("quote_content", True)
        raise ValueError(str(exc) if quote else exc.plain) from None


def _check_cnn_shape(m: ModelSpec, info: TaskInfo) -> None:
    _, h, w = info.input_shape
    for i, _ in enumerate(m.channels):
        if m.pooling != "none":
            if min(h, w) < 2:
                raise ValueError(f"conv layer {i + 1}: its {h}x{w} input is too small to pool; "
                                 "use fewer conv layers or pooling 'none'")
            h, w = h // 2, w // 2


def _check_autoencoder(m: ModelSpec, info: TaskInfo) -> None:
    _, h, w = info.input_shape
    k = m.kernel_sizes[0]
    if k > min(h, w):
        raise ValueError(f"kernel size {k} is larger than the task's {h}x{w} patches; use {min(h, w)} or less")
    responses = m.channels[0] * (h - k + 1) * (w - k + 1)
    if m.top_k > responses:
        raise ValueError(f"top_k {m.top_k} keeps more responses than the {responses} there are "
                         f"({m.channels[0]} filters x {(h - k + 1) * (w - k + 1)} positions)")


def format_errors(exc: ValidationError) -> list[str]:
    """Readable one-line messages (``field: problem``) from a pydantic error."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("__root__",))
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def parse_spec(data: Mapping[str, Any], quote_content: bool = True) -> tuple[RunSpec | None, list[str]]:
    """Validate a mapping; return ``(spec, [])`` or ``(None, messages)``, for any JSON-like input.

    ``quote_content=False``: messages about ``data_file`` do not quote the file (its columns,
    labels), for a file the person asking did not supply.

    >>> parse_spec({"task": "digits-cnn", "lr": float("nan")})[1]
    ['lr: Input should be a finite number']
    """
    if not isinstance(data, Mapping):
        return None, [f"a spec must map field names to values, not be a {type(data).__name__}"]
    try:
        return RunSpec.model_validate(dict(data), context={"quote_content": quote_content}), []
    except ValidationError as exc:
        return None, format_errors(exc)


def total_steps(spec: RunSpec, train_size: int) -> int:
    """Steps the run takes: ``steps``, or ``epochs`` over ``train_size`` samples when set."""
    if spec.epochs is None:
        return spec.steps
    return max(1, math.ceil(spec.epochs * train_size / spec.batch_size))


def count_params(spec: "RunSpec | ModelSpec", info: TaskInfo | None = None) -> tuple[int, int]:
    """:func:`backend.spec_cost.count_params` (a spec's cost lives there; the validator above needs it)."""
    from .spec_cost import count_params as count

    return count(spec, info)


def estimate(spec: "RunSpec"):
    """:func:`backend.spec_cost.estimate`: ``estimate(spec).params``, ``.memory_bytes``, ``.describe()``."""
    from .spec_cost import estimate as cost

    return cost(spec)
