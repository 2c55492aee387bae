"""Live training curves: build figures once, then stream only new points.

``live_update`` is the curves' part of the Training page's one live callback
(:mod:`dashboard.views.training.tick`). It returns whole
figures when the selection (runs, smoothing) differs from the one its state was built
for, and otherwise ``Patch`` objects that extend each trace with the rows logged after
the state's cursors, plus the new state, in the same response. Because the state says
which selection it belongs to, a response Dash drops (it does when a newer request is
in flight) heals on the next poll instead of leaving the page wrong.

The pure parts (``build_figures``, ``stream_delta``) return dicts so tests need no browser.
"""
from __future__ import annotations

import copy
import secrets
from typing import Any, Callable

from dash import Patch, no_update
from dash.exceptions import PreventUpdate

from backend.store import ACTIVE_STATUSES, FINAL_STATUSES

from dashboard.data import MAX_POINTS, SERIES_TTL_FINAL, SERIES_TTL_LIVE
from dashboard.inputs import as_dict, as_float, as_run_ids
from dashboard.series import thin_indices, to_plot_list
from dashboard.views.training.figures import (EMPTY_TEXT, PALETTE, PANEL_HEIGHT, PANELS, UNSMOOTHED, ema, metric_order,
                              metric_trace, panel_figure, panel_of, resume_marks)


# A live update adds points at the resolution of the figure's first draw: a pair (min and max) per
# 1/PAIRS_PER_RUN of the steps so far (see figures.series.thin_indices). Every point stays in the store.
PAIRS_PER_RUN = MAX_POINTS // 2


def new_state(run_ids: list[str], smoothing: float, labels: dict[str, str]) -> dict:
    """Empty live state: per-run cursors and the map from (run, metric) to trace indices."""
    return {"key": {"runs": list(run_ids), "smoothing": float(smoothing)}, "cursors": {},
            "labels": labels, "traces": {}, "counts": {p: 0 for p in PANELS},
            "series": {p: 0 for p in PANELS}}


def add_series(state: dict, run_id: str, metric: str, x: list, y: list) -> tuple[str, list[dict]]:
    """Register a new (run, metric) series in ``state``; return its panel and its new traces."""
    panel = panel_of(metric)
    runs, weight = state["key"]["runs"], state["key"]["smoothing"]
    # One run: a colour per metric. Several runs: a colour per run, so overlays compare.
    n = state["series"][panel] if len(runs) == 1 else runs.index(run_id)
    color = PALETTE[n % len(PALETTE)]
    label = metric if len(runs) == 1 else f"{state['labels'].get(run_id, run_id)} · {metric}"
    key, group = f"{run_id}|{metric}", f"{run_id}|{metric}"
    entry = {"panel": panel, "raw": state["counts"][panel], "smooth": None, "ema": [0.0, 0]}
    if weight > 0 and panel not in UNSMOOTHED:
        smooth_y, ema_state = ema(y, weight)
        entry.update(smooth=entry["raw"] + 1, ema=list(ema_state))
        traces = [metric_trace(label, x, y, color, metric, role="raw", group=group),
                  metric_trace(label, x, smooth_y, color, metric, role="smooth", group=group)]
    else:
        traces = [metric_trace(label, x, y, color, metric, group=group)]
    state["traces"][key] = entry
    state["counts"][panel] += len(traces)
    state["series"][panel] += 1
    return panel, traces


