"""What a process keeps on local disk while the store is unreachable: metric rows and a final status.

Metric rows a writer cannot commit stay in memory up to a bound, then go to an append-only spool file in
the run's folder, ``metrics-spool-<pid>-<token>.jsonl``: one JSON array ``[name, step, value, wall_time]``
per line, each batch appended with one write and fsynced. A line cut short by a crash (no newline, or not
JSON) is skipped when the file is read. :func:`replay_spools` writes spooled rows to the store once each
(:func:`write_rows_once` skips rows whose ``(name, step)`` the run already has), then deletes the file.
A trainer that could not write its final status leaves ``status-note.json`` (:func:`write_status_note`).

Example::

    spool = Spool(store.run_dir(run_id), token="123-ab12cd")
    spool.append([("train/loss", 10, 0.5, time.time())])
    replay_spools(store, run_id, upto_step=1000)     # before resuming from the step-1000 checkpoint
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from . import schema as S

log = logging.getLogger(__name__)
SPOOL_GLOB = "metrics-spool-*.jsonl"
STATUS_NOTE = "status-note.json"
Row = tuple[str, int, float, float]  # name, step, value, wall_time


class Spool:
    """One writer's append-only spool file of metric rows (created on the first append)."""

    def __init__(self, folder: Path, token: str | None = None, path: Path | None = None):
        self.path = Path(path) if path is not None else Path(folder) / f"metrics-spool-{token}.jsonl"

    def append(self, rows: Sequence[Row]) -> None:
        """Append ``rows`` with one write, flushed and fsynced: a crash cuts at most the last line."""
        if not rows:
            return
        data = "".join(json.dumps([n, int(s), float(v), float(w)]) + "\n" for n, s, v, w in rows).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def exists(self) -> bool:
        return self.path.exists()

    def rows(self, skip: int = 0) -> Iterator[Row]:
        """The file's whole rows in order, after the first ``skip``; damaged lines are skipped (logged)."""
        if not self.path.exists():
            return
        n = 0
        with open(self.path, "rb") as f:
            for line in f:
                row = _parse(line)
                if row is None:
                    log.warning("skipping a damaged line in %s (a crash while it was written)", self.path.name)
                    continue
                n += 1
                if n > skip:
                    yield row

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _parse(line: bytes) -> Row | None:
    if not line.endswith(b"\n"):
        return None
    try:
        name, step, value, wall = json.loads(line)
        return str(name), int(step), float(value), float(wall)
    except (ValueError, TypeError):
        return None


def chunked(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_rows_once(store, run_id: str, rows: Sequence[Row], step: int | None = None) -> int:
    """Insert the ``rows`` whose ``(name, step)`` the run does not have yet, in one transaction.

    For a batch that may have been committed already (the connection dropped during its commit): writing
    it again adds nothing twice. Returns the number of rows inserted.
    """
    if not rows:
        return 0
    return store._insert_points(run_id, list(rows), step, once=True)


def spool_files(store, run_id: str) -> list[Path]:
    """Spool files left in the run's folder (oldest first)."""
    return sorted(store.run_dir(run_id).glob(SPOOL_GLOB), key=lambda p: p.stat().st_mtime)


def replay_spools(store, run_id: str, upto_step: int | None = None, exclude: Iterable[Path] = (),
                  chunk: int = 5000) -> int:
    """Write the rows of the run's spool files to the store (each once), then delete the files.

    ``upto_step``: only rows at or before it (a resume from a checkpoint supersedes later ones).
    Store errors propagate (the files stay for the next try). Returns the number of rows inserted.
    """
    skip = {Path(p) for p in exclude}
    n = 0
    for path in spool_files(store, run_id):
        if path in skip:
            continue
        spool = Spool(path.parent, path=path)
        rows = (r for r in spool.rows() if upto_step is None or r[1] <= upto_step)
        for batch in chunked(rows, chunk):
            n += write_rows_once(store, run_id, batch)
        spool.remove()
        log.info("replayed %s into the store (%d new rows)", path.name, n)
    return n


def write_status_note(run_dir: Path, status: str, error: str | None = None) -> Path:
    """Leave the final status a trainer could not write (the store was unreachable) for the next process."""
    path = Path(run_dir) / STATUS_NOTE
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps({"status": status, "error": error, "at": time.time(), "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def clear_status_note(run_dir: Path) -> None:
    """Forget a left status once the store has taken a newer one."""
    (Path(run_dir) / STATUS_NOTE).unlink(missing_ok=True)


def read_status_note(run_dir: Path) -> dict | None:
    """``{"status", "error", "at", "pid"}`` left by :func:`write_status_note`, or None."""
    try:
        note = json.loads((Path(run_dir) / STATUS_NOTE).read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and note.get("status") in S.STATUSES else None
