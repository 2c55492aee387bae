"""Text samples written during training: the model continues one fixed prompt at every probe step.

:class:`SamplesProbe` (a :class:`~backend.probes.hooks.SnapshotProbe`) calls
:func:`backend.models.generate.generate` at the start, every K steps and at the end of a
unidirectional recurrent language-model run: :data:`SAMPLE_LEN` characters at each of
:data:`TEMPERATURES` (0 = greedy), always from the same prompt and with the same seed, so the
samples of two steps differ only by what the model learnt in between. They are stored as
snapshots of kind ``samples`` (:mod:`backend.store.samples`; ids as arrays, the text in meta) and
shown on the Training page beside the curves.

The prompt (:func:`sample_prompt`) comes from the task's validation text, which training never
sees: :data:`PROMPT_LEN` characters from the start of a line (for ``code-lstm`` the first line that
starts with ``def ``, so the model goes on with a function), or for ``recall-lstm`` one episode up
to its ``?`` (the next character should be the key it began with).

Cost: the four temperatures are sampled as one batch (:func:`~backend.models.generate.generate_many`),
200 single-token steps, mostly per-token overhead: for code-lstm's default model (LSTM, 128 units) about
a quarter of the 170 ms that four separate calls took. Its part of the run's shared probe budget
(:func:`~backend.probes.hooks.share_budget`) is 0.27% of training time, beside 0.82% for the hidden-state
probe, 0.27% for gradient flow and 0.14% for the character embeddings, so that all hooks together stay
within 3% (``bench/overhead.py``); the adaptive cadence spaces snapshots out where they would cost more.

Example::

    probe = SamplesProbe(store, run_id)        # attached by default_hooks to recurrent LM runs
    Trainer(spec, data, hooks=[probe]).run()
    samples_history(store, run_id)[-1].text(0.5)
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.generate import generate_many, require_forward_lm
from ..store.samples import KIND, write_samples_snapshot
from ..tasks.registry import VOCABS
from .hooks import PROBE_BUDGET, SnapshotProbe

TEMPERATURES = (0.0, 0.5, 1.0, 1.5)
SAMPLE_LEN = 200   # characters generated per temperature
SAMPLE_SEED = 0    # the same random numbers at every step: changes come from the model alone
PROMPT_LEN = 32    # characters of the generic start-of-line prompt


def sample_prompt(task: str, val_ids: np.ndarray, vocab: tuple[str, ...], length: int = PROMPT_LEN
                  ) -> tuple[np.ndarray, str]:
    """``(prompt ids, where it comes from)``: the fixed prompt of a task from its validation ids."""
    ids = np.asarray(val_ids, dtype=np.int64)
    text = "".join(vocab[i] for i in ids[:200_000])  # the prompt is found near the start
    if task == "recall-lstm":
        start = 0 if text[:1].isupper() else text.index("\n") + 1
        end = text.index("?", start) + 1
        return ids[start:end], "a held-out episode up to its '?' (the key it began with should come next)"
    first = text.find("\ndef ") + 1 if task == "code-lstm" else 0  # code: from a function's first line
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for s in (s for s in starts if s >= first):
        window = ids[s:s + length]
        if len(window) == length and (window > 0).all() and text[s] not in " \n":
            where = "Python, from the first line starting with 'def'" if task == "code-lstm" else \
                "text, from the start of a line"
            return window, f"{length} characters of held-out {where}"
    raise ValueError(f"no prompt of {length} known characters in the validation text of {task}")


class SamplesProbe(SnapshotProbe):
    """Generates :data:`SAMPLE_LEN` tokens at each of ``temperatures`` from a fixed prompt at every probe
    step (seed ``seed``) and stores them as ``samples`` snapshots.

    Unidirectional recurrent language models (``embedding`` -> ``rnn`` -> ``head``) of a task with a
    known vocabulary (``VOCABS``) only; for others :meth:`setup` raises ValueError and the probe is off.
    """

    kind = KIND

    def __init__(self, store, run_id: str, every: int | None = None, budget: float = PROBE_BUDGET,
                 adaptive: bool = True, temperatures: tuple[float, ...] = TEMPERATURES,
                 length: int = SAMPLE_LEN, seed: int = SAMPLE_SEED):
        super().__init__(store, run_id, every, budget, adaptive)
        if not temperatures or min(temperatures) < 0:
            raise ValueError(f"temperatures must be a non-empty list of numbers >= 0, got {temperatures}")
        self.temperatures = tuple(float(t) for t in temperatures)
        self.length, self.seed = int(length), int(seed)
        self._prompt: list[int] = []
        self._vocab: tuple[str, ...] = ()
        self._source = ""

    def setup(self, trainer) -> bool:
        require_forward_lm(trainer.model, "text samples")
        task = trainer.spec.task
        if task not in VOCABS or trainer.data.val_ids is None:
            raise ValueError(f"task {task!r} has no character vocabulary and validation text to prompt from")
        self._vocab = VOCABS[task]
        prompt, self._source = sample_prompt(task, trainer.data.val_ids.detach().cpu().numpy(), self._vocab)
        self._prompt = [int(i) for i in prompt]
        return True

    def take(self, trainer):
        if not all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters()):
            return None, {}  # training diverged (the metrics hook stops the run and says so): nothing to write
        rows = generate_many(trainer.model, self._prompt, self.length, self.temperatures, seed=self.seed)
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self.length), {
            "seed": self.seed, "source": self._source}

    def write(self, step: int, samples, meta) -> None:
        if samples is None:
            return
        write_samples_snapshot(self.store, self.run_id, step, self._prompt, samples, self.temperatures,
                               self._vocab, meta)
