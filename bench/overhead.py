"""Cost of the logging hooks: ``code-lstm`` training with ``default_hooks`` vs no hooks.

One process, one trainer, one model: timed blocks of ``--block-steps`` steps
alternate between "none" (``trainer.hooks = []``) and "hooks" (exactly
``default_hooks(store, run_id, spec)`` on a real :class:`RunStore` in a temp
folder), in A/B then B/A order, so drift and noise on a shared machine hit both
arms alike. Each block runs the body of :meth:`Trainer.run` (``train_step`` +
``on_step_end`` + the eval check). Evaluation is excluded from both arms
(``eval_every`` set to its maximum): the ratio measures the hooks only.

The hooks arm keeps its own step counter, so the hooks see the steps 1, 2, 3, ...
of a real run: the spec's ``log_every`` and ``checkpoint_every`` cadence holds
(a checkpoint per ``checkpoint_every`` hook steps, not per trainer step). At the
end of every hooks block the metrics writer is flushed inside the timed region,
so rows queued by that block are committed on its clock, not during the next
"none" block (slightly pessimistic: in a run the commit overlaps training).

Blocks are short (default two logging cycles, 20 steps, ~0.5 s) and many (90
pairs): on a shared machine, stalls of a second or more hit a few pairs, which
the median of the per-pair ratios ignores; long blocks would let every pair see
one. Figures: steps/s of each arm, the time ratio hooks/none of each A/B pair,
their median (``ratio``) and spread, the total-time ratio (noisy:
stalls are in it), and the cost of one checkpoint (timed apart: the one or two
blocks that hold a checkpoint are ignored by the median). ``--profile`` also
times every hook event with ``time.perf_counter`` and reports its cost per step.

The snapshot probes of ``default_hooks`` for code-lstm (hidden states, gradient flow, text samples;
each charged apart as below, ``probes`` in the JSON, ``probe`` is the hidden-state one) are the hooks
whose cost comes in lumps. The hidden-state probe is the largest: a capture (a replay of the probe text, in
the training thread) every ``every`` steps, and the snapshot's files written by a
background thread that competes with training for the 2 cores. At the default
cadence (a tenth of the run: 500 steps of the default 5000, widened by the probe
while a capture costs over its share of the 1.5% probe budget) a lump lands in a
handful of the 20-step blocks, which the median of per-pair ratios would hide,
and the probe's own estimate of its cadence is off here (the "none" blocks run
between its captures, so it sees steps twice as long). So the probe is charged
apart and amortised, and the headline is::

    ratio_combined = ratio_steps + probe_share + checkpoint_share

* ``ratio_steps``: median of the per-pair ratios over the pairs in which no probe
  capture or snapshot write ran (every per-step cost of every hook, the probe's
  step check included; pairs touched by a capture or a write are left out, so the
  probe is not counted twice);
* ``probe_share``: the cost of one probe / (``cadence`` x ms/step without hooks).
  ``cadence`` is where the probe's rule (``adapt_every`` from
  ``default_every(total steps)``, its share of the 1.5% budget for capture + write time) settles
  in a real run
  with the measured capture time and the hooks arm's ms/step. The cost of one probe
  is the larger of two estimates (reported both):

  - timed parts: capture wall time (training thread) + snapshot write CPU time
    (writer thread, ``time.thread_time``), medians of the captures the probe made
    at its cadence in the timed pairs plus ``--probe-samples`` captures and writes
    timed apart after them (same model, corpus and code: the probe's ``take`` and the
    probe's own write; the first capture, at step 0, is cold and reported apart).
    This misses contention: torch runs two threads on the 2 cores, and a writer
    thread taking one of them slows a step by more than its own CPU time;
  - observed: how much longer the pairs touched by a capture or a write took than
    clean pairs (medians), per capture in the pairs (3 at the default 90 pairs;
    none in ``--quick``, which uses the timed parts). Noisy with so few probes,
    but it includes the contention;
* ``checkpoint_share``: one checkpoint (timed apart) per ``checkpoint_every`` steps.

``ratio`` (the median over all pairs) and ``ratio_total`` are still printed.

    .venv/bin/python bench/overhead.py            # ~1-2 minutes on 2 cores
    .venv/bin/python bench/overhead.py --quick    # smoke run, < 30 s
    .venv/bin/python bench/overhead.py --profile  # plus a per-hook cost table

Client section (``bench/client_overhead.py``, skipped with ``--no-client``): the same question for a
user's own loop, a plain PyTorch char-LSTM with ``deepscope.init`` + ``run.watch`` + ``run.log`` at
default settings vs the same loop without them, in alternating short chunks; ``client_ratio`` is
its per-step median plus its snapshots charged apart, as above (target the same 1.03).

The last line of output is one JSON object (``client_ratio``, ``client`` {...}, ``ratio_combined``, ``ratio_steps``,
``probe`` {``capture_ms``, ``write_cpu_ms``, ``cadence``, ``share``, ...}, ``ratio``,
``target``, ...). ``--check`` exits 1 when ``ratio_combined`` or ``client_ratio`` exceeds the target.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from backend.probes.hooks import HiddenStateProbe, SnapshotProbe, default_every  # noqa: E402
from backend.spec import RunSpec  # noqa: E402
from backend.store import RunStore  # noqa: E402
from backend.tasks import get_task  # noqa: E402
from backend.tasks.data import load_task_data  # noqa: E402
from backend.training.checkpoint import save_checkpoint  # noqa: E402
from backend.training.device import configure_threads  # noqa: E402
from backend.training.hooks import fire  # noqa: E402
from backend.training.store_hooks import MetricsHook  # noqa: E402
from backend.training.trainer import Trainer  # noqa: E402
from backend.training.worker import default_hooks  # noqa: E402

from _probe_costs import charge, instrument_probe, overlaps, probe_apart, probe_figures  # noqa: E402

TASK = "code-lstm"
TARGET = 1.03
NO_EVAL = 1_000_000  # the largest eval_every a spec allows: no evaluation in any block
EVENTS = ("on_after_backward", "on_step_end")


def run_block(trainer: Trainer, steps: int) -> float:
    """``steps`` iterations of the body of ``Trainer.run``; returns seconds."""
    eval_every, total = trainer.spec.eval_every, trainer.total_steps
    t0 = time.perf_counter()
    for _ in range(steps):
        out = trainer.train_step()
        fire(trainer.hooks, "on_step_end", trainer, out)
        if trainer.step % eval_every == 0 or trainer.step == total:  # never true here; kept to mirror run()
            raise RuntimeError("evaluation would run inside a timed block")
    return time.perf_counter() - t0


def instrument(hooks, timings: dict) -> None:
    """Wrap each hook's per-step events to accumulate their wall time in ``timings``."""
    for hook in hooks:
        for event in EVENTS:
            fn = getattr(hook, event)

            @functools.wraps(fn)
            def timed(*args, _fn=fn, _key=(type(hook).__name__, event)):
                t = time.perf_counter()
                try:
                    return _fn(*args)
                finally:
                    timings[_key].append(time.perf_counter() - t)

            setattr(hook, event, timed)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    i = q * (len(xs) - 1)
    lo = math.floor(i)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (i - lo)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few small blocks (smoke test, < 20 s)")
    p.add_argument("--pairs", type=int, default=None, help="A/B block pairs (default 90, quick 8)")
    p.add_argument("--block-steps", type=int, default=None,
                   help="steps per block, best a multiple of log_every (default 2 x log_every = 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per arm first (default 40, quick 10)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: as training picks)")
    p.add_argument("--dir", default=None, help="parent folder of the temporary store")
    p.add_argument("--profile", action="store_true", help="time every hook event and report cost per step")
    p.add_argument("--probe-samples", type=int, default=None,
                   help="probe captures + writes timed apart after the pairs (default 5, quick 2)")
    p.add_argument("--check", action="store_true",
                   help=f"exit 1 when the combined ratio (or the client ratio) exceeds {TARGET}")
    p.add_argument("--no-client", action="store_true", help="skip the client-API section")
    args = p.parse_args(argv)
    threads = configure_threads()
    spec = RunSpec.for_task(TASK, eval_every=NO_EVAL)
    pairs = args.pairs or (8 if args.quick else 90)
    block = args.block_steps or 2 * spec.log_every
    warmup = args.warmup if args.warmup is not None else (10 if args.quick else 40)
    probe_samples = args.probe_samples if args.probe_samples is not None else (2 if args.quick else 5)
    data = load_task_data(get_task(spec.task), seed=spec.seed)
    trainer = Trainer(spec, data, device=args.device)
    run_total = trainer.total_steps  # what the hooks see at on_train_start (the probe's default cadence)
    tmp = tempfile.TemporaryDirectory(prefix="deepscope-bench-", dir=args.dir)
    store = RunStore(tmp.name)
    run_id = store.create_run("overhead bench", TASK, spec.model_dump(), status="running")
    hooks = default_hooks(store, run_id, spec)
    metrics = next(h for h in hooks if isinstance(h, MetricsHook))
    # every snapshot probe of the default hooks (code-lstm: hidden states, gradient flow, text samples)
    probes = [h for h in hooks if isinstance(h, SnapshotProbe)]
    probe_logs: dict[str, dict] = {p.kind: {"capture": [], "write": []} for p in probes}
    for p in probes:
        instrument_probe(p, probe_logs[p.kind])
    timings: dict = defaultdict(list)
    if args.profile:
        instrument(hooks, timings)

    print(f"deepscope hook overhead: task {TASK}, device {trainer.device}, torch threads {threads}")
    print(f"  spec: batch {spec.batch_size} x seq {spec.seq_len}, {spec.model.family} "
          f"hidden {spec.model.hidden_size}, log_every {spec.log_every}, "
          f"checkpoint_every {spec.checkpoint_every}")
    print(f"  hooks: {', '.join(type(h).__name__ for h in hooks)} on a RunStore in {tmp.name}")
    print(f"  evaluation EXCLUDED from both arms (eval_every={NO_EVAL}): the ratio measures hooks only")
    print(f"  {pairs} A/B pairs x {block} steps per block, order alternating A/B, B/A; warmup {warmup} steps/arm")

    # Each arm keeps its own step counter: the hooks see 1, 2, 3, ... as in a real run.
    step_of = {"none": 0, "hooks": 0}
    flush_s: list[float] = []

    def block_of(arm: str, steps: int) -> float:
        trainer.step = step_of[arm]
        trainer.hooks = hooks if arm == "hooks" else []
        dt = run_block(trainer, steps)
        if arm == "hooks":  # commit this block's rows on its own clock
            t = time.perf_counter()
            metrics.writer.flush()
            flush_s.append(time.perf_counter() - t)
            dt += flush_s[-1]
        step_of[arm] = trainer.step
        trainer.hooks = []
        return dt

    trainer.hooks = hooks
    fire(hooks, "on_train_start", trainer)  # once, as Trainer.run does (untimed); the probe captures step 0
    trainer.total_steps = 10**9  # blocks never reach the end of the run (no final eval inside a block)
    block_of("none", warmup)
    block_of("hooks", warmup)
    for p in probes:
        p.flush()  # the step-0 snapshots are on disk before the timed pairs
    timings.clear()
    flush_s.clear()

    times = {"none": [], "hooks": []}
    ratios, spans = [], []
    t_start = time.perf_counter()
    for i in range(pairs):
        order = ("none", "hooks") if i % 2 == 0 else ("hooks", "none")
        t0 = time.perf_counter()
        got = {arm: block_of(arm, block) for arm in order}
        spans.append((t0, time.perf_counter()))
        for arm in order:
            times[arm].append(got[arm])
        ratios.append(got["hooks"] / got["none"])
        if (i + 1) % 10 == 0 or i + 1 == pairs:
            first = i - (i % 10) if (i + 1) % 10 else i - 9
            print(f"  pairs {first + 1:3d}-{i + 1:3d} ratios: " + " ".join(f"{r:.3f}" for r in ratios[first:]),
                  flush=True)
    wall = time.perf_counter() - t_start

    for p in probes:
        p.flush()  # a snapshot still being written belongs to the pairs above
    # pairs in which any probe's capture or snapshot write ran (their cost is charged apart below)
    busy = [(a, b) for log in probe_logs.values() for a, b, _ in log["capture"] + log["write"]]
    touched = [i for i, span in enumerate(spans) if overlaps(span, busy)]
    clean = [r for i, r in enumerate(ratios) if i not in touched]
    in_run = {kind: {"captures": [(step, b - a) for a, b, step in log["capture"]],
                     "writes": [(b - a, c) for a, b, c in log["write"]]} for kind, log in probe_logs.items()}

    trainer.step, trainer.hooks = step_of["hooks"], hooks
    t = time.perf_counter()
    fire(hooks, "on_train_end", trainer, "completed")  # final flush + checkpoint (untimed, once per run)
    for p in probes:
        p.flush()  # the final snapshots too
    train_end_s = time.perf_counter() - t
    apart = {p.kind: probe_apart(trainer, p, probe_samples) for p in probes}
    # A checkpoint lands in at most a block or two, which the median ignores: time it apart.
    ckpt_s = []
    for _ in range(3):
        t = time.perf_counter()
        save_checkpoint(trainer, Path(tmp.name) / "ckpt-timing")
        ckpt_s.append(time.perf_counter() - t)
    ckpt_ms = 1000 * statistics.median(ckpt_s)
    trainer.close()
    tmp.cleanup()

    ratio = statistics.median(ratios)
    ratio_steps = statistics.median(clean) if clean else ratio
    ratio_total = sum(times["hooks"]) / sum(times["none"])
    sps = {arm: block * len(ts) / sum(ts) for arm, ts in times.items()}
    med_sps = {arm: statistics.median(block / t for t in ts) for arm, ts in times.items()}
    none_step_s, hooks_step_s = 1 / med_sps["none"], 1 / med_sps["hooks"]
    start_every = spec.probe_every or default_every(run_total)
    figs = probe_figures(probes, in_run, apart, start_every, hooks_step_s, none_step_s)
    # cross-check: extra wall time of the pairs a capture or write touched, over what clean pairs take
    clean_idx = [i for i in range(len(ratios)) if i not in touched]
    expected = (statistics.median(times["hooks"][i] for i in clean_idx)
                + statistics.median(times["none"][i] for i in clean_idx)) if clean_idx else float("nan")
    excess = sum(times["hooks"][i] + times["none"][i] - expected for i in touched)
    contention, factor = charge(figs, excess)
    hidden = next((p for p in probes if isinstance(p, HiddenStateProbe)), None)
    probe_fig = dict(figs[hidden.kind], corpus_tokens=len(hidden.corpus.ids)) if hidden is not None else None
    spread = {"p10": pct(ratios, 0.10), "p25": pct(ratios, 0.25), "p75": pct(ratios, 0.75),
              "p90": pct(ratios, 0.90), "min": min(ratios), "max": max(ratios)}
    print()
    print(f"  steps/s (total)   none {sps['none']:.1f}   hooks {sps['hooks']:.1f}")
    print(f"  steps/s (median)  none {med_sps['none']:.1f}   hooks {med_sps['hooks']:.1f}")
    print(f"  ms/step (median)  none {1000 / med_sps['none']:.2f}   hooks {1000 / med_sps['hooks']:.2f}")
    print(f"  ratio hooks/none: median {ratio:.3f}  (p25 {spread['p25']:.3f}, p75 {spread['p75']:.3f}; "
          f"p10 {spread['p10']:.3f}, p90 {spread['p90']:.3f}; min {spread['min']:.3f}, max {spread['max']:.3f})")
    print(f"  ratio of total times: {ratio_total:.3f}   (hook steps run: {step_of['hooks']}, "
          f"checkpoints in them: {step_of['hooks'] // spec.checkpoint_every})")
    print(f"  on_train_end (flush + final checkpoint, once per run, untimed): {1000 * train_end_s:.1f} ms")
    ckpt_share = ckpt_ms / (spec.checkpoint_every * 1000 / med_sps["none"])
    print(f"  one checkpoint: {ckpt_ms:.1f} ms, every {spec.checkpoint_every} steps = "
          f"{100 * ckpt_share:.3f}% of training time (on top of the median ratio)")
    probe_share = sum(f["share"] for f in figs.values())
    ratio_combined = ratio_steps + probe_share + ckpt_share
    print(f"  ratio hooks/none over the {len(clean)} pairs without a probe capture or write: median {ratio_steps:.3f}")
    names = {"hidden": "hidden-state probe", "gradflow": "gradient-flow probe", "samples": "text-samples probe",
             "embeddings": "embedding probe (character embeddings, for Projections)"}
    for kind, pf in figs.items():
        print(f"  {names.get(kind, kind + ' probe')}: capture {pf['capture_ms']:.0f} ms (training thread; first, cold: "
              f"{pf['first_capture_ms'] or float('nan'):.0f} ms), snapshot write {pf['write_ms']:.0f} ms wall / "
              f"{pf['write_cpu_ms']:.0f} ms CPU (writer thread); medians of {pf['samples']} "
              f"({pf['captures_in_pairs']} in the pairs, {pf['samples_apart']} timed apart)")
        print(f"    cadence: starts every {pf['cadence_start']} steps, settles at every {pf['cadence']} steps in a run "
              f"(budget {100 * pf['budget']:.1f}% at {1000 * hooks_step_s:.2f} ms/step; in this bench, misled by the "
              f"interleaved blocks, it ended at {pf['cadence_in_bench']}); timed parts {100 * pf['share_model']:.2f}%, "
              f"charged ({pf['basis']}) {pf['ms_per_probe']:.0f} ms per snapshot = {100 * pf['share']:.2f}% of training time")
    if contention is not None:
        print(f"    observed: the {len(touched)} pairs touched by captures or writes took {contention:.2f}x the timed "
              f"parts of the captures in them (factor applied: {factor:.2f})")
    if not figs:
        print("  no snapshot probe in the default hooks of this task")
    verdict = "PASS" if ratio_combined <= TARGET else "OVER TARGET"
    print(f"  COMBINED ratio = {ratio_steps:.3f} (per-step hooks) + {probe_share:.4f} (probes) + {ckpt_share:.4f} "
          f"(checkpoints) = {ratio_combined:.3f}   target {TARGET}: {verdict}   (benchmark wall time {wall:.1f} s)")

    profile = {}
    if args.profile:
        n = (pairs * block)
        print("\n  per-hook cost in timed hooks blocks (time.perf_counter around each event):")
        print(f"  {'hook.event':40s} {'calls':>6s} {'total ms':>9s} {'us/step':>9s} {'median us':>10s} {'max ms':>8s}")
        for (name, event), ts in sorted(timings.items(), key=lambda kv: -sum(kv[1])):
            key = f"{name}.{event}"
            profile[key] = {"calls": len(ts), "us_per_step": 1e6 * sum(ts) / n,
                            "median_us": 1e6 * statistics.median(ts), "max_ms": 1e3 * max(ts)}
            print(f"  {key:40s} {len(ts):6d} {1e3 * sum(ts):9.1f} {profile[key]['us_per_step']:9.1f} "
                  f"{profile[key]['median_us']:10.1f} {profile[key]['max_ms']:8.2f}")
        print(f"  {'BackgroundWriter.flush (end of block)':40s} {len(flush_s):6d} {1e3 * sum(flush_s):9.1f} "
              f"{1e6 * sum(flush_s) / n:9.1f} {1e6 * statistics.median(flush_s):10.1f} {1e3 * max(flush_s):8.2f}")
        step_us = 1e6 / med_sps["none"]
        print(f"  (a step without hooks takes ~{step_us:.0f} us: 1% of it is {step_us / 100:.0f} us)")

    result = {"ratio_combined": round(ratio_combined, 4), "ratio_steps": round(ratio_steps, 4),
              "clean_pairs": len(clean), "probe_share": round(probe_share, 5), "checkpoint_share": round(ckpt_share, 5),
              "probe": {k: (round(v, 5 if "share" in k else 2) if isinstance(v, float) else v)
                        for k, v in probe_fig.items()} if probe_fig else None,
              "probes": {kind: {k: (round(v, 5 if "share" in k else 2) if isinstance(v, float) else v)
                                for k, v in f.items()} for kind, f in figs.items()},
              "contention": round(contention, 3) if contention is not None else None,
              "ratio": round(ratio, 4), "target": TARGET, "ratio_total": round(ratio_total, 4),
              "steps_per_s_hooks": round(sps["hooks"], 2), "steps_per_s_none": round(sps["none"], 2),
              "blocks": pairs, "block_steps": block, "ratios": [round(r, 4) for r in ratios],
              "spread": {k: round(v, 4) for k, v in spread.items()}, "eval_excluded": True,
              "checkpoint_ms": round(ckpt_ms, 2), "device": str(trainer.device), "torch_threads": threads,
              "pass": ratio_combined <= TARGET}
    if profile:
        result["profile"] = {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in profile.items()}
    client_ratio = None
    if not args.no_client:
        import client_overhead  # bench/ is this script's folder, so on sys.path

        print("\n  client API section (bench/client_overhead.py):")
        client = client_overhead.measure(quick=args.quick, data_dir=args.dir)
        client_overhead.report(client)
        client_ratio = client["client_ratio"]
        result["client"] = {k: v for k, v in client.items() if k != "ratios"}
    result["client_ratio"] = client_ratio
    print(json.dumps(result))
    over = ratio_combined > TARGET or (client_ratio is not None and client_ratio > TARGET)
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
