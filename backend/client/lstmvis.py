"""Import an LSTMVis project as a deepscope run that the Hidden states page opens.

An LSTMVis project folder holds ``lstm.yml`` and the files it names::

    files:                      # reference name -> file (.h5/.hdf5: HDF5, .dict/.txt: "word id" per line)
      states: states.hdf5
      train: train.hdf5
      words: words.dict
    word_sequence: {file: train, path: word_ids, dict_file: words}
    states:
      file: states              # default HDF5 file of the types below
      types: [{type: state, layer: 1, path: states1}, {type: output, layer: 1, path: output1}]
    meta:                       # optional per-token annotations
      depth: {file: train, path: depth}

Each state type is a ``(tokens, cells)`` dataset. ``state`` is LSTMVis's name for the cell state
(deepscope's ``c``) and ``output`` for the hidden state (``h``); LSTMVis's layers (from 1) become
layers 0, 1, ... in their order. Values are kept raw (LSTMVis applies ``tanh`` only when drawing).
Numeric ``meta`` datasets with one value per token (no ``dict``) become annotation tracks. The
run (task ``lstmvis``, status ``completed``) holds one hidden-state snapshot at step 0.

    deepscope import-lstmvis path/to/project --name "children books"

Needs h5py and PyYAML (``pip install 'deepscope[lstmvis]'``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..store import RunStore
from ..store.hidden import write_hidden_snapshot

STATE_NAMES = {"state": "c", "output": "h"}  # LSTMVis type -> deepscope state
F16_MAX = float(np.finfo(np.float16).max)
CHUNK = 65_536  # rows per HDF5 read


class LSTMVisError(ValueError):
    """The folder is not a readable LSTMVis project; the message says what is wrong."""


@dataclass
class LSTMVisProject:
    name: str
    description: str
    token_ids: np.ndarray  # int64 (tokens,)
    vocab: list[str]  # id -> word
    states: dict[tuple[int, str, str], np.ndarray]  # (layer, "fwd", "h"|"c") -> float16 (tokens, cells)
    tracks: dict[str, np.ndarray]
    layers: list[int]  # LSTMVis layer numbers, in deepscope's order


def read_project(folder: str | Path, max_tokens: int | None = None) -> LSTMVisProject:
    """Read ``folder``'s ``lstm.yml`` and the files it names (the first ``max_tokens`` tokens)."""
    try:
        import h5py
        import yaml
    except ImportError as exc:
        raise ImportError("importing LSTMVis projects needs h5py and PyYAML: pip install 'deepscope[lstmvis]'") from exc
    folder = Path(folder)
    config_path = folder / "lstm.yml"
    if not config_path.is_file():
        raise LSTMVisError(f"{folder} has no lstm.yml: not an LSTMVis project folder")
    config = read_config(config_path, yaml)
    files = config.get("files") or {}
    if not isinstance(files, dict):
        raise LSTMVisError(f"lstm.yml: files: must map names to file paths, got {type(files).__name__}")
    for section in ("word_sequence", "states"):
        if not isinstance(config.get(section), dict):
            raise LSTMVisError(f"lstm.yml has no {section}: section")

    def path_of(ref: str) -> Path:
        if not isinstance(ref, str) or ref not in files:
            raise LSTMVisError(f"lstm.yml names file {ref!r}, which files: does not list")
        path = folder / str(files[ref])
        if not path.is_file():
            raise LSTMVisError(f"{path} (file {ref!r} of lstm.yml) does not exist")
        return path

    handles: dict[str, Any] = {}

    def dataset(ref: str, path: str):
        if ref not in handles:
            where = path_of(ref)
            try:
                handles[ref] = h5py.File(where, "r")
            except OSError as exc:  # h5py's message does not name the file
                raise LSTMVisError(f"{where.name} (file {ref!r} of lstm.yml) is not a readable HDF5 file: "
                                   f"{str(exc).split(' (', 1)[0]}") from None
        if not isinstance(path, str) or path not in handles[ref]:
            raise LSTMVisError(f"{files[ref]} has no dataset {path!r}")
        return handles[ref][path]

    try:
        ws = config["word_sequence"]
        words = dataset(ws["file"], ws["path"])
        where = f"{ws['path']!r} in {files[ws['file']]}"
        if len(words.shape) == 0 or len(words) == 0:
            raise LSTMVisError(f"the word sequence {where} is empty")
        n = len(words) if max_tokens is None else min(len(words), int(max_tokens))
        ids = np.asarray(words[:n]).reshape(n, -1)[:, 0].astype(np.int64)
        if ws.get("dict_file"):
            vocab = read_dict(path_of(ws["dict_file"]))
            bad = ids[(ids < 0) | (ids >= len(vocab))]
            if len(bad):
                raise LSTMVisError(f"the word sequence {where} has word id {int(bad[0])}, which "
                                   f"{files[ws['dict_file']]} does not define (it has ids up to {len(vocab) - 1})")
        else:  # no dict: tokens print as their ids
            if ids.min() < 0:
                raise LSTMVisError(f"the word sequence {where} has a negative word id ({int(ids.min())})")
            vocab = [str(i) for i in range(int(ids.max(initial=0)) + 1)]
        states, layers = read_states(config["states"], dataset, n, files)
        tracks = read_tracks(config.get("meta") or {}, dataset, n)
    except KeyError as exc:
        raise LSTMVisError(f"lstm.yml misses the entry {exc}") from exc
    except (TypeError, AttributeError) as exc:  # a section of the wrong shape (a list where a mapping goes)
        raise LSTMVisError(f"lstm.yml has an entry of the wrong kind: {exc}") from exc
    finally:
        for h in handles.values():
            h.close()
    return LSTMVisProject(name=str(config.get("name") or folder.name), description=str(config.get("description") or ""),
                          token_ids=ids[:n], vocab=vocab, states={k: v[:n] for k, v in states.items()},
                          tracks={k: v[:n] for k, v in tracks.items()}, layers=layers)