def build_figures(data: Any, run_ids: list[str], smoothing: float) -> tuple[dict[str, dict], dict]:
    """Whole figures of every panel for ``run_ids`` (downsampled history) and a fresh state."""
    labels, live, attempts, resumes = {}, False, {}, []
    for rid in run_ids:
        run = data.get_run(rid) or {}
        labels[rid] = run.get("name") or rid
        live = live or run.get("status") in ACTIVE_STATUSES
        attempts[rid] = attempt_of(run)
        for r in run.get("resumes") or []:
            if isinstance(r, dict) and isinstance(r.get("step"), int):
                who = f"{labels[rid]}: " if len(run_ids) > 1 else ""
                resumes.append((f"{who}resumed from step {r['step']:,}", r["step"]))
    state = new_state(run_ids, smoothing, labels)
    state["attempts"] = attempts
    traces: dict[str, list[dict]] = {p: [] for p in PANELS}
    for rid in run_ids:
        series, cursor = data.initial_series(rid)
        state["cursors"][rid] = cursor
        for name in metric_order(series):
            panel, new = add_series(state, rid, name, series[name]["x"], series[name]["y"])
            traces[panel].extend(new)
    uirev = "|".join(run_ids)
    if not run_ids:
        empty = {p: "Choose one or more runs above" for p in PANELS}
    else:  # a finished run will log nothing more: do not say "waiting"
        empty = {p: EMPTY_TEXT.get(p, None if live else "Nothing was logged here") for p in PANELS}
    figures = {p: panel_figure(p, traces[p], f"{p}:{uirev}", empty[p]) for p in PANELS}
    shapes, notes = resume_marks(resumes)
    for p, fig in figures.items():
        if traces[p] and shapes:
            fig["layout"]["shapes"] = shapes
            fig["layout"]["annotations"] = list(fig["layout"]["annotations"]) + notes
    return figures, state


