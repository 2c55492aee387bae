"""What every snapshot page (Hidden states, Kernels, Projections, Attention) does alike when it reads:
take the newest readable snapshot at or before a step, and turn a data-layer error into a message.

Example::

    snap, note = open_newest(rows, step, read=lambda row: store.open(row), empty="No snapshots yet.",
                             busy="The first snapshot is still being written.")
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from backend.analysis.cells import SelectionError
from backend.store import StoreError
from backend.store.hidden import SnapshotUnavailable

log = logging.getLogger(__name__)


class ViewError(ValueError):
    """Something the person can fix; the message says what and how."""


def open_newest(rows: list[dict], step: int | None, read: Callable[[dict], Any], empty: str, busy: str,
                say_nearest: bool = False) -> tuple[Any, str | None]:
    """``(read(row), note)`` for the newest of the snapshot ``rows`` (by step) at or before ``step``
    (newest when None; the first when all are later) whose files can be read; a snapshot still being
    written (SnapshotUnavailable) is skipped for the one before it and the note says so. ``say_nearest``:
    the note also says when there is no snapshot at ``step`` itself. ViewError ``empty`` when there are no
    rows, ``busy`` when none can be read yet. Shared by the Hidden states, Kernels and Projections readers."""
    if not rows:
        raise ViewError(empty)
    chosen = [s for s in rows if step is None or s["step"] <= step] or rows[:1]
    note = None
    if say_nearest and step is not None and chosen[-1]["step"] != step:
        note = f"No snapshot at step {step:,}; showing step {chosen[-1]['step']:,}, the nearest before it."
    for row in reversed(chosen):
        try:
            return read(row), note
        except SnapshotUnavailable as exc:
            note = f"{exc} Showing an earlier snapshot."
    raise ViewError(busy)


def view_error_message(exc: Exception) -> str:
    """A message for the page from an error of the data layer."""
    if isinstance(exc, (ViewError, StoreError, SelectionError)):
        return str(exc)
    log.exception("snapshot view failed")
    return f"Could not read this snapshot: {exc}"
