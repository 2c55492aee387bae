"""Text samples get better as a code-lstm model trains (backend/probes/samples.py).

The measure: the mean log-probability per character of each sample under a character-bigram
model fitted on the training text (add-one smoothing). A random model writes characters that
rarely follow each other in Python (about -6.8 nats per character); a model that learnt some
Python writes pairs that do (held-out Python text itself scores about -2.6).

    .venv/bin/python -m pytest -q -s tests/integration/test_samples_improve.py   # -s prints the figures
"""
from __future__ import annotations

import numpy as np
import pytest

from backend.probes.samples import SamplesProbe
from backend.spec import RunSpec, spec_info
from backend.store.samples import samples_history
from backend.tasks.data import load_task_data
from backend.tasks.text import encode_chars
from backend.training.trainer import Trainer

pytestmark = pytest.mark.slow
STEPS, EVERY = 400, 100  # ~20 s on one busy core with code-lstm's default model (LSTM, 128 units)


def bigram_logprob(train_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """``log P(next | previous)`` for every pair of ids, add-one smoothed."""
    counts = np.ones((vocab_size, vocab_size))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def mean_logprob(logp: np.ndarray, prompt: str, text: str) -> float:
    ids = encode_chars(prompt[-1:] + text)  # the first pair joins the prompt to the continuation
    return float(logp[ids[:-1], ids[1:]].mean())


@pytest.mark.timeout(300)
def test_samples_of_a_code_model_become_more_like_python(store):
    import torch

    torch.set_num_threads(1)
    spec = RunSpec.for_task("code-lstm", steps=STEPS, eval_every=10 ** 6, log_every=50)
    data = load_task_data(spec_info(spec))
    run_id = store.create_run("code", spec.task, spec.model_dump())
    probe = SamplesProbe(store, run_id, every=EVERY, adaptive=False)
    trainer = Trainer(spec, data, hooks=[probe], device="cpu")
    trainer.run()
    probe.flush()
    trainer.close()

    logp = bigram_logprob(data.train_ids.numpy(), spec_info(spec).vocab_size)
    val = data.val_ids.numpy()[:20_000]
    reference = float(logp[val[:-1], val[1:]].mean())
    history = samples_history(store, run_id)
    assert [r.step for r in history] == list(range(0, STEPS + 1, EVERY))
    temps = history[0].temperatures
    table = {r.step: [mean_logprob(logp, r.prompt, r.text(t)) for t in temps] for r in history}
    print(f"\nprompt {history[0].prompt!r}; held-out text scores {reference:.2f} nats/char")
    print("step  probe_ms  " + "  ".join(f"T={t:g}" for t in temps))
    for r in history:
        print(f"{r.step:4d}  {r.meta['probe_ms']:8.0f}  " + "  ".join(f"{v:5.2f}" for v in table[r.step]))
    print("step 0, T=0.5:", repr(history[0].text(0.5)[:70]))
    print(f"step {STEPS}, T=0.5:", repr(history[-1].text(0.5)[:70]))

    first, last = table[0], table[STEPS]
    for i, t in enumerate(temps):
        if t <= 1.0:  # greedy, 0.5 and 1: clearly more Python-like at the end
            assert last[i] > first[i] + 2.0, (t, first[i], last[i])
        assert last[i] > first[i], (t, first[i], last[i])
    # sampling the model's own distribution (T=1) gives text that scores close to held-out Python
    assert last[temps.index(1.0)] > reference - 1.0
    assert np.mean(table[EVERY]) > np.mean(first)  # already better after the first snapshot interval
