"""The agent's health heartbeat: written after each round of the queue loop that reached the store, and
not while the store is unreachable (its health check then goes stale), then removed when it stops."""
from __future__ import annotations

import json

from backend import cli
from backend.health import check_heartbeat
from backend.jobs import JobManager
from backend.store import RunStore
from tests.integration.test_store_outage import Outage


def test_ah001_rounds_that_reach_the_store_beat_and_an_outage_does_not(store):
    rounds = []
    jobs = JobManager(store, launch=False)
    jobs.serve_queue(once=True, on_round=lambda: rounds.append(1))
    assert rounds == [1]
    Outage(store).down.set()
    jobs.serve_queue(once=True, on_round=lambda: rounds.append(2))
    assert rounds == [1]  # the round failed: no beat, so `deepscope health --heartbeat` goes stale


def test_ah002_deepscope_agent_heartbeat_file(tmp_path, monkeypatch):
    path = tmp_path / "hb.json"
    seen = []
    real = JobManager.serve_queue

    def serve_and_look(self, poll=1.0, once=False, stop=None, on_round=None):
        real(self, poll=poll, once=True, on_round=on_round)
        seen.append((json.loads(path.read_text()), check_heartbeat(path, 30)))

    monkeypatch.setattr(JobManager, "serve_queue", serve_and_look)
    assert cli.main(["agent", "--once", "--data-dir", str(tmp_path / "d"), "--heartbeat", str(path)]) == 0
    (record, (ok, _why)), = seen
    assert record["role"] == "agent" and ok
    assert not path.exists()  # a stopped agent is not healthy


def test_ah003_a_heartbeat_that_cannot_be_written_does_not_stop_the_agent(tmp_path):
    from backend.health import Heartbeat

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the heartbeat's folder should be")
    beat = Heartbeat(blocker / "hb.json", lambda: {"role": "agent"})
    assert beat.beat() is False  # said once in the log, no exception
    rounds = []
    JobManager(RunStore(tmp_path / "d"), launch=False).serve_queue(
        once=True, on_round=lambda: rounds.append(beat.beat()))
    assert rounds == [False]
