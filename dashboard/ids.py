"""Component ids, named once. Pages and tests import these instead of spelling strings."""
from __future__ import annotations

# Shell (app.py)
NAV = "nav"

# Training page
TRAIN_RUNS = "train-runs"                # multi-select of runs to overlay
TRAIN_SMOOTHING = "train-smoothing"      # EMA weight slider
TRAIN_INTERVAL = "train-interval"        # live poll
TRAIN_SEEN = "train-seen"                # run heads the page shows (dcc.Store; dashboard/views/training/tick.py)
TRAIN_STATE = "train-state"              # cursors + trace-index map (dcc.Store)
TRAIN_POKE = "train-poke"                # the page's poll asks the Python callback to draw (dcc.Store)
TRAIN_PUSH = "train-push"                # set when the live stream brought an update (dcc.Store; assets/training_live.js)
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
NEW_UPLOAD = "new-upload"                # dcc.Upload of the data file
NEW_UPLOAD_STATUS = "new-upload-status"  # what became of an upload
NEW_WRAP = "new-wrap"                    # pattern-matching type: wrapper of one field (greyed when irrelevant)

# Hidden-states page
HS_RUN = "hs-run"
HS_STEP = "hs-step"                      # slider over snapshot indexes
HS_FOLLOW = "hs-follow"                  # checklist: follow the newest snapshot
HS_STEPS = "hs-steps"                    # dcc.Store: snapshot steps of the run
HS_LAYER = "hs-layer"
HS_DIR = "hs-dir"
HS_STATE = "hs-state"
HS_THRESHOLD = "hs-threshold"
HS_THR_USER = "hs-thr-user"              # dcc.Store: true once the person set the threshold (URL, typed, dragged)
HS_THR_SUGGESTED = "hs-thr-suggested"    # dcc.Store: the threshold a brush suggested and its range
HS_OFF_BEFORE = "hs-off-before"
HS_OFF_AFTER = "hs-off-after"
HS_POS = "hs-pos"                        # first token of the window
HS_PREV = "hs-prev"
HS_NEXT = "hs-next"
HS_SEARCH = "hs-search"
HS_SEARCH_GO = "hs-search-go"
HS_SEL_START = "hs-sel-start"
HS_SEL_STOP = "hs-sel-stop"
HS_CLEAR = "hs-clear"
HS_TRACES = "hs-traces"
HS_STRIP = "hs-strip"
HS_SELECTION = "hs-selection"
HS_MESSAGE = "hs-message"
HS_NOTE = "hs-note"
HS_SELECTED = "hs-selected"              # dcc.Store: selected cells + query of the match view
HS_MATCHES = "hs-matches"
HS_MATCH = "hs-match"                    # pattern-matching type: {"type": HS_MATCH, "index": i}
HS_MATCH_DATA = "hs-match-data"          # dcc.Store: positions of the matches shown
HS_TRACK = "hs-track"
HS_SUMMARY = "hs-summary"
HS_SUMMARY_TEXT = "hs-summary-text"
HS_GATE = "hs-gate"
HS_GATE_MAP = "hs-gate-map"
HS_SATURATION = "hs-saturation"
HS_INTERVAL = "hs-interval"
HS_VIEW = "hs-view"                      # dcc.Store: the view state mirrored into the URL
HS_URL_SYNC = "hs-url-sync"
HS_HOVER_SYNC = "hs-hover-sync"    # target of the clientside callback that marks the hovered token in both panels
HS_SNAPSHOT_INFO = "hs-snapshot-info"
HS_UPLOAD = "hs-upload"                  # dcc.Upload of a user's annotation track
HS_UPLOAD_NAME = "hs-upload-name"
HS_UPLOAD_MSG = "hs-upload-msg"
HS_TOP_TRACE = "hs-top-trace"            # the best cell's trace beside the chosen track
HS_WINDOW = "hs-window"                  # tokens shown (zoom)

# Kernels page
KN_RUN = "kn-run"
KN_LAYER = "kn-layer"
KN_STEP = "kn-step"
KN_FOLLOW = "kn-follow"
KN_STEPS = "kn-steps"                    # dcc.Store: snapshot steps of the run
KN_INFO = "kn-info"
KN_NOTE = "kn-note"
KN_MOSAIC = "kn-mosaic"
KN_DETAIL = "kn-detail"
KN_CURVE = "kn-curve"
KN_ROSE = "kn-rose"
KN_INPUT = "kn-input"                    # which probe input's feature maps
KN_MAPS = "kn-maps"
KN_INPUT_FIELD = "kn-input-field"       # the probe-input picker (hidden for text models)
KN_INTERVAL = "kn-interval"
KN_PLAY = "kn-play"                      # Play / Pause button beside the step slider
KN_PLAY_TICK = "kn-play-tick"            # dcc.Interval stepping the slider while playing (disabled otherwise)
KN_COLOUR = "kn-colour"                  # RGB-input layers: colour composite or principal component
KN_COLOUR_FIELD = "kn-colour-field"      # wrapper of KN_COLOUR, hidden for other layers
KN_COMPARE = "kn-compare"                # another CNN run whose Gabor-like curve is overlaid

