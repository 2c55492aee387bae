"""Reading the gradient-flow record (no torch: the dashboard uses it).

One snapshot of kind ``gradflow`` per probe step holds ``norms`` (float64, ``(T,)``): the mean over
a fixed batch of probe sequences of ``||dL/dh_t||`` of the top recurrent layer, for a loss at the
last step ``T - 1``; ``norms[-1]`` is distance 0. ``meta`` names the ``family`` (rnn, gru, lstm),
the ``activation`` of a plain RNN, the ``source`` of the sequences and their ``n_sequences``.
Written by :class:`backend.probes.gradflow.GradientFlowProbe`.

Example::

    rec = latest_gradflow(store, run_id)   # GradFlow(step=..., norms=array([...]), meta={...}) or None
    rec.distances, rec.norms_by_distance   # 0, 1, 2, ... and the norms in that order
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KIND = "gradflow"


@dataclass(frozen=True)
class GradFlow:
    """One gradient-flow snapshot of a run."""

    step: int
    norms: np.ndarray  # (T,) by time step; norms[-1] is distance 0
    meta: dict

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


def latest_gradflow(store, run_id: str, step: int | None = None) -> GradFlow | None:
    """The run's newest gradient-flow snapshot (or the one at ``step``), None when there is none."""
    rows = store.list_snapshots(run_id, KIND)
    if step is not None:
        rows = [r for r in rows if int(r["step"]) == int(step)]
    if not rows:
        return None
    row = rows[-1]
    norms = np.array(store.load_arrays(row, mmap=False)["norms"], dtype=np.float64)
    return GradFlow(step=int(row["step"]), norms=norms, meta=dict(row["meta"]))
