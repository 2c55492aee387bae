"""Cost of the client API in a plain user loop: ``run.watch`` + ``run.log`` at default settings vs none.

The loop is ``examples/lstm_text.py``'s: a character LSTM (embedding 32, 128 cells, batch 32 x 64
characters) on Python's ``textwrap.py``, Adam, its loss logged every step as a tensor (no
``.item()``). The client arm is one run (``deepscope.init`` on a temporary store, then
``run.watch(model, probe=3,000 held-out characters, vocab=chars)`` and nothing else) that every
client chunk continues, so its probes keep the cadence of a real run: every 100 steps at first,
widened while snapshots cost over their share of 1.5% of the time between them, and as the run grows.

Short chunks (``--chunk`` steps, default 50) of the two arms alternate, A/B then B/A, so drift and
the neighbours' load on a shared machine hit both alike. A client chunk ends by committing its
metric rows (and waiting for a snapshot's files when it took one) inside its own timed region, so
nothing it queued is paid for by the next plain chunk (pessimistic: in a run that overlaps
training). As in ``bench/overhead.py``, snapshots come in lumps that a median would hide, so they
are charged apart and amortised; the headline is::

    client_ratio = ratio_steps + probe_share

* ``ratio_steps``: median of the per-pair time ratios client/plain over the pairs in which no
  snapshot was taken (``log`` every step, the cadence check, the metrics writer);
* ``probe_share``: for each watched probe, the median cost of one snapshot (capture wall time in
  the training thread + the writer thread's CPU time for its files; snapshots taken in the run after
  the first, cold one, plus ``--samples`` taken apart after the pairs) over the time between two
  snapshots at the cadence the probe ended with (cadence x ms/step without deepscope), summed.

``ratio_total`` (all client time / all plain time, snapshots included) is printed beside it: it
is what a person would time, but the neighbours' stalls are in it. Opening the run and ``watch``
(its first snapshot) happen once per run and are reported apart.

    .venv/bin/python bench/client_overhead.py          # ~40 s on 2 cores; last line JSON
    .venv/bin/python bench/client_overhead.py --quick  # smoke run, a few seconds

``bench/overhead.py`` runs this as its client section (``client_ratio`` in its JSON).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

TARGET = 1.03
PROBE_CHARS = 3000


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int = 32, hidden_size: int = 128):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(x))[0])


class UserLoop:
    """The user's training loop; ``run`` (or None) is the only difference between the arms."""

    def __init__(self, batch: int = 32, seq: int = 64):
        text = Path(textwrap.__file__).read_text()
        self.chars = sorted(set(text))
        ids = torch.tensor([self.chars.index(c) for c in text])
        split = int(0.9 * len(ids))
        self.train, self.probe_text = ids[:split], text[split:split + PROBE_CHARS]
        torch.manual_seed(0)
        self.model = CharLSTM(len(self.chars))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=3e-3)
        self.batch, self.seq, self.n = batch, seq, len(self.chars)
        self.gen = torch.Generator().manual_seed(0)

    def block(self, steps: int, run=None, start: int = 0) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            starts = torch.randint(0, len(self.train) - self.seq - 1, (self.batch,), generator=self.gen)
            window = self.train[starts[:, None] + torch.arange(self.seq + 1)]
            loss = nn.functional.cross_entropy(self.model(window[:, :-1]).reshape(-1, self.n),
                                               window[:, 1:].reshape(-1))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if run is not None:
                run.log({"train/loss": loss.detach()}, step=start + i + 1)
        return time.perf_counter() - t0


def instrument(probe, log: list) -> None:
    """Record each snapshot of ``probe``: capture wall time (training thread) and its write's CPU time."""
    capture, write = probe.capture, probe.writer._write

    def timed_capture(trainer):
        if trainer.step in probe._done:  # nothing to take: this step is recorded already
            return capture(trainer)
        t0 = time.perf_counter()
        try:
            return capture(trainer)
        finally:
            log.append({"step": trainer.step, "capture_s": time.perf_counter() - t0, "write_cpu_s": None})

    def timed_write(*args):
        c0 = time.thread_time()
        try:
            return write(*args)
        finally:
            entry = next((e for e in log if e["write_cpu_s"] is None), None)
            if entry is not None:
                entry["write_cpu_s"] = time.thread_time() - c0

    probe.capture, probe.writer._write = timed_capture, timed_write


def apart(probe, trainer, samples: int) -> list[float]:
    """``samples`` snapshots of ``probe`` (its own take and write) timed one after the other."""
    costs = []
    for i in range(samples):
        t = time.perf_counter()
        payload, meta = probe.take(trainer)
        cap = time.perf_counter() - t
        c = time.thread_time()
        probe.write(10**9 + i, payload, dict(meta, task=trainer.spec.task, every=probe.every))
        costs.append(cap + time.thread_time() - c)
    return costs


