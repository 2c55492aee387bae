"""What callbacks need from the app that serves them: the data reader and the job manager.

``create_app`` puts one :class:`DashboardContext` on ``app.server.extensions``; callbacks
and layout functions run inside a Flask request and find it with :func:`current`, so two
apps in one process (tests) never share state through module globals.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask

from dashboard.data import DashboardData

EXTENSION = "deepscope"
log = logging.getLogger(__name__)


@dataclass
class DashboardContext:
    """The store reader, plus the job manager once something needs it."""

    data: DashboardData
    poll_ms: int = 500            # the other pages' timers are multiples of it
    training_poll_ms: int = 850   # the Training page's one timer (dashboard/app.py, DEFAULT_TRAINING_POLL_MS)
    _jobs: Any = field(default=None, repr=False)
    # Folders whose regular files the New run form may name (``--data-root``; none by default).
    # Uploaded files live content-addressed under ``<data folder>/uploads``.
    data_roots: tuple[Path, ...] = ()

    @property
    def jobs(self) -> Any:
        """The job manager; created on first use so importing the dashboard stays light."""
        if self._jobs is None:
            try:
                from backend.jobs import JobManager  # imported late: it may pull in the trainer
            except ImportError as exc:
                log.warning("job manager unavailable: %s", exc)
                return None
            self._jobs = JobManager(self.data.store)
        return self._jobs


def current() -> DashboardContext:
    """The context of the app serving the current request."""
    return flask.current_app.extensions[EXTENSION]
