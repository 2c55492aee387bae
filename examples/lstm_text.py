"""A character-level LSTM on a text file, in plain PyTorch, watched by deepscope.

    .venv/bin/python examples/lstm_text.py                       # Python's own textwrap.py, 600 steps
    .venv/bin/python examples/lstm_text.py --text my.txt --steps 2000
    .venv/bin/deepscope serve                                    # then open Hidden states, or Try it

The last tenth of the text is held out: its first ``--probe-chars`` characters are the probe text
whose hidden states deepscope records while the model trains, with the bracket depth at each
character as an annotation track (look for a cell that counts it). Runs offline, ~30 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

import torch
from torch import nn

import deepscope


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int = 32, hidden_size: int = 128):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(x))[0])


def bracket_depth(text: str) -> list[int]:
    """Nesting depth of (), [] and {} at each character."""
    depth, out = 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        out.append(depth)  # an opening bracket is inside, a closing one too
        if ch in ")]}" and depth > 0:
            depth -= 1
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", default=textwrap.__file__, help="a UTF-8 text file (default: Python's textwrap.py)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--probe-chars", type=int, default=3000)
    p.add_argument("--name", default=None)
    p.add_argument("--data-dir", default=None, help="deepscope data folder (default $DEEPSCOPE_DATA_DIR or "
                                                    "./deepscope-data)")
    args = p.parse_args(argv)
    torch.manual_seed(0)

    text = Path(args.text).read_text(encoding="utf-8", errors="replace")
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])  # small texts: a list lookup is fast enough
    split = int(0.9 * len(ids))
    train, probe_text = ids[:split], text[split:split + args.probe_chars]
    model = CharLSTM(len(chars), hidden_size=args.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    config = vars(args) | {"text": Path(args.text).name, "vocab_size": len(chars)}
    with deepscope.init(name=args.name or f"char-lstm · {Path(args.text).name}", config=config,
                        data_dir=args.data_dir, task="text-file", total_steps=args.steps) as run:
        run.watch(model, probe=probe_text, vocab=chars, optimizer=optimizer)  # also saves it for Try it
        run.log_track("bracket depth", bracket_depth(probe_text))
        t0 = time.perf_counter()
        for step in range(1, args.steps + 1):
            starts = torch.randint(0, len(train) - args.seq_len - 1, (args.batch_size,))
            window = train[starts[:, None] + torch.arange(args.seq_len + 1)]
            logits = model(window[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)), window[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss.detach()}, step=step)  # tensors are converted off the training thread
            if step % 100 == 0 or step == args.steps:
                print(f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"run {run.id} {run.status}: open the dashboard (deepscope serve) and choose it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
