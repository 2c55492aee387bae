"""The kernel record: conv weights and feature maps of one snapshot, and a reader.

One snapshot (kind ``kernels``) of a run at a step holds, as immutable .npy files:

- ``w.<layer>``: float32 conv weight, ``(out, in, kh, kw)`` or ``(out, in, k)``;
- ``map.<layer>``: float16 output of a conv or pooling layer for the probe inputs;
- ``inputs``: float16 probe inputs (when the task has them);
- text models (token-id inputs): ``tokens``, the int32 probe texts ``(texts, time)``, and per
  Conv1d layer ``ngram.<layer>`` (int32 ``(filters, n, 2)``: text and position of each filter's
  top windows, -1 when missing) and ``ngramval.<layer>`` (float32 ``(filters, n)``); no maps.
  ``meta["vocab"]`` holds the token strings by id.

``meta["layers"]`` lists the layers in model order (name, kind conv1d/conv2d/pool,
kernel size, channels). Gabor fits are derived by readers (``backend.analysis.gabor``),
not by the writer, which runs beside training.

Example::

    snap = KernelSnapshot(store, store.list_snapshots(run_id, KIND)[-1])
    snap.conv_layers            # ["features.0", "features.3"]
    snap.weights("features.0")  # (16, 1, 3, 3)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .arrays import read_array
from .hidden import SnapshotUnavailable, require_files  # noqa: F401 (re-exported)
from .store import RunStore, StoreError

KIND = "kernels"


def write_kernel_snapshot(store: RunStore, run_id: str, step: int, weights: Mapping[str, np.ndarray],
                          maps: Mapping[str, np.ndarray], inputs: np.ndarray | None,
                          meta: Mapping[str, Any] | None = None, extra: Mapping[str, np.ndarray] | None = None
                          ) -> int:
    """Write one kernel snapshot; returns its id. ``extra``: more arrays, stored as given."""
    if not weights:
        raise StoreError("a kernel snapshot needs at least one conv layer's weights")
    arrays: dict[str, np.ndarray] = {f"w.{k}": np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    arrays.update({f"map.{k}": np.asarray(v, dtype=np.float16) for k, v in maps.items()})
    if inputs is not None:
        arrays["inputs"] = np.asarray(inputs, dtype=np.float16)
    arrays.update({k: np.asarray(v) for k, v in (extra or {}).items()})
    info = {"conv_layers": list(weights), "map_layers": list(maps),
            "ngram_layers": sorted(k.removeprefix("ngram.") for k in (extra or {}) if k.startswith("ngram.")),
            "n_inputs": 0 if inputs is None else int(len(inputs))}
    info.update(meta or {})
    return store.add_snapshot(run_id, KIND, step, arrays, info)


class KernelSnapshot:
    """Read-only view of one kernel snapshot row."""

    def __init__(self, store: RunStore, row: Mapping[str, Any]):
        self.row, self.meta, self.step = row, dict(row["meta"]), int(row["step"])
        self.paths = {k: Path(store.data_dir) / p for k, p in row["arrays"].items()}
        require_files(self.paths, f"the kernel snapshot at step {self.step}")

    @property
    def conv_layers(self) -> list[str]:
        return list(self.meta.get("conv_layers", []))

    @property
    def map_layers(self) -> list[str]:
        return list(self.meta.get("map_layers", []))

    def weights(self, layer: str) -> np.ndarray:
        return self._load("w." + layer)

    def maps(self, layer: str) -> np.ndarray:
        return self._load("map." + layer)

    def inputs(self) -> np.ndarray | None:
        return self._load("inputs") if "inputs" in self.paths else None

    def top_tokens(self) -> np.ndarray:
        """Text models: the probe texts as token ids ``(texts, time)``, 0 = padding."""
        return self._load("tokens")

    @property
    def ngram_layers(self) -> list[str]:
        return list(self.meta.get("ngram_layers", []))

    def top_ngrams(self, layer: str) -> list[list[tuple[str, float]]]:
        """Per filter of a text model's conv layer: its top n-grams of the probe texts, as
        ``(text, activation)``, strongest first."""
        where, value = self._load("ngram." + layer), self._load("ngramval." + layer)
        tokens, vocab = self._load("tokens"), self.meta.get("vocab") or []
        k = int(next((e["kernel_size"][0] for e in self.meta.get("layers", []) if e["name"] == layer), 1))

        def word(i: int) -> str:
            return vocab[i] if 0 <= i < len(vocab) else f"#{i}"
        out = []
        for f in range(len(where)):
            row = []
            for (text, pos), v in zip(where[f].tolist(), value[f].tolist()):
                if text < 0:
                    continue
                ids = [i for i in tokens[text, pos:pos + k].tolist() if i != 0]
                row.append((" ".join(word(i) for i in ids), float(v)))
            out.append(row)
        return out

    def _load(self, name: str) -> np.ndarray:
        if name not in self.paths:
            raise StoreError(f"this snapshot has no {name!r}")
        return read_array(self.paths[name], mmap=False)  # small: kernels and a few maps