def attempt_of(run: dict) -> int:
    """How many times a run was resumed from a checkpoint (0 before any resume)."""
    value = run.get("attempt") if isinstance(run, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


def stream_delta(data: Any, state: dict, fetch: Callable[[str, int], tuple[dict, int]] | None = None
                 ) -> tuple[dict[str, dict], dict]:
    """What to add to each panel since the state's cursors, and the advanced state.

    Returns ``({panel: {"extend": [(trace_index, xs, ys)], "append": [trace dicts]}}, state)``
    with only panels that change. ``state`` is not modified; a copy is returned. ``fetch(run_id, cursor)``
    gives the rows after a cursor (default ``data.scalars_since``: one store query).
    """
    state = _copy_state(state)
    delta: dict[str, dict] = {}
    weight = state["key"]["smoothing"]
    fetch = fetch or data.scalars_since
    for rid in state["key"]["runs"]:
        new, state["cursors"][rid] = fetch(rid, state["cursors"].get(rid, 0))
        for name in metric_order(new):
            xs, ys = new[name]["x"], new[name]["y"]
            entry = state["traces"].get(f"{rid}|{name}")
            if entry is None:
                panel, traces = add_series(state, rid, name, xs, ys)
                delta.setdefault(panel, {"extend": [], "append": []})["append"].extend(traces)
                continue
            ops = delta.setdefault(entry["panel"], {"extend": [], "append": []})["extend"]
            keep = thin_indices(xs, ys, (xs[-1] if xs else 0) / PAIRS_PER_RUN)
            ops.append((entry["raw"], [xs[i] for i in keep], [ys[i] for i in keep]))
            if entry["smooth"] is not None:
                smooth_y, ema_state = ema(ys, weight, tuple(entry["ema"]))  # over every point, then thinned
                entry["ema"] = list(ema_state)
                ops.append((entry["smooth"], [xs[i] for i in keep], to_plot_list([smooth_y[i] for i in keep])))
    return delta, state


def _copy_state(state: dict) -> dict:
    """A copy of a live state that :func:`stream_delta` may change (cursors, trace entries, counts): ~20x
    faster than ``copy.deepcopy``, which was a sixth of a live update's server time."""
    out = dict(state)
    for key in ("cursors", "counts", "series"):
        out[key] = dict(state[key])
    out["traces"] = {k: {**v, "ema": list(v["ema"])} for k, v in state["traces"].items()}
    return out


def delta_to_patch(panel_delta: dict) -> Patch:
    """A ``Patch`` that extends existing traces and appends new ones (and drops the empty note)."""
    patch = Patch()
    for index, xs, ys in panel_delta["extend"]:
        patch["data"][index]["x"].extend(xs)
        patch["data"][index]["y"].extend(ys)
    for trace in panel_delta["append"]:
        patch["data"].append(trace)
    if panel_delta["append"]:  # the panel may have been an empty note: show its axes now
        patch["layout"]["annotations"] = []
        patch["layout"]["xaxis"]["visible"] = True
        patch["layout"]["yaxis"]["visible"] = True
        patch["layout"]["height"] = PANEL_HEIGHT
    return patch


def selected_runs(value: Any) -> list[str]:
    """The run selector's value as a list of ids (Dash gives None, a string or a list); junk entries dropped,
    at most :data:`dashboard.inputs.MAX_RUNS`."""
    return as_run_ids(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53


def checked_state(state: Any) -> dict | None:
    """``state`` if it has the shape :func:`new_state` gives (a browser sends it back, and a crafted
    request anything), else None: the figures are rebuilt from the store."""
    state = as_dict(state)
    parts = [as_dict((state or {}).get(k), None, 10_000) for k in ("key", "cursors", "traces", "counts", "labels")]
    series = as_dict((state or {}).get("series"))
    if state is None or None in parts or series is None:
        return None
    _key, cursors, traces, counts, _labels = parts
    if any(set(c) != set(PANELS) or not all(map(_count, c.values())) for c in (counts, series)):
        return None
    if not all(map(_count, cursors.values())):
        return None
    for entry in traces.values():
        ema_ = entry.get("ema") if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and entry.get("panel") in PANELS and _count(entry.get("raw"))
                and (entry.get("smooth") is None or _count(entry["smooth"]))
                and isinstance(ema_, list) and len(ema_) == 2 and as_float(ema_[0]) is not None
                and _count(ema_[1])):
            return None
    return state


def live_update(data: Any, run_value: Any, smoothing: float | None, state: dict | None,
                heads: dict[str, dict | None] | None = None, stream: bool = True,
                rebuild: bool = False) -> tuple[list, Any]:
    """Figures (or patches) for every panel, in ``PANELS`` order, and the state to store.

    The state goes back whole after a rebuild or when new series appeared, and otherwise as a
    ``Patch`` of the cursors and smoothing carry-over alone: a one-step update stays ~1 KB.
    With ``heads`` (:meth:`dashboard.live_heads.RunHeads.heads` of the selected runs) nothing is read
    from the store when the state's cursors are at the heads, new rows come from the range the heads
    cached, and whole figures are built once per selection for every viewer (cached like the series).

    ``stream=False`` (the page streams through :mod:`dashboard.views.training.live_route` instead): whole
    figures only, when the selection changed, a run was resumed, the state is not one this module wrote, or
    ``rebuild`` (the page saw a series it has no trace for); they are brought up to the heads and their state
    carries a new ``gen``, so an answer of the route asked for before them is not applied after them.
    Otherwise PreventUpdate: the curves are not this callback's business.
    """
    run_ids, smoothing = selected_runs(run_value), as_float(smoothing, 0.0, 0.0, 0.99)
    state = checked_state(state)
    if (rebuild or not state or state.get("key") != {"runs": run_ids, "smoothing": smoothing}
            or _resumed_since(data, state, run_ids, heads)):
        figs, state = build_figures(data, run_ids, smoothing) if heads is None else \
            shared_figures(data, run_ids, smoothing, heads)
        if not stream:
            figs, state = caught_up(data, figs, state, heads)
        return [figs[p] for p in PANELS], state
    if not stream:
        raise PreventUpdate
    fetch = None
    if heads is not None:
        def fetch(rid: str, cursor: int) -> tuple[dict, int]:
            head = heads.get(rid)
            return data.heads.rows_between(rid, cursor, head) if head else ({}, cursor)
    delta, new_state_ = stream_delta(data, state, fetch)
    if new_state_["cursors"] == state["cursors"]:
        raise PreventUpdate  # nothing new: send nothing
    figures = [delta_to_patch(delta[p]) if p in delta else no_update for p in PANELS]
    return figures, state_patch(state, new_state_)


def caught_up(data: Any, figures: dict[str, dict], state: dict, heads: dict | None) -> tuple[dict, dict]:
    """Whole ``figures`` (built at ``state``'s cursors, maybe from a cache a few seconds old) with the rows up
    to the heads added (new series appended), and their state with a fresh ``gen``. Touched traces are copied:
    the cached figures stay as they were."""
    fetch = None
    if heads is not None:
        def fetch(rid: str, cursor: int) -> tuple[dict, int]:
            head = heads.get(rid)
            return data.heads.rows_between(rid, cursor, head) if head else ({}, cursor)
    delta, state = stream_delta(data, state, fetch)
    figures = {p: apply_delta(fig, delta[p]) if p in delta else fig for p, fig in figures.items()}
    return figures, {**state, "gen": secrets.token_hex(6)}


def apply_delta(figure: dict, panel_delta: dict) -> dict:
    """A whole figure with :func:`stream_delta`'s panel delta applied (what :func:`delta_to_patch` does in the
    browser); ``figure`` is not changed."""
    was_empty = not figure.get("data")
    fig = {**figure, "data": list(figure.get("data") or []), "layout": dict(figure.get("layout") or {})}
    for index, xs, ys in panel_delta["extend"]:
        trace = dict(fig["data"][index])
        trace["x"], trace["y"] = list(trace.get("x") or []) + list(xs), list(trace.get("y") or []) + list(ys)
        fig["data"][index] = trace
    fig["data"].extend(panel_delta["append"])
    if panel_delta["append"] and was_empty:  # the panel was an empty note: show its axes now
        layout = fig["layout"]
        layout["annotations"] = []
        layout["xaxis"] = {**(layout.get("xaxis") or {}), "visible": True}
        layout["yaxis"] = {**(layout.get("yaxis") or {}), "visible": True}
        layout["height"] = PANEL_HEIGHT
    return fig


def shared_figures(data: Any, run_ids: list[str], smoothing: float, heads: dict) -> tuple[dict, dict]:
    """:func:`build_figures`, built once for every viewer of the same selection: cached per runs, smoothing
    and attempts, as long as the series it starts from (the cursor streams what came after)."""
    rows = [(heads.get(rid) or {}).get("run") or {} for rid in run_ids]
    final = bool(rows) and all(r.get("status") in FINAL_STATUSES for r in rows)
    key = "figs:" + ",".join(f"{rid}.{attempt_of(r)}" for rid, r in zip(run_ids, rows)) + f":{smoothing}"
    figs, state = data._cached(key, SERIES_TTL_FINAL if final else SERIES_TTL_LIVE,  # noqa: SLF001
                               lambda: build_figures(data, run_ids, smoothing))
    return figs, state


def _resumed_since(data: Any, state: dict, run_ids: list[str], heads: dict | None = None) -> bool:
    """Whether a run was resumed since ``state`` was built: its points after the checkpoint were deleted,
    so the figures are rebuilt rather than extended (else the curve would draw back on itself)."""
    seen = state.get("attempts")
    seen = seen if isinstance(seen, dict) else {}
    if heads is not None:
        return any(attempt_of((heads.get(rid) or {}).get("run") or {}) != seen.get(rid, 0) for rid in run_ids)
    return any(attempt_of(data.get_run(rid) or {}) != seen.get(rid, 0) for rid in run_ids)


def state_patch(old: dict, new: dict) -> Any:
    """The smallest change from ``old`` to ``new``: a Patch of cursors and EMA, or ``new`` whole."""
    if new["traces"].keys() != old["traces"].keys():
        return new
    patch = Patch()
    for rid, cursor in new["cursors"].items():
        if old["cursors"].get(rid) != cursor:
            patch["cursors"][rid] = cursor
    for key, entry in new["traces"].items():
        if entry["ema"] != old["traces"][key]["ema"]:
            patch["traces"][key]["ema"] = [round(entry["ema"][0], 12), entry["ema"][1]]
    return patch


def apply_state_update(state: dict, update: Any) -> dict:
    """What the browser's ``dcc.Store`` holds after ``update`` (a whole state or a state Patch).

    For callers outside a browser (tests, benchmarks); handles the plain assignments
    :func:`state_patch` makes.
    """
    if not isinstance(update, Patch):
        return update
    out = copy.deepcopy(state)
    for op in update.to_plotly_json()["operations"]:
        if op["operation"] != "Assign":
            raise ValueError(f"unexpected state operation {op['operation']!r}")
        node = out
        for key in op["location"][:-1]:
            node = node[key]
        node[op["location"][-1]] = op["params"]["value"]
    return out