def read_config(path: Path, yaml) -> dict:
    """``lstm.yml`` as a mapping; LSTMVisError naming the problem when it is not valid YAML or not a mapping."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise LSTMVisError(f"{path.name} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if config is None:
        raise LSTMVisError(f"{path.name} is empty")
    if not isinstance(config, dict):
        raise LSTMVisError(f"{path.name} must be a mapping of sections (files:, word_sequence:, states:), "
                           f"not a {type(config).__name__}")
    return config


def read_dict(path: Path) -> list[str]:
    """A ``word id`` per line -> the list of words by id (ids missing from the file read as "")."""
    pairs = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            pairs.append((int(parts[1]), parts[0]))
        elif line.strip():
            raise LSTMVisError(f"{path.name}: expected 'word id' on each line, got {line[:60]!r}")
    vocab = [""] * (max((i for i, _ in pairs), default=-1) + 1)
    for i, word in pairs:
        if i >= 0:
            vocab[i] = word
    return vocab


def read_states(section: dict, dataset, n: int, files: dict) -> tuple[dict[tuple[int, str, str], np.ndarray], list[int]]:
    """The state types of ``section``, ``n`` tokens each (LSTMVis pairs states and words by position, so a
    dataset with fewer rows than the word sequence is refused rather than silently cut)."""
    types = section.get("types") or []
    if not isinstance(types, list) or not types or not all(isinstance(t, dict) for t in types):
        raise LSTMVisError("lstm.yml lists no states: types (a list of {type, layer, path} entries)")
    layers = sorted({int(t.get("layer", 1)) for t in types})
    states: dict[tuple[int, str, str], np.ndarray] = {}
    for t in types:
        ref = t.get("file", section.get("file"))
        ds = dataset(ref, t["path"])
        if len(ds.shape) != 2:
            raise LSTMVisError(f"states {t['path']!r} in {files.get(ref)} has shape {ds.shape}; "
                               "expected (tokens, cells)")
        if ds.shape[0] < n:
            raise LSTMVisError(f"states {t['path']!r} in {files.get(ref)} has {ds.shape[0]:,} rows but the word "
                               f"sequence has {n:,} tokens; they must have one row per token "
                               "(--max-tokens imports only the first ones)")
        rows = n
        out = np.empty((rows, ds.shape[1]), dtype=np.float16)
        for r0 in range(0, rows, CHUNK):
            block = np.asarray(ds[r0:min(rows, r0 + CHUNK)], dtype=np.float32)
            out[r0:r0 + len(block)] = np.clip(np.nan_to_num(block), -F16_MAX, F16_MAX)
        key = (layers.index(int(t.get("layer", 1))), "fwd", STATE_NAMES.get(t.get("type", "state"), t.get("type")))
        states[key] = out
    cells = {a.shape[1] for a in states.values()}
    if len(cells) > 1:
        raise LSTMVisError(f"the state types have different numbers of cells ({sorted(cells)}); "
                           "deepscope shows one size per snapshot")
    return states, layers


def read_tracks(meta: dict, dataset, n: int) -> dict[str, np.ndarray]:
    """Numeric per-token ``meta`` datasets (no dict, index ``self``) as float32 tracks."""
    tracks = {}
    for name, info in meta.items():
        if not isinstance(info, dict) or info.get("dict") or info.get("index", "self") != "self" \
                or info.get("type", "general") != "general":
            continue
        values = np.asarray(dataset(info["file"], info["path"])[:n])
        if values.ndim == 1 and np.issubdtype(values.dtype, np.number):
            if len(values) < n:
                raise LSTMVisError(f"meta {name!r} ({info['path']!r}) has {len(values):,} values but the word "
                                   f"sequence has {n:,} tokens")
            tracks[str(name)[:60]] = values.astype(np.float32)
    return tracks


def import_lstmvis(folder: str | Path, store: RunStore, name: str | None = None, max_tokens: int | None = None) -> str:
    """Make a completed run holding ``folder``'s LSTMVis project as a hidden-state snapshot; returns its id."""
    project = read_project(folder, max_tokens)
    n_layers = len(project.layers)
    cells = next(iter(project.states.values())).shape[1]
    states = sorted({s for _, _, s in project.states}, key=lambda s: ("h", "c").index(s) if s in ("h", "c") else 2)
    spec = {"model": {"family": "lstm", "layers": n_layers, "hidden_size": cells},
            "lstmvis": {"folder": str(Path(folder).resolve()), "name": project.name,
                        "description": project.description, "layers": project.layers}}
    run_id = store.create_run(name or project.name, "lstmvis", spec, source="lstmvis", status="running")
    try:
        source = (f"LSTMVis project {project.name!r} ({len(project.token_ids):,} tokens"
                  + (f": {project.description}" if project.description else "") + ")")
        write_hidden_snapshot(store, run_id, 0, project.states, project.token_ids, project.vocab, project.tracks,
                              {"family": "lstm", "source": source, "states": states, "imported_from": "lstmvis"})
    except BaseException as exc:
        store.set_status(run_id, "failed", error=f"import of {folder} failed: {exc}")
        raise
    store.set_status(run_id, "completed")
    return run_id
