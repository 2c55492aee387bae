"""Store lifecycle: schema-1 stores upgrade in place, heartbeats, interruption, resume supersession, leases."""
from __future__ import annotations

import sqlite3
import time

import numpy as np

from backend.store import RunStore
from backend.store import schema as S


def test_a_schema_1_store_gains_the_new_columns(tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    db = sqlite3.connect(data / "deepscope.sqlite")
    db.executescript("""
        CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value VARCHAR(256) NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE runs (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, task VARCHAR(64) NOT NULL,
            spec JSON NOT NULL, status VARCHAR(16) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
            error TEXT, pid INTEGER, host VARCHAR(255), step INTEGER NOT NULL, source VARCHAR(16) NOT NULL,
            schema_version INTEGER NOT NULL);
        INSERT INTO runs VALUES ('old1', 'old run', 'digits-cnn', '{}', 'stopped', 1.0, 1.0, NULL, NULL, NULL,
            40, 'builtin', 1);
    """)
    db.commit()
    db.close()
    store = RunStore(data)
    run = store.get_run("old1")
    assert run["attempt"] == 0 and run["heartbeat_at"] is None and run["resumes"] is None
    store.heartbeat("old1")
    assert store.get_run("old1")["heartbeat_at"] > 0
    RunStore(data)  # a second open (another process) finds it migrated
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM meta").scalar() == str(S.SCHEMA_VERSION)


def test_interrupted_only_while_active(store):
    live = store.create_run("a", "digits-cnn", {}, status="running")
    done = store.create_run("b", "digits-cnn", {}, status="completed")
    assert store.mark_interrupted(live, "process 123 on host x is gone; last heartbeat 40 s ago")
    assert not store.mark_interrupted(done, "no")
    assert store.get_run(live)["status"] == "interrupted" and "gone" in store.get_run(live)["error"]
    assert store.get_run(done)["status"] == "completed"


def test_supersede_after_deletes_later_rows_and_files_and_records_the_resume(store):
    run = store.create_run("r", "digits-cnn", {}, status="running")
    store.log_scalars(run, [("train/loss", s, 1.0 / s, time.time()) for s in range(10, 160, 10)], step=150)
    keep = store.add_snapshot(run, "kernels", 100, {"w": np.zeros(3)})
    gone = store.add_snapshot(run, "kernels", 150, {"w": np.ones(3)})
    gone_file = store.data_dir / next(r for r in store.list_snapshots(run) if r["id"] == gone)["arrays"]["w"]
    assert gone_file.exists()
    counts = store.supersede_after(run, 100)
    assert counts == {"scalars": 5, "snapshots": 1}
    series, _ = store.scalar_series(run)
    assert series["train/loss"]["step"].max() == 100
    assert [r["id"] for r in store.list_snapshots(run)] == [keep] and not gone_file.exists()
    row = store.get_run(run)
    assert row["attempt"] == 1 and row["resumes"][0]["step"] == 100 and row["step"] == 100
    store.supersede_after(run, 100)
    assert store.get_run(run)["attempt"] == 2 and len(store.get_run(run)["resumes"]) == 2


def test_one_lease_holder_until_it_expires(store):
    assert store.acquire_lease("analysis", "h:1", ttl=0.3)
    assert not store.acquire_lease("analysis", "h:2", ttl=0.3)
    assert store.acquire_lease("analysis", "h:1", ttl=0.3)  # renewal
    time.sleep(0.35)
    assert store.acquire_lease("analysis", "h:2", ttl=5)  # the first holder stopped renewing
    assert not store.acquire_lease("analysis", "h:1", ttl=5)
    store.release_lease("analysis", "h:2")
    assert store.acquire_lease("analysis", "h:1", ttl=5)


def test_ids_are_not_reused_after_a_resume_deletes_the_newest_rows(store):
    run = store.create_run("r", "digits-cnn", {}, status="running")
    store.log_scalars(run, [("loss", s, 1.0, time.time()) for s in range(1, 11)])
    _, cursor = store.scalars_after(run, 0)
    store.supersede_after(run, 5)
    store.log_scalars(run, [("loss", s, 2.0, time.time()) for s in range(6, 9)])
    rows, _ = store.scalars_after(run, cursor)  # a reader that held the old cursor
    assert [r[2] for r in rows] == [6, 7, 8]
