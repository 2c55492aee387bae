"""Component ids, named once. Pages and tests import these instead of spelling strings."""
from __future__ import annotations

# Shell (app.py)
NAV = "nav"

# Training page
TRAIN_RUNS = "train-runs"                # multi-select of runs to overlay
TRAIN_SMOOTHING = "train-smoothing"      # EMA weight slider
TRAIN_INTERVAL = "train-interval"        # live poll
TRAIN_STATUS_INTERVAL = "train-status-interval"
TRAIN_STATE = "train-state"              # cursors + trace-index map (dcc.Store)
TRAIN_STATUS = "train-status"            # status badges, errors, spec summaries
TRAIN_PAUSE = "train-pause"
TRAIN_RESUME = "train-resume"
TRAIN_STOP = "train-stop"
TRAIN_LR = "train-lr"
TRAIN_LR_APPLY = "train-lr-apply"
TRAIN_CONTROL_TARGET = "train-control-target"
TRAIN_ALERT = "train-alert"
TRAIN_URL_SYNC = "train-url-sync"        # target of the clientside callback that keeps ?run= current


def graph_id(panel: str) -> str:
    """Id of the dcc.Graph showing ``panel`` (see ``figures.metrics.PANELS``)."""
    return f"train-graph-{panel}"


# Runs page
RUNS_TABLE = "runs-table"
RUNS_INTERVAL = "runs-interval"
RUNS_PICK = "runs-pick"                  # pattern-matching type: {"type": RUNS_PICK, "index": run_id}
RUNS_STATUS_CELL = "runs-status-cell"    # pattern-matching type, live status per row
RUNS_STEP_CELL = "runs-step-cell"
RUNS_COMPARE = "runs-compare"
RUNS_IDS = "runs-ids"                    # dcc.Store: ids currently rendered

# New run page
NEW_TASK = "new-task"
NEW_FIELD = "new-field"                  # pattern-matching type: {"type": NEW_FIELD, "field": name}
NEW_FEEDBACK = "new-feedback"            # pattern-matching type: {"type": NEW_FEEDBACK, "field": name}
NEW_TASK_INFO = "new-task-info"
NEW_COST = "new-cost"
NEW_ERRORS = "new-errors"
NEW_START = "new-start"
NEW_ALERT = "new-alert"
NEW_LOCATION = "new-location"
NEW_WRAP = "new-wrap"                    # pattern-matching type: wrapper of one field (greyed when irrelevant)
