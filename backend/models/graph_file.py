"""Model files of client runs: ``<run>/checkpoints/model-step-XXXXXXXXX.pt``, written atomically, newest few kept.

One file holds everything Try it needs: the graph (:mod:`backend.models.graph`, as a JSON string, the run's
vocabulary in it) and the weights at that step (tensors). It is a ``torch.save`` of a dict of plain values
and tensors, so it is read with ``torch.load(..., weights_only=True)`` from bytes read off a regular file
(a FIFO, a device or a link planted in the data folder is refused before anything is read).

Example::

    path = write_model_file(run_dir / "checkpoints", 120, graph_json, weights)   # .../model-step-000000120.pt
    loaded = read_model_file(path)          # ModelFile(step=120, graph={...}, model=GraphModel, vocab=(...))
"""
from __future__ import annotations

import io
import json
import os
import pickle
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..inference_runs import MODEL_FILE_PREFIX, model_file_paths, model_file_step
from ..store.arrays import TEMP_PREFIX
from .graph import GraphError, GraphModel

FILE_FORMAT, FILE_VERSION = "deepscope-model", 1
KEEP = 3                          # model files kept per run (the newest)
FILE_LIMIT = 256 * 1024 * 1024    # largest model file read (and written: a larger model is not saved)
MAX_VOCAB = 100_000


@dataclass(frozen=True)
class ModelFile:
    path: Path
    step: int
    graph: dict
    model: GraphModel
    vocab: tuple[str, ...]


def write_model_file(folder: Path, step: int, graph_json: str, weights: dict[str, torch.Tensor]) -> Path:
    """Write ``model-step-<step>.pt`` under ``folder`` (temporary name, then rename) and keep the newest
    :data:`KEEP`. ValueError when the weights are over :data:`FILE_LIMIT`."""
    size = sum(t.numel() * t.element_size() for t in weights.values())
    if size > FILE_LIMIT:
        raise ValueError(f"the model's weights take {size / 2**20:,.0f} MiB, over the {FILE_LIMIT // 2**20} MiB "
                         "a model file may hold")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL_FILE_PREFIX}{int(step):09d}.pt"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FILE_FORMAT, "version": FILE_VERSION, "step": int(step), "graph": graph_json,
                        "weights": weights}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in model_file_paths(folder.parent)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def _read_bytes(path: Path) -> bytes:
    """The file's bytes if it is a regular file under the limit (no FIFO, device or symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise GraphError(f"Model file {path.name} cannot be opened ({exc.strerror or exc}).") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise GraphError(f"Model file {path.name} is not a regular file.")
        if info.st_size > FILE_LIMIT:
            raise GraphError(f"Model file {path.name} is {info.st_size / 2**20:,.0f} MiB, over the "
                             f"{FILE_LIMIT // 2**20} MiB Try it reads.")
        data = f.read(FILE_LIMIT + 1)
    if len(data) > FILE_LIMIT:
        raise GraphError(f"Model file {path.name} is over the {FILE_LIMIT // 2**20} MiB Try it reads.")
    return data


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """The model in ``path``; GraphError (a ValueError, its message for the page) when the file is corrupt,
    not a model file, holds anything but tensors and plain values, or its graph cannot be run.
    FileNotFoundError passes through (a newer file may have just replaced it)."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # anything not allowlisted (a planted pickle), or garbage
        raise GraphError(f"Model file {path.name} is corrupt or holds objects deepscope will not load (only "
                         "tensors and plain values are read).") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, TypeError, AttributeError,
            IndexError, RecursionError) as exc:
        raise GraphError(f"Model file {path.name} is corrupt or not a model file ({type(exc).__name__}).") from None
    if not isinstance(raw, dict) or raw.get("format") != FILE_FORMAT:
        raise GraphError(f"{path.name} is not a deepscope model file.")
    if raw.get("version") != FILE_VERSION:
        raise GraphError(f"Model file {path.name} has version {str(raw.get('version'))[:20]}; this deepscope reads "
                         f"{FILE_VERSION}.")
    graph_json, weights, step = raw.get("graph"), raw.get("weights"), raw.get("step")
    if not isinstance(graph_json, str) or not isinstance(weights, dict) or not isinstance(step, int):
        raise GraphError(f"Model file {path.name} lacks its graph, weights or step.")
    try:
        graph = json.loads(graph_json)
    except (ValueError, RecursionError):
        raise GraphError(f"Model file {path.name}: its graph is not valid JSON.") from None
    try:
        model = GraphModel(graph, weights)
    except GraphError as exc:
        raise GraphError(f"Model file {path.name}: {exc}") from None
    vocab = graph.get("vocab")
    if not isinstance(vocab, list) or not 0 < len(vocab) <= MAX_VOCAB or \
            not all(isinstance(c, str) and len(c) == 1 for c in vocab) or len(set(vocab)) != len(vocab):
        raise GraphError(f"Model file {path.name}: its vocabulary is not a list of distinct characters.")
    return ModelFile(path=path, step=step if step >= 0 else model_file_step(path), graph=graph, model=model,
                     vocab=tuple(vocab))
