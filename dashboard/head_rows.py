"""The rows and stamps of run heads (:mod:`dashboard.live_heads`): columns of scalar rows, what a head
shares with other dashboard workers through the cache (:func:`stamp_of`), and the checks a value read back from
the cache must pass before it is used (:func:`well_formed`, :func:`delta_fits`: whoever can write the cache is
trusted with data, not with crashes).

    >>> rows_after({"id": [3, 5, 8], "name": ["a", "a", "b"], "step": [1, 2, 2], "value": [0.5, 0.25, 1.0]}, 4)
    {'id': [5, 8], 'name': ['a', 'b'], 'step': [2, 2], 'value': [0.25, 1.0]}
"""
from __future__ import annotations

import bisect
import operator
from typing import Any

DELTA_ROWS = 2000  # a stamp carries the rows of its refresh up to this many (more: the others read them)
NUMBERS = frozenset({float, int, type(None)})  # what a scalar's value may be in a stamp's rows


def is_stamp(key: str) -> bool:
    """Whether ``key`` is a run's head, shared between workers as a stamp (see :func:`stamp_of`)."""
    return key.startswith("head:") and key != "head:runs"


def stamp_of(head: dict) -> dict:
    """What other workers get of a run's head: the run row, cursor and sample signature, and the rows of its
    newest refresh (``from``: the cursor it started at, ``delta``: its rows, when at most :data:`DELTA_ROWS`),
    not its window.

    Measured with live streams under gunicorn (4 workers, Redis): exchanging whole heads (their last 3 s of
    rows, JSON both ways) was over half of the workers' CPU. A worker whose own head is at a stamp's cursor
    takes the stamp without touching the store, one at its ``from`` takes its rows; one further behind reads
    the rows it lacks (one indexed query)."""
    out = {k: v for k, v in head.items() if k not in ("rows", "marks", "from", "delta")}
    marks, rows = head.get("marks"), head.get("rows")
    if head.get("run") and marks and isinstance(rows, dict):
        start = marks[-1][1]
        delta = rows_after(rows, start)
        if len(delta["id"]) <= DELTA_ROWS:
            out["from"], out["delta"] = start, delta
    return out


def delta_fits(delta: Any, lo: int, hi: int) -> bool:
    """Whether a stamp's ``delta`` (from the cache: checked, never trusted) is the columns of rows with ids
    ascending in ``(lo, hi]``, ending at ``hi``, each with a name, a whole step and a number or None."""
    if not (isinstance(delta, dict) and all(isinstance(delta.get(k), list) for k in ("id", "name", "step", "value"))):
        return False
    ids, names, steps, values = delta["id"], delta["name"], delta["step"], delta["value"]
    if not ids or not len(ids) == len(names) == len(steps) == len(values) or ids[-1] != hi:
        return False
    return (set(map(type, ids)) == {int} and ids[0] > lo and all(map(operator.lt, ids, ids[1:]))
            and set(map(type, names)) == {str} and set(map(type, steps)) == {int}
            and NUMBERS.issuperset(map(type, values)))


def well_formed(value: Any) -> bool:
    """Whether a cached value has the shape this module writes (a head's stamp, a run-list head, sample rows)."""
    if not (isinstance(value, dict) and isinstance(value.get("at"), (int, float))):
        return False
    if not value.get("run"):
        return True
    return (isinstance(value["run"], dict) and isinstance(value.get("cursor"), int) and not isinstance(value["cursor"], bool)
            and isinstance(value.get("samples_at", 0.0), (int, float)) and isinstance(value.get("samples"), (str, type(None))))


def attempt(head: dict | None) -> int:
    return int(((head or {}).get("run") or {}).get("attempt") or 0)


def columns(rows: list[tuple], before: dict | None) -> dict[str, list]:
    """Store rows ``(id, name, step, wall_time, value)`` after the window ``before`` as columns (plain lists:
    the cache's serializer stores them ~5x faster than a list of rows)."""
    before = before if isinstance(before, dict) else {}
    out = {k: list(before.get(k) or []) for k in ("id", "name", "step", "value")}
    if len({len(v) for v in out.values()}) != 1:  # not a window this module wrote
        out = {k: [] for k in out}
    if rows:
        ids, names, steps, _walls, values = zip(*rows)
        for k, col in zip(("id", "name", "step", "value"), (ids, names, steps, values)):
            out[k].extend(col)
    return out


def rows_after(window: dict[str, list], cursor: int) -> dict[str, list]:
    """The rows of a window with ids after ``cursor`` (ids ascend)."""
    start = bisect.bisect_right(window["id"], cursor)
    return {k: v[start:] for k, v in window.items()}


def zipped(window: dict[str, list]) -> list[tuple]:
    """Window columns as store rows ``(id, name, step, wall_time, value)`` (the id stands in for the time)."""
    return list(zip(window["id"], window["name"], window["step"], window["id"], window["value"]))


def grouped(rows: list[tuple]) -> dict[str, dict[str, list]]:
    from dashboard.data import group_rows  # data imports this module

    return group_rows(rows)


def plain(row: dict) -> dict:
    """A store row as plain JSON types (the cache stores nothing else)."""
    return {str(k): v for k, v in row.items()}
