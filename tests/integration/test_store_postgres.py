"""The store on PostgreSQL (the docker-compose deployment). Runs when DEEPSCOPE_TEST_PG names a server:

    DEEPSCOPE_TEST_PG=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres .venv/bin/python -m pytest -k postgres
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from backend.store import RunStore

URL = os.environ.get("DEEPSCOPE_TEST_PG")
pytestmark = pytest.mark.skipif(not URL, reason="set DEEPSCOPE_TEST_PG to a PostgreSQL URL to run")


def test_postgres_round_trip_cursor_controls_and_claims(tmp_path):
    store = RunStore(tmp_path, URL)
    run_id = store.create_run("pg", "digits-cnn", {"lr": 0.1})
    store.log_scalars(run_id, [("loss", i, float("nan") if i == 3 else float(i), time.time()) for i in range(10)],
                      step=10)
    series, cursor = store.scalar_series(run_id)
    assert series["loss"]["step"].tolist() == list(range(10)) and np.isnan(series["loss"]["value"][3])
    rows, end = store.scalars_after(run_id, 0)
    assert end == cursor and [r[2] for r in rows] == list(range(10))
    store.request_control(run_id, "pause")
    assert store.has_pending_controls(run_id) and len(store.pending_controls(run_id)) == 1
    assert store.claim_queued()["id"] == run_id
    again = store.claim_queued()
    assert again is None or again["id"] != run_id  # claimed once
    store.add_snapshot(run_id, "k", 1, {"w": np.arange(3.0)})
    assert store.load_arrays(store.list_snapshots(run_id)[0])["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_locked_controls_table_does_not_hold_a_training_step(tmp_path):
    """The per-step control poll gives up after CONTROL_LOCK_TIMEOUT_MS with an error the trainer rides out."""
    import sqlalchemy as sa

    from backend.store.retry import is_transient

    store = RunStore(tmp_path, URL)
    run_id = store.create_run("pg-lock", "digits-cnn", {})
    with sa.create_engine(URL).connect() as other, other.begin():
        other.exec_driver_sql("LOCK TABLE controls IN ACCESS EXCLUSIVE MODE")
        t0 = time.time()
        with pytest.raises(Exception) as caught:
            store.pending_controls(run_id)
        assert time.time() - t0 < 2 and is_transient(caught.value)
    assert store.pending_controls(run_id) == []


def test_processes_starting_together_on_an_empty_database_all_open_it(tmp_path):
    """compose's first `up` opens the store from 6+ processes at once: none may fail creating the tables."""
    import subprocess
    import sys
    import uuid

    import sqlalchemy as sa

    name = f"ds_race_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        url = f"{URL}{'&' if '?' in URL else '?'}options=-csearch_path%3D{name}"
        code = ("import sys, time; from backend.store import RunStore; time.sleep(float(sys.argv[2]) - time.time()); "
                "RunStore(sys.argv[3], sys.argv[1]).list_runs()")
        at = time.time() + 3.0  # every process is imported and waiting when the clock strikes
        procs = [subprocess.Popen([sys.executable, "-c", code, url, str(at), str(tmp_path / f"d{i}")],
                                  stderr=subprocess.PIPE, text=True) for i in range(8)]
        errors = [(p.wait(60), p.stderr.read()) for p in procs]
        assert all(rc == 0 for rc, _ in errors), [err.strip().splitlines()[-1] for rc, err in errors if rc]
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()
