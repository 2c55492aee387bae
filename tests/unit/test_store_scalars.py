"""Schema 3's scalar layout (series + points): round trips, the cursor, and the migration of a schema-2 store."""
from __future__ import annotations

import math
import os
import sqlite3
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from backend.store import RunStore, SCHEMA_VERSION, StoreError
from backend.store.spool import write_rows_once

# schema 2's table as SQLAlchemy created it (backend/store/schema.py before schema 3)
OLD_SCALARS_SQLITE = (
    "CREATE TABLE scalars (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, run_id VARCHAR(32) NOT NULL, "
    "name VARCHAR(128) NOT NULL, step INTEGER NOT NULL, wall_time FLOAT NOT NULL, value FLOAT, "
    "FOREIGN KEY(run_id) REFERENCES runs (id))",
    "CREATE INDEX ix_scalars_run_id_id ON scalars (run_id, id)",
    "CREATE INDEX ix_scalars_run_name_step ON scalars (run_id, name, step)",
)
OLD_SCALARS_PG = (
    "CREATE TABLE scalars (id SERIAL NOT NULL, run_id VARCHAR(32) NOT NULL, name VARCHAR(128) NOT NULL, "
    "step INTEGER NOT NULL, wall_time FLOAT NOT NULL, value FLOAT, PRIMARY KEY (id), "
    "FOREIGN KEY(run_id) REFERENCES runs (id))",
    "CREATE INDEX ix_scalars_run_id_id ON scalars (run_id, id)",
    "CREATE INDEX ix_scalars_run_name_step ON scalars (run_id, name, step)",
)


