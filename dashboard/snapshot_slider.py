"""The training-step slider shared by snapshot pages (hidden states, kernels).

The slider's value is an index into the run's snapshot steps. With "follow the
newest" on, each poll moves it to the last snapshot; moving it by hand turns
following off. Pure functions: pages call them from their callbacks.

Example::

    value = slider_value(steps=[0, 100, 200], known=None, index=None, follow=["on"], initial_step=None)  # 2
"""
from __future__ import annotations


def slider_value(steps: list[int], known: list[int] | None, index: int | None, follow: list | None,
                 initial_step: int | None) -> int:
    """Index the slider should show after a poll found ``steps`` (``known``: the previous list)."""
    if "on" in (follow or []) or known is None and initial_step is None:
        return len(steps) - 1
    if known is None:  # first load of a shared URL: the snapshot at or before its step
        return max([i for i, s in enumerate(steps) if s <= initial_step] or [0])
    return min(index or 0, len(steps) - 1)


def slider_marks(steps: list[int], most: int = 8) -> dict:
    """About ``most`` labelled marks, always including the newest."""
    every = max(1, len(steps) // most)
    return {i: {"label": f"{s:,}"} for i, s in enumerate(steps) if i % every == 0 or i == len(steps) - 1}


def keeps_following(index: int | None, steps: list[int] | None, follow: list | None) -> bool:
    """False when the person moved the slider away from the newest snapshot."""
    return not (steps and index is not None and index < len(steps) - 1 and "on" in (follow or []))


def step_at(steps: list[int] | None, index: int | None) -> int | None:
    """The training step the slider points at."""
    if not steps:
        return None
    return steps[min(int(index or 0), len(steps) - 1)]
