"""How readable the built-in word2vec run's Projections maps are: do they jump, do they show structure?

Trains ``prose-word2vec`` at its default spec (or ``--set key=value`` overrides, as ``deepscope train``
takes them) on one torch thread, copies the word vectors at step 0 and every ``--every`` steps, and maps
them as the analysis worker does (``backend.analysis.projection_compute``): the first map with ``tsne_fit``,
each next one with ``tsne_continue`` (warm start, Procrustes-aligned; ``restructure`` when the neighbourhood
overlap with the previous snapshot is under ``RESTRUCTURE_BELOW``), cosine, perplexity 30, all 2,000 words.
It reports:

* ``median_move``: per pair of consecutive maps, the median word's displacement in map widths (the
  width of the newer map's bounding box, x or y, whichever is larger): how far the eye must follow;
* ``knn_final``: kNN agreement (10 neighbours, cosine in the embedding space, Euclidean on the map) of
  the last map; about 10 / 2000 for a random map;
* ``groups_final``: for hand-listed word groups that occur in pydoc's topics (numbers, Python types,
  keywords, ...), the share of a group's words whose 10 nearest words *in the embedding space* include
  another word of the group (``groups_embedding``), and the same on the map (``groups_map``); chance is
  about 10 x (group size - 1) / 2000;
* ``val_loss`` (skip-gram loss on fixed validation pairs) and the training seconds.

    nice -n 19 .venv/bin/python bench/projection_quality.py                 # default spec, ~1-3 min on 2 cores
    nice -n 19 .venv/bin/python bench/projection_quality.py --set lr=0.003 --set steps=4000   # another spec

The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Word groups a reader would expect to see together, all in the run's vocabulary (a test checks it)
GROUPS = {
    "numbers": ("one", "two", "three", "four", "zero", "first", "second"),
    "types": ("int", "float", "str", "bytes", "list", "tuple", "dict", "set", "complex", "bool"),
    "keywords": ("if", "else", "elif", "while", "for", "try", "except", "finally", "return", "yield",
                 "break", "continue", "pass", "raise", "with", "import", "def", "class", "lambda"),
    "errors": ("error", "exception", "typeerror", "valueerror", "keyerror", "attributeerror", "raised"),
    "operators": ("and", "or", "not", "is", "in"),
}
K = 10


def snapshots(spec, every: int) -> tuple[dict[int, np.ndarray], float, float]:
    """Word vectors at step 0 and every ``every`` steps (and the end); validation loss; seconds."""
    import torch

    from backend.tasks import get_task
    from backend.tasks.data import load_task_data
    from backend.training.hooks import Hook
    from backend.training.trainer import Trainer

    class Copy(Hook):
        def __init__(self):
            self.tables: dict[int, np.ndarray] = {}

        def on_train_start(self, trainer):
            self.tables[0] = trainer.model.embedding.weight.detach().cpu().numpy().copy()

        def on_step_end(self, trainer, out):
            if out.step % every == 0 or out.step == trainer.total_steps:
                self.tables[out.step] = trainer.model.embedding.weight.detach().cpu().numpy().copy()

    torch.set_num_threads(1)
    copy = Copy()
    trainer = Trainer(spec, load_task_data(get_task(spec.task), seed=spec.seed), hooks=[copy], device="cpu")
    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0
    return copy.tables, float(trainer.evaluate()["val/loss"]), seconds


def median_move(new: np.ndarray, old: np.ndarray) -> float:
    """The median point's displacement from ``old`` to ``new`` (both aligned already), in map widths."""
    width = float(np.ptp(new, axis=0).max()) or 1.0
    return float(np.median(np.linalg.norm(new - old, axis=1)) / width)


def group_share(x: np.ndarray, vocab: tuple[str, ...], metric: str) -> dict[str, float]:
    """Per group: the share of its words with another word of the group among their K nearest."""
    from sklearn.neighbors import NearestNeighbors

    index = {w: i for i, w in enumerate(vocab)}
    nn = NearestNeighbors(n_neighbors=K + 1, metric=metric).fit(x)
    out = {}
    for name, words in GROUPS.items():
        rows = [index[w] for w in words if w in index]
        near = nn.kneighbors(x[rows], return_distance=False)[:, 1:]
        members = set(rows)
        out[name] = round(float(np.mean([bool(members & (set(r) - {row})) for row, r in zip(rows, near)])), 3)
    return out


def measure(tables: dict[int, np.ndarray], vocab: tuple[str, ...]) -> dict:
    from backend.analysis.projection import tsne_continue, tsne_fit
    from backend.analysis.projection_compare import knn_agreement, neighbourhood_overlap
    from backend.analysis.projection_compute import RESTRUCTURE_BELOW

    steps = sorted(tables)
    x0 = tables[steps[0]][1:]  # <unk> (row 0) is never trained
    prev = tsne_fit(x0, perplexity=30, metric="cosine")
    moves, restructured, x_prev = [], [], x0
    for step in steps[1:]:
        x = tables[step][1:]
        again = neighbourhood_overlap(x_prev, x, metric="cosine") < RESTRUCTURE_BELOW
        res = tsne_continue(x, prev, restructure=again)
        moves.append(round(median_move(res.coords, prev.coords), 4))
        restructured.append(bool(again))
        prev, x_prev = res, x
    final = tables[steps[-1]][1:]
    words = vocab[1:]
    emb, on_map = group_share(final, words, "cosine"), group_share(prev.coords, words, "euclidean")
    return {"steps": steps, "median_move": moves, "restructured": restructured, "knn_final": round(knn_agreement(final, prev.coords, k=K,
                                                                                   metric="cosine"), 3),
            "groups_embedding": emb, "groups_map": on_map,
            "groups_embedding_mean": round(float(np.mean(list(emb.values()))), 3),
            "groups_map_mean": round(float(np.mean(list(on_map.values()))), 3)}


def main(argv: list[str] | None = None) -> int:
    from backend.cli import parse_sets
    from backend.spec import RunSpec
    from backend.tasks.prose import prose_corpus

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", action="append", default=[], help="spec override key=value (as deepscope train)")
    p.add_argument("--every", type=int, default=500, help="steps between snapshots")
    args = p.parse_args(argv)
    spec = RunSpec.for_task("prose-word2vec", **parse_sets(args.set))
    tables, val_loss, seconds = snapshots(spec, args.every)
    t0 = time.perf_counter()
    result = measure(tables, prose_corpus().vocab)
    result.update(spec={k: v for k, v in spec.model_dump().items() if k in ("lr", "steps", "batch_size")},
                  val_loss=round(val_loss, 4), train_s=round(seconds, 1), maps_s=round(time.perf_counter() - t0, 1))
    print(f"moves between maps (median, map widths): {result['median_move']}")
    print(f"kNN agreement of the last map: {result['knn_final']}; groups together: embedding "
          f"{result['groups_embedding']}, map {result['groups_map']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
