"""The New-run form as data: its fields, form values <-> spec dicts, validation messages.

Pure (no Dash): ``page.py`` (beside it) renders ``FIELDS`` and calls these functions.

Example::

    values = form_values(RunSpec.for_task("digits-cnn"))
    result = validate_form("digits-cnn", values)   # result.spec, result.field_errors, result.cost

Any JSON-like ``values`` give messages, never an exception. The data file comes from
:class:`dashboard.uploads.FormFiles` (an upload, or a file in the operator's data roots).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from backend.datafiles import DataFileError
from backend.spec import RunSpec, estimate, parse_spec
from backend.tasks import TASKS, get_task
from dashboard.uploads import UPLOAD_LIMIT, FormFiles


@dataclass(frozen=True)
class FormField:
    """One input of the form and where its value goes in the spec."""

    name: str
    label: str
    kind: str  # "int" | "float" | "list" | "select" | "bool" | "text" | "file"
    path: tuple[str, ...]
    options: tuple[str, ...] = ()
    help: str = ""
    optional: bool = False
    step: Any = None


FIELDS: tuple[FormField, ...] = (
    FormField("family", "Model family", "select", ("model", "family"),
              ("cnn", "mlp", "rnn", "gru", "lstm", "sparse-ae", "textcnn", "skipgram", "transformer")),
    FormField("layers", "Layers", "int", ("model", "layers"), help="recurrent, MLP or transformer layers"),
    FormField("hidden_size", "Hidden size", "int", ("model", "hidden_size"),
              help="units per layer (a transformer's width, d_model)"),
    FormField("heads", "Attention heads", "int", ("model", "heads"), help="transformer: hidden size must divide by it"),
    FormField("channels", "Conv channels", "list", ("model", "channels"), help="comma list, e.g. 16, 32"),
    FormField("kernel_sizes", "Kernel sizes", "list", ("model", "kernel_sizes"), help="one, or one per conv layer"),
    FormField("pooling", "Pooling", "select", ("model", "pooling"), ("max", "avg", "none")),
    FormField("activation", "Activation", "select", ("model", "activation"), ("relu", "tanh", "gelu", "sigmoid"),
              help="blank: the family's usual one", optional=True),
    FormField("dropout", "Dropout", "float", ("model", "dropout"), step=0.05),
    FormField("top_k", "Responses kept (top k)", "int", ("model", "top_k"),
              help="sparse autoencoder: strongest filter responses kept per patch"),
    FormField("noise", "Input noise", "float", ("model", "noise"), step="any",
              help="sparse autoencoder: sd of noise added to its input"),
    FormField("embedding_dim", "Embedding size", "int", ("model", "embedding_dim"), help="text tasks"),
    FormField("bidirectional", "Bidirectional", "bool", ("model", "bidirectional")),
    FormField("attention", "Attention", "select", ("model", "attention"), ("additive", "multiplicative", "none"),
              help="sequence to sequence: how the decoder looks back at the input at each output character "
                   "(additive: Bahdanau, multiplicative: Luong); none: it sees only the encoder's final state"),
    FormField("optimizer", "Optimizer", "select", ("optimizer",),
              ("sgd", "momentum", "adam", "adagrad", "rmsprop", "adadelta")),
    FormField("lr", "Learning rate", "float", ("lr",), step="any"),
    FormField("momentum", "Momentum", "float", ("momentum",), help="momentum and rmsprop", step=0.05),
    FormField("weight_decay", "Weight decay", "float", ("weight_decay",), step="any"),
    FormField("clip_norm", "Gradient clipping", "float", ("clip_norm",), help="max global norm; blank = off",
              optional=True, step="any"),
    FormField("batch_size", "Batch size", "int", ("batch_size",)),
    FormField("teacher_forcing", "Teacher forcing", "float", ("teacher_forcing",), step=0.05,
              help="sequence to sequence: chance the decoder is fed the true previous character in training "
                   "(1: always, 0: always its own guess)"),
    FormField("teacher_forcing_schedule", "Teacher-forcing schedule", "select", ("teacher_forcing_schedule",),
              ("constant", "linear"), help="constant: the same all run long; linear: from teacher forcing at the "
                                           "first step down to the floor at the last"),
    FormField("teacher_forcing_floor", "Teacher-forcing floor", "float", ("teacher_forcing_floor",), step=0.05,
              help="where a linear schedule ends (at most the teacher forcing)"),
    FormField("steps", "Steps", "int", ("steps",)),
    FormField("seed", "Seed", "int", ("seed",)),
    FormField("processes", "Processes", "int", ("processes",),
              help="training processes (torchrun, DistributedDataParallel; one GPU each on a GPU host); the batch "
                   "size is split among them"),
    FormField("probe_every", "Snapshots every", "int", ("probe_every",), optional=True,
              help="steps between snapshots (hidden states, kernels, embeddings); blank: automatic (about 10, "
                   "the probes under 1.5% of time)"),
    FormField("data_file", "Your data (CSV file)", "file", ("data_file",), optional=True,
              help=f"sentiment tasks: upload a CSV with text and label columns (up to {UPLOAD_LIMIT // 2**20} MiB) "
                   "or pick one; blank: the generated reviews"),
    FormField("name", "Name", "text", ("name",), help="optional; shown in run lists", optional=True),
)
BY_NAME = {f.name: f for f in FIELDS}
FIELD_GROUPS = (("Model", ("family", "layers", "hidden_size", "heads", "channels", "kernel_sizes", "pooling", "activation",
                           "dropout", "top_k", "noise", "embedding_dim", "bidirectional", "attention")),
                ("Optimisation", ("optimizer", "lr", "momentum", "weight_decay", "clip_norm", "batch_size",
                                  "teacher_forcing", "teacher_forcing_schedule", "teacher_forcing_floor")),
                ("Run", ("steps", "seed", "processes", "probe_every", "data_file", "name")))


@dataclass
class FormResult:
    """Outcome of validating the form."""

    spec: RunSpec | None
    field_errors: dict[str, str] = field(default_factory=dict)
    general_errors: list[str] = field(default_factory=list)
    cost: str = ""


def form_values(spec: RunSpec) -> dict[str, Any]:
    """Field values showing ``spec`` (lists as ``"16, 32"``, booleans as checklists)."""
    dumped = spec.model_dump()
    out = {}
    for f in FIELDS:
        value = dumped
        for key in f.path:
            value = value.get(key) if isinstance(value, dict) else None
        if f.kind == "list":
            value = ", ".join(str(v) for v in value or [])
        elif f.kind == "bool":
            value = ["on"] if value else []
        out[f.name] = "" if value is None and f.kind == "text" else value  # a file: None, or the spec's path
    return out


def _parse_value(f: FormField, raw: Any) -> tuple[Any, str | None]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, (None if f.optional else "required")
    if f.kind == "list":
        try:  # int() of a 5000-digit string is a ValueError too
            return [int(p) for p in str(raw).replace(";", ",").split(",") if p.strip()], None
        except ValueError:
            return None, "use whole numbers separated by commas, e.g. 16, 32"
    if f.kind == "bool":
        return bool(raw), None
    if f.kind in ("int", "float"):
        return _parse_number(f.kind, raw)
    if f.kind == "file" and not isinstance(raw, str):
        return None, "choose a file: upload a CSV or pick one from the list"
    return raw, None


def _parse_number(kind: str, raw: Any) -> tuple[Any, str | None]:
    """``("int", "12")`` -> ``(12, None)``; ``("float", "nan")`` -> ``(None, "must be a finite number")``."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None, "must be a number"
    if kind == "int" and isinstance(raw, int):
        return raw, None  # exact, however large: the spec says what the limit is
    try:
        number = float(raw)
    except OverflowError:  # an int beyond float range
        return None, "is far too large"
    except ValueError:
        return None, "must be a number"
    if not math.isfinite(number):  # NaN would pass every range check
        return None, "must be a finite number"
    if kind == "int":
        return (int(number), None) if number.is_integer() else (None, "must be a whole number")
    return number, None


