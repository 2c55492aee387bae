"""``Run.watch``: the built-in probes, pointed at a user's own model.

The probes (:class:`~backend.probes.hooks.HiddenStateProbe`, :class:`~backend.probes.kernels.KernelProbe`,
:class:`~backend.probes.projections.EmbeddingProbe`) are the very classes built-in runs use. They read a
trainer: ``model``, ``data``, ``info``, ``device``, ``step``, ``total_steps``, ``spec.task``.
:class:`ProbeTrainer` is that trainer for a loop deepscope does not own, and :class:`ModelView`
shows the probes only the layers the user chose (``layers=``), found by type.

Example::

    probes, trainer, summary = build_probes(store, run_id, model, probe=ids, vocab=chars)
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..probes.hooks import SnapshotProbe, default_every, share_budget
from ..probes.kernels import CONV, N_PROBE_INPUTS
from ..probes.replay import family_of
from ..tasks.data import TaskData
from ..tasks.probe import ProbeCorpus
from ..tasks.registry import TaskInfo

log = logging.getLogger(__name__)
RECURRENT_TYPES = (nn.LSTM, nn.GRU, nn.RNN)
DEFAULT_EVERY = 100  # snapshot cadence when the run's length is unknown (then adapted to a 2% budget)


class ModelView:
    """The user's model as the probes see it: every module, except the recurrent, conv and embedding
    layers that were not chosen; calling it runs the whole model. ``rnn`` and ``embedding`` name the
    recurrent layer the hidden-state probe replays and the token embedding that feeds it."""

    def __init__(self, model: nn.Module, hidden: set[int], rnn: nn.RNNBase | None = None,
                 embedding: nn.Embedding | None = None):
        self.model, self._hidden = model, hidden
        self.rnn, self.embedding = rnn, embedding

    def named_modules(self, *args, **kwargs) -> Iterator[tuple[str, nn.Module]]:
        return ((n, m) for n, m in self.model.named_modules(*args, **kwargs) if id(m) not in self._hidden)

    def modules(self) -> Iterator[nn.Module]:
        return (m for _, m in self.named_modules())

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self) -> "ModelView":
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> "ModelView":
        self.model.train(mode)
        return self


@dataclass
class ProbeTrainer:
    """What the probes read from a trainer, for a training loop that is the user's own."""

    model: ModelView
    data: TaskData
    device: torch.device
    task: str
    total_steps: int | None = None
    step: int = 0
    spec: Any = field(init=False)

    def __post_init__(self):
        self.info = self.data.info
        self.spec = SimpleNamespace(task=self.task)


def select_layers(model: nn.Module, layers: str | Sequence[str] | None) -> tuple[dict[str, nn.Module], list[str]]:
    """Recurrent, conv and embedding layers of ``model`` (by type), keeping those named in ``layers``
    (exact names or parent names: ``"features"`` keeps ``features.0`` and ``features.3``).
    Returns the kept layers and the names in ``layers`` that matched nothing."""
    found = {n: m for n, m in model.named_modules() if isinstance(m, RECURRENT_TYPES + CONV + (nn.Embedding,))}
    if layers is None:
        return found, []
    wanted = [layers] if isinstance(layers, str) else list(layers)
    hit = {w: [n for n in found if n == w or n.startswith(w + ".")] for w in wanted}
    kept = {n: m for n, m in found.items() if any(n in names for names in hit.values())}
    return kept, [w for w, names in hit.items() if not names]


ATTENTION_TYPES = (nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer, nn.MultiheadAttention)


def readable_recurrent(layers: dict[str, nn.Module], warn=log.warning) -> list[nn.RNNBase]:
    """The recurrent layers among ``layers`` whose states the replay can compute; each other one is named in
    a warning (e.g. an ``nn.LSTM`` with ``proj_size``) and left out, so the rest is still recorded."""
    out = []
    for name, m in layers.items():
        if not isinstance(m, RECURRENT_TYPES):
            continue
        try:
            family_of(m)
        except ValueError as exc:
            warn(f"{name} ({type(m).__name__}): {exc}; its hidden states are not recorded")
            continue
        out.append(m)
    return out


def as_probe_tensor(probe: Any, vocab: Sequence[str] | None) -> torch.Tensor | None:
    """``probe`` as a tensor: token ids, inputs, or a string encoded character by character with ``vocab``."""
    if probe is None:
        return None
    if isinstance(probe, str):
        if vocab is None:
            raise ValueError("a probe text needs vocab= (the token string of each id) to be encoded")
        index = {s: i for i, s in enumerate(vocab)}
        unknown = sorted({c for c in probe if c not in index})
        if unknown:
            raise ValueError(f"the probe text has characters that are not in vocab: {''.join(unknown[:20])!r}")
        return torch.tensor([index[c] for c in probe], dtype=torch.long)
    return torch.as_tensor(np.asarray(probe) if not isinstance(probe, torch.Tensor) else probe).detach()


