"""All snapshot probes of a run share one cost budget: more kinds of probe never add up past it."""
from __future__ import annotations

import math

import pytest

from backend.probes.hidden import adapt_every
from backend.probes.hooks import PROBE_BUDGET, HiddenStateProbe, SnapshotProbe
from backend.spec import RunSpec
from backend.store import RunStore


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "data")


def _probes(store, spec) -> list[SnapshotProbe]:
    from backend.training.worker import default_hooks

    hooks = default_hooks(store, "r", spec)
    for hook in hooks:  # stop the writer threads
        hook.close()
    return [h for h in hooks if isinstance(h, SnapshotProbe)]


@pytest.mark.parametrize("task, kinds", [
    ("code-lstm", 4),             # hidden states, gradient flow, text samples, character embeddings
    ("brackets-lstm", 3),         # 8 characters: too few to map, no embedding probe
    ("digits-cnn", 2),            # kernels, penultimate features
    ("sentiment-lstm", 1),        # embeddings and features
])
def test_a_runs_probes_split_one_budget(store, task, kinds):
    probes = _probes(store, RunSpec.for_task(task))
    assert len(probes) == kinds
    assert math.isclose(sum(p.budget for p in probes), PROBE_BUDGET)
    assert all(p.budget > 0 for p in probes)


def test_the_hidden_state_probe_gets_the_largest_share(store):
    probes = {p.kind: p for p in _probes(store, RunSpec.for_task("code-lstm"))}
    hidden = probes["hidden"]
    assert isinstance(hidden, HiddenStateProbe)
    assert math.isclose(hidden.budget, 3 * probes["gradflow"].budget) and math.isclose(hidden.budget,
                                                                                       3 * probes["samples"].budget)
    assert math.isclose(hidden.budget, 6 * probes["embeddings"].budget)  # a table copy: a small share
    # what that means for code-lstm's costs measured by bench/overhead.py (148 ms capture + write every
    # 500 steps of ~10.5 ms): alone (1.5%) every 1000 steps; sharing with the three side probes, every 2000
    assert math.isclose(hidden.budget, 0.015 * 3 / 5.5)
    assert adapt_every(500, 0.148, 0.0105, PROBE_BUDGET) == 1000
    assert adapt_every(500, 0.148, 0.0105, hidden.budget) == 2000
