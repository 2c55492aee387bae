"""Scalar series: writing points, reading them by cursor or as whole series, and the schema-3 layout.

A ``series`` row names one metric of one run (integer id, ``t0``); each ``points`` row holds one value:
its autoincrement id (the live cursor, never reused), the series id, the step, the wall time as integer
milliseconds after the series' ``t0`` (read back as float seconds, within 1 ms) and the value (NaN and
inf kept). On SQLite a point costs ~42 bytes with its index where schema 2's ``scalars`` rows (run id and
name strings on every row) cost ~112 (``python bench/storage.py``). :func:`migrate_scalars` moves a
schema-2 store's rows into these tables when it is opened; a view keeps the name ``scalars`` for SQL
written against the old table.

Mixed into :class:`backend.store.RunStore`. Example::

    store.log_scalars(run_id, [("train/loss", 10, 0.5, time.time())], step=10)
    rows, cursor = store.scalars_after(run_id, cursor)     # [(id, name, step, wall_time, value)]
    series, cursor = store.scalar_series(run_id)           # {name: {"step", "value", "wall_time"}}
"""
from __future__ import annotations

import math
import time
from typing import Iterable, Sequence

import numpy as np
import sqlalchemy as sa

from . import schema as S

ScalarRow = tuple[str, int, float, float]  # name, step, value, wall_time
_NAN = float("nan")
_INSERT_POINTS = "INSERT INTO points (series_id, step, wall_ms, value) VALUES (?, ?, ?, ?)"
_POINT_KEYS = ("series_id", "step", "wall_ms", "value")
READ_CHUNK_STEPS = 65_536  # steps of a series per statement of a whole-series read ...
MAX_READ_CHUNKS = 64  # ... or wider ranges, so that sparse steps never cost thousands of statements


def _wall_ms(wall: float, t0: float) -> int | None:
    ms = (wall - t0) * 1000.0
    return round(ms) if math.isfinite(ms) and abs(ms) < 2.0**62 else None


