"""What ``bench/faults.py`` checks after each fault, and how it breaks the store and the cache.

- :func:`integrity` (SQLite ``PRAGMA integrity_check``), :func:`series_report` (every run readable; each
  metric strictly increasing in step in commit order, no duplicates, no step of its cadence missing
  outside the allowed gaps), :func:`stuck_runs` (active runs whose process is gone, after the liveness
  threshold);
- :class:`StoreLock` holds the store locked (SQLite ``BEGIN EXCLUSIVE``; PostgreSQL ``LOCK TABLE ...
  IN ACCESS EXCLUSIVE MODE``) in a thread for a while; :class:`BrokenCache` replaces the dashboards'
  cache folder by a regular file;
- :func:`lease_holder`: who holds the store's ``analysis`` lease (``host:pid:token``).
"""
from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from backend.store import ACTIVE_STATUSES, RunStore

from _faults_procs import alive

PG_TABLES = "scalars, runs, controls, snapshots"


def integrity(store: RunStore) -> str:
    """``ok``, or what SQLite's integrity check found; ``skipped`` on other databases."""
    if not store.url.startswith("sqlite"):
        return "skipped"
    path = store.url.split("///", 1)[1]
    conn = sqlite3.connect(path, timeout=60)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "ok" if rows == [("ok",)] else "; ".join(r[0] for r in rows[:5])


def cadence(name: str, log_every: int, eval_every: int) -> int:
    return eval_every if name.startswith("val/") else log_every


def series_report(store: RunStore, run_id: str, log_every: int, eval_every: int,
                  gaps: list[tuple[int, int]]) -> dict:
    """Every metric of ``run_id`` read in commit order: duplicates, steps going back, steps missing.

    A step of a metric's cadence up to the series' last step that is absent counts in ``missing_allowed``
    when it lies in one of ``gaps`` (``(checkpoint step, step at the kill]``), else in ``lost``.
    """
    run = store.get_run(run_id)
    series, _cursor = store.scalar_series(run_id)  # must read; its arrays sort by id
    rows, _ = store.scalars_after(run_id, 0)
    by_name: dict[str, list[int]] = {}
    for _id, name, step, _wall, _value in rows:
        by_name.setdefault(name, []).append(int(step))
    report = {"status": run["status"] if run else None, "rows": len(rows), "duplicates": 0, "backwards": 0,
              "lost": 0, "missing_allowed": 0, "lost_steps": {}, "last_step": 0}
    for name, steps in by_name.items():
        report["duplicates"] += len(steps) - len(set(steps))
        report["backwards"] += sum(1 for a, b in zip(steps, steps[1:]) if b <= a)
        every = cadence(name, log_every, eval_every)
        have, top = set(steps), max(steps)
        report["last_step"] = max(report["last_step"], top)
        missing = [s for s in range(every, top + 1, every) if s not in have]
        allowed = [s for s in missing if any(lo < s <= hi for lo, hi in gaps)]
        report["missing_allowed"] += len(allowed)
        lost = sorted(set(missing) - set(allowed))
        report["lost"] += len(lost)
        if lost:
            report["lost_steps"][name] = lost[:12]
    if set(series) != set(by_name):
        report["series_mismatch"] = sorted(set(series) ^ set(by_name))
    return report


def training_stall(store: RunStore, run_id: str, t0: float, t1: float, name: str = "train/loss") -> float:
    """The longest time (wall clock) between two logged ``name`` rows of ``run_id`` around ``[t0, t1]``:
    how long its training stood still while the store was away (the log period when it did not)."""
    series, _ = store.scalar_series(run_id, [name])
    walls = sorted(series[name]["wall_time"].tolist()) if name in series else []
    before = [w for w in walls if w < t0][-1:]
    inside = [w for w in walls if t0 <= w <= t1]
    after = [w for w in walls if w > t1][:1]
    points = before + inside + after
    if len(points) < 2:
        return t1 - t0
    return max(b - a for a, b in zip(points, points[1:]))


