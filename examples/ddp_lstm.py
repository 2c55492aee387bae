"""A character LSTM trained on several processes with DistributedDataParallel, recorded by deepscope.

    .venv/bin/torchrun --nproc_per_node 2 examples/ddp_lstm.py     # 2 CPU processes (gloo); see below for time
    .venv/bin/python examples/ddp_lstm.py                          # the same training in one process
    .venv/bin/deepscope serve                                      # one run: its loss curve and hidden states

Every process draws the same global batch of random windows (same seed) and trains on its own slice;
DDP averages the gradients, so a step is the one-process step on the whole batch. ``deepscope.init``
records on rank 0 only: on the other ranks it returns a run that records nothing (``run.disabled``), so
``run.log`` and ``run.watch`` are called on every rank alike. The logged loss is the mean over the ranks
(one ``all_reduce`` every ``--log-every`` steps). Offline: the text is Python's own ``textwrap.py``.
On 2 CPU cores the 300 steps train in ~5 s; starting Python and torch in torchrun and both processes
takes another 10-30 s, depending on what else runs.
"""
from __future__ import annotations

import argparse
import os
import textwrap
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import deepscope


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int = 16, hidden_size: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(x))[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32, help="the global batch, split among the processes")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--name", default=None)
    p.add_argument("--data-dir", default=None, help="deepscope data folder (default $DEEPSCOPE_DATA_DIR or "
                                                    "./deepscope-data)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    distributed = "WORLD_SIZE" in os.environ  # started by torchrun
    if distributed:
        dist.init_process_group("gloo")
    rank, size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if args.batch_size % size:
        raise SystemExit(f"--batch-size {args.batch_size} does not divide among {size} processes")
    torch.manual_seed(0)  # the same weights and the same batches on every rank

    text = Path(textwrap.__file__).read_text(encoding="utf-8")
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    split = int(0.9 * len(ids))
    train, probe_text = ids[:split], text[split:split + 2000]
    model = CharLSTM(len(chars))
    net = DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    share = args.batch_size // size

    config = vars(args) | {"processes": size, "vocab_size": len(chars)}
    with deepscope.init(name=args.name or f"ddp char-lstm · {size} process(es)", config=config,
                        data_dir=args.data_dir, task="text-file", total_steps=args.steps) as run:
        run.watch(model, probe=probe_text, vocab=chars)  # the module, not the DDP wrapper
        t0, period = time.perf_counter(), torch.zeros(())
        for step in range(1, args.steps + 1):
            starts = torch.randint(0, len(train) - args.seq_len - 1, (args.batch_size,))  # the global batch
            mine = starts[rank * share:(rank + 1) * share]                               # this rank's windows
            window = train[mine[:, None] + torch.arange(args.seq_len + 1)]
            logits = net(window[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)), window[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            period += loss.detach()
            if step % args.log_every == 0 or step == args.steps:
                n = step % args.log_every or args.log_every
                if distributed:
                    dist.all_reduce(period)  # every rank: the mean over ranks is logged by rank 0
                mean, period = period / (n * size), torch.zeros(())
                run.log({"train/loss": mean}, step=step)
                if rank == 0 and (step % 100 == 0 or step == args.steps):
                    print(f"step {step}: loss {float(mean):.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    if rank == 0:
        print(f"run {run.id} {run.status}: open the dashboard (deepscope serve) and choose it")
    if distributed:
        # every rank leaves together: a rank that exits while rank 0 still writes the run's end (its gloo
        # peer still connected) aborted at exit in about 1 run in 6 here ("terminate called without an
        # active exception"); none in 20 with the barrier
        dist.barrier()
        del net
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