class ScalarsMixin:
    """Scalar rows of runs (needs ``engine``; keeps a cache of series ids, which are never deleted)."""

    engine: sa.Engine
    _series_cache: dict[tuple[str, str], tuple[int, float]]

    # -- writing --------------------------------------------------------------
    def log_scalars(self, run_id: str, rows: Iterable[ScalarRow], step: int | None = None) -> int:
        """Append scalar rows ``(name, step, value, wall_time)`` in one transaction.

        Non-finite values are kept (a diverging loss is information) as NaN/inf.
        ``step`` also records the run's progress. Returns the number of rows.
        """
        rows = list(rows)
        return self._insert_points(run_id, rows, step, once=False)

    def _insert_points(self, run_id: str, rows: Sequence[ScalarRow], step: int | None, once: bool) -> int:
        """Insert ``rows`` in one transaction; with ``once``, only those whose ``(name, step)`` the run lacks."""
        ids = self._series_ids(run_id, rows) if rows else {}
        with self.engine.begin() as conn:
            if once and rows:
                have = self._have_steps(conn, ids, rows)
                rows = [r for r in rows if (r[0], int(r[1])) not in have]
            if rows:
                payload = [(ids[n][0], int(s), _wall_ms(float(w), ids[n][1]), float(v)) for n, s, v, w in rows]
                if self.engine.dialect.name == "sqlite":  # the DBAPI's executemany: no per-row dicts
                    conn.exec_driver_sql(_INSERT_POINTS, payload)
                else:  # SQLAlchemy batches the rows into multi-row INSERTs (psycopg2 sends one per row)
                    conn.execute(S.points.insert(), [dict(zip(_POINT_KEYS, r)) for r in payload])
            if step is not None:
                conn.execute(S.runs.update().where(S.runs.c.id == run_id).values(step=int(step), updated_at=time.time()))
        return len(rows)

    def _have_steps(self, conn: sa.Connection, ids: dict[str, tuple[int, float]], rows: Sequence[ScalarRow]) -> set:
        by_id = {sid: name for name, (sid, _t0) in ids.items()}
        lo, hi = min(int(r[1]) for r in rows), max(int(r[1]) for r in rows)
        p = S.points.c
        found = conn.execute(sa.select(p.series_id, p.step).where(
            p.series_id.in_(sorted(by_id)), p.step >= lo, p.step <= hi))
        return {(by_id[sid], int(s)) for sid, s in found}

    def _series_ids(self, run_id: str, rows: Sequence[ScalarRow]) -> dict[str, tuple[int, float]]:
        """``{name: (series id, t0)}`` for the names in ``rows``, creating the missing series (committed
        on their own, before any point refers to them, so the cache never holds a rolled-back id)."""
        names = {r[0] for r in rows}
        missing = [n for n in names if (run_id, n) not in self._series_cache]
        if missing:
            first = {}
            for n, _s, _v, w in rows:
                if n in missing and math.isfinite(float(w)):
                    first[n] = min(first.get(n, math.inf), math.floor(float(w)))
            with self.engine.begin() as conn:
                floor = conn.execute(sa.select(sa.func.max(S.points.c.id))).scalar() or 0
                new = [{"run_id": run_id, "name": n, "t0": float(first.get(n, 0.0)), "floor_id": int(floor)}
                       for n in missing]
                conn.execute(self._insert_ignore(S.series, ["run_id", "name"]), new)
            self._cache_series(run_id, missing)
        return {n: self._series_cache[(run_id, n)] for n in names}

    def _cache_series(self, run_id: str, names: Sequence[str] | None = None) -> None:
        c = S.series.c
        q = sa.select(c.id, c.name, c.t0).where(c.run_id == run_id)
        if names is not None:
            q = q.where(c.name.in_(sorted(names)))
        with self.engine.connect() as conn:
            for sid, name, t0 in conn.execute(q):
                self._series_cache[(run_id, name)] = (int(sid), float(t0))

    def _insert_ignore(self, table: sa.Table, keys: list[str]):
        """INSERT that skips rows whose unique ``keys`` exist (another process created the series first)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - other databases: a plain insert (a race raises IntegrityError)
            return table.insert()
        return insert(table).on_conflict_do_nothing(index_elements=keys)

    # -- reading --------------------------------------------------------------
    def _run_series(self, conn: sa.Connection, run_id: str) -> list[tuple[int, str, float, int]]:
        c = S.series.c
        return [(int(i), n, float(t), int(f)) for i, n, t, f in conn.execute(
            sa.select(c.id, c.name, c.t0, c.floor_id).where(c.run_id == run_id).order_by(c.id))]

    def scalars_after(self, run_id: str, cursor: int = 0, limit: int | None = None) -> tuple[list[tuple], int]:
        """Scalar rows logged after ``cursor``: ``([(id, name, step, wall_time, value)], new_cursor)``."""
        cursor = int(cursor)
        with self.engine.connect() as conn:
            series = self._run_series(conn, run_id)
            if not series:
                return [], cursor
            info = {sid: (name, t0) for sid, name, t0, _f in series}
            start = max(cursor, min(f for *_x, f in series))
            # a scan of ids after ``start``: ``+series_id`` keeps SQLite off the (series_id, step) index,
            # which would read the whole run to find the newest few points
            sql = (f"SELECT id, series_id, step, wall_ms, value FROM points WHERE id > ? "
                   f"AND +series_id IN ({', '.join(str(i) for i in info)}) ORDER BY id")
            if limit:
                sql += f" LIMIT {int(limit)}"
            raw = self._raw_rows(conn, sql, (start,))
        rows = []
        for i, sid, step, ms, v in raw:
            name, t0 = info[sid]
            rows.append((i, name, step, _NAN if ms is None else t0 + ms / 1000.0, _NAN if v is None else v))
        return rows, (rows[-1][0] if rows else cursor)

    def scalar_series(self, run_id: str, names: Iterable[str] | None = None) -> tuple[dict[str, dict[str, np.ndarray]], int]:
        """Whole series by name as numpy arrays (``step``, ``value``, ``wall_time``), sorted by step,
        and the cursor they end at. Indexed queries per series and step range, numeric columns only."""
        with self.engine.connect() as conn:
            # points committed after this are left to the live cursor: it neither repeats nor misses them
            top = conn.execute(sa.select(sa.func.max(S.points.c.id))).scalar() or 0
            series = self._run_series(conn, run_id)
            if not series:
                return {}, 0
            ids = ", ".join(str(s[0]) for s in series)
            cursor = self._raw_rows(conn, f"SELECT MAX(id) FROM points WHERE series_id IN ({ids}) AND +id <= ?",
                                    (top,))[0][0] or 0
            wanted = set(names) if names is not None else None
            out: dict[str, dict[str, np.ndarray]] = {}
            for sid, name, t0, _floor in sorted(series, key=lambda s: s[1]):
                if wanted is not None and name not in wanted:
                    continue
                rows = self._series_rows(conn, sid, top)
                if rows:
                    num = np.array(rows, dtype=np.float64)  # NULL (NaN in SQLite) -> nan
                    out[name] = {"step": num[:, 0].astype(np.int64), "wall_time": t0 + num[:, 1] / 1000.0,
                                 "value": num[:, 2]}
        if names is not None:
            order = list(dict.fromkeys(names))
            out = {n: out[n] for n in order if n in out}
        return out, int(cursor)

    def _series_rows(self, conn: sa.Connection, sid: int, top: int) -> list[tuple]:
        """``(step, wall_ms, value)`` of a series up to id ``top``, by step, one step range per statement.

        SQLite keeps a reader's snapshot for one statement and a checkpoint cannot empty the WAL while
        a snapshot needs it: one statement over a 1M-point series (seconds) let the WAL grow by all the
        trainer wrote meanwhile; ranges of ``READ_CHUNK_STEPS`` let it be emptied between them.
        """
        lo = self._raw_rows(conn, "SELECT MIN(step) FROM points WHERE series_id = ?", (sid,))[0][0]
        hi = self._raw_rows(conn, "SELECT MAX(step) FROM points WHERE series_id = ?", (sid,))[0][0]
        if lo is None:
            return []
        span = max(READ_CHUNK_STEPS, (int(hi) - int(lo)) // MAX_READ_CHUNKS + 1)
        rows: list[tuple] = []
        for start in range(int(lo), int(hi) + 1, span):
            rows += self._raw_rows(conn, "SELECT step, wall_ms, value FROM points WHERE series_id = ? "
                                   "AND step >= ? AND step < ? AND +id <= ? ORDER BY step",
                                   (sid, start, start + span, top))
        return rows

    def scalar_names(self, run_id: str) -> list[str]:
        """Names of the run's series that hold at least one point, sorted."""
        s, p = S.series.c, S.points.c
        has_points = sa.select(p.id).where(p.series_id == s.id).exists()
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.select(s.name).where(s.run_id == run_id, has_points)))

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.engine.dialect.paramstyle in ("format", "pyformat") else sql

    def _raw_rows(self, conn: sa.Connection, sql: str, params: tuple) -> list[tuple]:
        """Plain DBAPI tuples: SQLAlchemy's Row objects cost ~3x more for 100k-row numeric reads."""
        cur = conn.connection.cursor()
        try:
            cur.execute(self._sql(sql), params)
            return cur.fetchall()
        finally:
            cur.close()