def spec_from_form(task: str, values: Mapping[str, Any]) -> tuple[dict, dict[str, str]]:
    """A spec dict from the task's defaults overlaid with the form; plus per-field parse errors."""
    known = isinstance(task, str) and task in TASKS
    data = RunSpec.for_task(task).model_dump() if known else {"task": task, "model": {}}
    errors: dict[str, str] = {}
    for f in FIELDS:
        value, err = _parse_value(f, values.get(f.name))
        if err:
            errors[f.name] = err
            continue
        target = data
        for key in f.path[:-1]:
            target = target.setdefault(key, {})
        target[f.path[-1]] = value
    return data, errors


def _field_of(message: str) -> tuple[str | None, str]:
    loc, sep, text = message.partition(": ")
    if not sep:
        return None, message
    parts = tuple(loc.split("."))
    for f in FIELDS:
        if parts[: len(f.path)] == f.path:
            return f.name, text
    return None, message


def validate_form(task: str, values: Mapping[str, Any], files: FormFiles | None = None) -> FormResult:
    """Validate the form: spec (or None), messages per field and for the whole run, cost text.

    ``files``: where ``data_file`` may come from (the page passes the app's); by default nowhere.

    >>> validate_form("sentiment-lstm", {"data_file": "/proc/self/environ"}).field_errors["data_file"]
    '/proc/self/environ: not inside a data folder this server allows; upload the file instead'
    """
    if not isinstance(values, Mapping):
        return FormResult(None, general_errors=["the form's values are not a mapping of fields"])
    data, field_errors = spec_from_form(task, values)
    files = files or FormFiles()
    path = None
    if data.get("data_file") is not None and "data_file" not in field_errors:
        try:
            path = files.resolve(data["data_file"])
            data["data_file"] = str(path)
        except DataFileError as exc:
            field_errors["data_file"] = str(exc)
    if field_errors:
        return FormResult(None, field_errors)
    # Only the person's own upload may be quoted back; a file in a data root is not theirs to read.
    spec, messages = parse_spec(data, quote_content=path is None or files.is_upload(path))
    result = FormResult(spec)
    for message in messages:
        if path is not None:
            message = message.replace(str(path), files.label(path))  # no server paths in messages
        name, text = _field_of(message)
        if name and name not in result.field_errors:
            result.field_errors[name] = text
        elif not name:
            result.general_errors.append(text.removeprefix("model: "))
    if spec is not None:
        result.cost = estimate(spec).describe()
    return result


