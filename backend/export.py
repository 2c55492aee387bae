"""A run's data at full resolution, for a notebook: metrics as CSV or JSON Lines, snapshots as ``.npz``.

Metrics stream from the store in pages of :data:`PAGE` rows in commit order (which, since a resume
replaces what it supersedes, is step order within each series), so a series of millions of points is
written in bounded memory. Snapshots (hidden states, kernels, projections, ...) are written one file per
snapshot with the arrays as the store keeps them, beside a ``manifest.json`` that says what each holds.

    deepscope export RUN                          # RUN-metrics.csv in this folder
    deepscope export RUN --format jsonl --series train/loss --series val/acc -o -
    deepscope export RUN --snapshots out/         # out/manifest.json, out/hidden/step-000001000.npz, ...

Example::

    with open("run.csv", "w", newline="") as fh:
        n = write_metrics(store, run_id, fh, fmt="csv")
    manifest = write_snapshots(store, run_id, Path("out"))
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:  # pragma: no cover - the CLI imports this module to build its parser: keep it light
    from .store import RunStore

FORMATS = ("csv", "jsonl")
PAGE = 50_000  # rows per store read: ~10 MB of Python tuples at most
COLUMNS = ("name", "step", "value", "wall_time")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ExportError(ValueError):
    """What the user asked for cannot be exported; the message says why."""


def metric_rows(store: RunStore, run_id: str, series: Iterable[str] | None = None,
                page: int | None = None) -> Iterator[tuple[str, int, float, float]]:
    """``(name, step, value, wall_time)`` of every logged point (of ``series`` only, if given), in commit
    order, read ``page`` rows (default :data:`PAGE`) at a time."""
    page = page or PAGE
    wanted = set(series) if series else None
    cursor = 0
    while True:
        rows, cursor = store.scalars_after(run_id, cursor, limit=page)
        for _id, name, step, wall, value in rows:
            if wanted is None or name in wanted:
                yield name, int(step), float(value), float(wall)
        if len(rows) < page:
            return


def check_request(store: RunStore, run_id: str, fmt: str, series: Iterable[str] | None) -> list[str] | None:
    """The run's series to export (None: all), or ExportError naming the run, format or series that is wrong."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if store.get_run(run_id) is None:
        raise ExportError(f"no run with id {run_id!r} (`deepscope runs` lists them)")
    if not series:
        return None
    have = set(store.scalar_names(run_id))
    missing = [s for s in series if s not in have]
    if missing:
        shown = ", ".join(sorted(have)[:12]) or "none yet"
        raise ExportError(f"run {run_id} has no series {', '.join(map(repr, missing))}; it has: {shown}")
    return list(series)


def metric_chunks(store: RunStore, run_id: str, fmt: str = "csv",
                  series: Iterable[str] | None = None) -> Iterator[str]:
    """The export as text chunks of about :data:`PAGE` rows each (the first one the CSV header), for a
    file or an HTTP response that streams. Values keep full float precision (``repr``); NaN and
    infinities are written as ``nan``/``inf`` (CSV) or ``null`` (JSON). Checks the request first."""
    chosen = check_request(store, run_id, fmt, series)
    return (text for text, _rows in _chunks(store, run_id, fmt, chosen))


def _chunks(store: RunStore, run_id: str, fmt: str, chosen: list[str] | None) -> Iterator[tuple[str, int]]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(COLUMNS)
    n = 0
    for name, step, value, wall in metric_rows(store, run_id, chosen):
        if fmt == "csv":
            writer.writerow((name, step, repr(value), repr(wall)))
        else:
            buf.write(json.dumps({"name": name, "step": step, "value": value if math.isfinite(value) else None,
                                  "wall_time": wall}) + "\n")
        n += 1
        if n % PAGE == 0:
            yield buf.getvalue(), PAGE
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue(), n % PAGE


def write_metrics(store: RunStore, run_id: str, out: IO[str], fmt: str = "csv",
                  series: Iterable[str] | None = None) -> int:
    """Write the run's points to the text stream ``out`` (see :func:`metric_chunks`); returns how many."""
    return _write(store, run_id, out, fmt, check_request(store, run_id, fmt, series))


