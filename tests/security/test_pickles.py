"""Nothing that someone who can write the data folder plants there gets unpickled.

Threat: a user who can write files under the data folder (checkpoints, ``<data>/cache``) but cannot run
commands must not get code run in the dashboard (``deepscope serve``) or in a trainer. Each planted file
here is a pickle whose ``__reduce__`` writes a marker file when unpickled; the tests check the marker never
appears and the reader answers with a clear error or a cache miss instead.

Run::

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/security/test_pickles.py
"""
from __future__ import annotations

import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_spec

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("backend", "dashboard", "deepscope")


class Plant:
    """Unpickling this writes ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _text_run(store, steps=20):
    spec = tiny_spec("code-lstm", steps=steps)
    return store.create_run("planted", spec.task, spec.model_dump(mode="json"), status="completed"), spec


def _plant_checkpoint(store, run_id, spec, marker: Path) -> Path:
    import torch

    folder = store.run_dir(run_id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "step-000000050.pt"
    torch.save({"step": 50, "spec": spec.model_dump(mode="json"), "model": Plant(marker)}, path)
    return path


# -- (a) checkpoints --------------------------------------------------------------------------------

def test_try_it_does_not_run_a_planted_checkpoint(store, tmp_path):
    """``/try?run=ID`` loads the newest checkpoint through backend.inference.load_run."""
    from backend.inference import load_run

    marker = tmp_path / "pwned-try"
    run_id, spec = _text_run(store)
    _plant_checkpoint(store, run_id, spec, marker)
    with pytest.raises(ValueError, match="step-000000050.pt holds objects that deepscope will not load"):
        load_run(store, run_id)
    assert not marker.exists()


def test_resume_does_not_run_a_planted_checkpoint(store, tmp_path):
    """Resume (jobs.resume spawns ``worker --resume``) fails the run with a readable message instead."""
    from backend.training.worker import run_training

    marker = tmp_path / "pwned-resume"
    run_id, spec = _text_run(store)
    _plant_checkpoint(store, run_id, spec, marker)
    assert run_training(store, run_id, resume=True) == "failed"
    assert not marker.exists()
    assert "step-000000050.pt holds objects that deepscope will not load" in store.get_run(run_id)["error"]


def test_try_it_does_not_run_a_planted_model_file_of_a_client_run(store, tmp_path):
    """A client run's model file (``run.watch`` saves them) is read with weights_only=True, never
    torch.export.load (which unpickles and execs generated code): a planted one is a clear error."""
    import torch

    from backend.inference import load_run

    marker = tmp_path / "pwned-client"
    run_id = store.create_run("script", "custom", {"model": {"family": "lstm", "try": {"ok": True}}},
                              source="client", status="completed")
    folder = store.run_dir(run_id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "deepscope-model", "version": 1, "step": 5, "graph": "{}", "weights": Plant(marker)},
               folder / "model-step-000000005.pt")
    with pytest.raises(ValueError, match="model-step-000000005.pt is corrupt or holds objects deepscope will not load"):
        load_run(store, run_id)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated zip"])
def test_a_corrupt_checkpoint_is_a_clear_error(store, content):
    from backend.inference import load_run

    run_id, _ = _text_run(store)
    folder = store.run_dir(run_id) / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step-000000050.pt").write_bytes(content)
    with pytest.raises(ValueError, match="step-000000050.pt is corrupt or not a checkpoint"):
        load_run(store, run_id)


# -- (b) the dashboard's cache --------------------------------------------------------------------

def _pickle_cache_file(marker: Path) -> bytes:
    """A flask-caching FileSystemCache file: 4-byte expiry (0: never) then the pickle."""
    return struct.pack("I", 0) + pickle.dumps(Plant(marker))


def test_a_planted_cache_file_is_a_miss_not_code(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPSCOPE_CACHE_TYPE", raising=False)
    from dashboard.app import create_app
    from dashboard.context import EXTENSION

    marker = tmp_path / "pwned-cache"
    app = create_app(tmp_path / "d")
    data = app.server.extensions[EXTENSION].data
    rid = data.store.create_run("r", "digits-cnn", {}, status="running")
    with app.server.app_context():
        data.list_runs()  # writes the run list into <data>/cache
    cache_dir = tmp_path / "d" / "cache"
    files = [p for p in cache_dir.iterdir() if p.is_file()]
    assert files
    for path in files:  # every file, the cache's own file count included
        path.write_bytes(_pickle_cache_file(marker))

    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    with app.server.app_context():
        assert [r["id"] for r in data.list_runs()] == [rid]  # a miss: read again from the store
        assert data.run_summary(data.get_run(rid))["task"] == "digits-cnn"
    assert not marker.exists()
    assert all(not p.exists() or not p.read_bytes()[4:].startswith(b"\x80") for p in files)  # replaced or removed


def test_a_planted_redis_value_is_a_miss_not_code(tmp_path):
    from dashboard.safe_cache import SafeRedisCache

    marker = tmp_path / "pwned-redis"
    client = _FakeRedis()
    cache = SafeRedisCache(client, key_prefix="p:")
    client.data["p:runs"] = b"!" + pickle.dumps(Plant(marker))  # what cachelib's RedisSerializer reads
    assert cache.get("runs") is None
    assert cache.get_many("runs", "other") == [None, None]
    assert not marker.exists()
    assert cache.set("runs", [{"id": "a"}], timeout=5) and cache.get("runs") == [{"id": "a"}]
    assert cache.set("n", 3) and client.data["p:n"] == b"3" and cache.get("n") == 3  # INCRBY-compatible


def test_the_app_uses_the_safe_backends(tmp_path, monkeypatch):
    from dashboard.app import cache_config

    monkeypatch.delenv("DEEPSCOPE_CACHE_TYPE", raising=False)
    assert cache_config(tmp_path)["CACHE_TYPE"] == "dashboard.safe_cache.SafeFileSystemCache"
    monkeypatch.setenv("DEEPSCOPE_CACHE_TYPE", "RedisCache")  # what docker-compose sets
    assert cache_config(tmp_path)["CACHE_TYPE"] == "dashboard.safe_cache.SafeRedisCache"
    monkeypatch.setenv("DEEPSCOPE_CACHE_TYPE", "MemcachedCache")  # pickles: refused, not silently used
    with pytest.raises(ValueError, match="without pickle"):
        cache_config(tmp_path)


class _FakeRedis:
    """The few redis-py calls cachelib's RedisCache makes, over a dict."""

    def __init__(self):
        self.data: dict[str, bytes] = {}

    def get(self, name):
        return self.data.get(name)

    def mget(self, names):
        return [self.data.get(n) for n in names]

    def set(self, name, value, ex=None):
        if not isinstance(value, bytes):
            raise TypeError(f"redis stores bytes, got {type(value).__name__}")
        self.data[name] = value
        return True

    def delete(self, *names):
        return sum(self.data.pop(n, None) is not None for n in names)


