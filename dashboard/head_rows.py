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
WINDOW_S = 3.0       # a head carries the rows of its refreshes this recent (> a stream's tick + a head's age)
WINDOW_ROWS = 2000   # and at most about this many rows
TAIL_S = 20.0        # a process keeps the rows of the heads it saw this long (a page back from a pause)
TAIL_ROWS = 20_000   # and at most about this many rows per run


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


def build_head(prev: dict | None, run: dict, rows: list[tuple], start: int, cursor: int, now: float,
               samples: str | None, samples_at: float) -> dict:
    """A run's head after ``prev``: ``rows`` (store rows ``(id, name, step, wall_time, value)``) after the cursor
    ``start`` up to ``cursor``, read at ``now``. It carries the rows of its last :data:`WINDOW_S` seconds of
    refreshes, so a page that polled any time in that window finds what it lacks in the head."""
    marks = [m for m in ((prev or {}).get("marks") or []) if m[0] >= now - WINDOW_S] + [[now, start]]
    if attempt(prev) != attempt({"run": run}):
        marks = [[now, start]]
    window = rows_after(columns(rows, (prev or {}).get("rows") if len(marks) > 1 else None), marks[0][1])
    while len(marks) > 1 and len(window["id"]) > WINDOW_ROWS:  # a fast logger: a shorter window
        marks.pop(0)
        window = rows_after(window, marks[0][1])
    return {"at": now, "run": run, "cursor": cursor, "marks": marks, "rows": window,
            "samples": samples, "samples_at": samples_at}


def extended_tail(tail: dict | None, head: dict, now: float) -> dict | None:
    """A run's tail (the rows of the heads a process saw in the last :data:`TAIL_S` seconds) with ``head``'s new
    rows added (in place, when it joins), or None when the head has nothing newer. Consecutive heads overlap
    (each carries its last WINDOW_S seconds), so the tail stays gapless; a head that does not join it starts
    it anew."""
    if tail is not None and tail["to"] >= head["cursor"] and tail["attempt"] == attempt(head):
        return None  # nothing newer than what the tail holds
    start = head["marks"][0][1]
    if tail is None or tail["attempt"] != attempt(head) or start > tail["to"]:
        tail = {"from": start, "to": start, "attempt": attempt(head), "marks": [],
                "cols": {k: [] for k in ("id", "name", "step", "value")}}
    new = rows_after(head["rows"], tail["to"])
    for k, v in new.items():
        tail["cols"][k].extend(v)
    tail["marks"].append([now, tail["to"]])
    tail["to"] = head["cursor"]
    # trimmed once it is a quarter over its bounds, not at every head: a trim copies the tail
    if tail["marks"] and (tail["marks"][0][0] < now - 1.25 * TAIL_S
                          or len(tail["cols"]["id"]) > 1.25 * TAIL_ROWS):
        while len(tail["marks"]) > 1 and (tail["marks"][0][0] < now - TAIL_S
                                          or len(tail["cols"]["id"]) > TAIL_ROWS):
            _t, tail["from"] = tail["marks"].pop(0)
            tail["cols"] = rows_after(tail["cols"], tail["from"])
    return tail


def tail_window(tail: dict | None, cursor: int, head_cursor: int) -> dict[str, list] | None:
    """The tail's rows in ``(cursor, head_cursor]`` as columns, or None when it does not reach back to
    ``cursor`` or on to ``head_cursor``."""
    if tail is None or not tail["from"] <= cursor < head_cursor <= tail["to"]:
        return None
    cols = tail["cols"]
    lo, hi = bisect.bisect_right(cols["id"], cursor), bisect.bisect_right(cols["id"], head_cursor)
    return {k: v[lo:hi] for k, v in cols.items()}
