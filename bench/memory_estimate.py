"""How close ``backend.spec.estimate`` comes to the memory training really takes, on CPU.

Every built-in task at its default spec and at two larger specs: each spec is measured in a fresh
subprocess, one torch thread. The child imports torch and the training code, loads the task's data,
warms up what every run pays once whatever its size (an optimizer step on a one-element parameter:
``torch.optim`` imports ``torch._dynamo`` on first use, ~65 MiB), collects garbage and trims the
malloc heap, reads its resident set size (the *baseline*), resets the kernel's peak mark
(``/proc/self/clear_refs``) and then does what a run does: ``Trainer(spec, data)`` with no hooks
(no probes, metrics or checkpoints), ``--steps`` training steps (default 6: the live peak comes at
step 2, when the previous step's gradients and the optimizer state are alive during the forward
pass, but the heap fragments and the resident peak creeps up ~10 % more over the first ~15 steps)
and one ``evaluate()`` (its peak is read after resetting the mark again; it sits on what the steps
left in the heap, as in a run). *Measured* = the larger peak RSS (``VmHWM``) minus the baseline:
the memory the spec adds to a trainer process. The baseline (Python, torch, the task's data;
300-640 MiB) is the same for every spec of a task and is printed apart. The same spec measures
~10 % apart between runs (heap fragmentation).

    .venv/bin/python bench/memory_estimate.py           # 27 specs: ~4 min quiet, ~9 min at load 10 on 2 cores
    .venv/bin/python bench/memory_estimate.py --quick   # default specs only, ~1 min
    .venv/bin/python bench/memory_estimate.py --check   # exit 1 when worst_ratio > 1.3
    .venv/bin/python bench/memory_estimate.py --spec '{"task": "code-lstm", "batch_size": 512}'  # any spec

Output: one row per spec (task, spec, estimate MiB, measured MiB, ratio = measured / estimate, the
baseline, the training and evaluation peaks); the last line is one JSON object: ``worst_ratio``
(max over specs of max(measured/estimate, estimate/measured)), ``specs``, ``target`` and
``results`` (one entry per spec).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.3
MIB = 2**20

# task -> (label, overrides of RunSpec.for_task) for the two larger specs of each task
LARGER: dict[str, list[tuple[str, dict]]] = {
    "digits-cnn": [
        ("cnn 64,128 k5 b1024", {"model": {"channels": [64, 128], "kernel_sizes": [5]}, "batch_size": 1024}),
        ("mlp 3x2048 b4096", {"model": {"family": "mlp", "layers": 3, "hidden_size": 2048}, "batch_size": 4096}),
    ],
    "code-lstm": [
        ("lstm 32 b1024 T512", {"model": {"hidden_size": 32}, "batch_size": 1024, "seq_len": 512}),
        ("transformer 2x256 h8 b64 T256", {"model": {"family": "transformer", "hidden_size": 256, "layers": 2,
                                                     "heads": 8}, "batch_size": 64, "seq_len": 256}),
    ],
    "brackets-lstm": [
        ("gru 96 b256 T768", {"model": {"family": "gru", "hidden_size": 96}, "batch_size": 256, "seq_len": 768}),
        ("rnn 2x128 b256 T512 drop", {"model": {"family": "rnn", "hidden_size": 128, "layers": 2, "dropout": 0.2},
                                      "batch_size": 256, "seq_len": 512}),
    ],
    "recall-lstm": [
        ("lstm 384 b256 T128", {"model": {"hidden_size": 384}, "batch_size": 256, "seq_len": 128}),
        ("lstm 64 b1024 T256 momentum", {"model": {"hidden_size": 64}, "batch_size": 1024, "seq_len": 256,
                                         "optimizer": "momentum"}),
    ],
    "natural-patches": [
        ("256 filters 5x5 b4096", {"model": {"channels": [256], "kernel_sizes": [5], "top_k": 16},
                                   "batch_size": 4096}),
        ("512 filters 7x7 b4096", {"model": {"channels": [512], "kernel_sizes": [7], "top_k": 32},
                                   "batch_size": 4096}),
    ],
    "patches-cnn": [
        ("cnn 32,64 k7,5 b1024", {"model": {"channels": [32, 64], "kernel_sizes": [7, 5]}, "batch_size": 1024}),
        ("cnn 32,64,128 k3 avg b256", {"model": {"channels": [32, 64, 128], "kernel_sizes": [3], "pooling": "avg"},
                                       "batch_size": 256}),
    ],
    "sentiment-cnn": [
        ("256 filters k3-5 emb128 b1024", {"model": {"channels": [256], "kernel_sizes": [3, 4, 5],
                                                     "embedding_dim": 128}, "batch_size": 1024}),
        ("64 filters k2-8 emb64 b2048", {"model": {"channels": [64], "kernel_sizes": [2, 3, 4, 5, 6, 7, 8],
                                                   "embedding_dim": 64}, "batch_size": 2048}),
    ],
    "prose-word2vec": [
        ("emb 512 b4096 adagrad", {"model": {"embedding_dim": 512}, "batch_size": 4096, "optimizer": "adagrad"}),
        ("emb 2048 b2048 momentum", {"model": {"embedding_dim": 2048}, "batch_size": 2048, "optimizer": "momentum"}),
    ],
    "sentiment-lstm": [
        ("lstm 256 b2048", {"model": {"hidden_size": 256}, "batch_size": 2048}),
        ("gru 2x128 bi b2048", {"model": {"family": "gru", "hidden_size": 128, "layers": 2, "bidirectional": True},
                                "batch_size": 2048}),
    ],
}


# -- child: one spec in this process --------------------------------------------------------------------
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _settle() -> None:
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed data-loading buffers go back to the system


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # VmHWM := current RSS (Linux >= 4.0)
        f.write("5")


def child(overrides: dict, steps: int, evaluate: bool) -> dict:
    """Measure one spec in this (fresh) process; returns bytes."""
    import torch

    torch.set_num_threads(1)
    from backend.spec import RunSpec, estimate, spec_info
    from backend.tasks.data import load_task_data
    from backend.training.trainer import Trainer

    overrides = dict(overrides)
    spec = RunSpec.for_task(overrides.pop("task"), **overrides)
    data = load_task_data(spec_info(spec), seed=spec.seed, data_file=spec.data_file)
    warm = torch.nn.Parameter(torch.zeros(1))  # what every run pays once: torch.optim's lazy imports
    warm.grad = torch.zeros(1)
    torch.optim.Adam([warm]).step()
    del warm
    _settle()
    base = _status()
    _reset_peak()
    t0 = time.perf_counter()
    trainer = Trainer(spec, data, hooks=[], device="cpu")
    for _ in range(steps):
        trainer.train_step()
    train_s = time.perf_counter() - t0
    after = _status()
    train_peak = after["VmHWM"]
    eval_peak = train_peak
    if evaluate:
        _reset_peak()
        trainer.evaluate()
        eval_peak = _status()["VmHWM"]
    return {"estimate": estimate(spec).memory_bytes, "base": base["VmRSS"], "base_anon": base["RssAnon"],
            "train_peak": train_peak - base["VmRSS"], "eval_peak": eval_peak - base["VmRSS"],
            "measured": max(train_peak, eval_peak) - base["VmRSS"], "train_s": round(train_s, 2),
            "after_anon": after["RssAnon"] - base["RssAnon"], "after_file": after["RssFile"] - base["RssFile"]}


# -- parent ----------------------------------------------------------------------------------------------
def measure(overrides: dict, steps: int = 3, evaluate: bool = True, timeout: float = 600) -> dict:
    """Run :func:`child` for ``overrides`` (``task`` + RunSpec.for_task overrides) in a fresh process."""
    env = dict(os.environ, DEEPSCOPE_TORCH_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               DEEPSCOPE_DEVICE="cpu")
    args = json.dumps({"overrides": overrides, "steps": steps, "evaluate": evaluate})
    proc = subprocess.run([sys.executable, __file__, "--child", args], capture_output=True, text=True,
                          cwd=str(REPO), env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed for {overrides}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def specs(quick: bool) -> list[tuple[str, str, dict]]:
    """(task, label, overrides) of every spec the bench measures."""
    sys.path.insert(0, str(REPO))
    from backend.tasks.registry import TASKS

    out = []
    for task in TASKS:
        out.append((task, "default", {"task": task}))
        if not quick:
            out += [(task, label, {"task": task, **o}) for label, o in LARGER.get(task, [])]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="default specs only")
    p.add_argument("--steps", type=int, default=6, help="training steps per spec (default 6)")
    p.add_argument("--tasks", nargs="*", default=None, help="only these tasks")
    p.add_argument("--spec", action="append", default=[], metavar="JSON",
                   help='measure this spec instead: {"task": ..., <RunSpec.for_task overrides>} (repeatable)')
    p.add_argument("--check", action="store_true", help=f"exit 1 when worst_ratio > {TARGET}")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        sys.path.insert(0, str(REPO))
        req = json.loads(a.child)
        print(json.dumps(child(req["overrides"], req["steps"], req["evaluate"])))
        return 0
    t0 = time.perf_counter()
    rows = []
    print(f"{'task':16} {'spec':30} {'estimate':>9} {'measured':>9} {'ratio':>6}  {'base':>6} {'train':>8} "
          f"{'eval':>8}  (MiB; ratio = measured / estimate)")
    todo = [(o["task"], "custom", o) for o in map(json.loads, a.spec)] or specs(a.quick)
    for task, label, overrides in todo:
        if a.tasks and task not in a.tasks:
            continue
        r = measure(overrides, steps=a.steps)
        ratio = r["measured"] / r["estimate"]
        rows.append({"task": task, "spec": label, "overrides": overrides, "estimate_mib": round(r["estimate"] / MIB, 1),
                     "measured_mib": round(r["measured"] / MIB, 1), "ratio": round(ratio, 3),
                     "base_mib": round(r["base"] / MIB), "train_peak_mib": round(r["train_peak"] / MIB, 1),
                     "eval_peak_mib": round(r["eval_peak"] / MIB, 1), "train_s": r["train_s"]})
        print(f"{task:16} {label:30} {r['estimate'] / MIB:9.1f} {r['measured'] / MIB:9.1f} {ratio:6.2f}  "
              f"{r['base'] / MIB:6.0f} {r['train_peak'] / MIB:8.1f} {r['eval_peak'] / MIB:8.1f}", flush=True)
    worst = max(max(r["ratio"], 1 / r["ratio"]) for r in rows)
    over = [f"{r['task']} {r['spec']}" for r in rows if max(r["ratio"], 1 / r["ratio"]) > TARGET]
    print(f"worst ratio {worst:.3f} (target {TARGET}); {len(over)} specs off by more: {over}")
    print(json.dumps({"worst_ratio": round(worst, 3), "specs": len(rows), "target": TARGET,
                      "min_ratio": min(r["ratio"] for r in rows), "max_ratio": max(r["ratio"] for r in rows),
                      "steps": a.steps, "seconds": round(time.perf_counter() - t0, 1), "results": rows}))
    return 1 if a.check and worst > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
