"""The Training page's Python callback: whole curves, run status and the samples card, when they change.

The page's one timer (``ids.TRAIN_INTERVAL``) drives a clientside callback (``assets/training_live.js``)
that asks :mod:`dashboard.views.training.live_route` (a plain JSON route, outside Dash's dispatch) for the
rows after its cursors and extends the curves in the browser. It pokes this callback (``ids.TRAIN_POKE``)
only when something drawn here changed: a run's status, name or error, its text samples, the run list
(signatures in the route's answer differ from those ``ids.TRAIN_SEEN`` says the page shows), or a run was
resumed or logged a new series (``{"rebuild": true}``: whole figures again). Then only the parts that
changed are computed and sent:

- curves: whole figures (:func:`dashboard.views.training.live.live_update` with ``stream=False``; built
  once per selection for everyone, brought up to the heads), on a new selection, a resume or a rebuild;
- status cards and control buttons, from the heads' run rows, and the run selector's options when the run
  list changed (the step a card shows is kept current by the page itself, from the route's answers);
- the samples card, when the chosen run's sample snapshots or the viewer's choices in the card changed.

Choosing runs, smoothing or something in the samples card fires the same callback at once.

Example (what the page's callback does)::

    outputs = tick(data, ids.TRAIN_POKE, ["a1b2"], 0.6, (None, None, None), state, card_state, seen, poke)
"""
from __future__ import annotations

import time
from typing import Any

from dash import html, no_update
from dash.exceptions import PreventUpdate

from backend.store import ACTIVE_STATUSES
from backend.store.samples import KIND as SAMPLES_KIND

from dashboard import ids

from dashboard.views.training import samples as samples_card
from dashboard.components import run_status_card
from dashboard.views.training.controls import RESUMABLE
from dashboard.views.training.figures import PANELS
from dashboard.inputs import as_dict, as_float
from dashboard.views.training.live import live_update, selected_runs
from dashboard.views.training.live_route import status_key

STATUS_OUTPUTS = 7  # status cards, control target, pause/resume/stop/apply disabled, run options
# A status card is drawn again at once when its run's status, name or error changes, but for a new step
# count only this often: the curves show progress live, and the card is most of a live answer's bytes.
STEP_EVERY_S = 5.0
LIVE_OUTPUTS = len(PANELS) + 2  # figures, live state, interval disabled


def run_options(runs: list[dict]) -> list[dict]:
    """Selector options: run name, short id and status."""
    return [{"label": f"{r['name']}  ({r['id']}, {r['status']})", "value": r["id"]} for r in runs]


def status_signature(run: dict | None) -> str | None:
    """What the status card and the buttons show of a run, but its step (see :data:`STEP_EVERY_S`): the
    signature the live route sends too (:func:`dashboard.views.training.live_route.status_key`)."""
    return status_key(run)


def seen_now(heads: dict[str, dict | None], runs_sig: str) -> dict:
    """The ``ids.TRAIN_SEEN`` value of a page that shows these heads (``t``: when its status cards were drawn)."""
    return {"runs": runs_sig,
            "status": {rid: status_signature((h or {}).get("run")) for rid, h in heads.items()},
            "steps": {rid: ((h or {}).get("run") or {}).get("step") for rid, h in heads.items()},
            "samples": {rid: (h or {}).get("samples") for rid, h in heads.items()}, "t": time.time()}


def tick(data: Any, trigger: Any, run_value: Any, smoothing: Any, card_choices: tuple, state: Any,
         card_state: Any, seen: Any, poke: Any = None) -> list:
    """Every output of the page's Python callback (live, status, samples card, seen), in that order.

    ``poke``: what the page's clientside poll wrote to ``ids.TRAIN_POKE`` (``{"rebuild": true}`` asks for
    whole figures). Raises PreventUpdate when nothing changed since what the page shows."""
    run_ids = selected_runs(run_value)
    heads = data.heads.heads(run_ids)
    now = seen_now(heads, data.heads.runs_signature())
    seen = as_dict(seen) or {}
    picked = trigger == ids.TRAIN_RUNS
    try:
        rebuild = trigger == ids.TRAIN_POKE and (as_dict(poke) or {}).get("rebuild") is True
        live = live_update(data, run_ids, smoothing, state, heads, stream=False, rebuild=rebuild)
        live_out = [*live[0], live[1], False if isinstance(live[1], dict) else no_update]
    except PreventUpdate:
        live_out = [no_update] * LIVE_OUTPUTS
    runs = [h["run"] for h in heads.values() if h]
    new_list = picked or trigger is None or seen.get("runs") != now["runs"]
    steps_due = seen.get("steps") != now["steps"] and now["t"] - (as_float(seen.get("t")) or 0.0) >= STEP_EVERY_S
    if new_list or steps_due or seen.get("status") != now["status"]:
        status_out = status_outputs(data, runs, new_list)
    else:
        status_out = [no_update] * STATUS_OUTPUTS
        now.update(steps=seen.get("steps"), t=seen.get("t"))  # the cards still show those steps
    card_out = samples_card.NO_UPDATE
    if picked or trigger is None or trigger in samples_card.CHOICES or seen.get("samples") != now["samples"]:
        try:
            card_out = samples_card.update(runs, *card_choices, card_state, SnapshotsFromHeads(data.heads, heads))
        except PreventUpdate:
            pass
    seen_out = now if now != seen else no_update
    out = [*live_out, *status_out, *card_out, seen_out]
    if all(v is no_update for v in out):
        raise PreventUpdate  # nothing new: 204, nothing sent
    return out


def step_id(run_id: str) -> dict:
    """Id of the step text in a run's status card: the page's poll writes the step it reads there."""
    return {"type": "train-step", "run": run_id}


def status_outputs(data: Any, runs: list[dict], with_options: bool = True) -> list:
    """Status cards, control target, the four buttons' ``disabled`` and (``with_options``) the selector's
    options, which the browser otherwise keeps."""
    cards = [run_status_card(r, data.run_summary(r), step_id=step_id(r["id"])) for r in runs]
    options = no_update
    if with_options:
        listed = data.list_runs()  # cached for a second: chosen runs it does not hold yet stay among the options
        have = {r["id"] for r in listed}
        options = run_options([r for r in runs if r["id"] not in have] + listed)
    if not runs:
        return [cards, "Choose a run to control it.", True, True, True, True, options]
    first = runs[0]
    status = first["status"]
    target = ["Controls for ", html.Strong(first.get("name") or first["id"])]
    lr = (first.get("spec") or {}).get("lr")
    if isinstance(lr, (int, float)):
        target.append(html.Span(f" · learning rate now {lr:g}", className="muted"))
    return [cards, target, status not in ("running", "queued"), status not in ("paused", *RESUMABLE),
            status not in ACTIVE_STATUSES, status not in ACTIVE_STATUSES, options]


class SnapshotsFromHeads:
    """Looks like a store to :func:`backend.store.samples.samples_history`, but lists the sample snapshots
    the heads name (cached) instead of querying."""

    def __init__(self, heads: Any, by_run: dict[str, dict | None]):
        self.run_heads, self.by_run = heads, by_run

    def list_snapshots(self, run_id: str, kind: str | None = None) -> list[dict]:
        if kind != SAMPLES_KIND:
            return self.run_heads.data.store.list_snapshots(run_id, kind)
        return self.run_heads.snapshot_rows(run_id, self.by_run.get(run_id))
