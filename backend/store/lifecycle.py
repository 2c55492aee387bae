"""Run liveness, resumes and leases: the parts of the store that keep failures visible and repairable.

Mixed into :class:`backend.store.RunStore`:

- a live trainer (or client script) calls :meth:`heartbeat` every few seconds; a run whose
  heartbeat is stale and whose process is gone is marked :meth:`mark_interrupted`;
- resuming from a checkpoint at step S calls :meth:`supersede_after`: what the run logged after S
  (scalars, snapshots of every kind and their files) is deleted and the resume is recorded, so
  curves never run backwards and the charts can mark where it resumed;
- :meth:`acquire_lease` gives one process per store a role (the analysis worker), taken over by
  another once the holder stops renewing it.

Example::

    store.heartbeat(run_id)
    store.supersede_after(run_id, 1000)            # before the resumed run logs step 1010 again
    if store.acquire_lease("analysis", me, ttl=20): ...
"""
from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from . import schema as S

log = logging.getLogger(__name__)


class LifecycleMixin:
    """Heartbeats, interruption, supersession on resume and leases (needs ``engine`` and ``data_dir``)."""

    engine: sa.Engine

    def _migrate_runs(self) -> None:
        """Add the columns of schema 2 to a store written by schema 1 (idempotent)."""
        have = {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}
        for name, sql_type in S.RUN_COLUMNS_V2.items():
            if name in have:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}"))
            except sa.exc.DBAPIError as exc:  # another process added it first
                if "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                    raise

    def heartbeat(self, run_id: str, now: float | None = None) -> None:
        """Record that the run's process is alive (cheap: one indexed UPDATE)."""
        with self.engine.begin() as conn:
            conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(heartbeat_at=now or time.time()))

    def mark_interrupted(self, run_id: str, reason: str, only_if_active: bool = True) -> bool:
        """Set ``interrupted`` with ``reason`` (shown as the run's error); False if it had already ended."""
        q = S.runs.update().where(S.runs.c.id == run_id)
        if only_if_active:
            q = q.where(S.runs.c.status.in_(sorted(S.ACTIVE_STATUSES)))
        with self.engine.begin() as conn:
            n = conn.execute(q.values(status="interrupted", error=reason, updated_at=time.time())).rowcount
        return bool(n)

    def supersede_after(self, run_id: str, step: int) -> dict[str, int]:
        """Delete what ``run_id`` logged after ``step`` and record a resume from it; returns counts.

        Rows go first (in one transaction), then their files, so a reader never finds a row whose
        files are gone. Returns ``{"scalars": n, "snapshots": m}``.
        """
        step = int(step)
        with self.engine.begin() as conn:
            snaps = conn.execute(sa.select(S.snapshots.c.arrays).where(
                S.snapshots.c.run_id == run_id, S.snapshots.c.step > step)).all()
            run_series = sa.select(S.series.c.id).where(S.series.c.run_id == run_id).scalar_subquery()
            n_scalars = conn.execute(S.points.delete().where(
                S.points.c.series_id.in_(run_series), S.points.c.step > step)).rowcount
            n_snaps = conn.execute(S.snapshots.delete().where(
                S.snapshots.c.run_id == run_id, S.snapshots.c.step > step)).rowcount
            run = conn.execute(sa.select(S.runs.c.attempt, S.runs.c.resumes).where(S.runs.c.id == run_id)).first()
            attempt = int((run.attempt if run else 0) or 0) + 1
            resumes: list[Any] = list((run.resumes if run else None) or [])
            resumes.append({"step": step, "at": time.time(), "attempt": attempt})
            conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(
                attempt=attempt, resumes=resumes, step=step, updated_at=time.time()))
        for (arrays,) in snaps:
            for rel in (arrays or {}).values():
                try:
                    (self.data_dir / rel).unlink(missing_ok=True)  # type: ignore[attr-defined]
                except OSError as exc:
                    log.warning("could not delete superseded %s: %s", rel, exc)
        return {"scalars": int(n_scalars), "snapshots": int(n_snaps)}

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease ``name`` for ``ttl`` seconds; True when ``holder`` has it now."""
        now = time.time()
        with self.engine.begin() as conn:
            took = conn.execute(S.leases.update().where(
                S.leases.c.name == name, sa.or_(S.leases.c.holder == holder, S.leases.c.expires_at < now)
            ).values(holder=holder, expires_at=now + ttl)).rowcount
        if took:
            return True
        try:  # its own transaction: a failed insert must not abort the one above (PostgreSQL)
            with self.engine.begin() as conn:
                conn.execute(S.leases.insert().values(name=name, holder=holder, expires_at=now + ttl))
        except sa.exc.IntegrityError:
            return False  # someone else took it first
        return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once (a clean exit), so another process need not wait for it to expire."""
        with self.engine.begin() as conn:
            conn.execute(S.leases.delete().where(S.leases.c.name == name, S.leases.c.holder == holder))
