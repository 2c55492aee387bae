"""How ``bench/overhead.py`` charges the snapshot probes: their lumps (a capture in the training
thread, a write in the writer thread) are timed, left out of the per-step median, and charged apart
at the cadence each probe's own rule settles at.

Example (inside the bench)::

    instrument_probe(probe, log)                        # every capture and write: start, end, CPU, step
    figs = probe_figures(probes, in_run, apart, 500, hooks_step_s, none_step_s)
    contention, factor = charge(figs, excess_s)         # figs[kind]["share"]: its share of training time
"""
from __future__ import annotations

import math
import statistics
import time

from backend.probes.hidden import adapt_every
from backend.probes.hooks import SnapshotProbe
from backend.training.trainer import Trainer


def instrument_probe(probe: SnapshotProbe, log: dict) -> None:
    """Record every capture (training thread) and snapshot write (writer thread): start, end, CPU, step."""
    capture, write = probe.capture, probe.writer._write

    def timed_capture(trainer):
        t0 = time.perf_counter()
        try:
            return capture(trainer)
        finally:
            log["capture"].append((t0, time.perf_counter(), trainer.step))

    def timed_write(*args):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return write(*args)
        finally:
            log["write"].append((t0, time.perf_counter(), time.thread_time() - c0))

    probe.capture = timed_capture  # on_step_end / on_train_end call self.capture
    probe.writer._write = timed_write  # the writer thread calls this for every snapshot


def probe_apart(trainer: Trainer, probe: SnapshotProbe, samples: int) -> tuple[list[float], list[float], list[float]]:
    """``samples`` captures and writes of the probe timed one after the other, nothing else running.

    Returns capture wall seconds, write wall seconds, write CPU seconds.
    """
    cap, wall, cpu = [], [], []
    for i in range(samples):
        t = time.perf_counter()
        payload, meta = probe.take(trainer)  # the probe's own capture
        cap.append(time.perf_counter() - t)
        meta = dict(meta, task=trainer.spec.task, every=probe.every, probe_ms=round(1000 * cap[-1], 1))
        t, c = time.perf_counter(), time.thread_time()
        probe.write(10**9 + i, payload, meta)  # the probe's own write, here in this thread
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return cap, wall, cpu


def overlaps(span: tuple[float, float], busy: list[tuple[float, float]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in busy)


def probe_figures(probes: list[SnapshotProbe], in_run: dict, apart: dict, start_every: int,
                  hooks_step_s: float, none_step_s: float) -> dict[str, dict]:
    """Each probe's timed parts (capture + write CPU, medians of the captures in the run after step 0 and
    of those timed apart) at the cadence its own rule settles at; not yet charged (see :func:`charge`)."""
    figs: dict[str, dict] = {}
    for p in probes:
        run, ap = in_run[p.kind], apart[p.kind]
        # the step-0 capture is cold (first replay: allocations, lazy init); the rest are steady
        cold = [sec for step, sec in run["captures"] if step == 0]
        cap = [sec for step, sec in run["captures"] if step > 0] + ap[0]
        wr_wall = [w for w, _ in run["writes"][1:]] + ap[1]  # the first write is step 0's
        wr_cpu = [c for _, c in run["writes"][1:]] + ap[2]
        capture_s, write_s, write_cpu_s = (statistics.median(x) if x else 0.0 for x in (cap, wr_wall, wr_cpu))
        # the probe's own rule: capture + the latest write's wall time against its budget
        cadence = adapt_every(start_every, capture_s + write_s, hooks_step_s, p.budget) if p.adaptive else start_every
        model_s = capture_s + write_cpu_s
        figs[p.kind] = {
            "model_s": model_s, "interval_s": cadence * none_step_s,  # training time between two of its snapshots
            "capture_ms": 1000 * capture_s, "write_ms": 1000 * write_s, "write_cpu_ms": 1000 * write_cpu_s,
            "model_ms_per_probe": 1000 * model_s, "first_capture_ms": 1000 * cold[0] if cold else None,
            "cadence": cadence, "cadence_start": start_every, "cadence_in_bench": p.every, "budget": p.budget,
            "captures_in_pairs": len(run["captures"]) - len(cold), "samples_apart": len(ap[0]), "samples": len(cap),
            "capture_ms_apart": 1000 * statistics.median(ap[0]) if ap[0] else None,
            "write_cpu_ms_apart": 1000 * statistics.median(ap[2]) if ap[2] else None,
        }
    return figs


def charge(figs: dict[str, dict], excess_s: float) -> tuple[float | None, float]:
    """Charge every probe in ``figs`` (in place): ``excess_s``, the extra wall time of the pairs a capture
    or write touched over clean pairs, against the timed parts of the captures in them gives the
    contention (a writer thread taking a core from torch makes it > 1); each probe is charged the larger
    of its timed parts and those x the contention. Returns ``(contention or None, factor applied)``."""
    modelled = sum(f["captures_in_pairs"] * f["model_s"] for f in figs.values())
    contention = excess_s / modelled if modelled > 0 and math.isfinite(excess_s) else None
    factor = max(1.0, contention) if contention is not None else 1.0
    for f in figs.values():
        charged_s = f["model_s"] * factor
        f.update(ms_per_probe=1000 * charged_s, share=charged_s / f["interval_s"],
                 share_model=f["model_s"] / f["interval_s"], capture_share=f["capture_ms"] / 1000 / f["interval_s"],
                 write_share=f["write_cpu_ms"] / 1000 / f["interval_s"],
                 basis="observed in the pairs" if factor > 1 else "capture + write CPU")
        del f["model_s"], f["interval_s"]
    return contention, factor