# -- (c) what the dashboard caches round-trips -------------------------------------------------------

def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


CACHED_VALUES = {
    # shapes of what dashboard/data.py, hidden_data.py, kernel_data.py and projection_data.py cache
    "series": ({"train/loss": {"x": [5, 10], "y": [2.3, None]}, "lr": {"x": [], "y": []}}, 41),
    "summary": {"task": "code-lstm", "family": "lstm", "lr": 0.004, "params": None, "steps": 20},
    "snapshots": [{"id": 3, "run_id": "a1", "kind": "hidden", "step": 50, "wall_time": 1.7e9,
                   "arrays": {"h.0": "runs/a1/hidden/3/h.0.npy"}, "meta": {"tokens": 9, "layers": [0, 1]},
                   "schema_version": 1}],
    "match": [{"start": 4, "stop": 9, "common": 3, "extra": 0, "context": [0, 19],
               "cells": [[0.25, -1.0], [float("nan"), float("inf")]]}],
    "hidden_summary": {"tracks": ["in string", "depth"], "r": [[0.1234, -0.5], [0.0, 1.0]]},
    "saturation": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
    "no_saturation": np.zeros(0, np.float32),
    "corpus": "def f(x):\n    return x  # é, 字",
    "kernel_fit": {"amplitude": [0.5, 1.25], "gabor_like": [True, False], "localized": [False, True]},
    "too_small": {"too_small": 0, "reason": "1-D kernels have no 2-D Gabor fit"},
    "has": 1,
    "ranges": [[-1.5, 2.0], [-0.25, 0.75]],
    "neighbours": {"step": 10, "row": 3, "text": "king", "n": 50, "items": [{"row": 7, "text": "queen", "sim": 0.93}]},
    "analogy": {"rows": {"a": 1, "b": 2, "c": 3}, "texts": {"a": "king"}, "items": []},
    # what the format promises beyond that
    "numbers": [0, -1, 2 ** 70, 1e-310, -0.0, float("-inf"), True, False, None],
    "numpy_scalars": [np.float32(0.5), np.int64(-3), np.bool_(True), np.float64("nan")],
    "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3), np.array(["ab", "c"]), np.zeros((2, 0)),
               np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])],
    "odd_keys": {1: "one", (2, "two"): [3], None: b"\x00\xff", "\u0000ds": "looks like a tag"},
    "nesting": ((), [()], {"t": (1, (2, [3, {"x": ()}]))}),
}


