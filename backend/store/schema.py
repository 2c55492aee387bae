"""Tables of the run store (SQLAlchemy Core) and the schema version.

A record kind carries ``schema_version`` so that readers can refuse or adapt
records written by a newer deepscope. Bump ``SCHEMA_VERSION`` when a table or a
record's layout changes.
"""
from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 2  # of the tables; 2: runs.heartbeat_at / attempt / resumes, status "interrupted", table leases
RECORD_VERSION = 1  # of the records in runs and snapshots rows (their ``schema_version`` column)

# Run lifecycle. ``queued`` -> ``running`` <-> ``paused`` -> one of the final states.
# ``interrupted``: its process died (or lost the store for too long) without finishing; resumable.
STATUSES = ("queued", "running", "paused", "stopped", "completed", "failed", "interrupted")
FINAL_STATUSES = frozenset({"stopped", "completed", "failed", "interrupted"})
RESUMABLE_STATUSES = frozenset({"stopped", "failed", "interrupted"})
ACTIVE_STATUSES = frozenset({"queued", "running", "paused"})
CONTROL_KINDS = ("pause", "resume", "stop", "set_lr")

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("host", sa.String(255), nullable=True),  # where ``pid`` lives: only that host may reap it
    sa.Column("step", sa.Integer, nullable=False, default=0),
    sa.Column("source", sa.String(16), nullable=False, default="builtin"),
    sa.Column("schema_version", sa.Integer, nullable=False, default=RECORD_VERSION),
    # liveness: the trainer (or the client script) writes this every few seconds while it lives
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    # resumes: 0 for the first attempt; ``resumes`` lists {"step", "at", "attempt"} of each resume
    sa.Column("attempt", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("resumes", sa.JSON, nullable=True),
)
# Columns added after schema 1, with the SQL type to add them to an older store.
RUN_COLUMNS_V2 = {"heartbeat_at": "FLOAT", "attempt": "INTEGER NOT NULL DEFAULT 0", "resumes": "JSON"}

# The autoincrement ``id`` is the live-update cursor: a page asks for rows with
# id > cursor and so never misses or repeats a point, whatever the step order.
scalars = sa.Table(
    "scalars",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("wall_time", sa.Float, nullable=False),
    sa.Column("value", sa.Float, nullable=True),  # SQLite stores NaN as NULL; read back as NaN
    # never reuse an id: a resume deletes the newest rows, and a reader's cursor must still see the new ones
    sqlite_autoincrement=True,
)
sa.Index("ix_scalars_run_id_id", scalars.c.run_id, scalars.c.id)
sa.Index("ix_scalars_run_name_step", scalars.c.run_id, scalars.c.name, scalars.c.step)

controls = sa.Table(
    "controls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("handled_at", sa.Float, nullable=True),
)
sa.Index("ix_controls_pending", controls.c.run_id, controls.c.handled_at)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("wall_time", sa.Float, nullable=False),
    sa.Column("arrays", sa.JSON, nullable=False),  # {name: relative .npy path}
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False, default=RECORD_VERSION),
)
sa.Index("ix_snapshots_run_kind_step", snapshots.c.run_id, snapshots.c.kind, snapshots.c.step)

# One holder per named role and store (e.g. the analysis worker), renewed while it lives; another
# process takes the lease once ``expires_at`` has passed.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),  # host:pid:random
    sa.Column("expires_at", sa.Float, nullable=False),
)
