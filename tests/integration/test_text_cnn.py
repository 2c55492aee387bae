"""sentiment-cnn (Kim 2014 text CNN): it learns the composed sentiment, and its filters' top n-grams
are recorded with every kernel snapshot and are what the filters really respond to most."""
from __future__ import annotations

import numpy as np
import torch

from backend.spec import RunSpec
from backend.store.kernels import KIND, KernelSnapshot
from backend.tasks.sentiment.core import sentiment_tracks, tokenize
from backend.training.worker import run_training


def polarity_purity(snap: KernelSnapshot, layer: str) -> float:
    """Mean over filters of how much its top n-grams agree in sentiment (rule-based, in context of
    the n-gram alone): 1 = all positive or all negative, 0 = mixed or neutral."""
    scores = []
    for grams in snap.top_ngrams(layer):
        signs = [np.sign(sum(sentiment_tracks(tokenize(text))["sentiment"])) for text, _ in grams]
        scores.append(abs(float(np.mean(signs))) if signs else 0.0)
    return float(np.mean(scores))


def test_default_run_learns_and_records_top_ngrams(store):
    spec = RunSpec.for_task("sentiment-cnn")
    run_id = store.create_run("kim", spec.task, spec.model_dump())
    assert run_training(store, run_id, device="cpu") == "completed"
    series, _ = store.scalar_series(run_id, ["val/acc"])
    acc = float(series["val/acc"]["value"][-1])
    assert acc > 0.85, acc  # a bag of words gets ~57 % on this corpus (tests/unit/test_sentiment.py)

    snaps = [KernelSnapshot(store, row) for row in store.list_snapshots(run_id, KIND)]
    first, last = snaps[0], snaps[-1]
    assert len(snaps) == 16  # probe_every 100 by default
    assert last.conv_layers == last.ngram_layers == ["convs.0", "convs.1", "convs.2"]
    assert last.weights("convs.1").shape == (32, 32, 3)  # (filters, embedding, width): 1-D kernels
    assert last.map_layers == [] and last.inputs() is None
    grams = last.top_ngrams("convs.2")
    assert len(grams) == 32 and all(len(g) == 8 for g in grams)
    assert all(len(text.split()) <= 4 and value >= grams[f][-1][1] for f, g in enumerate(grams) for text, value in g)
    # trained filters detect one polarity each; at initialisation their best windows are mixed
    purity0, purity1 = polarity_purity(first, "convs.2"), polarity_purity(last, "convs.2")
    assert purity1 > 0.6 and purity1 > purity0 + 0.2, (purity0, purity1)


def test_top_ngrams_are_the_maximal_windows(store):
    from backend.models import build_model
    from backend.probes.kernels import top_ngrams

    spec = RunSpec.for_task("sentiment-cnn", model={"channels": [4], "kernel_sizes": [1, 3]})
    torch.manual_seed(0)
    model = build_model(spec).eval()
    tokens = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 5, 6, 0, 0, 0], [10, 0, 0, 0, 0, 0]])
    grams = top_ngrams(model, tokens, n=3)
    conv = model.convs[1]
    with torch.no_grad():
        out = conv(model.embedding(tokens).transpose(1, 2))  # (3, 4, 4)
    where, value = grams["convs.1"]
    valid = [(t, p) for t in range(3) for p in range(4) if p + 3 <= int((tokens[t] != 0).sum()) or p == 0]
    for f in range(4):
        best = sorted(((float(out[t, f, p]), t, p) for t, p in valid), reverse=True)
        t, p = where[f, 0]
        assert value[f, 0] == np.float32(best[0][0]) and (t, p) == best[0][1:]
        assert np.isclose(value[f, 0], float(out[t, f, p]), atol=1e-6)
    # width 1: each distinct token once; the padding (id 0) never wins
    w1, _ = grams["convs.0"]
    assert all(tokens[t, p] != 0 for f in range(4) for t, p in w1[f] if t >= 0)