def _write(store: RunStore, run_id: str, out: IO[str], fmt: str, chosen: list[str] | None) -> int:
    n = 0
    for text, rows in _chunks(store, run_id, fmt, chosen):
        out.write(text)
        n += rows
    return n


def write_snapshots(store: RunStore, run_id: str, folder: Path) -> dict:
    """Every snapshot of the run as ``folder/<kind>/step-XXXXXXXXX[-N].npz`` (its arrays, unpickled numpy)
    and ``folder/manifest.json`` (run, spec, and for each file its kind, step, arrays with shape and dtype,
    and the snapshot's meta). Returns the manifest."""
    import numpy as np

    from .store import StoreError

    run = store.get_run(run_id)
    if run is None:
        raise ExportError(f"no run with id {run_id!r} (`deepscope runs` lists them)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries, seen = [], set()
    for snap in store.list_snapshots(run_id):
        kind = _SAFE.sub("_", str(snap["kind"])) or "snapshot"
        stem = f"step-{int(snap['step']):09d}"
        name, k = f"{kind}/{stem}.npz", 1
        while name in seen:  # several snapshots of one kind at one step (e.g. one per probe input)
            k += 1
            name = f"{kind}/{stem}-{k}.npz"
        seen.add(name)
        try:
            arrays = store.load_arrays(snap)
        except (OSError, ValueError, StoreError) as exc:
            entries.append({"kind": snap["kind"], "step": int(snap["step"]), "error": f"not exported: {exc}"})
            continue
        (folder / kind).mkdir(exist_ok=True)
        np.savez(folder / name, **{_SAFE.sub("_", k) or "array": np.asarray(v) for k, v in arrays.items()})
        entries.append({"file": name, "kind": snap["kind"], "step": int(snap["step"]),
                        "arrays": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                                   for k, v in arrays.items()},
                        "meta": snap.get("meta") or {}})
    manifest = {"run": {k: run.get(k) for k in ("id", "name", "task", "status", "step", "source")},
                "spec": run.get("spec"), "snapshots": entries,
                "read_with": "numpy.load(path, allow_pickle=False)"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return manifest


def add_parser(sub, common) -> None:
    """``deepscope export`` in the CLI's sub-commands."""
    p = sub.add_parser("export", parents=[common],
                       help="a run's metrics at full resolution (CSV or JSON Lines) and its snapshots (.npz)")
    p.add_argument("run", help="run id (`deepscope runs` lists them)")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--series", action="append", metavar="NAME", help="only this series (repeatable; default all)")
    p.add_argument("-o", "--out", help="file to write (default RUN-metrics.csv or .jsonl here; - for stdout)")
    p.add_argument("--snapshots", metavar="FOLDER",
                   help="also write every snapshot as FOLDER/<kind>/step-*.npz with FOLDER/manifest.json")


def cmd_export(args, store: RunStore) -> int:
    """Run ``deepscope export``; 0, or 2 with a one-line reason on stderr."""
    import sys

    out_path = args.out or f"{args.run}-metrics.{args.format}"
    tmp = Path(out_path).with_name(f".tmp-{Path(out_path).name}")
    try:
        chosen = check_request(store, args.run, args.format, args.series)  # before any file is made
        if out_path == "-":
            n = _write(store, args.run, sys.stdout, args.format, chosen)
        else:
            try:
                with open(tmp, "w", newline="", encoding="utf-8") as fh:
                    n = _write(store, args.run, fh, args.format, chosen)
                tmp.replace(out_path)  # a reader never sees half an export under the real name
            finally:
                tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves nothing behind
        manifest = write_snapshots(store, args.run, Path(args.snapshots)) if args.snapshots else None
    except (ExportError, OSError) as exc:
        print(f"deepscope export: {exc}", file=sys.stderr)
        return 2
    say = sys.stderr if out_path == "-" else sys.stdout
    print(f"exported {n:,} points of run {args.run}" + ("" if out_path == "-" else f" to {out_path}"), file=say)
    if manifest is not None:
        files = sum(1 for e in manifest["snapshots"] if "file" in e)
        print(f"exported {files} snapshots to {args.snapshots} (manifest.json lists them)", file=say)
    return 0
