"""What a first brush on the Hidden states page finds: current defaults vs candidates (issue 17, item 1).

For many brushes a student might make on the demo's runs, each setting (state, threshold,
off-before margin; off-after stays 0) is applied through the page's own data layer
(``HiddenStates.select``, ``HiddenStates.match``, ``HiddenStates.suggest``), and the result is judged
against the probe text's annotation tracks:

* ``code-lstm``: brushes over the inside of string literals (the characters between the quotes,
  3-16 characters on one line, e.g. ``nested_scopes``), or with ``--quoted``, the quotes included.
  ``share``: of the tokens of the matches (the top 50 the page lists, less the brushed range itself),
  the share inside a string literal (track ``in string``; its base rate over the probe text is
  printed, 0.63: docstrings are long). ``strict``: the share inside a one-line string literal (base
  rate about 0.05), i.e. matches that are strings like the one brushed.
* ``brackets-lstm``: brushes over the letters of a bracketed group (3-8 letters between brackets,
  depth >= 1, e.g. ``dcbba``). ``share``: matched tokens at a depth within 1 of the brushed group's;
  ``strict``: at the same depth.

Per setting: ``found`` (brushes that select at least one cell), the median number of cells, the
mean share over the brushes that found cells, and ``useful``: brushes whose selection is not empty
and whose share is at least 0.6 (an empty selection counts as not useful).

    deepscope train code-lstm --data-dir /tmp/hd/code --set steps=20000      # the demo's code run
    deepscope train brackets-lstm --data-dir /tmp/hd/br                      # the demo's brackets run
    .venv/bin/python bench/hidden_defaults.py --code /tmp/hd/code --brackets /tmp/hd/br [--code-step 1000]

The last line is one JSON object: per run, per setting, the figures above.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from backend.store import RunStore
from backend.store.hidden import KIND, HiddenSnapshot
from dashboard.views.hidden_states.data import HiddenStates
from dashboard.views.hidden_states.view import DEFAULT_OFF_BEFORE, DEFAULT_STATE, DEFAULT_THRESHOLD

USEFUL = 0.6
BEFORE = ("h", 0.3, 1)  # the page's defaults before issue 17: state h, threshold 0.3, off before 1
SETTINGS = [(s, t, ob) for s, ts in (("h", (0.1, 0.2, 0.3, 0.5)), ("c", (0.5, 1.0, 2.0))) for t in ts
            for ob in (0, 1)] + [(s, "suggested", ob) for s in "hc" for ob in (0, 1)]


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open (start, stop) pairs."""
    m = np.concatenate(([False], mask, [False]))
    e = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(e[0::2].tolist(), e[1::2].tolist()))


def string_literals(text: str, in_string: np.ndarray, quoted: bool = False) -> list[tuple[int, int]]:
    """The insides of one-line string literals of 3-16 characters (with ``quoted``: quotes included)."""
    out = []
    for s, e in runs_of(in_string):
        lit = text[s:e]
        q = next((i for i, ch in enumerate(lit) if ch in "'\""), None)
        if q is None or lit[q:q + 3] in ('"""', "'''"):
            continue
        a, b = s + q + 1, e - 1
        if 3 <= b - a <= 16 and "\n" not in text[a:b] and text[b] == lit[q]:
            out.append((a - 1, b + 1) if quoted else (a, b))
    return out


def bracket_groups(text: str, depth: np.ndarray) -> list[tuple[int, int]]:
    """Runs of 3-8 letters inside brackets (depth >= 1) at one depth, e.g. ``dcbba`` of ``(dcbba)``."""
    letters = np.array([ch.isalpha() for ch in text])
    return [(s, e) for s, e in runs_of(letters) if 3 <= e - s <= 8 and depth[s] >= 1]


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced through the list (all when fewer)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def judged(snap: HiddenSnapshot, task: str, quoted: bool):
    """(brushes, share(s, e, a, b), strict(s, e, a, b), base rates) for a run's probe text."""
    text = "".join(snap.tokens())
    tracks = snap.tracks()
    if task == "code-lstm":
        ins = tracks[snap.track_names.index("in string")] > 0.5
        one_line = np.zeros_like(ins)
        for s, e in runs_of(ins):
            one_line[s:e] = "\n" not in text[s:e]
        brushes = string_literals(text, ins, quoted)
        return (brushes, lambda s, e, a, b: ins[a:b], lambda s, e, a, b: one_line[a:b],
                {"share": float(ins.mean()), "strict": float(one_line.mean())})
    depth = tracks[snap.track_names.index("depth")]
    brushes = bracket_groups(text, depth)
    base = [np.mean(np.abs(depth - depth[s]) <= 1) for s, _ in brushes]
    strict = [np.mean(depth == depth[s]) for s, _ in brushes]
    return (brushes, lambda s, e, a, b: np.abs(depth[a:b] - depth[s]) <= 1, lambda s, e, a, b: depth[a:b] == depth[s],
            {"share": float(np.mean(base)), "strict": float(np.mean(strict))})


