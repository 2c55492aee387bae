"""``deepscope export``: metrics at full resolution (CSV, JSON Lines) and snapshots as .npz, read back equal.

Codes: ex0xx.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
import tracemalloc

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.export import write_metrics
from backend.training.worker import run_training
from tests.conftest import tiny_spec

torch.set_num_threads(1)


def _run_with_points(store, n=300):
    run_id = store.create_run("r", "digits-cnn", tiny_spec().model_dump(), status="completed")
    wall = time.time()
    rows = [("train/loss", s, 1.0 / s, wall + s) for s in range(1, n + 1)]
    rows += [("val/acc", s, s / n, wall + s) for s in range(10, n + 1, 10)]
    rows[3] = ("train/loss", 4, float("nan"), wall + 4)  # a diverged value is kept
    store.log_scalars(run_id, rows, step=n)
    return run_id, rows


def test_ex001_csv_and_jsonl_hold_every_point_at_full_precision(store, tmp_path, capsys):
    run_id, rows = _run_with_points(store)
    out = tmp_path / "m.csv"
    assert main(["export", run_id, "--data-dir", str(store.data_dir), "-o", str(out)]) == 0
    assert "exported 330 points" in capsys.readouterr().out
    with open(out, newline="") as fh:
        got = [(r["name"], int(r["step"]), float(r["value"]), float(r["wall_time"])) for r in csv.DictReader(fh)]
    assert len(got) == len(rows)
    for (n1, s1, v1, w1), (n2, s2, v2, w2) in zip(sorted(got), sorted(rows)):
        assert (n1, s1) == (n2, s2) and abs(w1 - w2) <= 1e-3  # the store keeps wall time to the millisecond
        assert v1 == v2 or (math.isnan(v1) and math.isnan(v2))  # values: every bit
    assert main(["export", run_id, "--data-dir", str(store.data_dir), "--format", "jsonl", "--series", "val/acc",
                 "-o", "-"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(d["step"], d["value"]) for d in lines] == [(s, v) for n, s, v, _ in rows if n == "val/acc"]


@pytest.mark.parametrize("args,message", [
    (["nope"], "no run with id 'nope'"),
    (["RUN", "--series", "train/losss"], "has no series 'train/losss'; it has: train/loss, val/acc"),
])
def test_ex002_bad_requests_get_one_line_and_no_file(store, tmp_path, capsys, monkeypatch, args, message):
    run_id, _ = _run_with_points(store, n=20)
    monkeypatch.chdir(tmp_path)
    args = [run_id if a == "RUN" else a for a in args]
    assert main(["export", *args, "--data-dir", str(store.data_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*metrics*")) and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow
def test_ex003_a_million_points_export_in_bounded_memory_and_read_back_equal(store, tmp_path):
    run_id = store.create_run("big", "digits-cnn", tiny_spec().model_dump(), status="completed")
    n = 1_000_000
    steps = np.arange(1, n + 1)
    values = np.sin(steps / 1000.0) + steps * 1e-7
    for lo in range(0, n, 100_000):
        store.log_scalars(run_id, [("train/loss", int(s), float(v), 1e9 + s)
                                   for s, v in zip(steps[lo:lo + 100_000], values[lo:lo + 100_000])])
    out = tmp_path / "big.csv"
    tracemalloc.start()
    with open(out, "w", newline="") as fh:
        assert write_metrics(store, run_id, fh) == n
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # all 1M rows as tuples would take ~150 MB; the export holds one page of 50k rows at a time
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    back = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2))
    assert np.array_equal(back[:, 0], steps) and np.array_equal(back[:, 1], values)  # repr keeps every bit


def test_ex004_snapshots_export_as_npz_with_a_manifest(store, tmp_path, capsys):
    spec = tiny_spec(steps=40, probe_every=20)
    run_id = store.create_run("cnn", spec.task, spec.model_dump())
    assert run_training(store, run_id) == "completed"
    folder = tmp_path / "snaps"
    assert main(["export", run_id, "--data-dir", str(store.data_dir), "-o", str(tmp_path / "m.csv"),
                 "--snapshots", str(folder)]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    files = [e for e in manifest["snapshots"] if "file" in e]
    assert manifest["run"]["id"] == run_id and len(files) == len(store.list_snapshots(run_id)) > 0
    kinds = {e["kind"] for e in files}
    assert "kernels" in kinds, kinds
    for entry, snap in zip(files, store.list_snapshots(run_id)):
        with np.load(folder / entry["file"], allow_pickle=False) as npz:
            for name, arr in store.load_arrays(snap).items():
                arr = np.asarray(arr)
                assert np.array_equal(npz[name], arr, equal_nan=arr.dtype.kind == "f")
                assert entry["arrays"][name]["shape"] == list(np.shape(arr))
    assert "exported" in capsys.readouterr().out


def test_ex005_write_metrics_streams_pages(store):
    run_id, rows = _run_with_points(store, n=120)
    buf = io.StringIO()
    from backend import export

    pages = []
    real = store.scalars_after

    def counting(rid, cursor=0, limit=None):
        pages.append(limit)
        return real(rid, cursor, limit)

    store.scalars_after = counting
    old = export.PAGE
    try:
        export.PAGE = 25
        assert export.write_metrics(store, run_id, buf, fmt="jsonl", series=None) == len(rows)
    finally:
        export.PAGE = old
    assert pages and set(pages) == {25} and len(pages) >= len(rows) // 25


def test_ex006_the_dashboard_streams_the_download_and_refuses_junk(store):
    from dashboard.app import create_app
    from dashboard.export_route import export_href

    run_id, rows = _run_with_points(store)
    client = create_app(store.data_dir).server.test_client()
    got = client.get(export_href(run_id, "csv", ["val/acc"]))
    assert got.status_code == 200 and got.is_streamed
    assert got.headers["Content-Disposition"] == f'attachment; filename="{run_id}-metrics.csv"'
    lines = got.get_data(as_text=True).splitlines()
    assert lines[0] == "name,step,value,wall_time" and len(lines) == 1 + sum(1 for r in rows if r[0] == "val/acc")
    got = client.get(export_href(run_id, "jsonl"))
    assert got.status_code == 200 and len(got.get_data(as_text=True).splitlines()) == len(rows)
    for url, status, says in ((export_href("nope0000"), 404, "no run with id"),
                              (export_href(run_id, "xlsx"), 400, "format must be one of csv, jsonl"),
                              (export_href(run_id, series=["no/such"]), 400, "has no series 'no/such'"),
                              ("/_deepscope/export/a%20b;rm", 400, "is not a run id")):
        answer = client.get(url)
        assert answer.status_code == status and says in answer.get_data(as_text=True), (url, answer.status_code)


def test_ex007_the_runs_table_links_each_runs_download():
    from dashboard.views.runs.table import run_row, runs_table

    row = run_row({"id": "a1b2c3d4e5", "name": "r", "status": "completed", "step": 10}, {})
    links = [c for c in _walk(runs_table([row], set())) if getattr(c, "download", None)]
    assert [c.href for c in links] == ["/_deepscope/export/a1b2c3d4e5?format=csv",
                                       "/_deepscope/export/a1b2c3d4e5?format=jsonl"]


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)


def test_ex008_the_training_page_status_card_links_the_download():
    from dashboard.components import run_status_card

    card = run_status_card({"id": "a1b2c3d4e5", "name": "r", "status": "running", "step": 5, "task": "digits-cnn",
                            "source": "client"}, {})
    links = [c for c in _walk(card) if getattr(c, "download", None)]
    assert [c.href for c in links] == ["/_deepscope/export/a1b2c3d4e5?format=csv",
                                       "/_deepscope/export/a1b2c3d4e5?format=jsonl"]
