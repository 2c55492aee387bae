"""Run store: round trips, validation, atomic arrays, a concurrent writer and reader."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
import sqlalchemy as sa

from backend.store import RunStore, StoreError
from backend.store.arrays import write_array


def test_run_round_trip(store):
    run_id = store.create_run("r", "digits-cnn", {"lr": 0.1})
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["spec"] == {"lr": 0.1} and run["step"] == 0
    store.set_status(run_id, "failed", error="boom")
    assert store.get_run(run_id)["error"] == "boom"
    assert [r["id"] for r in store.list_runs()] == [run_id]
    assert store.get_run("missing") is None


def test_scalars_after_cursor_returns_only_new_rows(store):
    run_id = store.create_run("r", "digits-cnn", {})
    store.log_scalars(run_id, [("loss", 1, 2.0, 1.0), ("acc", 1, 0.1, 1.0)], step=1)
    rows, cursor = store.scalars_after(run_id, 0)
    assert [(r[1], r[2], r[4]) for r in rows] == [("loss", 1, 2.0), ("acc", 1, 0.1)]
    store.log_scalars(run_id, [("loss", 2, float("nan"), 2.0)], step=2)
    rows2, cursor2 = store.scalars_after(run_id, cursor)
    assert len(rows2) == 1 and rows2[0][2] == 2 and np.isnan(rows2[0][4]) and cursor2 > cursor
    assert store.scalars_after(run_id, cursor2) == ([], cursor2)
    series, end = store.scalar_series(run_id)
    assert end == cursor2 and series["loss"]["step"].tolist() == [1, 2]
    assert store.get_run(run_id)["step"] == 2


def test_bad_requests_are_errors_that_change_nothing(store):
    run_id = store.create_run("r", "digits-cnn", {})
    with pytest.raises(StoreError, match="unknown status"):
        store.set_status(run_id, "exploded")
    with pytest.raises(StoreError, match="unknown control"):
        store.request_control(run_id, "explode")
    with pytest.raises(StoreError, match="learning rate"):
        store.request_control(run_id, "set_lr", -1.0)
    with pytest.raises(StoreError, match="no run"):
        store.request_control("missing", "pause")
    store.set_status(run_id, "completed")
    with pytest.raises(StoreError, match="already completed"):
        store.request_control(run_id, "pause")
    assert store.get_run(run_id)["status"] == "completed"
    assert store.pending_controls(run_id) == []


def test_controls_are_handled_once(store):
    run_id = store.create_run("r", "digits-cnn", {})
    assert not store.has_pending_controls(run_id)
    store.request_control(run_id, "pause")
    store.request_control(run_id, "set_lr", 0.5)
    assert store.has_pending_controls(run_id)
    pending = store.pending_controls(run_id)
    assert [(c["kind"], c["value"]) for c in pending] == [("pause", None), ("set_lr", 0.5)]
    store.mark_handled(c["id"] for c in pending)
    assert store.pending_controls(run_id) == [] and not store.has_pending_controls(run_id)


def test_snapshots_are_immutable_memory_mapped_files(store, tmp_path):
    run_id = store.create_run("r", "code-lstm", {})
    arr = np.arange(12, dtype=np.float16).reshape(3, 4)
    store.add_snapshot(run_id, "hidden", 10, {"h": arr}, {"layer": 0})
    (snap,) = store.list_snapshots(run_id, "hidden")
    loaded = store.load_arrays(snap)["h"]
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, arr) and snap["meta"] == {"layer": 0}
    with pytest.raises(FileExistsError):
        write_array(store.data_dir / snap["arrays"]["h"], arr)
    assert not list(store.run_dir(run_id).rglob(".tmp-*"))


def test_newer_schema_is_refused(tmp_path):
    store = RunStore(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value='999' WHERE key='schema_version'"))
    with pytest.raises(StoreError, match="newer deepscope"):
        RunStore(tmp_path)


def _writer(data_dir: str, run_id: str, n_batches: int, per_batch: int) -> None:
    store = RunStore(data_dir)
    for b in range(n_batches):
        rows = [(f"s{i % 3}", b * per_batch + i, float(b * per_batch + i), time.time()) for i in range(per_batch)]
        store.log_scalars(run_id, rows, step=(b + 1) * per_batch)
        store.add_snapshot(run_id, "k", b, {"w": np.full((64, 64), b, dtype=np.float32)})


def test_concurrent_writer_and_reader(tmp_path):
    """A writer process commits rows and snapshots while this process reads: no errors, no torn reads."""
    store = RunStore(tmp_path)
    run_id = store.create_run("r", "digits-cnn", {})
    n_batches, per_batch = 150, 20
    proc = mp.get_context("spawn").Process(target=_writer, args=(str(tmp_path), run_id, n_batches, per_batch))
    proc.start()
    cursor, seen, reads = 0, [], 0
    deadline = time.time() + 60
    while time.time() < deadline:
        rows, cursor = store.scalars_after(run_id, cursor)
        seen += [r[2] for r in rows]
        for snap in store.list_snapshots(run_id, "k")[-2:]:
            w = store.load_arrays(snap)["w"]
            assert w.shape == (64, 64) and (w == snap["step"]).all()  # whole file, right content
        reads += 1
        if not proc.is_alive() and not rows:
            break
    proc.join(10)
    assert proc.exitcode == 0
    rows, cursor = store.scalars_after(run_id, cursor)
    seen += [r[2] for r in rows]
    assert seen == list(range(n_batches * per_batch))  # every point once, in order
    assert reads > 5
