"""Tables of the run store (SQLAlchemy Core) and the schema version.

A record kind carries ``schema_version`` so that readers can refuse or adapt
records written by a newer deepscope. Bump ``SCHEMA_VERSION`` when a table or a
record's layout changes.
"""
from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 3  # of the tables; 2: runs.heartbeat_at / attempt / resumes, status "interrupted", table leases;
#                      3: scalars -> series + points (integer series ids, wall time in ms), a view ``scalars``
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

# Scalar series (schema 3). A ``series`` row names one metric of one run; ``points`` holds its values,
# ~42 bytes a point on SQLite where the schema-2 ``scalars`` table (run id and name strings on every row,
# two string indexes) took ~112 (bench/storage.py).
series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("t0", sa.Float, nullable=False),  # points store wall time as integer ms after t0
    # ``points.id`` of the newest point when the series was created: every point of the series is newer,
    # so a cursor read of this run starts there instead of at the first point of the store
    sa.Column("floor_id", sa.BigInteger, nullable=False, default=0),
    sa.UniqueConstraint("run_id", "name", name="uq_series_run_name"),
)

# The autoincrement ``id`` is the live-update cursor: a page asks for a run's points with id > cursor and
# so never misses or repeats one, whatever the step order. A rowid table: ids are appended in order, so its
# pages fill; ``(series_id, step)`` serves whole-series reads, the resume supersede and the write-once check.
points = sa.Table(
    "points",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("wall_ms", sa.BigInteger, nullable=True),  # round((wall_time - series.t0) * 1000); NULL if not finite
    sa.Column("value", sa.Float, nullable=True),  # SQLite stores NaN as NULL; read back as NaN
    # never reuse an id: a resume deletes the newest points, and a reader's cursor must still see the new ones
    sqlite_autoincrement=True,
)
sa.Index("ix_points_series_step", points.c.series_id, points.c.step)

# Schema 2's table, kept as a view of the same name and columns for SQL written against it
# (``SELECT name, step FROM scalars WHERE run_id = ...``); the store itself reads the tables.
SCALARS_VIEW = ("CREATE VIEW scalars AS SELECT p.id AS id, s.run_id AS run_id, s.name AS name, p.step AS step, "
                "s.t0 + p.wall_ms / 1000.0 AS wall_time, p.value AS value "
                "FROM points p JOIN series s ON s.id = p.series_id")

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
