"""Which runs the Lab page's views offer, shared by its views (no torch).

Example::

    options = recurrent_lm_options(data.list_runs())        # [{"label": "name  (id, status)", "value": id}]
    chosen = newest_launch(runs, {o["value"] for o in options}, ("activations", "clipping"))
    fresh = refreshed_options(data.list_runs(), options, chosen)   # or None when nothing changed
    at = pick_step([0, 300], 200)                                 # 0: the newest snapshot at or before 200
"""
from __future__ import annotations

import bisect

from dash import no_update

from backend.lab.presets import PRESETS
from backend.spec import RECURRENT
from backend.tasks import TASKS
from dashboard.context import current
from dashboard.inputs import MAX_RUNS, as_dict, as_list, as_run_id, as_run_ids, as_steps, as_str


def recurrent_lm_options(runs: list[dict]) -> list[dict]:
    """Dropdown options of the recurrent language-model runs among ``runs`` (in their order, newest first):
    the runs that record gradient-flow and hidden-norm snapshots."""
    out = []
    for r in runs:
        family = ((r.get("spec") or {}).get("model") or {}).get("family")
        info = TASKS.get(r.get("task"))
        if family in RECURRENT and info is not None and info.kind == "lm":
            out.append({"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]})
    return out


def newest_launch(runs: list[dict], known: set[str], preset_ids: tuple[str, ...]) -> list[str]:
    """The run ids of the newest launch of any of ``preset_ids`` (``runs`` newest first, only ids in
    ``known``), in its preset's order; [] when none was launched."""
    by_name = {name: p for p in preset_ids for name, _ in PRESETS[p].runs}
    latest = next((by_name[r["name"]] for r in runs if r["name"] in by_name and r["id"] in known), None)
    if latest is None:
        return []
    newest: dict[str, str] = {}
    for r in runs:
        if by_name.get(r["name"]) == latest and r["name"] not in newest and r["id"] in known:
            newest[r["name"]] = r["id"]
    return [newest[name] for name, _ in PRESETS[latest].runs if name in newest]


def refreshed_options(runs: list[dict], options: list[dict] | None, value: list[str] | None) -> list[dict] | None:
    """Current options for the run dropdown (new runs, statuses); chosen runs always stay listed.
    None when they equal ``options`` (nothing to send)."""
    fresh = recurrent_lm_options(runs)
    have = {o["value"] for o in fresh}
    fresh += [o for o in (options or []) if o["value"] in (value or []) and o["value"] not in have]
    return None if fresh == options else fresh


def refresh_run_options(_n, options, value):
    """Callback body of both views' run dropdowns: current options, or no_update when nothing changed."""
    options = [o for o in as_list(options) if isinstance(o, dict) and as_run_id(o.get("value"))]
    fresh = refreshed_options(current().data.list_runs(), options, as_run_ids(value))
    return no_update if fresh is None else fresh


def read_steps_store(value) -> dict | None:
    """Both views' steps store, ``{"steps": union, "runs": [[run id, steps, status], ...]}``, as the page
    sends it back: checked, junk entries dropped; None when it is no such store."""
    v = as_dict(value)
    if v is None:
        return None
    runs = []
    for entry in as_list(v.get("runs"), MAX_RUNS, []):
        if isinstance(entry, list) and len(entry) == 3:
            rid, steps, status = as_run_id(entry[0]), as_steps(entry[1]), as_str(entry[2], 32)
            if None not in (rid, steps, status):
                runs.append([rid, steps, status])
    return {"steps": sorted(as_steps(v.get("steps"), [])), "runs": runs}


def pick_step(steps: list[int], step: int | None) -> int | None:
    """The newest of ``steps`` at or before ``step`` (the newest when ``step`` is None); None if none.

    >>> pick_step([0, 300, 100], 200), pick_step([0, 300], None), pick_step([50], 10)
    (100, 300, None)
    """
    ordered = sorted(int(s) for s in steps)
    if step is None:
        return ordered[-1] if ordered else None
    i = bisect.bisect_right(ordered, int(step))
    return ordered[i - 1] if i else None
