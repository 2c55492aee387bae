"""The text-samples record: what a language model writes from a fixed prompt, step after step.

One snapshot of kind ``samples`` per probe step (written by
:class:`backend.probes.samples.SamplesProbe`) holds:

- arrays ``prompt`` (int64 ``(P,)``, the prompt's token ids) and ``samples`` (int64
  ``(n_temperatures, length)``, the generated ids, the prompt not included) - the exact record;
- ``meta``: ``temperatures`` (list of floats, 0 = greedy), ``prompt`` (the prompt's text),
  ``texts`` (the decoded continuations, one per temperature, in that order), ``seed``,
  ``length`` and ``source`` (where the prompt comes from).

The text is kept in ``meta`` as well as the ids so that a reader (the Training page's live poll)
needs the SQL index rows only and never opens an array file. No torch here: the dashboard uses it.

Example::

    recs = samples_history(store, run_id)       # [Samples(step=0, prompt='def ...', texts={0.0: '...'}), ...]
    recs[-1].text(0.5), recs[-1].temperatures   # the newest continuation at T=0.5; (0.0, 0.5, 1.0, 1.5)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .store import RunStore, StoreError

KIND = "samples"


def decode(ids: Sequence[int], vocab: Sequence[str]) -> str:
    """The text of token ``ids`` in ``vocab`` (characters for the built-in tasks)."""
    return "".join(vocab[int(i)] for i in ids)


def write_samples_snapshot(store: RunStore, run_id: str, step: int, prompt_ids: Sequence[int],
                           sample_ids: np.ndarray, temperatures: Sequence[float], vocab: Sequence[str],
                           meta: Mapping[str, Any] | None = None) -> int:
    """Write one samples snapshot (ids as arrays, decoded text in meta); returns its id."""
    samples = np.asarray(sample_ids, dtype=np.int64)
    if samples.ndim != 2 or len(samples) != len(temperatures):
        raise StoreError(f"sample_ids must be (temperatures, length), one row per temperature; got {samples.shape} "
                         f"for {len(temperatures)} temperatures")
    info = dict(meta or {})
    info.update(temperatures=[float(t) for t in temperatures], prompt=decode(prompt_ids, vocab),
                texts=[decode(row, vocab) for row in samples], length=int(samples.shape[1]))
    return store.add_snapshot(run_id, KIND, step, {"prompt": np.asarray(prompt_ids, dtype=np.int64),
                                                   "samples": samples}, info)


@dataclass(frozen=True)
class Samples:
    """The samples of one probe step: the prompt and one continuation per temperature."""

    step: int
    prompt: str
    texts: dict[float, str]
    meta: dict = field(default_factory=dict)

    @property
    def temperatures(self) -> tuple[float, ...]:
        return tuple(self.texts)

    def text(self, temperature: float) -> str:
        """The continuation at ``temperature`` (KeyError naming the recorded ones when absent)."""
        for t, text in self.texts.items():
            if abs(t - float(temperature)) < 1e-9:
                return text
        raise KeyError(f"no sample at temperature {temperature}; recorded: {list(self.texts)}")


def samples_from_row(row: Mapping[str, Any]) -> Samples:
    """A :class:`Samples` from a snapshot index row (meta only, no file read)."""
    meta = dict(row["meta"])
    temps, texts = meta.get("temperatures") or [], meta.get("texts") or []
    if len(temps) != len(texts):
        raise StoreError(f"samples snapshot at step {row['step']} has {len(temps)} temperatures "
                         f"but {len(texts)} texts")
    return Samples(step=int(row["step"]), prompt=str(meta.get("prompt", "")),
                   texts={float(t): str(x) for t, x in zip(temps, texts)}, meta=meta)


def samples_history(store: RunStore, run_id: str) -> list[Samples]:
    """Every samples snapshot of a run, oldest first (one per step: a step written twice keeps the last)."""
    by_step = {int(r["step"]): r for r in store.list_snapshots(run_id, KIND)}
    return [samples_from_row(by_step[s]) for s in sorted(by_step)]


def latest_samples(store: RunStore, run_id: str) -> Samples | None:
    """The run's newest samples, or None when it has none."""
    history = samples_history(store, run_id)
    return history[-1] if history else None
