"""The thread policy: a pure function of cores, load and the user's setting; the job manager gives runs
started together the same count; the trainer applies it to torch and says so."""
from __future__ import annotations

import itertools
import time

import pytest

from backend import threads as T
from backend.threads import ThreadChoice, choose_threads, explicit_threads, thread_choice, thread_env


@pytest.mark.parametrize("cores,load,expected", [
    (1, 0.0, 1), (2, 0.0, 1), (2, 12.0, 1),  # 2 cores or fewer: one thread, quiet or not
    (4, 0.1, 2), (8, 0.3, 4), (16, 0.4, 8), (64, 0.0, T.MAX_THREADS),  # half the free cores, capped
    (16, 11.0, 2), (8, 6.5, 1), (8, 40.0, 1), (4, 2.0, 1),  # what others run is not free
])
def test_count_follows_cores_and_load(cores, load, expected):
    choice = choose_threads(cores, load)
    assert choice.threads == expected
    assert f"{cores} core" in choice.reason and f"load {load:.1f}" in choice.reason
    assert choice.describe().startswith(f"torch threads: {expected} (")


def test_more_load_never_means_more_threads_and_a_neighbour_always_fits():
    for cores in (1, 2, 3, 4, 6, 8, 16, 32, 128):
        counts = [choose_threads(cores, load / 4).threads for load in range(0, 4 * 2 * cores)]
        assert counts == sorted(counts, reverse=True), cores
        assert all(1 <= n <= max(1, cores // 2) for n in counts), cores


@pytest.mark.parametrize("cores,load", list(itertools.product((1, 2, 16), (0.0, 30.0))))
def test_an_explicit_count_always_wins(cores, load):
    assert choose_threads(cores, load, explicit=3) == ThreadChoice(3, "DEEPSCOPE_TORCH_THREADS=3")


@pytest.mark.parametrize("raw,expected", [("", None), ("0", None), ("-2", None), ("two", None), (" 3 ", 3)])
def test_explicit_setting_is_a_positive_whole_number(raw, expected):
    assert explicit_threads({"DEEPSCOPE_TORCH_THREADS": raw}) == expected
    assert explicit_threads({}) is None


@pytest.fixture
def machine(monkeypatch):
    """A 16-core machine whose load the test sets; no DEEPSCOPE_TORCH_THREADS (conftest sets one)."""
    state = {"load": 0.4}
    monkeypatch.setattr(T, "available_cores", lambda: 16)
    monkeypatch.setattr(T, "current_load", lambda: state["load"])
    monkeypatch.delenv("DEEPSCOPE_TORCH_THREADS", raising=False)
    monkeypatch.delenv(T.REASON_ENV, raising=False)
    return state


def test_thread_choice_reads_the_machine_and_the_environment(machine):
    assert thread_choice({}).threads == 8
    assert thread_choice({"DEEPSCOPE_TORCH_THREADS": "2"}) == ThreadChoice(2, "DEEPSCOPE_TORCH_THREADS=2")
    bad = thread_choice({"DEEPSCOPE_TORCH_THREADS": "lots"})
    assert bad.threads == 8 and "'lots' ignored" in bad.reason


def test_a_passed_on_count_keeps_its_reason_only_for_that_count(machine):
    env = thread_env(ThreadChoice(1, "2 cores, load 3.1: one thread on 2 cores or fewer"), {})
    assert thread_choice(env) == ThreadChoice(1, "2 cores, load 3.1: one thread on 2 cores or fewer")
    assert thread_choice({**env, "DEEPSCOPE_TORCH_THREADS": "3"}) == ThreadChoice(3, "DEEPSCOPE_TORCH_THREADS=3")


def test_spawned_trainers_get_equal_pools_and_passive_openmp():
    env = thread_env(ThreadChoice(2, "why"), {})
    assert {env[k] for k in ("DEEPSCOPE_TORCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                             "OPENBLAS_NUM_THREADS")} == {"2"}
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert thread_env(ThreadChoice(2, "why"), {"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


class _Proc:
    """Stands in for a trainer process that keeps running."""

    def __init__(self, cmd, env, **_):
        self.env, self.pid = env, 4242

    def poll(self):
        return None


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    from backend.jobs import JobManager
    from backend.store import RunStore

    spawned: list[dict] = []

    def popen(cmd, env, **kwargs):
        spawned.append(env)
        return _Proc(cmd, env)

    monkeypatch.setattr("backend.jobs.subprocess.Popen", popen)
    manager = JobManager(RunStore(tmp_path / "data"), launch=True)
    manager.spawned = spawned
    return manager


def _spec():
    from backend.spec import RunSpec

    return RunSpec.for_task("brackets-lstm")


def test_runs_started_together_get_equal_threads(jobs, machine, monkeypatch):
    jobs.start(_spec())
    machine["load"] = 9.0  # the first trainer is now counted: alone, the second would get fewer
    assert choose_threads(16, 9.0).threads < 8
    jobs.start(_spec())
    assert [env["DEEPSCOPE_TORCH_THREADS"] for env in jobs.spawned] == ["8", "8"]
    assert jobs.spawned[0]["DEEPSCOPE_TORCH_THREADS_REASON"] == jobs.spawned[1]["DEEPSCOPE_TORCH_THREADS_REASON"]
    assert all(env["OMP_WAIT_POLICY"] == "PASSIVE" for env in jobs.spawned)
    later = time.time() + 61  # past the load average's minute, the load counts
    monkeypatch.setattr("backend.jobs.time.time", lambda: later)
    jobs.start(_spec())
    assert jobs.spawned[-1]["DEEPSCOPE_TORCH_THREADS"] == "3"


def test_the_users_setting_wins_over_the_policy_and_the_caller(jobs, machine, monkeypatch):
    jobs.start(_spec(), threads=1)  # what `deepscope demo` asks for
    assert jobs.spawned[-1]["DEEPSCOPE_TORCH_THREADS"] == "1"
    monkeypatch.setenv("DEEPSCOPE_TORCH_THREADS", "5")
    jobs.start(_spec(), threads=1)
    jobs.start(_spec())
    assert [env["DEEPSCOPE_TORCH_THREADS"] for env in jobs.spawned[1:]] == ["5", "5"]


def test_configure_threads_sets_torch_and_says_so(monkeypatch):
    torch = pytest.importorskip("torch")
    from backend.training.device import configure_threads

    before = torch.get_num_threads()
    said: list[str] = []
    try:
        monkeypatch.setenv("DEEPSCOPE_TORCH_THREADS", "1")
        monkeypatch.delenv(T.REASON_ENV, raising=False)
        assert configure_threads(said.append) == 1 == torch.get_num_threads()
        assert configure_threads(said.append) == 1  # again: the inter-op pool is left as it is, no error
        assert said == ["torch threads: 1 (DEEPSCOPE_TORCH_THREADS=1)"] * 2
    finally:
        torch.set_num_threads(before)