def snapshot_report(store: RunStore, run_id: str) -> dict:
    """Snapshots of the run: duplicates of (kind, step), and ones whose files cannot be read."""
    snaps = store.list_snapshots(run_id)
    keys = [(s["kind"], s["step"]) for s in snaps]
    unreadable = 0
    for snap in snaps:
        try:
            store.load_arrays(snap)
        except Exception:  # noqa: BLE001 - any failure to read counts
            unreadable += 1
    return {"snapshots": len(snaps), "duplicate_snapshots": len(keys) - len(set(keys)), "unreadable": unreadable}


def stuck_runs(store: RunStore, run_ids: list[str], wait_s: float) -> list[str]:
    """Runs still active whose process is gone after waiting up to ``wait_s`` for them to be marked."""
    deadline = time.monotonic() + wait_s
    while True:
        stuck = []
        for rid in run_ids:
            run = store.get_run(rid)
            if run is None or run["status"] not in ACTIVE_STATUSES:
                continue
            if run["status"] == "queued" and (run.get("pid") or 0) <= 0:
                continue  # waiting for the agent to claim or start it
            if not alive(run.get("pid")):
                stuck.append(rid)
        if not stuck or time.monotonic() >= deadline:
            return stuck
        time.sleep(1.0)


def lease_holder(store: RunStore, name: str = "analysis") -> tuple[str | None, float | None]:
    """``(holder, expires_at)`` of lease ``name``, or ``(None, None)``."""
    from backend.store import schema as S

    with store.engine.connect() as conn:
        row = conn.execute(sa.select(S.leases.c.holder, S.leases.c.expires_at).where(S.leases.c.name == name)).first()
    return (row.holder, row.expires_at) if row else (None, None)


def holder_pid(holder: str | None) -> int | None:
    try:
        return int(str(holder).split(":")[1])
    except (IndexError, ValueError):
        return None


class StoreLock(threading.Thread):
    """Holds the store locked for ``seconds``: no other process can write (SQLite) or touch these tables
    at all (PostgreSQL), as during a database restart or a long migration."""

    def __init__(self, store: RunStore, seconds: float):
        super().__init__(name="faults-store-lock", daemon=True)
        self.store, self.seconds = store, seconds
        self.locked = threading.Event()
        self.released_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            if self.store.url.startswith("sqlite"):
                self._sqlite()
            else:
                self._postgres()
        except Exception as exc:  # noqa: BLE001 - reported by the bench
            self.error = f"{type(exc).__name__}: {exc}"
            self.locked.set()

    def _sqlite(self) -> None:
        conn = sqlite3.connect(self.store.url.split("///", 1)[1], timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.locked.set()
            time.sleep(self.seconds)
            conn.execute("COMMIT")
        finally:
            self.released_at = time.monotonic()
            conn.close()

    def _postgres(self) -> None:
        engine = sa.create_engine(self.store.url)
        try:
            with engine.connect() as conn:
                tx = conn.begin()
                conn.execute(sa.text(f"LOCK TABLE {PG_TABLES} IN ACCESS EXCLUSIVE MODE"))
                self.locked.set()
                time.sleep(self.seconds)
                tx.commit()
        finally:
            self.released_at = time.monotonic()
            engine.dispose()


class BrokenCache:
    """The dashboards' file cache (``<data>/cache``) replaced by a regular file, then put back."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "cache"
        self.aside = data_dir / "cache.faults-aside"

    def __enter__(self) -> "BrokenCache":
        if self.path.is_dir():
            self.path.rename(self.aside)
        self.path.write_text("not a folder: the cache is broken on purpose\n")
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
        if self.aside.is_dir():
            self.aside.rename(self.path)
        elif self.aside.exists():
            shutil.rmtree(self.aside, ignore_errors=True)
