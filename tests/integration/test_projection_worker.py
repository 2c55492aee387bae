"""The analysis worker: maps every embeddings snapshot once, warm-started, requests first, errors recorded."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.analysis.projection import worker as pw
from backend.analysis.projection.core import sample_indices, tsne_fit
from backend.analysis.projection.compare import mean_displacement
from backend.store import RunStore
from backend.store.projections import (PROJECTION_KIND, ProjectionSettings, load_projection, projections,
                                       read_status, request_projection, write_source_snapshot)

REPO = Path(__file__).resolve().parents[2]


def _clusters(n: int, d: int = 16, k: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    labels = rng.integers(0, k, n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels.astype(np.int32)


def _fake_run(store: RunStore, n: int = 600, snapshots: int = 3, source: str = "penultimate",
              status: str = "completed", noise: float = 0.05) -> str:
    """A run whose ``embeddings`` snapshots are each the previous one plus a little noise."""
    run_id = store.create_run(f"fake {n}", "digits-cnn", {}, status=status)
    x, labels = _clusters(n)
    rng = np.random.default_rng(1)
    for i in range(snapshots):
        write_source_snapshot(store, run_id, 100 * i, {source: {
            "x": x, "text": [f"input {j}" for j in range(n)], "label": labels, "classes": [str(c) for c in range(6)]}})
        x = x + noise * rng.normal(size=x.shape).astype(np.float32)
    return run_id


@pytest.fixture
def worker_state():
    return pw.WorkerState()


def test_compute_maps_every_snapshot_once_warm_started(store):
    run_id = _fake_run(store)
    s = ProjectionSettings(source="penultimate", n_points=500, perplexity=30)
    statuses = []
    assert pw.compute(store, run_id, s, progress=statuses.append) == 3
    maps = projections(store, run_id, s.key())
    assert [m["step"] for m in maps] == [0, 100, 200]
    loaded = [load_projection(store, m) for m in maps]
    rows0 = sample_indices(600, 500, 0)
    for coords, rows in loaded:
        assert coords.shape == (500, 2) and np.array_equal(rows, rows0)
    metas = [m["meta"] for m in maps]
    src_ids = [r["id"] for r in store.list_snapshots(run_id, "embeddings")]
    assert [m["source_id"] for m in metas] == src_ids
    assert metas[0]["warm_from"] is None
    assert metas[1]["warm_from"] == maps[0]["id"] and metas[2]["warm_from"] == maps[1]["id"]
    assert all(m["seconds"] > 0 and m["kl_divergence"] > 0 and m["key"] == s.key() for m in metas)
    # warm starts move little; an independent fit of the same data lands elsewhere
    warm = mean_displacement(loaded[1][0], loaded[0][0])
    x1 = store.load_arrays(store.list_snapshots(run_id, "embeddings")[1])["x.penultimate"][rows0]
    fresh = mean_displacement(tsne_fit(x1, perplexity=30, seed=1).coords, loaded[0][0])
    assert warm < 0.05 and warm < fresh / 3, (warm, fresh)  # measured 0.006 vs 0.10
    assert [st["state"] for st in statuses] == ["computing"] * 3 + ["idle"]
    assert [st["iteration"] for st in statuses] == [0, 1, 2, 3] and statuses[0]["total"] == 3
    status = read_status(store, run_id)
    assert status["state"] == "idle" and status["key"] == s.key() and status["errors"] == {}
    # idempotent: nothing left to write, nothing written
    assert pw.compute(store, run_id, s) == 0
    assert len(store.list_snapshots(run_id, PROJECTION_KIND)) == 3
    # a new snapshot continues from the last map
    x2 = store.load_arrays(store.list_snapshots(run_id, "embeddings")[2])["x.penultimate"]
    write_source_snapshot(store, run_id, 300, {"penultimate": {"x": x2, "text": ["t"] * 600}})
    assert pw.compute(store, run_id, s) == 1
    assert projections(store, run_id, s.key())[-1]["meta"]["warm_from"] == maps[2]["id"]


def test_pca_maps_keep_their_signs(store):
    run_id = _fake_run(store, n=300, noise=0.02)
    s = ProjectionSettings(source="penultimate", method="pca", dims=3, n_points=200)
    assert pw.compute(store, run_id, s) == 3
    maps = projections(store, run_id, s.key())
    coords = [load_projection(store, m)[0] for m in maps]
    assert coords[0].shape == (200, 3) and maps[1]["meta"]["warm_from"] == maps[0]["id"]
    assert len(maps[0]["meta"]["explained"]) == 3 and 0 < sum(maps[0]["meta"]["explained"]) <= 1
    for a, b in zip(coords, coords[1:]):
        assert ((a * b).sum(axis=0) > 0).all()
        assert mean_displacement(b, a) < 0.05


def test_too_few_points_for_the_perplexity_is_an_error_not_a_crash(store, worker_state):
    tiny = _fake_run(store, n=9, snapshots=1)       # no default map (under 10 points): only what it is asked
    small = _fake_run(store, n=40, snapshots=1)     # newest: the pass meets it first
    s = ProjectionSettings(source="penultimate", perplexity=30, n_points=40)
    with pytest.raises(ValueError, match="perplexity 30 needs at least 91 points"):
        pw.compute(store, small, s)
    status = read_status(store, small)
    assert status["state"] == "error" and "at most 13" in status["message"] and status["key"] == s.key()
    assert projections(store, small, s.key()) == []

    request_projection(store, small, s)
    pca_key = ProjectionSettings(source="penultimate", method="pca", n_points=10)
    request_projection(store, tiny, pca_key)
    calls = []
    real = pw.compute
    pw.compute = lambda st, rid, settings, **kw: calls.append((rid, settings.key())) or real(st, rid, settings, **kw)
    try:
        # the request fails; the small run's default map (perplexity 13) and the other run's request are made
        assert pw.run_once(store, worker_state) == 2
        assert calls == [(small, s.key()), (small, "penultimate-tsne-2d-p13-cosine-n40-s0"), (tiny, pca_key.key())]
        assert projections(store, small, s.key()) == []
        assert len(projections(store, tiny, pca_key.key())) == 1
        status = read_status(store, small)  # a later key's idle keeps the error on record
        assert status["state"] == "idle"
        assert status["errors"][s.key()].startswith("t-SNE with perplexity 30 needs at least 91 points")
        # not retried until asked again
        calls.clear()
        assert pw.run_once(store, worker_state) == 0 and calls == []
        time.sleep(0.01)
        request_projection(store, small, s)
        assert pw.run_once(store, worker_state) == 0 and calls == [(small, s.key())]
        assert read_status(store, small)["state"] == "error"
    finally:
        pw.compute = real


def test_run_once_does_requests_before_defaults(store, worker_state):
    run_id = _fake_run(store, n=120, snapshots=2)
    default = ProjectionSettings(source="penultimate", n_points=120, perplexity=30)
    first = ProjectionSettings(source="penultimate", method="pca", n_points=100)
    second = ProjectionSettings(source="penultimate", dims=3, perplexity=10, n_points=100, metric="euclidean")
    request_projection(store, run_id, first)
    request_projection(store, run_id, second)
    assert [p.key() for p in pw.pending(store, run_id)] == [second.key(), first.key(), default.key()]
    assert pw.run_once(store, worker_state) == 6
    ids = {k: [m["id"] for m in projections(store, run_id, k)] for k in (second.key(), first.key(), default.key())}
    assert max(ids[second.key()]) < min(ids[first.key()]) and max(ids[first.key()]) < min(ids[default.key()])
    assert pw.pending(store, run_id) == []
    assert pw.run_once(store, worker_state) == 0


def test_defaults_skip_tiny_sources_and_fit_the_perplexity(store):
    run_id = store.create_run("tiny", "digits-cnn", {}, status="completed")
    x, _ = _clusters(20)
    write_source_snapshot(store, run_id, 0, {"tokens": {"x": x[:8], "text": ["a"] * 8},
                                             "final_hidden": {"x": x, "text": ["b"] * 20}})
    (only,) = pw.pending(store, run_id)
    assert only.source == "final_hidden" and only.n_points == 20 and only.perplexity == 6
    assert pw.default_settings(100_000, "tokens").n_points == 5000


def test_the_worker_process_once(store):
    run_id = _fake_run(store, n=200, snapshots=2)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "backend.analysis.projection.worker", "--data-dir",
                           str(store.data_dir), "--once"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    maps = projections(store, run_id, "penultimate-tsne-2d-p30-cosine-n200-s0")
    assert len(maps) == 2 and maps[1]["meta"]["warm_from"] == maps[0]["id"]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "openTSNE" in imported and "torch" not in imported


def test_importing_the_worker_loads_no_numpy():
    """The worker sets its thread variables in main(), before numpy loads: neither the worker nor the
    compute module it imports may import numpy (or torch) at import time."""
    code = ("import sys, backend.analysis.projection.worker as w; "
            "assert w.compute.__module__ == 'backend.analysis.projection.compute'; "
            "print(sorted(m for m in ('numpy', 'scipy', 'openTSNE', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_job_manager_starts_restarts_and_stops_the_worker(store):
    from backend.jobs import JobManager

    jobs = JobManager(store, launch=False)
    procs = []
    try:
        procs.append(jobs.start_analysis())
        assert jobs.start_analysis() is procs[0]
        time.sleep(0.5)
        assert procs[0].poll() is None
        procs[0].kill()
        procs[0].wait(10)
        procs.append(jobs.start_analysis())
        assert procs[1] is not procs[0] and procs[1].poll() is None
        run_id = _fake_run(store, n=9, snapshots=1)
        key = ProjectionSettings(source="penultimate", method="pca", n_points=10).key()
        request_projection(store, run_id, ProjectionSettings(source="penultimate", method="pca", n_points=10))
        deadline = time.time() + 60
        while not projections(store, run_id, key) and time.time() < deadline:
            time.sleep(0.2)
        assert projections(store, run_id, key)
        assert os.getpriority(os.PRIO_PROCESS, procs[1].pid) >= 10
        jobs.shutdown()
        assert procs[1].poll() == 0  # SIGTERM: a clean exit
        assert "analysis worker stopped" in (store.data_dir / "analysis-worker.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def test_repeated_sigterms_still_exit_cleanly(store):
    """Shutdown may ask twice (CI once saw exit -2: the second SIGTERM landed while the first one's
    KeyboardInterrupt was being handled and escaped). A burst of SIGTERMs must still end in exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "backend.analysis.projection.worker", "--data-dir",
                             str(store.data_dir), "--poll", "0.05"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60  # the worker is up once it holds the analysis lease
        while time.time() < deadline and proc.poll() is None and not _lease_holder(store):
            time.sleep(0.05)
        time.sleep(0.3)
        for _ in range(50):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.001)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "analysis worker stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_points_new_to_a_snapshot_enter_the_previous_map(store):
    """A source that grows (rows appended): the old rows keep their places, the new ones are placed by
    openTSNE's transform next to the old points they resemble, then the map continues warm."""
    run_id = _fake_run(store, n=400, snapshots=2)
    s = ProjectionSettings(source="penultimate", n_points=5000, perplexity=20)
    assert pw.compute(store, run_id, s) == 2
    x_old = store.load_arrays(store.list_snapshots(run_id, "embeddings")[-1])["x.penultimate"]
    x, labels = _clusters(460)  # the same generator: the first 400 rows are the same clusters
    x_new = np.concatenate([x_old, x[400:]])
    write_source_snapshot(store, run_id, 200, {"penultimate": {"x": x_new, "text": ["t"] * 460}})
    assert pw.compute(store, run_id, s) == 1
    maps = projections(store, run_id, s.key())
    last = maps[-1]["meta"]
    assert last["warm_from"] == maps[1]["id"] and last["added_points"] == 60
    (prev, prev_rows), (coords, rows) = load_projection(store, maps[1]), load_projection(store, maps[2])
    assert np.array_equal(rows[:400], prev_rows) and np.array_equal(rows[400:], np.arange(400, 460))
    assert mean_displacement(coords[:400], prev) < 0.05  # the old points stay where they were
    # each new point lands among old points of its own cluster
    _, old_labels = _clusters(400)
    near = np.argmin(((coords[400:, None, :] - coords[None, :400, :]) ** 2).sum(-1), axis=1)
    assert np.mean(old_labels[near] == labels[400:]) > 0.9


def _lease_holder(store) -> str | None:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT holder FROM leases WHERE name = 'analysis'").scalar()