def measure(quick: bool = False, pairs: int | None = None, chunk: int | None = None, samples: int | None = None,
            data_dir: str | None = None, log=print) -> dict:
    """Run the benchmark; returns its figures (see the module docstring)."""
    import deepscope

    pairs, chunk = pairs or (6 if quick else 30), chunk or (25 if quick else 50)
    samples = samples if samples is not None else (1 if quick else 3)
    loop = UserLoop()
    tmp = tempfile.TemporaryDirectory(prefix="deepscope-client-bench-", dir=data_dir)
    loop.block(10 if quick else 30)  # allocator and threads warm for both arms
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", deepscope.DeepscopeWarning)  # a bench that records nothing is no bench
        run = deepscope.init(name="client overhead bench", data_dir=tmp.name)
        run.watch(loop.model, probe=loop.probe_text, vocab=loop.chars)
    open_s = time.perf_counter() - t
    logs = {p.kind: [] for p in run._probes}
    for p in run._probes:
        p.flush()  # the first snapshot (taken by watch) is on disk before the pairs
        instrument(p, logs[p.kind])
    step, times, ratios, clean = 0, {"plain": [], "client": []}, [], []
    for i in range(pairs):
        got = {}
        for arm in (("plain", "client") if i % 2 == 0 else ("client", "plain")):
            if arm == "plain":
                got[arm] = loop.block(chunk)
                continue
            before = sum(len(v) for v in logs.values())
            t0 = time.perf_counter()
            loop.block(chunk, run, step)
            snapped = sum(len(v) for v in logs.values()) > before
            if snapped:
                for p in run._probes:
                    p.flush()
            run._writer.flush()
            got[arm] = time.perf_counter() - t0
            step += chunk
        for arm in got:
            times[arm].append(got[arm])
        ratios.append(got["client"] / got["plain"])
        if not snapped:
            clean.append(ratios[-1])
        if (i + 1) % 10 == 0 or i + 1 == pairs:
            log(f"  client pairs up to {i + 1:3d}/{pairs}: ratios " + " ".join(f"{r:.3f}" for r in ratios[-10:]))
    plain_step_s = statistics.median(times["plain"]) / chunk
    probes = {}
    for p in run._probes:
        in_run = [e["capture_s"] + (e["write_cpu_s"] or 0.0) for e in logs[p.kind]]
        costs = in_run + apart(p, run._trainer, samples)
        cost = statistics.median(costs)
        probes[p.kind] = {"cadence": p.every, "ms_per_snapshot": round(1000 * cost, 1),
                          "snapshots_in_pairs": len(in_run), "share": round(cost / (p.every * plain_step_s), 5)}
    t = time.perf_counter()
    run.finish()
    finish_s = time.perf_counter() - t
    rows, _ = run.store.scalars_after(run.id)
    tmp.cleanup()
    ratio_steps = statistics.median(clean or ratios)
    share = sum(v["share"] for v in probes.values())
    ratio = ratio_steps + share
    return {"client_ratio": round(ratio, 4), "ratio_steps": round(ratio_steps, 4), "probe_share": round(share, 5),
            "ratio_total": round(sum(times["client"]) / sum(times["plain"]), 4), "probes": probes,
            "pairs": pairs, "clean_pairs": len(clean), "chunk_steps": chunk, "client_steps": step, "rows": len(rows),
            "ms_per_step_plain": round(1000 * plain_step_s, 2), "open_and_watch_ms": round(1000 * open_s, 1),
            "finish_ms": round(1000 * finish_s, 1), "ratios": [round(r, 4) for r in ratios],
            "target": TARGET, "pass": ratio <= TARGET}


def report(fig: dict, log=print) -> None:
    verdict = "PASS" if fig["pass"] else "OVER TARGET"
    log(f"  client API (watch + log at defaults) in a plain char-LSTM loop, {fig['ms_per_step_plain']:.1f} ms/step "
        f"without it; {fig['pairs']} pairs of {fig['chunk_steps']}-step chunks "
        f"({fig['clean_pairs']} without a snapshot)")
    for kind, p in fig["probes"].items():
        log(f"    {kind} probe: {p['ms_per_snapshot']:.0f} ms per snapshot (capture + write CPU), every {p['cadence']} "
            f"steps at the end = {100 * p['share']:.2f}% of training time")
    log(f"    once per run: init + watch {fig['open_and_watch_ms']:.0f} ms, finish {fig['finish_ms']:.0f} ms")
    log(f"  CLIENT ratio = {fig['ratio_steps']:.3f} (per step) + {fig['probe_share']:.4f} (snapshots) = "
        f"{fig['client_ratio']:.3f}   target {TARGET}: {verdict}   (all client time / all plain time: "
        f"{fig['ratio_total']:.3f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pairs", type=int, default=None, help="chunk pairs (default 30, quick 6)")
    p.add_argument("--chunk", type=int, default=None, help="steps per chunk (default 50, quick 25)")
    p.add_argument("--samples", type=int, default=None, help="snapshots per probe timed apart (default 3, quick 1)")
    p.add_argument("--dir", default=None, help="parent folder of the temporary store")
    args = p.parse_args(argv)
    from backend.training.device import configure_threads

    print(f"deepscope client overhead: torch threads {configure_threads()}")
    fig = measure(args.quick, args.pairs, args.chunk, args.samples, args.dir)
    report(fig)
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
