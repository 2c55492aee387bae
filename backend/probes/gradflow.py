"""Gradient flow through time: how much a loss at the last step reaches each earlier hidden state.

For a recurrent model (``embedding`` -> fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` ``rnn`` -> ``head``)
the fused module hides its intermediate states from autograd, so this unrolls the recurrence
step by step from the module's own weights (the same equations as ``replay.py``, with gradients),
puts the loss at the last step only (the next token of a language model, the label of a
classifier) and returns the mean over the batch of ``||dL / dh_t||`` for every step ``t`` of the
top layer's forward direction. Plotted against the distance ``T - 1 - t``, it is the lecture's
picture of backpropagation through time: a plain tanh RNN's gradient vanishes within a few steps,
an LSTM's cell state carries it much further.

The same unrolled forward pass gives the hidden-state norm ``||h_t||`` at every step: bounded by
``sqrt(hidden_size)`` for tanh, free to grow step after step for a ReLU RNN (the Lab's activations
preset).

Example::

    norms = gradient_through_time(model, ids)       # (T,) float64, norms[-1] is distance 0
    ratio = decay_ratio(norms, 1, 20)              # ||dL/dh|| at distance 1 over distance 20
    rec = through_time(model, ids)                 # {"norms", "hidden_norms", "hidden_max"}: (T,) each

:class:`GradientFlowProbe` records these norms for a fixed batch of probe sequences at the probe
cadence, with the hidden-state norms (snapshots of kind ``gradflow``, read with
:mod:`backend.lab.records`); every recurrent language-model run has it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..lab.records import KIND as GRADFLOW_KIND
from ..models.generate import require_forward_lm
from .hooks import PROBE_BUDGET, SnapshotProbe
from .replay import family_of

GRADFLOW_SEQUENCES = 16  # validation windows of a language-model task: 22 ms a snapshot on code-lstm's default
RECALL_EPISODES = 64     # recall-lstm: whole held-out episodes (23 tokens each)
GRADFLOW_LEN = 64        # their length in tokens: distances 0..63


def _cell(family: str, rnn: nn.RNNBase, layer: int):
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    b_ih = getattr(rnn, f"bias_ih_l{layer}", None)
    b_hh = getattr(rnn, f"bias_hh_l{layer}", None)
    b_ih = b_ih if b_ih is not None else torch.zeros(w_ih.shape[0], device=w_ih.device)
    b_hh = b_hh if b_hh is not None else torch.zeros(w_hh.shape[0], device=w_hh.device)
    act = torch.relu if getattr(rnn, "nonlinearity", "tanh") == "relu" else torch.tanh

    def step(x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
        gi, gh = F.linear(x_t, w_ih, b_ih), F.linear(h, w_hh, b_hh)
        if family == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if family == "gru":
            ir, iz, in_ = gi.chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(in_ + r * hn)
            return (1 - z) * n + z * h, None
        return act(gi + gh), None
    return step


def through_time(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                 wrt: str = "h") -> dict[str, np.ndarray]:
    """The forward and backward pass of the unrolled top layer, step by step (each ``(T,)`` float64):

    - ``norms``: mean over the batch of ``||dL/dh_t||`` (``wrt="input"``: of ``||dL/dx_t||``, the
      embedded inputs) for a loss at the last step;
    - ``hidden_norms`` and ``hidden_max``: mean and largest ``||h_t||`` over the batch, the forward
      pass's hidden-state norm (a tanh layer's is at most ``sqrt(hidden_size)``, a ReLU layer's is
      unbounded).

    ``tokens`` ``(batch, time)``: token ids. ``targets``: the class of each sequence (classifiers)
    or, for a language model, the token after the last one; None takes ``tokens[:, -1]`` (the last
    input predicts nothing known, so pass ``tokens[:, :-1]`` and ``tokens[:, -1]`` for real text).
    The model is left unchanged. A diverged model gives inf/NaN entries, not an error.
    """
    rnn, embedding, head = model.rnn, model.embedding, model.head
    family = family_of(rnn)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = embedding(tokens).detach().requires_grad_(wrt == "input")
            hs: list[torch.Tensor] = []
            layer_in = [x[:, t] for t in range(x.shape[1])]
            for layer in range(rnn.num_layers):
                step = _cell(family, rnn, layer)
                h = x.new_zeros(len(tokens), rnn.hidden_size)
                c = x.new_zeros(len(tokens), rnn.hidden_size) if family == "lstm" else None
                outs = []
                for x_t in layer_in:
                    h, c = step(x_t, h, c)
                    outs.append(h)
                layer_in = outs
            hs = layer_in
            logits = head(hs[-1])
            if targets is None:
                targets = tokens[:, -1]
            loss = F.cross_entropy(logits.float(), targets)
            if wrt == "input":
                (grad,) = torch.autograd.grad(loss, x)
                norms = grad.norm(dim=2).mean(dim=0)
            else:
                grads = torch.autograd.grad(loss, hs)
                norms = torch.stack([g.norm(dim=1).mean() for g in grads])
            with torch.no_grad():
                h_norms = torch.stack([h.detach().float().norm(dim=1) for h in hs])  # (T, batch)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    as_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    return {"norms": as_np(norms), "hidden_norms": as_np(h_norms.mean(dim=1)),
            "hidden_max": as_np(h_norms.max(dim=1).values)}


def gradient_through_time(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                          wrt: str = "h") -> np.ndarray:
    """Mean ``||dL/dh_t||`` of the top layer at every step for a loss at the last step
    (the ``norms`` of :func:`through_time`, which see)."""
    return through_time(model, tokens, targets, wrt)["norms"]


def decay_ratio(norms: np.ndarray, near: int = 1, far: int = 20) -> float:
    """``||dL/dh||`` at distance ``near`` from the loss over that at distance ``far`` (steps back)."""
    t = len(norms) - 1
    if far > t:
        raise ValueError(f"distance {far} needs at least {far + 1} steps; the sequence has {len(norms)}")
    return float(norms[t - near] / max(norms[t - far], 1e-30))


def probe_sequences(info, val_ids: torch.Tensor | None, n: int = GRADFLOW_SEQUENCES,
                    length: int = GRADFLOW_LEN) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(tokens (n, T), targets (n,), source)``: the fixed batch the gradient-flow probe differentiates.

    ``recall-lstm``: whole episodes from the key to the marker ``?`` and the key to recall, so the
    loss at the last step depends on the first token only (``T = gap + 2``). Other language
    models: ``n`` evenly spaced windows of ``length + 1`` validation tokens; the last token is the
    target of the loss at step ``length - 1``.
    """
    if info.kind != "lm":
        raise ValueError(f"{info.name} is not a language-model task; gradient flow is recorded for those")
    if info.name == "recall-lstm":
        from ..tasks.recall import RECALL_GAP, recall_probe_batch

        tokens, targets = recall_probe_batch(RECALL_EPISODES)
        return (torch.from_numpy(tokens), torch.from_numpy(targets),
                f"{RECALL_EPISODES} held-out recall episodes: key, {RECALL_GAP} fillers, '?'; loss on the key to recall")
    if val_ids is None or len(val_ids) < length + 2:
        raise ValueError("the task's validation text is too short for gradient-flow probe sequences")
    ids = val_ids.detach().cpu()
    starts = torch.linspace(0, len(ids) - length - 2, n).long()
    window = ids[starts[:, None] + torch.arange(length + 1)]
    return window[:, :-1], window[:, -1], f"{n} validation windows of {length} tokens; loss on the next token"


