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
