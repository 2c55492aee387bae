"""How many threads a trainer may use: a pure policy from the cores, the load and the user's setting.

Torch-free, so the job manager (inside the dashboard) can ask it; ``backend.training.device.configure_threads``
applies the answer to torch in the trainer. Measured on this project's 2-core machine (bench/contention.py,
bench/RESULTS.md "Contention"): a small LSTM with 2 torch threads trained 7-14x slower than with 1 thread
while anything else ran, because OpenMP's workers spin-wait at every parallel region for a core the neighbour
holds. One thread lost little when alone. So a trainer gets one thread unless the machine has free cores to
spare, and then at most half of them (room for the next run, the analysis worker, the dashboard);
OpenMP waits passively (``OMP_WAIT_POLICY=PASSIVE``: idle workers sleep, they do not spin).
An explicit ``DEEPSCOPE_TORCH_THREADS`` always wins.

Example::

    choose_threads(cores=2, load=3.1)              # 1: "2 cores, load 3.1: one thread on 2 cores or fewer"
    choose_threads(cores=16, load=0.4)             # 8: half of the 16 free cores
    choose_threads(cores=16, load=11.0)            # 2: half of the 5 free cores
    choose_threads(cores=16, load=0.4, explicit=3) # 3: the user's setting
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

THREADS_ENV = "DEEPSCOPE_TORCH_THREADS"
REASON_ENV = "DEEPSCOPE_TORCH_THREADS_REASON"  # why the process that chose the count chose it
MAX_THREADS = 8  # small recurrent and conv models gain little past this; more only adds synchronisation


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and, in words, why."""

    threads: int
    reason: str

    def describe(self) -> str:
        """The line a trainer prints: ``torch threads: 1 (2 cores, load 3.1: ...)``."""
        return f"torch threads: {self.threads} ({self.reason})"


def choose_threads(cores: int, load: float = 0.0, explicit: int | None = None) -> ThreadChoice:
    """Threads for one trainer on ``cores`` cores whose 1-minute load average is ``load``.

    ``explicit`` (``DEEPSCOPE_TORCH_THREADS``) wins. Otherwise 1 on 2 cores or fewer, else half of the cores
    the load leaves free (rounded), at least 1 and at most ``MAX_THREADS``.
    """
    if explicit is not None and explicit > 0:
        return ThreadChoice(int(explicit), f"{THREADS_ENV}={int(explicit)}")
    cores = max(1, int(cores))
    where = f"{cores} core{'s' if cores > 1 else ''}, load {max(0.0, load):.1f}"
    if cores <= 2:
        return ThreadChoice(1, f"{where}: one thread on 2 cores or fewer")
    free = max(0, math.floor(cores - max(0.0, load) + 0.5))
    threads = max(1, min(MAX_THREADS, free // 2))
    if threads == 1:
        return ThreadChoice(1, f"{where}: shared machine, one thread")
    return ThreadChoice(threads, f"{where}: half of the {free} free cores")


def explicit_threads(environ: Mapping[str, str] = os.environ) -> int | None:
    """``DEEPSCOPE_TORCH_THREADS`` as a positive count; None when unset, empty, 0 or not a whole number."""
    raw = (environ.get(THREADS_ENV) or "").strip()
    try:
        n = int(raw)
    except ValueError:
        return None
    return n if n > 0 else None


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def current_load() -> float:
    """The 1-minute load average (runnable processes, machine-wide); 0.0 where the system has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def thread_choice(environ: Mapping[str, str] = os.environ) -> ThreadChoice:
    """The choice for a trainer starting now in this process.

    A count that another process chose and passed on (the job manager, see :func:`thread_env`) keeps its reason."""
    explicit = explicit_threads(environ)
    count, _, why = (environ.get(REASON_ENV) or "").partition(" ")
    if explicit is not None and why and count == str(explicit):  # a reason written for this very count
        return ThreadChoice(explicit, why)
    raw = (environ.get(THREADS_ENV) or "").strip()
    choice = choose_threads(available_cores(), current_load(), explicit)
    if raw and explicit is None and raw != "0":
        return ThreadChoice(choice.threads, f"{THREADS_ENV}={raw!r} ignored, not a positive whole number; "
                                            + choice.reason)
    return choice


def thread_env(choice: ThreadChoice, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Environment for a trainer process that should use ``choice``: torch's count (with its reason), the
    OpenMP / MKL / OpenBLAS pools of the same size, and passive OpenMP waiting unless the user chose a policy.
    These are read once, when the libraries load: set them before the process imports torch or numpy."""
    n = str(choice.threads)
    return {THREADS_ENV: n, REASON_ENV: f"{n} {choice.reason}", "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n, "OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def configure_process(say: Callable[[str], object] | None = None) -> ThreadChoice:
    """Choose for a trainer in this process, put :func:`thread_env` in ``os.environ`` and size torch's pools
    (:func:`backend.training.device.configure_threads`, which says the choice). Call it before this process
    imports torch or numpy (``deepscope train`` and ``resume`` do, first thing): OpenMP's wait policy and
    the BLAS pools are read when those load."""
    choice = thread_choice(os.environ)
    os.environ.update(thread_env(choice, os.environ))
    from .training.device import configure_threads  # imports torch: after the environment is set

    configure_threads(say)
    return choice


def _cgroup_cpus() -> int | None:
    """CPUs a cgroup CPU quota allows (v2 ``cpu.max``, v1 ``cfs_quota_us``); None without a quota."""
    for path, sep in (("/sys/fs/cgroup/cpu.max", " "), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", None)):
        try:
            text = Path(path).read_text().strip()
            if sep is None:  # v1: the period is in a file of its own
                text += " " + Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
            quota, period = text.split()[:2]
            if quota in ("max", "-1"):
                return None
            return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            continue
    return None