@pytest.mark.parametrize("name", sorted(CACHED_VALUES))
def test_the_values_the_dashboard_caches_round_trip(name):
    from dashboard.safe_cache import SafeSerializer

    s, value = SafeSerializer(), CACHED_VALUES[name]
    assert _same(s.loads(s.dumps(value)), value)


def test_store_rows_round_trip_as_plain_values(store):
    """SQL rows name their columns with SQLAlchemy's ``quoted_name`` (a str subclass): stored as str."""
    from dashboard.safe_cache import SafeSerializer

    rid = store.create_run("r", "digits-cnn", {"lr": 0.1, "model": {"channels": [4, 8]}})
    rows = store.list_runs()
    back = SafeSerializer().loads(SafeSerializer().dumps(rows))
    assert back == rows and back[0]["id"] == rid and all(type(k) is str for k in back[0])


def test_unsupported_values_are_not_cached(tmp_path):
    from dashboard.safe_cache import SafeFileSystemCache, SafeSerializer, UnsupportedValue

    cache = SafeFileSystemCache(str(tmp_path / "cache"), threshold=10)
    assert cache.set("k", {"a": 1})
    for value in ({1, 2}, object(), np.array([object()]), Path("/x")):
        with pytest.raises(UnsupportedValue):
            SafeSerializer().dumps(value)
        assert cache.set("k", value) is False
        assert cache.get("k") is None  # the older value is dropped, not served stale
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".__wz_cache")]  # no temp files


@pytest.mark.parametrize("blob", [b"", b"DSC", b"DSC1", b"DSC1{", b'DSC1{"\\u0000ds":"zz","v":1}',
                                  b'DSC1{"\\u0000ds":"d","v":[[[1],2]]}', b'DSC1{"\\u0000ds":"a","v":"!!"}',
                                  b"\x80\x05N."])
def test_unreadable_cache_files_are_removed_misses(tmp_path, blob):
    from dashboard.safe_cache import SafeFileSystemCache

    cache = SafeFileSystemCache(str(tmp_path / "cache"), threshold=10)
    assert cache.set("k", [1, 2])
    path = Path(cache._get_filename("k"))
    path.write_bytes(struct.pack("I", 0) + blob)
    assert cache.get("k") is None and not path.exists()
    assert cache.set("k", [3]) and cache.get("k") == [3]


# -- (d) no unsafe load in the source --------------------------------------------------------------