class GradientFlowProbe(SnapshotProbe):
    """Records ``||dL/dh_t||`` against distance and the forward pass's hidden-state norms
    (:func:`through_time`, ``wrt="h"``) for a fixed batch of probe sequences at the start, every
    ``every`` steps and at the end: snapshots of kind ``gradflow`` with the arrays ``norms``,
    ``hidden_norms`` and ``hidden_max`` (each (T,)) and ``meta`` family, layers, hidden_size,
    activation (plain RNN), source, n_sequences.

    Recurrent language models (``embedding`` -> ``rnn`` -> ``head``) only; a bidirectional one is
    skipped (its head reads both directions, the unrolled replay follows the forward one).
    """

    kind = GRADFLOW_KIND

    def __init__(self, store, run_id: str, every: int | None = None, budget: float = PROBE_BUDGET,
                 adaptive: bool = True):
        super().__init__(store, run_id, every, budget, adaptive)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._meta: dict = {}

    def setup(self, trainer) -> bool:
        rnn = require_forward_lm(trainer.model, "gradient flow")
        tokens, targets, source = probe_sequences(trainer.info, trainer.data.val_ids)
        self._batch = tokens.to(trainer.device), targets.to(trainer.device)
        family = family_of(rnn)
        self._meta = {"family": family, "layers": rnn.num_layers, "hidden_size": rnn.hidden_size,
                      "source": source, "n_sequences": int(len(tokens))}
        if family == "rnn":
            self._meta["activation"] = getattr(rnn, "nonlinearity", "tanh")
        return True

    def take(self, trainer):
        tokens, targets = self._batch
        return through_time(trainer.model, tokens, targets, wrt="h"), dict(self._meta)

    def write(self, step: int, arrays, meta) -> None:
        self.store.add_snapshot(self.run_id, self.kind, step,
                                {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, meta)
