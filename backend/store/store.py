"""The run store: the one contract between training and the UI.

Rows (runs, scalar series, control requests, the snapshot index) live in a SQL
database through SQLAlchemy Core: a SQLite file in WAL mode by default, any
SQLAlchemy URL otherwise. Arrays live in immutable ``.npy`` files under the
data folder (see :mod:`backend.store.arrays`). One writer (a trainer) and many
readers (dashboard workers) may use the same store at once.

Example::

    store = RunStore("./deepscope-data")
    run_id = store.create_run("my run", "digits-cnn", {"lr": 0.01})
    store.log_scalars(run_id, [("train/loss", 1, 2.3, time.time())])
    rows, cursor = store.scalars_after(run_id, cursor=0)
"""
from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import sqlalchemy as sa

from . import schema as S
from .arrays import read_array, write_array
from .lifecycle import LifecycleMixin
from .scalars import ScalarsMixin, migrate_scalars

CONTROL_LOCK_TIMEOUT_MS = 200
# The WAL file is cut back to this size whenever a checkpoint empties it (SQLite's default keeps it at
# its largest, up to tens of MB while a run writes and a dashboard reads); bench/storage.py measures it.
WAL_SIZE_LIMIT = 4 * 2**20


class StoreError(RuntimeError):
    """A request the store cannot honour (unknown run, bad status, newer schema)."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.close()


SCHEMA_LOCK_KEY = 0x6465_6570_7363  # pg_advisory_lock key of schema creation and migration ("deepsc")


class RunStore(ScalarsMixin, LifecycleMixin):
    """Runs, scalars, controls and snapshots of one data folder.

    ``data_dir`` holds the array files (and the SQLite file unless ``url`` names
    another database, e.g. ``postgresql://...``).
    """

    def __init__(self, data_dir: str | Path, url: str | None = None):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{self.data_dir / 'deepscope.sqlite'}"
        if self.url.startswith("sqlite"):
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self._probe: sqlite3.Connection | None = None
        self._series_cache: dict[tuple[str, str], tuple[int, float]] = {}
        self._init_schema()

    # -- schema -------------------------------------------------------------
    def _init_schema(self) -> None:
        """Create or migrate the tables. On PostgreSQL under an advisory lock: processes starting together
        on an empty database (compose's first ``up``: 4 gunicorn workers, the agent, the worker) raced in
        ``CREATE TABLE`` (4-7 of 30 failed with duplicate ``pg_type`` rows or "relation already exists")."""
        if self.engine.dialect.name != "postgresql":
            self._create_and_migrate()
            return
        with self.engine.connect() as lock:
            lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                self._create_and_migrate()
            finally:
                lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})

    def _create_and_migrate(self) -> None:
        try:
            S.metadata.create_all(self.engine)
        except sa.exc.OperationalError as exc:  # another process created it first
            if "already exists" not in str(exc):
                raise
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).first()
            if row is None:
                try:
                    conn.execute(S.meta.insert().values(key="schema_version", value=str(S.SCHEMA_VERSION)))
                except sa.exc.IntegrityError:
                    pass
            elif int(row.value) > S.SCHEMA_VERSION:
                raise StoreError(
                    f"this store was written by a newer deepscope (schema {row.value}, "
                    f"this version reads up to {S.SCHEMA_VERSION}); upgrade deepscope"
                )
            old = row is not None and int(row.value) < S.SCHEMA_VERSION
        if old:
            self._migrate_runs()
        migrate_scalars(self.engine)  # schema 2's table -> series + points; else makes sure of the view
        if old:
            with self.engine.begin() as conn:
                conn.execute(S.meta.update().where(S.meta.c.key == "schema_version").values(
                    value=str(S.SCHEMA_VERSION)))

    def run_dir(self, run_id: str) -> Path:
        """Folder of a run's files (arrays, checkpoints, logs)."""
        return self.data_dir / "runs" / run_id

    # -- runs ---------------------------------------------------------------
    def create_run(self, name: str, task: str, spec: Mapping[str, Any], source: str = "builtin",
                   status: str = "queued", run_id: str | None = None) -> str:
        """Create a run row and its folder; return the new run id."""
        run_id = run_id or uuid.uuid4().hex[:10]
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(S.runs.insert().values(
                id=run_id, name=name, task=task, spec=dict(spec), status=status, created_at=now,
                updated_at=now, step=0, source=source, schema_version=S.RECORD_VERSION))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def get_run(self, run_id: str) -> dict | None:
        """The run's row as a dict, or None when there is no such run."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(S.runs).where(S.runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None

    def require_run(self, run_id: str) -> dict:
        run = self.get_run(run_id)
        if run is None:
            raise StoreError(f"no run with id {run_id!r}")
        return run

    def list_runs(self) -> list[dict]:
        """All runs, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(S.runs).order_by(S.runs.c.created_at.desc())).mappings().all()
        return [dict(r) for r in rows]

    def set_status(self, run_id: str, status: str, error: str | None = None, pid: int | None = None) -> None:
        """Move a run to ``status``; ``error`` keeps the traceback of a failed run."""
        if status not in S.STATUSES:
            raise StoreError(f"unknown status {status!r}; expected one of {', '.join(S.STATUSES)}")
        values: dict[str, Any] = {"status": status, "updated_at": time.time()}
        if error is not None:
            values["error"] = error
        if pid is not None:
            values["pid"], values["host"] = pid, socket.gethostname()
        with self.engine.begin() as conn:
            n = conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(**values)).rowcount
        if n == 0:
            raise StoreError(f"no run with id {run_id!r}")

    def set_pid(self, run_id: str, pid: int) -> None:
        """Record the trainer process of a run (without touching its status)."""
        with self.engine.begin() as conn:
            conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(pid=pid, host=socket.gethostname()))

    def clear_pid(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(pid=None, host=None))

    def claim_queued(self) -> dict | None:
        """Atomically take one queued run that no process has claimed (for a launcher agent)."""
        with self.engine.begin() as conn:
            for row in conn.execute(sa.select(S.runs.c.id).where(
                    S.runs.c.status == "queued", S.runs.c.pid.is_(None)).order_by(S.runs.c.created_at)):
                claimed = conn.execute(S.runs.update().where(S.runs.c.id == row.id, S.runs.c.pid.is_(None)).values(
                    pid=-1, host=socket.gethostname(), updated_at=time.time())).rowcount
                if claimed:
                    return self.get_run(row.id)
        return None

    def update_spec(self, run_id: str, spec: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(spec=dict(spec), updated_at=time.time()))

    # -- controls -----------------------------------------------------------
    def request_control(self, run_id: str, kind: str, value: float | None = None) -> int:
        """Ask a live run to pause, resume, stop or change its learning rate (``set_lr``, value)."""
        if kind not in S.CONTROL_KINDS:
            raise StoreError(f"unknown control {kind!r}; expected one of {', '.join(S.CONTROL_KINDS)}")
        if kind == "set_lr" and (value is None or not np.isfinite(value) or value <= 0 or value > 10):
            raise StoreError("learning rate must be a number in (0, 10]")
        run = self.require_run(run_id)
        if run["status"] in S.FINAL_STATUSES:
            raise StoreError(f"run {run_id} has already {run['status']}; controls apply to live runs only")
        with self.engine.begin() as conn:
            res = conn.execute(S.controls.insert().values(run_id=run_id, kind=kind, value=value, created_at=time.time()))
        return int(res.inserted_primary_key[0])

    def has_pending_controls(self, run_id: str) -> bool:
        """Cheap per-step check for unhandled control requests (trainers call it every step).

        On SQLite it uses a held autocommit ``sqlite3`` connection: ~60 us where the
        SQLAlchemy query costs ~0.8 ms right after a training step (bench/overhead.py).
        """
        if not self.url.startswith("sqlite:///"):
            return bool(self.pending_controls(run_id))
        if self._probe is None:
            self._probe = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None,
                                          timeout=30, check_same_thread=False)
        row = self._probe.execute(
            "SELECT 1 FROM controls WHERE run_id = ? AND handled_at IS NULL LIMIT 1", (run_id,)).fetchone()
        return row is not None

    def pending_controls(self, run_id: str) -> list[dict]:
        """Unhandled control requests, oldest first.

        Trainers ask between steps; on PostgreSQL a locked table would hold the step for as long as the
        lock, so the query gives up after ``CONTROL_LOCK_TIMEOUT_MS`` (an error the trainer treats as a
        store outage: it keeps training and asks again later).
        """
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {CONTROL_LOCK_TIMEOUT_MS}")
            rows = conn.execute(sa.select(S.controls).where(
                S.controls.c.run_id == run_id, S.controls.c.handled_at.is_(None)).order_by(S.controls.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def mark_handled(self, control_ids: Iterable[int]) -> None:
        ids = list(control_ids)
        if ids:
            with self.engine.begin() as conn:
                conn.execute(S.controls.update().where(S.controls.c.id.in_(ids)).values(handled_at=time.time()))

    # -- snapshots ----------------------------------------------------------
    def add_snapshot(self, run_id: str, kind: str, step: int, arrays: Mapping[str, np.ndarray],
                     meta: Mapping[str, Any] | None = None) -> int:
        """Write ``arrays`` as immutable files, then index them; return the snapshot id.

        The row is inserted only after every file is complete, so a reader that
        finds the row always finds whole files.
        """
        rel: dict[str, str] = {}
        stamp = uuid.uuid4().hex[:6]
        for name, arr in arrays.items():
            path = Path("runs") / run_id / "snapshots" / kind / f"{int(step):09d}-{stamp}-{name}.npy"
            write_array(self.data_dir / path, np.asarray(arr))
            rel[name] = str(path)
        with self.engine.begin() as conn:
            res = conn.execute(S.snapshots.insert().values(
                run_id=run_id, kind=kind, step=int(step), wall_time=time.time(), arrays=rel,
                meta=dict(meta or {}), schema_version=S.RECORD_VERSION))
        return int(res.inserted_primary_key[0])

    def list_snapshots(self, run_id: str, kind: str | None = None) -> list[dict]:
        """Snapshot index rows of a run (optionally of one kind), by step."""
        q = sa.select(S.snapshots).where(S.snapshots.c.run_id == run_id)
        if kind is not None:
            q = q.where(S.snapshots.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(S.snapshots.c.step, S.snapshots.c.id)).mappings()]

    def load_arrays(self, snapshot: Mapping[str, Any], mmap: bool = True) -> dict[str, np.ndarray]:
        """The arrays of a snapshot row, memory-mapped."""
        if int(snapshot.get("schema_version", 1)) > S.RECORD_VERSION:
            raise StoreError("snapshot written by a newer deepscope; upgrade to read it")
        return {k: read_array(self.data_dir / p, mmap=mmap) for k, p in snapshot["arrays"].items()}