# pattern -> what the call must contain to be safe (None: never safe)
UNSAFE_LOADS = {
    r"\btorch\.load\(": r"weights_only\s*=\s*True",
    r"\b(?:np|numpy)\.load\(": r"allow_pickle\s*=\s*False",
    r"\byaml\.load\(": r"Loader\s*=\s*(?:yaml\.)?C?SafeLoader",
    r"\byaml\.(?:unsafe_load|full_load|load_all)\(": None,
    r"\b(?:c?[pP]ickle|_pickle)\.(?:loads?|Unpickler)\(": None,
    r"\bread_pickle\(": None,
    r"\bjoblib\.load\(": None,
    r"\bdill\.": None,
    r"\bcloudpickle\.loads?\(": None,
    r"\bshelve\.open\(": None,
    r"\bmarshal\.loads?\(": None,
    r"\btorch\.jit\.load\(": None,
    r"\btorch\.export\.load\(": None,  # unpickles (weights_only=False) and execs generated code: see backend/models/graph.py
    r"\b_pickle_load_obj\(": None,
}


def _call_text(src: str, start: int) -> str:
    """From ``start`` (just after an opening parenthesis) to its closing one, so calls over several lines
    are read whole."""
    depth, i = 1, start
    while i < len(src) and depth:
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        i += 1
    return src[start:i]


def unsafe_loads(paths) -> list[str]:
    """``file:line: text`` of every load in ``paths`` that could unpickle (see UNSAFE_LOADS)."""
    found = []
    for path in paths:
        src = Path(path).read_text(encoding="utf-8")
        for pattern, needed in UNSAFE_LOADS.items():
            for m in re.finditer(pattern, src):
                call = _call_text(src, m.end()) if m.group().endswith("(") else ""
                if needed is None or not re.search(needed, call):
                    line = src.count("\n", 0, m.start()) + 1
                    where = Path(path).relative_to(REPO) if Path(path).is_relative_to(REPO) else path
                    found.append(f"{where}:{line}: {src.splitlines()[line - 1].strip()}")
    return found


def test_no_unsafe_loads_in_the_source():
    files = sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py"))
    assert len(files) > 20
    found = unsafe_loads(files)
    assert not found, "loads that could unpickle data-folder files (see docs/security.md):\n" + "\n".join(found)


def test_the_source_rule_catches_unsafe_loads(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch, numpy as np, pickle, yaml\n"
                   "a = torch.load(p)\n"
                   "b = torch.load(p,\n    map_location='cpu', weights_only=False)\n"
                   "c = np.load(p)\n"
                   "d = pickle.loads(raw)\n"
                   "e = yaml.load(text, Loader=yaml.Loader)\n"
                   "f = torch.load(p, map_location='cpu',\n    weights_only=True)\n"
                   "g = np.load(p, mmap_mode='r', allow_pickle=False)\n"
                   "h = yaml.safe_load(text)\n")
    assert [f.split(":")[1] for f in unsafe_loads([bad])] == ["2", "3", "5", "7", "6"]


# -- (e) the safe checkpoint format still resumes exactly ------------------------------------------

def _stop_at(step: int):
    from backend.training.hooks import Hook

    class StopAt(Hook):
        def on_step_end(self, trainer, out):
            if out.step == step:
                trainer.should_stop = True
    return StopAt()


def test_resume_from_a_safe_checkpoint_is_exact(tmp_path):
    """Stopping mid-epoch, checkpointing and resuming ends on the very weights of an uninterrupted run."""
    import torch

    from backend.spec import spec_info
    from backend.tasks.data import load_task_data
    from backend.training.checkpoint import load_checkpoint, save_checkpoint
    from backend.training.trainer import Trainer

    spec = tiny_spec("digits-cnn", steps=30)
    data = load_task_data(spec_info(spec), seed=spec.seed)
    whole = Trainer(spec, data, device="cpu")
    assert whole.run() == "completed"

    first = Trainer(spec, data, hooks=[_stop_at(17)], device="cpu")
    assert first.run() == "stopped" and first._pos > 0  # mid-epoch: the sampler's place matters
    path = save_checkpoint(first, tmp_path / "checkpoints")
    state = torch.load(path, weights_only=True)  # the format needs nothing but tensors and plain values
    assert state["step"] == 17 and isinstance(state["spec"], dict)

    second = Trainer(spec, data, device="cpu")
    assert load_checkpoint(second, path) == 17
    assert second.run() == "completed" and second.step == 30
    for (name, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
