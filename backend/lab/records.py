"""Reading the gradient-flow record (no torch: the dashboard uses it).

One snapshot of kind ``gradflow`` per probe step holds ``norms`` (float64, ``(T,)``): the mean over
a fixed batch of probe sequences of ``||dL/dh_t||`` of the top recurrent layer, for a loss at the
last step ``T - 1``; ``norms[-1]`` is distance 0. Newer snapshots also hold the forward pass's
hidden-state norms ``hidden_norms`` (mean ``||h_t||`` over the sequences, ``(T,)``) and
``hidden_max`` (the largest); in older ones these read as None. ``meta`` names the ``family``
(rnn, gru, lstm), ``hidden_size``, the ``activation`` of a plain RNN, the ``source`` of the
sequences and their ``n_sequences``. Written by :class:`backend.probes.gradflow.GradientFlowProbe`.

Example::

    rec = latest_gradflow(store, run_id)   # GradFlow(step=..., norms=array([...]), meta={...}) or None
    rec.distances, rec.norms_by_distance   # 0, 1, 2, ... and the norms in that order
    rec.hidden_norms                       # mean ||h_t|| per time step, or None (an older snapshot)
    hidden_norm_history(store, run_id)     # {"step", "last", "peak", "max"}: the hidden norm over training
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KIND = "gradflow"
BEFORE_CLIP = "grad_norm/global"    # metric: the global gradient norm before clipping (every log step)
AFTER_CLIP = "grad_norm/after_clip"  # metric: the same after clipping (runs with clip_norm only)


@dataclass(frozen=True)
class GradFlow:
    """One gradient-flow snapshot of a run."""

    step: int
    norms: np.ndarray  # (T,) by time step; norms[-1] is distance 0
    meta: dict
    hidden_norms: np.ndarray | None = None  # (T,) mean ||h_t|| over the probe sequences; None: older snapshot
    hidden_max: np.ndarray | None = None    # (T,) the largest ||h_t|| over them

    @property
    def distances(self) -> np.ndarray:
        return np.arange(len(self.norms))

    @property
    def norms_by_distance(self) -> np.ndarray:
        """``||dL/dh||`` at distance 0, 1, 2, ... from the loss."""
        return np.asarray(self.norms)[::-1].copy()


def gradflow_steps(store, run_id: str) -> list[int]:
    """Steps of a run's gradient-flow snapshots, oldest first."""
    return [int(s["step"]) for s in store.list_snapshots(run_id, KIND)]


def _read(store, row) -> GradFlow:
    arrays = store.load_arrays(row, mmap=False)

    def get(name: str) -> np.ndarray | None:
        return np.array(arrays[name], dtype=np.float64) if name in arrays else None

    return GradFlow(step=int(row["step"]), norms=get("norms"), meta=dict(row["meta"]),
                    hidden_norms=get("hidden_norms"), hidden_max=get("hidden_max"))


def latest_gradflow(store, run_id: str, step: int | None = None) -> GradFlow | None:
    """The run's newest gradient-flow snapshot (or the one at ``step``), None when there is none."""
    rows = store.list_snapshots(run_id, KIND)
    if step is not None:
        rows = [r for r in rows if int(r["step"]) == int(step)]
    if not rows:
        return None
    return _read(store, rows[-1])


def _largest(a: np.ndarray) -> float:
    """The largest entry, NaNs skipped (inf counts); NaN when all are NaN."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(a[~np.isnan(a)])) if (~np.isnan(a)).any() else float("nan")


def hidden_norm_history(store, run_id: str) -> dict[str, np.ndarray]:
    """The hidden-state norm over training, one entry per gradient-flow snapshot that has it
    (older snapshots without hidden norms are skipped): ``step``, ``last`` (mean ``||h||`` at the
    last time step of the probe sequences), ``peak`` (the largest mean ``||h_t||`` over the time
    steps) and ``max`` (the largest ``||h_t||`` of any sequence at any step), float64 arrays."""
    steps, last, peak, top = [], [], [], []
    for row in store.list_snapshots(run_id, KIND):
        rec = _read(store, row)
        if rec.hidden_norms is None or not len(rec.hidden_norms):
            continue
        steps.append(rec.step)
        last.append(rec.hidden_norms[-1])
        peak.append(_largest(rec.hidden_norms))
        top.append(_largest(rec.hidden_max if rec.hidden_max is not None else rec.hidden_norms))
    return {"step": np.array(steps, dtype=np.int64), "last": np.array(last, dtype=np.float64),
            "peak": np.array(peak, dtype=np.float64), "max": np.array(top, dtype=np.float64)}