def probe_kind(probe: torch.Tensor | None) -> str:
    """``lm`` (a 1-D token stream), ``text`` (token-id rows) or ``image`` (any float inputs)."""
    if probe is None or probe.is_floating_point():
        return "image"
    return "lm" if probe.dim() == 1 else "text"


def feeding_embedding(model: nn.Module, rnn: nn.RNNBase) -> nn.Embedding | None:
    """The token embedding that feeds ``rnn``: the model's first ``nn.Embedding`` of its input width."""
    return next((m for m in model.modules() if isinstance(m, nn.Embedding) and m.embedding_dim == rnn.input_size),
                None)


def model_summary(model: nn.Module, rnn: nn.RNNBase | None, emb: nn.Embedding | None, convs: dict[str, nn.Module],
                  kind: str) -> dict:
    """The ``model`` part of the run's spec: the family the dashboard's pages sort runs by, and sizes."""
    params = sum(p.numel() for p in model.parameters())
    if rnn is not None:
        return {"family": family_of(rnn), "layers": rnn.num_layers, "hidden_size": rnn.hidden_size,
                "embedding_dim": emb.embedding_dim if emb is not None else None,
                "bidirectional": rnn.bidirectional, "params": params, "class": type(model).__name__}
    if convs:
        return {"family": "textcnn" if kind == "text" and all(isinstance(m, nn.Conv1d) for m in convs.values())
                else "cnn", "channels": [m.out_channels for m in convs.values()],
                "kernel_sizes": [m.kernel_size[0] for m in convs.values()], "params": params,
                "class": type(model).__name__}
    return {"family": "custom", "params": params, "class": type(model).__name__}


def build_probes(store, run_id: str, model: nn.Module, probe: Any = None, every: int | None = None,
                 layers: str | Sequence[str] | None = None, vocab: Sequence[str] | None = None,
                 labels: Any = None, task: str = "custom", total_steps: int | None = None,
                 warn=log.warning) -> tuple[list[SnapshotProbe], ProbeTrainer, dict]:
    """The probes for ``model`` (not started), the trainer they read, and the spec's ``model`` summary.

    ``probe``: token ids of a probe text (1-D; a string with ``vocab``) for recurrent models, a few
    inputs for conv models (feature maps: the first 8), token-id rows for text classifiers.
    ``labels``: one class per probe input; adds the features the output layer reads (Projections).
    ``warn(message)`` is told what cannot be recorded and why.
    """
    from ..probes.hooks import HiddenStateProbe
    from ..probes.kernels import KernelProbe
    from ..probes.projections import EmbeddingProbe

    chosen, unmatched = select_layers(model, layers)
    if unmatched:
        names = [n for n, _ in select_layers(model, None)[0].items()]
        warn(f"layers {unmatched} match no recurrent, conv or embedding layer of {type(model).__name__} "
             f"(it has: {', '.join(names) or 'none'})")
    ids = as_probe_tensor(probe, vocab)
    kind = probe_kind(ids)
    rnns = readable_recurrent(chosen, warn)
    convs = {n: m for n, m in chosen.items() if isinstance(m, CONV)}
    embeddings = [m for m in chosen.values() if isinstance(m, nn.Embedding)]
    rnn = rnns[0] if rnns else None
    emb = feeding_embedding(model, rnn) if rnn is not None else None
    # the probes see the chosen conv and embedding layers and the one recurrent layer recorded, nothing else
    shown = {id(m) for m in chosen.values() if not isinstance(m, RECURRENT_TYPES)} | {id(rnn)}
    hidden = {id(m) for m in select_layers(model, None)[0].values() if id(m) not in shown}
    view = ModelView(model, hidden, rnn, emb)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    y = None if labels is None else torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor)
                                                     else labels).long().reshape(-1)
    if y is not None and (ids is None or len(y) != len(ids)):
        warn(f"labels has {len(y)} entries but probe has {0 if ids is None else len(ids)} inputs: one label per "
             "probe input; the classifier features are not recorded")
        y = None
    info = TaskInfo(name=task, kind=kind, description="a model from the user's own script", families=(),
                    n_classes=int(y.max()) + 1 if y is not None and len(y) else 0,
                    vocab_size=len(vocab) if vocab is not None else 0)
    data = TaskData(info=info, vocab=tuple(vocab) if vocab is not None else None,
                    x_val=ids if y is not None else None, y_val=y,
                    probe_x=None if ids is None or kind == "lm" else (ids if kind == "text" else ids[:N_PROBE_INPUTS]))
    trainer = ProbeTrainer(view, data.to(device), device, task, total_steps)
    start = every or (default_every(total_steps) if total_steps else DEFAULT_EVERY)
    kw = {"every": start, "adaptive": every is None}  # an explicit cadence is kept, as for built-in runs
    probes: list[SnapshotProbe] = []
    if len(rnns) > 1:  # e.g. an encoder and a decoder: the decoder's inputs are not token ids of the probe text
        names = [n for n, m in chosen.items() if any(m is r for r in rnns)]
        warn(f"{len(rnns)} recurrent layers chosen ({', '.join(names)}); hidden states are recorded for the first "
             f"only, {names[0]}, reading the probe text through its embedding (choose another with layers=)")
    if ids is not None and kind == "lm" and not any(isinstance(m, RECURRENT_TYPES) for m in model.modules()):
        others = sorted({type(m).__name__ for m in model.modules() if isinstance(m, ATTENTION_TYPES)})
        warn(f"{type(model).__name__} has no recurrent layer (nn.LSTM, nn.GRU or nn.RNN) to replay the probe text "
             "through: no hidden states are recorded" + (f" (its {', '.join(others)} has none: attention is probed "
                                                         "for built-in transformer runs only)" if others else ""))
    if rnn is not None:
        if ids is None or kind != "lm":
            warn("hidden states need probe= a 1-D tensor of token ids (or a string and vocab=): a probe text")
        elif emb is None:
            warn(f"no nn.Embedding of width {rnn.input_size} feeds the {type(rnn).__name__}: the hidden-state "
                 "probe replays token ids through the model's own embedding")
        else:
            words = tuple(vocab) if vocab is not None else tuple(str(i) for i in range(emb.num_embeddings))
            corpus = ProbeCorpus(ids=ids.cpu().numpy().astype(np.int64), vocab=words, tracks={},
                                 source=f"the probe text given to watch() ({len(ids):,} tokens)")
            probes.append(HiddenStateProbe(store, run_id, corpus, **kw))
    if convs:
        probes.append(KernelProbe(store, run_id, **kw))
    tokens = bool(embeddings) and vocab is not None and len(vocab) == embeddings[0].num_embeddings
    if embeddings and vocab is not None and not tokens:
        warn(f"vocab has {len(vocab)} entries, the embedding {embeddings[0].num_embeddings}: the token "
             "embedding is not recorded")
    if tokens or (y is not None and kind in ("image", "text")):
        probes.append(EmbeddingProbe(store, run_id, family=family_of(rnn) if rnn is not None else None, **kw))
    saver, try_facts = model_file_probe(store, run_id, model, probe, ids, vocab, warn, **kw) if kind == "lm" \
        else (None, None)
    probes += [saver] if saver is not None else []
    share_budget(probes)  # one cost budget for all of them, as for built-in runs
    if not probes:
        warn(f"nothing to record in {type(model).__name__}: no recurrent layer with a probe text, no conv "
             "layer, no token embedding with vocab= and no labels=")
    summary = model_summary(model, rnn, emb, convs, kind)
    return probes, trainer, summary | ({"try": try_facts} if try_facts else {})


