"""Storage per scalar point and full-read time, this tree's store against the one before schema 3.

For each size (``--points``, default 100k and 1M steps) a run logs ``--series`` (4) series through
``RunStore.log_scalars`` in batches of ``--batch`` rows (1,000: one transaction per batch, as the
trainer's metrics writer commits), while a dashboard-like reader polls ``scalars_after`` every 0.5 s
from another connection. Measured for each layout, in its own process:

- ``bytes_per_point``: the SQLite file after the WAL is checkpointed (no VACUUM), over the points;
  ``payload`` says how much of it the scalar tables and indexes use (``dbstat``);
- ``wal_peak_mb``: the largest size of the ``-wal`` file seen while the run wrote (after each commit
  and by the reader; the reader also draws the whole run every 15 s, as a page opened then does, and a
  checkpoint cannot empty the WAL while such a read holds its snapshot); ``wal_end_mb``: its size after
  two more commits once the reader has gone (SQLite keeps the file at its largest unless told otherwise);
- ``read_s``: ``scalar_series(run_id)`` (every series whole, as numpy arrays: the dashboard's first draw)
  from a fresh process, median of ``--repeats`` reads, before and after taken in turn;
- ``poll_ms``: ``scalars_after`` for the newest 100 rows (the live page's query), median of 20.

"Before" is the store of the commit before schema 3 (``--before REF`` to name another; ``none`` to
skip), checked out with ``git worktree`` into a temporary folder and removed afterwards, so both are
measured on the same machine at the same time.

    .venv/bin/python bench/storage.py              # ~4 min on 2 shared cores (the old 1M write is most)
    .venv/bin/python bench/storage.py --quick      # 20k points, ~20 s

Targets: ``bytes_per_point`` (1M) at most 50 (TensorBoard's event files: 47) and ``read_1m_s`` no slower
than before (``read_ratio`` <= 1.05: the two are timed in turn on shared cores). The last line of output is
one JSON object; ``--check`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMES = ("train/loss", "train/acc", "lr", "grad_norm/global")
TARGET_BYTES = 50.0
READ_SLACK = 1.05
DRAW_EVERY = 30  # polls between two whole-run reads by the reader (15 s)


# -- the measuring process (imports the store of the tree it is given) ---------------------------
def _store(tree: str):
    sys.path.insert(0, tree)
    from backend.store import RunStore, SCHEMA_VERSION
    import backend.store as pkg
    if not Path(pkg.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"imported {pkg.__file__}, not the store of {tree}")
    return RunStore, SCHEMA_VERSION


def _wal_size(db: Path) -> int:
    try:
        return os.path.getsize(str(db) + "-wal")
    except OSError:
        return 0


def do_write(tree: str, data: str, steps: int, n_series: int, batch: int) -> dict:
    RunStore, version = _store(tree)
    store = RunStore(data)
    db = Path(data) / "deepscope.sqlite"
    run_id = store.create_run("storage", "bench", {})
    names = NAMES[:n_series] if n_series <= len(NAMES) else [f"s{i}" for i in range(n_series)]
    peak, done = [0], threading.Event()

    def reader() -> None:  # a live page: asks for what came after its cursor every 0.5 s ...
        dash, cursor, polls = RunStore(data), 0, 0
        while not done.wait(0.5):
            if polls % DRAW_EVERY == 0:  # ... and a page opened now and then draws the whole run first
                _series, cursor = dash.scalar_series(run_id)
            _rows, cursor = dash.scalars_after(run_id, cursor, limit=5000)
            peak[0] = max(peak[0], _wal_size(db))
            polls += 1
        dash.engine.dispose()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    per = max(1, batch // n_series)
    t0, wall = time.perf_counter(), 1.7e9
    for start in range(0, steps, per):
        rows = [(name, s, 1.0 / (1 + s) + 0.01 * k, wall + s * 0.05)
                for s in range(start, min(steps, start + per)) for k, name in enumerate(names)]
        store.log_scalars(run_id, rows, step=min(steps, start + per))
        peak[0] = max(peak[0], _wal_size(db))
    write_s = time.perf_counter() - t0
    done.set()
    thread.join()
    for extra in range(2):  # two more commits once the reader has gone: a checkpoint, then a restart
        store.log_scalars(run_id, [(names[0], steps + extra, 0.0, wall + steps * 0.05)])
    wal_end = _wal_size(db)
    store.engine.dispose()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    objects = {n: (int(a), int(b)) for n, a, b in conn.execute(
        "SELECT name, SUM(pgsize), SUM(pgsize - unused) FROM dbstat GROUP BY name")}
    conn.close()
    points = steps * n_series + 2
    scalar_objs = {n: v for n, v in objects.items() if "scalars" in n or "points" in n or n == "series"}
    return {"schema": version, "run_id": run_id, "points": points, "write_s": round(write_s, 2),
            "file_bytes": os.path.getsize(db), "bytes_per_point": round(os.path.getsize(db) / points, 2),
            "payload_bytes_per_point": round(sum(v[1] for v in scalar_objs.values()) / points, 2),
            "pages_bytes_per_point": {n: round(v[0] / points, 2) for n, v in sorted(scalar_objs.items())},
            "wal_peak_mb": round(peak[0] / 2**20, 2), "wal_end_mb": round(wal_end / 2**20, 2)}


def do_read(tree: str, data: str, run_id: str) -> dict:
    RunStore, _version = _store(tree)
    store = RunStore(data)
    t0 = time.perf_counter()
    series, cursor = store.scalar_series(run_id)
    read_s = time.perf_counter() - t0
    n = sum(len(s["step"]) for s in series.values())
    polls = []
    for _ in range(20):
        t = time.perf_counter()
        rows, _c = store.scalars_after(run_id, cursor - 100)
        polls.append(time.perf_counter() - t)
    assert len(rows) == 100, len(rows)
    return {"read_s": read_s, "points_read": n, "poll_ms": statistics.median(polls) * 1000}


# -- the driver -------------------------------------------------------------------------------------
def _call(tree: Path, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, __file__, *args, "--tree", str(tree)], env=env, cwd=tree,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{args[0]} in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def before_ref() -> str:
    """The commit before the one that brought schema 3 (HEAD while that change is not committed)."""
    out = subprocess.run(["git", "log", "--format=%H", "-S", "SCHEMA_VERSION = 3", "--",
                          "backend/store/schema.py"], cwd=REPO, capture_output=True, text=True).stdout.split()
    return f"{out[-1]}^" if out else "HEAD"


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default="100000,1000000", help="steps per series, comma-separated")
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000, help="rows per transaction")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=None, help="git ref of the old store (default: before schema 3); none")
    ap.add_argument("--quick", action="store_true", help="20k steps, one read each")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--worker", choices=["write", "read"], help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = [int(p) for p in ("20000" if a.quick else a.points).split(",")]
    if a.worker == "write":
        print(json.dumps(do_write(a.tree, a.data, sizes[0], a.series, a.batch)))
        return 0
    if a.worker == "read":
        print(json.dumps(do_read(a.tree, a.data, a.run)))
        return 0
    repeats = 1 if a.quick else a.repeats
    work = Path(tempfile.mkdtemp(prefix="deepscope-storage-"))
    trees = {"after": REPO}
    ref = None if (a.before or "").lower() == "none" else (a.before or before_ref())
    try:
        if ref:
            subprocess.run(["git", "worktree", "add", "--detach", str(work / "before"), ref], cwd=REPO,
                           check=True, capture_output=True)
            trees["before"] = work / "before"
        layouts = sorted(trees)  # after, before
        res: dict[str, dict[int, dict]] = {k: {} for k in layouts}
        for n in sizes:
            for k in layouts:
                data = work / f"{k}-{n}"
                w = _call(trees[k], "--worker", "write", "--data", str(data), "--points", str(n),
                          "--series", str(a.series), "--batch", str(a.batch))
                res[k][n] = dict(w, reads=[], polls=[])
                print(f"{k:6s} {n:>8d} steps x {a.series}: schema {w['schema']}, {w['bytes_per_point']} B/point "
                      f"(scalar pages {w['pages_bytes_per_point']}), WAL peak {w['wal_peak_mb']} MB, "
                      f"end {w['wal_end_mb']} MB, "
                      f"write {w['write_s']} s", flush=True)
            for _ in range(repeats):  # in turn, so both see the same load
                for k in layouts:
                    r = _call(trees[k], "--worker", "read", "--data", str(work / f"{k}-{n}"),
                              "--run", res[k][n]["run_id"])
                    assert r["points_read"] == res[k][n]["points"], r
                    res[k][n]["reads"].append(r["read_s"])
                    res[k][n]["polls"].append(r["poll_ms"])
            for k in layouts:
                d = res[k][n]
                d["read_s"] = round(statistics.median(d["reads"]), 3)
                d["poll_ms"] = round(statistics.median(d["polls"]), 2)
                print(f"{k:6s} {n:>8d} steps x {a.series}: read {d['read_s']} s "
                      f"({', '.join(f'{x:.2f}' for x in d['reads'])}), poll {d['poll_ms']} ms", flush=True)
    finally:
        if "before" in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(trees["before"])], cwd=REPO,
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    def tag(n: int) -> str:
        return f"{n // 1000000}m" if n % 1000000 == 0 else f"{n // 1000}k"

    summary = {k: {} for k in layouts}
    for k in layouts:
        for n in sizes:
            d = res[k][n]
            summary[k].update({f"bytes_per_point_{tag(n)}": d["bytes_per_point"], f"read_{tag(n)}_s": d["read_s"],
                               f"wal_peak_mb_{tag(n)}": d["wal_peak_mb"], f"wal_end_mb_{tag(n)}": d["wal_end_mb"],
                               f"write_{tag(n)}_s": d["write_s"],
                               f"poll_{tag(n)}_ms": d["poll_ms"]})
        summary[k]["schema"] = res[k][sizes[0]]["schema"]
    big = tag(max(sizes))
    print(f"\n{'':28s}" + "".join(f"{k:>12s}" for k in layouts))
    for key in summary["after"]:
        print(f"{key:28s}" + "".join(f"{_fmt(summary[k].get(key)):>12s}" for k in layouts))
    after = summary["after"]
    out = {"bench": "storage", "series": a.series, "steps": sizes, "batch_rows": a.batch,
           "before_ref": ref, "bytes_per_point": after[f"bytes_per_point_{big}"],
           "read_1m_s" if big == "1m" else f"read_{big}_s": after[f"read_{big}_s"],
           "wal_peak_mb": max(after[f"wal_peak_mb_{tag(n)}"] for n in sizes), "after": after}
    ok = out["bytes_per_point"] <= TARGET_BYTES
    if "before" in summary:
        before = summary["before"]
        out["before"] = before
        out["read_ratio"] = round(after[f"read_{big}_s"] / before[f"read_{big}_s"], 3)
        out["bytes_ratio"] = round(after[f"bytes_per_point_{big}"] / before[f"bytes_per_point_{big}"], 3)
        ok = ok and out["read_ratio"] <= READ_SLACK
    out["pass"] = bool(ok)
    print(json.dumps(out))
    return 1 if a.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
