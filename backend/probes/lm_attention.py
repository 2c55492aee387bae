"""The transformer attention probe: every layer and head of a transformer language model over the start of
its task's probe text, every K steps.

At each snapshot (the start, every K steps, the end; cadence and cost budget as every
:class:`~backend.probes.hooks.SnapshotProbe`) the model reads the first :data:`PROBE_TOKENS` tokens of the
task's held-out probe text (cut to its context) and the record (:mod:`backend.store.attention`) keeps one
item: the tokens as queries and keys and the ``(layers, heads, T, T)`` causal maps
(:func:`~backend.probes.transformer_attention.attention_record`; ``extra["entropy"]``: mean row entropy in
nats per layer and head). A model without attention maps (any other family) turns the probe off.

Example::

    probe = TransformerAttentionProbe(store, run_id, get_task("code-lstm"))
    Trainer(spec, data, hooks=[probe]).run()
    AttentionSnapshot(store, store.list_snapshots(run_id, "attention")[-1]).weights(0, "l0", "h1")  # (64, 64)
"""
from __future__ import annotations

import numpy as np

from ..store.attention import KIND, write_attention_snapshot
from ..tasks.probe import probe_corpus
from ..tasks.registry import TaskInfo
from .hooks import SnapshotProbe
from .transformer_attention import attention_record

PROBE_TOKENS = 64  # a 64 x 64 map per head stays readable with one label per token


class TransformerAttentionProbe(SnapshotProbe):
    """Records a transformer LM's attention maps over the start of the probe text (module docstring)."""

    kind = KIND
    weight = 1.0

    def __init__(self, store, run_id: str, info: TaskInfo, n_tokens: int = PROBE_TOKENS, **kwargs):
        super().__init__(store, run_id, **kwargs)
        self.info, self.n_tokens = info, int(n_tokens)
        self._ids: np.ndarray | None = None
        self._vocab: tuple[str, ...] = ()
        self._meta: dict = {}

    def setup(self, trainer) -> bool:
        model = trainer.model
        if getattr(model, "attention_maps", None) is None:
            return False  # not a transformer: no attention to record
        n = max(1, min(self.n_tokens, int(getattr(model, "context", self.n_tokens))))
        corpus = probe_corpus(self.info, n_tokens=n)  # ValueError (no probe text): the probe is off
        self._ids, self._vocab = np.asarray(corpus.ids[:n], dtype=np.int64), corpus.vocab
        # layers and heads keep the writer's names: l0, l1, ... and h0, h1, ...
        self._meta = {"source": f"the first {n} tokens of the probe text ({corpus.source})", "task": self.info.name}
        return True

    def take(self, trainer):
        rec = attention_record(trainer.model, self._ids, self._vocab, name="probe text")
        return [rec], dict(self._meta)

    def write(self, step: int, items, meta) -> None:
        write_attention_snapshot(self.store, self.run_id, step, items, meta)
