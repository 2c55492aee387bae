"""``deepscope worker``: the analysis worker as a service of its own (the ``analysis`` service of
docker-compose.yml), with a heartbeat file for its health check.

It is :mod:`backend.analysis.projection.worker` unchanged (its ``main``: one thread, nice 10, the store's
``analysis`` lease so that one worker computes while the others stand by, a clean exit on SIGTERM that
gives the lease up at once), without ``--parent-pid``: nothing it belongs to can go away. Beside it a
:class:`~backend.health.Heartbeat` thread asks the store who holds the lease every 5 s and writes the
answer (``held`` or ``standby``) to the heartbeat file that ``deepscope health --heartbeat`` reads.

    deepscope worker --store-url postgresql+psycopg2://... --heartbeat /tmp/deepscope-heartbeat.json

Set ``DEEPSCOPE_ANALYSIS=off`` on dashboards started with ``deepscope serve`` on the same store if they
should not start a worker of their own (they would only stand by while this one holds the lease).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from backend.analysis.projection.worker import LEASE_NAME, THREAD_VARS


def lease_status(store) -> dict:
    """``{"lease": "held" | "standby"}`` for this process, read from the store (raises when it does not answer)."""
    import sqlalchemy as sa

    from backend.store import schema as S

    with store.engine.connect() as conn:
        holder = conn.execute(sa.select(S.leases.c.holder).where(S.leases.c.name == LEASE_NAME)).scalar()
    mine = isinstance(holder, str) and holder.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    return {"lease": "held" if mine else "standby"}


def run_worker(data_dir: str, store_url: str | None = None, poll: float = 1.0,
               heartbeat: str | Path | None = None) -> int:
    """Run the analysis worker in this process until SIGTERM or Ctrl-C; returns its exit status (0)."""
    for var in THREAD_VARS:  # before the heartbeat's store loads numpy (projection_worker.main sets them too)
        os.environ[var] = "1"
    from backend.analysis.projection import worker as projection_worker
    from backend.health import Heartbeat

    argv = ["--data-dir", str(data_dir), "--poll", str(poll)] + (["--store-url", store_url] if store_url else [])
    beat = None
    if heartbeat:
        from backend.store import RunStore

        store = RunStore(data_dir, url=store_url)
        beat = Heartbeat(heartbeat, status=lambda: lease_status(store)).start()
    try:
        return projection_worker.main(argv)
    finally:
        if beat is not None:
            beat.stop()