def relevant_fields(task: str, family: str | None, optimizer: str | None) -> set[str]:
    """Fields that affect a run of this task, family and optimizer (the rest are greyed out)."""
    names = {f.name for f in FIELDS}
    known = isinstance(task, str) and task in TASKS
    kind = get_task(task).kind if known else "image"
    if family not in ("cnn", "sparse-ae", "textcnn"):
        names -= {"channels", "kernel_sizes", "pooling"}
    if family in ("cnn", "sparse-ae", "textcnn"):
        names -= {"layers", "hidden_size"}
    if family == "sparse-ae":
        names -= {"pooling", "activation", "dropout"}
    if family == "textcnn":
        names -= {"pooling"}  # always max over time
    if family == "skipgram":
        names -= {"layers", "hidden_size", "activation", "dropout"}
    else:
        names -= {"top_k", "noise"}
    if family not in ("rnn", "gru", "lstm") or kind == "lm":  # a language model must not read ahead
        names -= {"bidirectional"}
    if family != "transformer":
        names -= {"heads"}
    else:  # its token embedding is d_model wide; its MLP's activation is GELU
        names -= {"embedding_dim", "activation"}
    if kind not in ("lm", "text", "w2v", "seq2seq", "tag"):
        names -= {"embedding_dim"}
    if kind != "seq2seq":  # the encoder-decoder's own settings
        names -= {"attention", "teacher_forcing", "teacher_forcing_schedule", "teacher_forcing_floor"}
    if optimizer not in ("momentum", "rmsprop"):
        names -= {"momentum"}
    if task not in ("sentiment-cnn", "sentiment-lstm"):
        names -= {"data_file"}
    return names


def family_options(task: str) -> list[str]:
    """Model families the task accepts."""
    return list(get_task(task).families) if isinstance(task, str) and task in TASKS else []


def start_run(jobs, task: str, values: dict, files: FormFiles | None = None) -> tuple[bool, str]:
    """``(True, run_id)`` after ``jobs.start``, or ``(False, message)``."""
    result = validate_form(task, values, files)
    if result.spec is None:
        problems = [f"{BY_NAME[k].label}: {v}" for k, v in result.field_errors.items()] + result.general_errors
        return False, "Not started: " + "; ".join(problems)
    if jobs is None:
        return False, "Not started: no job manager is available (start the dashboard with `deepscope serve`)."
    try:
        return True, str(jobs.start(result.spec))
    except Exception as exc:  # noqa: BLE001 - show the refusal, never a traceback
        return False, f"Not started: {exc}"
