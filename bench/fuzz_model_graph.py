"""Damaged model graphs: what Try it does with a client run's model file that someone planted or broke.

Four small character LMs are exported the way ``run.watch`` does (``backend.client.model_export``): an
LSTM (2 layers, batch first), a GRU (time first, a reshape inside, tied weights, a tuple out), a causal
convolution and a transformer encoder. Each graph is then damaged at random, 1 to 3 changes at a time: an
argument or keyword replaced by a reference to another node, a list of references, a small or huge int, a
string, a dtype, a malformed tag; or a call's target swapped for another allowlisted operator with the old
arguments. Each damaged graph is run as Try it runs it (``GraphModel(...).logits_and_states``). The only
acceptable outcomes are a result or a ``GraphError``; anything else is counted in ``other_errors``, and a
crash (torch kernels trusting their arguments) ends the process, which is the loudest failure of all.

    .venv/bin/python bench/fuzz_model_graph.py                # 4 x 2,500 damaged graphs, ~1 min on 2 cores
    .venv/bin/python bench/fuzz_model_graph.py --per-model 200 --seed 3

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from backend.client.model_export import export_lm  # noqa: E402
from backend.models.graph import ALLOWED_OPS, GraphError, GraphModel  # noqa: E402

VOCAB = sorted(set("def area(width, height):\n    return [width * height] / 2\n"))
OVERLOADS = ("default", "Tensor", "int", "dim", "Scalar", "self", "start", "Tensor_Scalar", "dim_IntList")
JUNK = [None, True, -1, 0, 3, -(1 << 63), 10 ** 30, 1.5, float("inf"), "x", "lstm", "tanh", [], {}, [[1] * 4],
        [1 << 20, 1 << 20], [-1], [2, 1, 32], {"ref": "nope"}, {"dtype": "int64"}, {"dtype": "evil"},
        {"device": "cpu"}, {"layout": "strided"}, {"memory_format": "contiguous_format"}, {"float": "inf"}]


class LSTM(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(v, 8), nn.LSTM(8, 16, 2, batch_first=True), nn.Linear(16, v)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


class GRU(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(v, 12), nn.GRU(12, 12), nn.Linear(12, v)
        self.out.weight = self.emb.weight

    def forward(self, x):
        h, h_n = self.rnn(self.emb(x))
        return self.out(h.reshape(-1, 12)).view(x.shape[0], x.shape[1], -1), h_n


class Conv(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.emb, self.conv, self.head = nn.Embedding(v, 8), nn.Conv1d(8, 16, 4), nn.Linear(16, v)

    def forward(self, x):
        h = nn.functional.pad(self.emb(x).transpose(1, 2), (3, 0))
        return self.head(torch.relu(self.conv(h)).transpose(1, 2))


class Transformer(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.emb, self.pos = nn.Embedding(v, 16), nn.Embedding(64, 16)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1)
        self.head = nn.Linear(16, v)

    def forward(self, x):
        t = x.shape[1]
        h = self.emb(x) + self.pos(torch.arange(t, device=x.device))
        return self.head(self.enc(h, mask=nn.Transformer.generate_square_subsequent_mask(t), is_causal=True))


def damage(graph: dict, rng: random.Random) -> dict:
    calls = [n for n in graph["nodes"] if n["op"] == "call"]
    names = [n["name"] for n in graph["nodes"]]
    for _ in range(rng.randint(1, 3)):
        node = rng.choice(calls)
        if rng.random() < 0.15:
            node["target"] = f"aten.{rng.choice(sorted(ALLOWED_OPS))}.{rng.choice(OVERLOADS)}"
            continue
        r = rng.random()
        value = ({"ref": rng.choice(names)} if r < 0.5 else [{"ref": rng.choice(names)} for _ in range(rng.randint(0, 9))]
                 if r < 0.6 else rng.randint(-100, 100) if r < 0.75 else rng.choice(JUNK))
        if node["kwargs"] and rng.random() < 0.2:
            node["kwargs"][rng.choice(sorted(node["kwargs"]))] = value
        elif node["args"]:
            node["args"][rng.randrange(len(node["args"]))] = value
    return graph


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-model", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    ids = torch.tensor([VOCAB.index(c) for c in "def area(width, height):\n    return [width * height] / 2\n" * 3])
    rng, started, totals = random.Random(args.seed), time.perf_counter(), {"ran": 0, "refused": 0, "other_errors": 0}
    for cls in (LSTM, GRU, Conv, Transformer):
        model = cls(len(VOCAB))
        exported = export_lm(model, ids, VOCAB)
        weights, counts = exported.weights(model), {"ran": 0, "refused": 0, "other_errors": 0}
        for _ in range(args.per_model):
            graph = damage(json.loads(exported.graph_json), rng)
            try:
                GraphModel(graph, weights).logits_and_states(ids[:7])
                counts["ran"] += 1
            except GraphError:
                counts["refused"] += 1
            except Exception as exc:  # noqa: BLE001 - what the page would show as "Could not run the model"
                counts["other_errors"] += 1
                print(f"  {cls.__name__}: {type(exc).__name__}: {str(exc)[:160]}")
        print(f"{cls.__name__:12s} {counts}", flush=True)
        for k, v in counts.items():
            totals[k] += v
    result = {**totals, "graphs": 4 * args.per_model, "seed": args.seed,
              "seconds": round(time.perf_counter() - started, 1), "pass": totals["other_errors"] == 0}
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
