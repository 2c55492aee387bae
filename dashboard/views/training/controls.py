"""Run controls from the Training page: pause, resume, stop, change the learning rate.

``apply_control`` never raises: it returns ``(ok, message)`` so the page shows an alert
instead of a traceback.

Example::

    ok, msg = apply_control(jobs, store, "a1b2c3", "set_lr", 0.001)
"""
from __future__ import annotations

import logging
from typing import Any

from backend.store import StoreError

from dashboard.inputs import as_float, as_run_id

log = logging.getLogger(__name__)
ACTIONS = ("pause", "resume", "stop", "set_lr")
RESUMABLE = frozenset({"stopped", "failed", "interrupted"})  # final runs that restart from their last checkpoint
MAX_LR = 10.0  # the most a run spec allows (backend.spec.RunSpec.lr)


def apply_control(jobs: Any, store: Any, run_id: str | None, action: str, lr: float | None = None) -> tuple[bool, str]:
    """Ask ``run_id`` to ``action``; return ``(ok, message)`` for the user."""
    if not run_id:
        return False, "Choose a run first."
    if as_run_id(run_id) is None:
        return False, "That is not a run id."
    if action not in ACTIONS:
        return False, f"Unknown action {str(action)[:40]!r}."
    lr = as_float(lr)
    if action == "set_lr" and (lr is None or not 0 < lr <= MAX_LR):
        return False, f"Type a learning rate greater than 0 and at most {MAX_LR:g}, then Apply."
    run = store.get_run(run_id)
    if run is None:
        return False, f"No run with id {run_id}."
    try:
        return _dispatch(jobs, store, run, action, lr)
    except StoreError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - a control must never break the page
        log.exception("control %s on %s failed", action, run_id)
        return False, f"Could not {action.replace('_', ' ')} run {run_id}: {exc}"


def _dispatch(jobs: Any, store: Any, run: dict, action: str, lr: float | None) -> tuple[bool, str]:
    run_id, name = run["id"], run.get("name") or run["id"]
    if run.get("source") not in (None, "builtin", "cli"):  # a user's own script (client API) or an import
        return False, (f"{name} is trained by your own script (the deepscope client API) or was imported: the "
                       "dashboard can only watch it. Pause, stop or change its learning rate in your script.")
    if action == "resume" and run["status"] in RESUMABLE:
        if jobs is None:
            return False, "Restarting a stopped run needs the job manager; start the dashboard with `deepscope serve`."
        jobs.resume(run_id)
        return True, f"Restarting {name} from its last checkpoint."
    value = float(lr) if action == "set_lr" else None
    if jobs is not None:
        jobs.control(run_id, action, value)
    else:  # read-only dashboard: the request still reaches a trainer that polls the store
        store.request_control(run_id, action, value)
    done = f"Learning rate {value:g}" if action == "set_lr" else action.capitalize()
    return True, f"{done} requested for {name}; the trainer applies it after its current step."