# Projections page
PJ_RUN = "pj-run"
PJ_SOURCE = "pj-source"
PJ_METHOD = "pj-method"                  # t-SNE / PCA
PJ_DIMS = "pj-dims"                      # 2D / 3D
PJ_PERPLEXITY = "pj-perplexity"
PJ_POINTS = "pj-points"                  # number of points drawn
PJ_METRIC = "pj-metric"                  # cosine / euclidean
PJ_COLOUR = "pj-colour"                  # colour by label / prediction / correct / frequency / none
PJ_COLOUR_WHY = "pj-colour-why"          # why some colourings are disabled
PJ_SETTINGS = "pj-settings"              # dcc.Store: run, settings, key, error
PJ_CHECK = "pj-check"                    # settings that cannot work (too few points for the perplexity)
PJ_NOTE = "pj-note"                      # run-level messages (no snapshots yet, ...)
PJ_STATUS = "pj-status"                  # the analysis worker's progress or error for the current key
PJ_STEP = "pj-step"                      # slider over the steps that have a map
PJ_STEPS = "pj-steps"                    # dcc.Store: {"key", "steps"}
PJ_FOLLOW = "pj-follow"
PJ_INFO = "pj-info"
PJ_PLAY = "pj-play"
PJ_PLAY_TICK = "pj-play-tick"
PJ_INTERVAL = "pj-interval"
PJ_MAP = "pj-map"                        # the dcc.Graph of the map
PJ_QUERY = "pj-query"                    # word / text to look up
PJ_QUERY_GO = "pj-query-go"
PJ_CLEAR = "pj-clear"
PJ_FOCUS = "pj-focus"                    # dcc.Store: the point whose neighbours are shown
PJ_NEIGHBOURS = "pj-neighbours"
PJ_NEIGHBOUR = "pj-neighbour"            # pattern-matching type: {"type": PJ_NEIGHBOUR, "index": row}
PJ_AN_A = "pj-an-a"                      # analogy a - b + c
PJ_AN_B = "pj-an-b"
PJ_AN_C = "pj-an-c"
PJ_AN_GO = "pj-an-go"
PJ_AN_CLEAR = "pj-an-clear"
PJ_ANALOGY = "pj-analogy"                # dcc.Store: the analogy asked for
PJ_ANALOGY_OUT = "pj-analogy-out"
PJ_SELECTION = "pj-selection"            # members of a lasso / box selection
PJ_SEED = "pj-seed"                      # dcc.Store: the seed of the settings shown (not a control)

# Lab page
LAB_PRESET = "lab-preset"                # pattern-matching type: {"type": LAB_PRESET, "preset": id}, a preset's card
LAB_LAUNCH = "lab-launch"                # pattern-matching type: {"type": LAB_LAUNCH, "preset": id}
LAB_ALERT = "lab-alert"                  # what a launch did (or why it could not)
LAB_LOCATION = "lab-location"            # dcc.Location: the preset's view after a launch
LAB_GF_RUNS = "lab-gf-runs"              # gradient-flow view: runs to draw
LAB_GF_GRAPH = "lab-gf-graph"
LAB_GF_NOTE = "lab-gf-note"
LAB_GF_INTERVAL = "lab-gf-interval"
LAB_GF_SHOWN = "lab-gf-shown"            # dcc.Store: (run, step) pairs drawn, so an unchanged poll draws nothing

# Attention page
ATT_RUN = "att-run"
ATT_ITEM = "att-item"                    # seq2seq: which probe date
ATT_ITEM_FIELD = "att-item-field"        # its wrapper (hidden for a transformer)
ATT_LAYER = "att-layer"                  # transformer: layer and head of the large map
ATT_HEAD = "att-head"
ATT_HEAD_FIELDS = "att-head-fields"      # their wrapper (hidden for seq2seq)
ATT_STEP = "att-step"                    # slider over snapshot indexes
ATT_STEPS = "att-steps"                  # dcc.Store: snapshot steps of the run
ATT_FOLLOW = "att-follow"
ATT_INFO = "att-info"
ATT_NOTE = "att-note"                    # run-level messages (no attention, no snapshot yet)
ATT_PLAY = "att-play"
ATT_PLAY_TICK = "att-play-tick"
ATT_INTERVAL = "att-interval"
ATT_MATRIX = "att-matrix"                # the large heatmap (seq2seq matrix or one transformer head)
ATT_OUTPUT = "att-output"                # seq2seq: the model's output vs the target
ATT_GRID_CARD = "att-grid-card"
ATT_GRID = "att-grid"                    # transformer: every layer and head (PNG mosaic)
ATT_HOVER_SYNC = "att-hover-sync"        # target of the clientside callback that marks the hovered query
ATT_SUMMARY = "att-summary"              # entropy / alignment over the snapshots
ATT_VIEW = "att-view"                    # dcc.Store: the view mirrored into the URL
ATT_URL_SYNC = "att-url-sync"
ATT_INITIAL_STEP = "att-initial-step"    # dcc.Store: the URL's step (first load)
ATT_TITLE = "att-title"                  # what the large map shows (a sentence for a student)
ATT_SUBTITLE = "att-subtitle"
ATT_SUMMARY_TEXT = "att-summary-text"