def first_brush(hs: HiddenStates, run_id: str, snap, key: str, s: int, e: int, thr, ob: int):
    """(threshold, cells, matches other than the brushed range) of one brush at one setting."""
    if thr == "suggested":
        hint = hs.suggest(snap, {key: (ob, 0)}, s, e)
        if hint is None:
            return None, [], []
        thr = hint.threshold
    cells = hs.select(snap, key, s, e, thr, ob, 0).cells
    if not cells:
        return thr, [], []
    found = hs.match(run_id, snap, key, cells, thr, e - s)
    return thr, cells, [m for m in found if not (m["start"] < e and m["stop"] > s)]


def measure(hs, run_id, snap, brushes, share, strict, setting) -> dict:
    state, thr, ob = setting
    key = f"l0.fwd.{state}"
    n_cells, shares, stricts, thrs, useful = [], [], [], [], 0
    for s, e in brushes:
        t, cells, matches = first_brush(hs, run_id, snap, key, s, e, thr, ob)
        if t is not None:
            thrs.append(t)
        tokens = sum(m["stop"] - m["start"] for m in matches)
        if not cells:
            continue
        n_cells.append(len(cells))
        sh = sum(int(share(s, e, m["start"], m["stop"]).sum()) for m in matches) / tokens if tokens else 0.0
        st = sum(int(strict(s, e, m["start"], m["stop"]).sum()) for m in matches) / tokens if tokens else 0.0
        shares.append(sh)
        stricts.append(st)
        useful += sh >= USEFUL
    n = len(brushes)
    return {"state": state, "threshold": thr, "off_before": ob, "found": len(n_cells) / n,
            "cells_median": float(np.median(n_cells)) if n_cells else 0.0,
            "threshold_median": float(np.median(thrs)) if thrs else None,
            "share": float(np.mean(shares)) if shares else 0.0, "strict": float(np.mean(stricts)) if stricts else 0.0,
            "useful": useful / n}


def open_run(data_dir: str, task: str, step: int | None):
    store = RunStore(data_dir)
    run = next(r for r in store.list_runs() if r["task"] == task)
    rows = store.list_snapshots(run["id"], KIND)
    row = rows[-1] if step is None else max((r for r in rows if r["step"] <= step), key=lambda r: r["step"])
    return store, run["id"], HiddenSnapshot(store, row)


def bench_run(data_dir: str, task: str, step: int | None, n: int, quoted: bool) -> dict:
    store, run_id, snap = open_run(data_dir, task, step)
    hs = HiddenStates(store)
    brushes, share, strict, base = judged(snap, task, quoted)
    brushes = spread(brushes, n)
    text = "".join(snap.tokens())
    print(f"\n{task} run {run_id}, snapshot at step {snap.step:,}: {len(brushes)} brushes, e.g. "
          + ", ".join(repr(text[s:e]) for s, e in brushes[:4])
          + f"; base rates: share {base['share']:.2f}, strict {base['strict']:.3f}")
    print(f"{'state':<6}{'threshold':>10}{'ob':>4}{'found':>7}{'cells':>7}{'thr med':>9}{'share':>7}{'strict':>8}"
          f"{'useful':>8}")
    out = {"run": run_id, "step": snap.step, "brushes": len(brushes), "base": base, "settings": []}
    now = (DEFAULT_STATE, "suggested", DEFAULT_OFF_BEFORE)
    t0 = time.perf_counter()
    for setting in SETTINGS:
        r = measure(hs, run_id, snap, brushes, share, strict, setting)
        tag = " <- before" if setting == BEFORE else " <- now" if setting == now else ""
        tm = "-" if r["threshold_median"] is None else f"{r['threshold_median']:.2f}"
        print(f"{r['state']:<6}{r['threshold']!s:>10}{r['off_before']:>4}{r['found']:>7.2f}{r['cells_median']:>7.0f}"
              f"{tm:>9}{r['share']:>7.2f}{r['strict']:>8.2f}{r['useful']:>8.2f}{tag}")
        out["settings"].append(r)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["before"] = next(r for r in out["settings"] if (r["state"], r["threshold"], r["off_before"]) == BEFORE)
    out["now"] = next(r for r in out["settings"] if (r["state"], r["threshold"], r["off_before"]) == now)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--code", help="data folder holding a code-lstm run")
    p.add_argument("--brackets", help="data folder holding a brackets-lstm run")
    p.add_argument("--code-step", type=int, default=None, help="snapshot at or before this step (default newest)")
    p.add_argument("--brackets-step", type=int, default=None)
    p.add_argument("--brushes", type=int, default=60, help="brushes per run, spread through the probe text")
    p.add_argument("--quoted", action="store_true", help="code: brush the string literals with their quotes")
    args = p.parse_args()
    print(f"defaults now: state {DEFAULT_STATE}, threshold suggested per brush (else {DEFAULT_THRESHOLD}), "
          f"off before {DEFAULT_OFF_BEFORE}, off after 0")
    result = {}
    if args.code:
        result["code-lstm"] = bench_run(args.code, "code-lstm", args.code_step, args.brushes, args.quoted)
    if args.brackets:
        result["brackets-lstm"] = bench_run(args.brackets, "brackets-lstm", args.brackets_step, args.brushes, False)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