def test_values_wall_times_and_non_finite_values_round_trip(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run("r", "t", {})
    wall = 1.7e9 + 0.123456
    values = [0.5, float("nan"), float("inf"), -float("inf"), -1e-300, 1e300]
    store.log_scalars(run_id, [("m", i, v, wall + i * 0.0101) for i, v in enumerate(values)], step=5)
    series, cursor = store.scalar_series(run_id)
    got = series["m"]
    assert got["step"].tolist() == list(range(6)) and got["step"].dtype == np.int64
    for a, b in zip(got["value"], values):
        assert (math.isnan(a) and math.isnan(b)) or a == b
    assert np.abs(got["wall_time"] - (wall + np.arange(6) * 0.0101)).max() <= 0.001  # stored in ms
    rows, end = store.scalars_after(run_id, 0)
    assert end == cursor and [r[2] for r in rows] == list(range(6))
    assert all(abs(r[3] - (wall + r[2] * 0.0101)) <= 0.001 for r in rows)
    assert math.isnan(rows[1][4]) and rows[2][4] == math.inf


def test_runs_interleaved_each_read_only_their_own_rows(tmp_path):
    store = RunStore(tmp_path)
    a, b = store.create_run("a", "t", {}), store.create_run("b", "t", {})
    for step in range(1, 51):
        store.log_scalars(a, [("loss", step, 1.0 / step, 1.0 + step)], step=step)
        store.log_scalars(b, [("loss", step, 2.0 / step, 1.0 + step), ("acc", step, 0.1, 1.0 + step)], step=step)
    late = store.create_run("late", "t", {})
    store.log_scalars(late, [("x", 1, 1.0, 100.0)])
    rows_a, cur_a = store.scalars_after(a, 0)
    rows_b, _ = store.scalars_after(b, 0, limit=7)
    assert [r[2] for r in rows_a] == list(range(1, 51)) and {r[1] for r in rows_a} == {"loss"}
    assert len(rows_b) == 7 and [r[1] for r in rows_b[:2]] == ["loss", "acc"]
    assert store.scalars_after(late, 0)[0][0][1:3] == ("x", 1)  # starts at the series' floor id
    assert store.scalars_after(a, cur_a) == ([], cur_a)
    series, cursor = store.scalar_series(b)
    subset, cursor2 = store.scalar_series(b, ["acc", "nothing"])
    assert list(subset) == ["acc"] and cursor2 == cursor and sorted(series) == ["acc", "loss"]
    assert cursor == max(r[0] for r in store.scalars_after(b, 0)[0])
    assert store.scalar_names(b) == ["acc", "loss"] and store.scalar_series("nope") == ({}, 0)


def test_a_series_created_by_two_stores_is_one_series(tmp_path):
    one, two = RunStore(tmp_path), RunStore(tmp_path)
    run_id = one.create_run("r", "t", {})
    one.log_scalars(run_id, [("loss", 1, 1.0, 10.0)])
    two.log_scalars(run_id, [("loss", 2, 2.0, 11.0)])
    assert write_rows_once(two, run_id, [("loss", 2, 2.0, 11.0), ("loss", 3, 3.0, 12.0)]) == 1
    assert one.scalar_series(run_id)[0]["loss"]["step"].tolist() == [1, 2, 3]
    with one.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM series")).scalar() == 1


def test_ids_are_never_reused_after_a_supersede_and_the_view_reads_like_the_old_table(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run("r", "t", {})
    store.log_scalars(run_id, [("loss", s, float(s), 5.0 + s) for s in range(1, 11)])
    _, cursor = store.scalars_after(run_id, 0)
    assert store.supersede_after(run_id, 5)["scalars"] == 5
    assert store.scalar_names(run_id) == ["loss"]
    again = RunStore(tmp_path)
    again.log_scalars(run_id, [("loss", 6, 60.0, 20.0)])
    rows, _ = again.scalars_after(run_id, cursor)
    assert [(r[2], r[4]) for r in rows] == [(6, 60.0)] and rows[0][0] > cursor
    with store.engine.connect() as conn:
        view = conn.execute(sa.text("SELECT id, run_id, name, step, wall_time, value FROM scalars "
                                    "WHERE run_id = :r ORDER BY id"), {"r": run_id}).all()
    assert [v.step for v in view] == [1, 2, 3, 4, 5, 6] and view[-1].wall_time == pytest.approx(20.0, abs=1e-3)
    assert store.supersede_after(run_id, 0)["scalars"] == 6 and store.scalar_names(run_id) == []


def test_the_wal_is_cut_back_after_checkpoints(tmp_path):
    store = RunStore(tmp_path)
    with store.engine.connect() as conn:
        limit = conn.exec_driver_sql("PRAGMA journal_size_limit").scalar()
    assert 0 < limit <= 16 * 2**20


def _make_schema2(store: RunStore, ddl: tuple[str, ...], rows: list[tuple], seq: int) -> None:
    """Turn a fresh store into what schema 2 wrote: the ``scalars`` table with ``rows``, and its id
    sequence at ``seq`` (a resume deleted the newest rows)."""
    pg = store.engine.dialect.name == "postgresql"
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW scalars")
        conn.exec_driver_sql("DROP TABLE points")
        conn.exec_driver_sql("DROP TABLE series")
        for sql in ddl:
            conn.exec_driver_sql(sql)
        conn.execute(sa.text("INSERT INTO scalars (id, run_id, name, step, wall_time, value) "
                             "VALUES (:i, :r, :n, :s, :w, :v)"),
                     [dict(zip("irnswv", r)) for r in rows])
        if pg:
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('scalars', 'id'), {seq})")
        else:
            conn.exec_driver_sql(f"UPDATE sqlite_sequence SET seq = {seq} WHERE name = 'scalars'")
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _check_migration(tmp_path, url: str | None, ddl: tuple[str, ...]) -> None:
    first = RunStore(tmp_path, url)
    a, b = first.create_run("a", "t", {}), first.create_run("b", "t", {})
    rows = [(i + 1, a if i % 3 else b, "loss" if i % 2 else "acc", i, 1.7e9 + i * 0.5, float(i)) for i in range(30)]
    rows[4] = rows[4][:5] + (float("nan"),)
    _make_schema2(first, ddl, rows, seq=40)
    first.engine.dispose()

    store = RunStore(tmp_path, url)  # migrates on open
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == \
            str(SCHEMA_VERSION)
    for run_id in (a, b):
        got, cursor = store.scalars_after(run_id, 0)
        want = [r for r in rows if r[1] == run_id]
        assert [(g[0], g[1], g[2]) for g in got] == [(r[0], r[2], r[3]) for r in want]  # ids kept
        assert all(abs(g[3] - r[4]) <= 1e-3 for g, r in zip(got, want))
        assert all((math.isnan(g[4]) and math.isnan(r[5])) or g[4] == r[5] for g, r in zip(got, want))
        series, end = store.scalar_series(run_id)
        assert end == cursor and sum(len(s["step"]) for s in series.values()) == len(want)
    store.log_scalars(a, [("loss", 100, 1.0, 1.7e9 + 100)])
    newest, _ = store.scalars_after(a, 30)
    assert [r[2] for r in newest] == [100] and newest[0][0] > 40  # above every id schema 2 gave
    again = RunStore(tmp_path, url)  # a second open moves nothing twice
    assert len(again.scalars_after(a, 0)[0]) == len([r for r in rows if r[1] == a]) + 1


def test_a_schema2_store_is_migrated_on_open(tmp_path):
    _check_migration(tmp_path, None, OLD_SCALARS_SQLITE)
    conn = sqlite3.connect(tmp_path / "deepscope.sqlite")
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE '%scalars%'").fetchall())
    assert kinds == {"scalars": "view"}  # the table and its indexes are gone


def test_a_newer_store_is_still_refused(tmp_path):
    store = RunStore(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(SCHEMA_VERSION + 1)})
    with pytest.raises(StoreError, match="newer deepscope"):
        RunStore(tmp_path)


@pytest.mark.skipif(not os.environ.get("DEEPSCOPE_TEST_PG"), reason="set DEEPSCOPE_TEST_PG to a PostgreSQL URL")
def test_a_schema2_store_is_migrated_on_postgres(tmp_path):
    """In a schema of its own, so the migration never touches the tables other tests use."""
    url = os.environ["DEEPSCOPE_TEST_PG"]
    name = f"ds_migrate_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        sep = "&" if "?" in url else "?"
        _check_migration(tmp_path, f"{url}{sep}options=-csearch_path%3D{name}", OLD_SCALARS_PG)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


def test_a_whole_series_read_in_step_ranges_misses_and_repeats_nothing(tmp_path, monkeypatch):
    import backend.store.scalars as scalars
    monkeypatch.setattr(scalars, "READ_CHUNK_STEPS", 7)
    store = RunStore(tmp_path)
    run_id = store.create_run("r", "t", {})
    steps = [0, 1, 6, 7, 7, 13, 14, 20, 21, 22, 10**9]  # range edges, a repeated step, a far one
    store.log_scalars(run_id, [("m", s, float(i), 1.0) for i, s in enumerate(steps)])
    got = store.scalar_series(run_id)[0]["m"]
    assert got["step"].tolist() == steps and got["value"].tolist() == [float(i) for i in range(len(steps))]