# -- schema 2 -> 3 ------------------------------------------------------------
_COPY_SERIES = ("INSERT INTO series (run_id, name, t0, floor_id) "
                "SELECT run_id, name, MIN(wall_time), 0 FROM scalars GROUP BY run_id, name")
_COPY_POINTS = ("INSERT INTO points (id, series_id, step, wall_ms, value) "
                "SELECT c.id, s.id, c.step, CAST(ROUND((c.wall_time - s.t0) * 1000) AS BIGINT), c.value "
                "FROM scalars c JOIN series s ON s.run_id = c.run_id AND s.name = c.name ORDER BY c.id")


def scalars_layout(engine: sa.Engine) -> str:
    """``table`` (schema 2, to migrate), ``view`` (schema 3) or ``none`` (being created)."""
    if engine.dialect.name == "sqlite":
        sql = "SELECT type FROM sqlite_master WHERE name = 'scalars'"
    else:  # one query where SQLAlchemy's inspector asks several (this runs on every open)
        sql = ("SELECT CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END FROM information_schema.tables "
               "WHERE table_name = 'scalars' AND table_schema = current_schema()")
    with engine.connect() as conn:
        kind = conn.exec_driver_sql(sql).scalar()
    return {"table": "table", "view": "view"}.get(kind or "", "none")


def migrate_scalars(engine: sa.Engine) -> int:
    """Move schema 2's ``scalars`` rows into ``series`` + ``points`` in one transaction (ids kept, the id
    sequence never goes back), drop the table and leave the ``scalars`` view; returns the rows moved.

    Safe to race: a process that loses finds the view and moves nothing."""
    layout = scalars_layout(engine)
    if layout == "view":
        return 0
    try:
        with engine.begin() as conn:
            moved = 0
            if layout == "table":
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("LOCK TABLE scalars IN ACCESS EXCLUSIVE MODE")
                conn.exec_driver_sql(_COPY_SERIES)
                moved = conn.exec_driver_sql(_COPY_POINTS).rowcount
                _keep_sequence(conn)
                conn.exec_driver_sql("DROP TABLE scalars")
            conn.exec_driver_sql(S.SCALARS_VIEW)
        return int(moved)
    except sa.exc.DBAPIError:
        if scalars_layout(engine) == "view":  # another process migrated (or created the view) first
            return 0
        raise


def _keep_sequence(conn: sa.Connection) -> None:
    """The next point id stays above every id schema 2 ever gave (a resume may have deleted the newest)."""
    if conn.dialect.name == "sqlite":
        old = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'scalars'").scalar() or 0
        top = max(int(old), int(conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM points").scalar()))
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name IN ('points', 'scalars')")
        conn.exec_driver_sql(f"INSERT INTO sqlite_sequence (name, seq) VALUES ('points', {top})")
    elif conn.dialect.name == "postgresql":
        seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence('scalars', 'id')").scalar()
        old = conn.exec_driver_sql(f"SELECT last_value FROM {seq}").scalar() if seq else 0
        top = max(int(old or 0), int(conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM points").scalar()), 1)
        conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('points', 'id'), {top})")