def model_file_probe(store, run_id: str, model: nn.Module, probe: Any, ids: torch.Tensor, vocab, warn,
                     **kw) -> tuple[SnapshotProbe | None, dict]:
    """The probe that saves a language model for Try it (:mod:`backend.client.model_export`) and the facts
    for the run's spec (``spec["model"]["try"]``: ``ok``, or ``why`` not). A model that cannot be exported
    is warned about; a vocab that is not characters, or a model that is not a language model (a tagger, a
    classifier: no next-token logits), is only noted (Try it runs character language models)."""
    if vocab is None:
        return None, {"ok": False, "why": "run.watch got no vocab=, so typed text cannot be turned into token ids"}
    if any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(vocab):
        return None, {"ok": False, "why": "Try it encodes typed text character by character, and vocab= is not a "
                                          "list of distinct single characters"}
    from .model_export import ModelFileProbe, NotALanguageModel, export_lm

    try:
        exported = export_lm(model, ids, vocab)
    except NotALanguageModel as exc:
        return None, {"ok": False, "why": str(exc)[:500]}
    except Exception as exc:  # noqa: BLE001 - the export must never stop training
        why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        warn(f"Try it will not be able to run this model: {why}. Training and the other probes go on")
        return None, {"ok": False, "why": why[:500]}
    text = probe if isinstance(probe, str) else "".join(vocab[int(i)] for i in ids[:200])
    facts = {"ok": True, "layout": exported.graph["layout"], "vocab_size": len(vocab),
             "export_s": round(exported.seconds, 3), "example": text[:200]}
    return ModelFileProbe(store, run_id, model, exported, **kw), facts


def crossed(step: int, last: int, every: int) -> bool:
    """Whether ``step`` passed a multiple of ``every`` since ``last`` (steps may skip multiples)."""
    return every > 0 and math.floor(step / every) > math.floor(last / every)
