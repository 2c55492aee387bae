"""How readable the built-in word2vec run's Projections maps are: do they jump, do they show structure?

Trains ``prose-word2vec`` at its default spec (or ``--set key=value`` overrides, as ``deepscope train``
takes them) on one torch thread, copies the word vectors at step 0 and at the embedding probe's
cadence (``default_every(steps)``: about ten snapshots; ``--every`` to choose), and maps them as the
analysis worker does (``backend.analysis.projection.compute``): the first map with ``tsne_fit``, each
next one with ``tsne_continue`` (warm start, Procrustes-aligned; ``restructure`` when the neighbourhood
overlap with the previous snapshot is under ``RESTRUCTURE_BELOW``), cosine, perplexity 30, every word
but ``<unk>``. It reports:

* ``median_move``: per pair of consecutive maps, the median word's displacement in map widths (the
  width of the newer map's bounding box, x or y, whichever is larger): how far the eye must follow;
  ``restructured``: which of those maps the worker lays out again (the page says so under the map);
* ``knn_final``: kNN agreement (10 neighbours, cosine in the embedding space, Euclidean on the map) of
  the last map; about 10 / n for a random map;
* ``groups_map`` (the cluster measure): for word groups a student can name in pydoc's topics
  (:data:`GROUPS`: Python's built-in types, exception names, special methods, None/True/False, number
  words), the share of a group's words whose 10 nearest words *on the map* include another word of the
  group; ``groups_embedding`` the same in the embedding space (cosine); chance is about
  10 x (group size - 1) / n. ``groups_old_*``: the groups this bench used before 2026-12-06
  (keywords and operator words, which pydoc uses as plain English too), where in the vocabulary;
* ``spread_map`` (the other cluster measure, less noisy): per group, the median distance between two of
  its words on the map over the median distance between any two words: 1 at random, 0.5 when a group
  sits half as far apart as words do in general; ``spread_embedding`` the same with cosine distances;
* ``val_loss`` (skip-gram loss on fixed validation pairs), ``train_s`` and ``maps_s``.

    nice -n 19 .venv/bin/python bench/projection_quality.py            # default spec, ~1 min on 2 cores
    nice -n 19 .venv/bin/python bench/projection_quality.py --quick    # the final map only (no moves), ~25 s
    nice -n 19 .venv/bin/python bench/projection_quality.py --set lr=0.005 --set steps=6000   # another spec

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

# Word groups a student can name, each a real group in pydoc's topics and in the run's vocabulary (a test checks)
GROUPS = {
    "types": ("int", "float", "str", "bytes", "list", "tuple", "dict", "set", "complex", "frozenset", "bytearray"),
    "exceptions": ("typeerror", "attributeerror", "valueerror", "syntaxerror", "oserror", "runtimeerror",
                   "indexerror", "keyerror"),
    "special methods": ("__getitem__", "__hash__", "__getattr__", "__new__", "__del__", "__eq__", "__init__",
                        "__exit__", "__setattr__", "__len__", "__repr__", "__contains__", "__enter__", "__iter__",
                        "__bool__", "__add__"),
    "constants": ("none", "true", "false"),
    "numbers": ("one", "two", "three", "four", "zero"),
}
# The groups of the first version of this bench (2026-12-05), for comparison; words outside the vocabulary skipped
OLD_GROUPS = {
    "numbers": ("one", "two", "three", "four", "zero", "first", "second"),
    "types": ("int", "float", "str", "bytes", "list", "tuple", "dict", "set", "complex", "bool"),
    "keywords": ("if", "else", "elif", "while", "for", "try", "except", "finally", "return", "yield",
                 "break", "continue", "pass", "raise", "with", "import", "def", "class", "lambda"),
    "errors": ("error", "exception", "typeerror", "valueerror", "keyerror", "attributeerror", "raised"),
    "operators": ("and", "or", "not", "is", "in"),
}
K = 10


def snapshots(spec, every: int | None) -> tuple[dict[int, np.ndarray], float, float]:
    """Word vectors at step 0 and every ``every`` steps (default: the probe's cadence) and the end;
    validation loss; training seconds (the copies included: a few ms)."""
    import torch

    from backend.probes.hooks import default_every
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
            if out.step % (every or default_every(trainer.total_steps)) == 0 or out.step == trainer.total_steps:
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


def group_share(x: np.ndarray, vocab: tuple[str, ...], metric: str, groups: dict = GROUPS) -> dict[str, float]:
    """Per group: the share of its words with another word of the group among their K nearest.

    Words outside ``vocab`` are skipped (a group left with fewer than two words is too).
    """
    from sklearn.neighbors import NearestNeighbors

    index = {w: i for i, w in enumerate(vocab)}
    nn = NearestNeighbors(n_neighbors=K + 1, metric=metric).fit(x)
    out = {}
    for name, words in groups.items():
        rows = [index[w] for w in words if w in index]
        if len(rows) < 2:
            continue
        near = nn.kneighbors(x[rows], return_distance=False)[:, 1:]
        members = set(rows)
        out[name] = round(float(np.mean([bool(members & (set(r) - {row})) for row, r in zip(rows, near)])), 3)
    return out


def group_spread(x: np.ndarray, vocab: tuple[str, ...], metric: str, groups: dict = GROUPS) -> dict[str, float]:
    """Per group: the median distance between two of its words over the median distance between any two words.

    1 for words scattered at random, smaller when the group sits together (0.5: half as far apart as
    words in general). Cosine distance in the embedding space, Euclidean on the map.
    """
    from scipy.spatial.distance import pdist

    index = {w: i for i, w in enumerate(vocab)}
    overall = float(np.median(pdist(x, metric)))
    out = {}
    for name, words in groups.items():
        rows = [index[w] for w in words if w in index]
        if len(rows) >= 2:
            out[name] = round(float(np.median(pdist(x[rows], metric))) / overall, 3)
    return out


def measure(tables: dict[int, np.ndarray], vocab: tuple[str, ...], quick: bool = False) -> dict:
    """The figures of the module docstring from the word vectors by step (``quick``: the last map only)."""
    from backend.analysis.projection.core import tsne_continue, tsne_fit
    from backend.analysis.projection.compare import knn_agreement, neighbourhood_overlap
    from backend.analysis.projection.compute import RESTRUCTURE_BELOW

    steps = sorted(tables)[-1:] if quick else sorted(tables)
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
    out = {"steps": sorted(tables), "median_move": moves, "restructured": restructured, "words": len(words),
           "knn_final": round(knn_agreement(final, prev.coords, k=K, metric="cosine"), 3)}
    emb, on_map = group_spread(final, words, "cosine"), group_spread(prev.coords, words, "euclidean")
    out.update(spread_embedding=emb, spread_map=on_map,
               spread_embedding_mean=round(float(np.mean(list(emb.values()))), 3),
               spread_map_mean=round(float(np.mean(list(on_map.values()))), 3))
    for tag, groups in (("groups", GROUPS), ("groups_old", OLD_GROUPS)):
        emb, on_map = group_share(final, words, "cosine", groups), group_share(prev.coords, words, "euclidean", groups)
        out.update({f"{tag}_embedding": emb, f"{tag}_map": on_map,
                    f"{tag}_embedding_mean": round(float(np.mean(list(emb.values()))), 3),
                    f"{tag}_map_mean": round(float(np.mean(list(on_map.values()))), 3)})
    return out


def main(argv: list[str] | None = None) -> int:
    from backend.cli import parse_sets
    from backend.spec import RunSpec
    from backend.tasks import get_task
    from backend.tasks.prose import prose_corpus

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", action="append", default=[], help="spec override key=value (as deepscope train)")
    p.add_argument("--every", type=int, default=None, help="steps between snapshots (default: the probe's cadence)")
    p.add_argument("--quick", action="store_true", help="map the last snapshot only: structure, no moves")
    args = p.parse_args(argv)
    spec = RunSpec.for_task("prose-word2vec", **parse_sets(args.set))
    tables, val_loss, seconds = snapshots(spec, args.every)
    t0 = time.perf_counter()
    result = measure(tables, prose_corpus(get_task(spec.task).vocab_size).vocab, quick=args.quick)
    result.update(spec={k: v for k, v in spec.model_dump().items() if k in ("lr", "steps", "batch_size")},
                  embedding_dim=spec.model.embedding_dim, val_loss=round(val_loss, 4), train_s=round(seconds, 1),
                  maps_s=round(time.perf_counter() - t0, 1))
    print(f"moves between maps (median, map widths): {result['median_move']}; restructured: {result['restructured']}")
    print(f"kNN agreement of the last map: {result['knn_final']}; groups together: embedding "
          f"{result['groups_embedding']}, map {result['groups_map']}; spread on the map {result['spread_map']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
