"""Hidden states of an encoder-decoder: the encoder over its inputs, the decoder over what it writes.

Every K steps (the cadence and cost budget of every :class:`~backend.probes.hooks.SnapshotProbe`) the model
reads the task's fixed probe items (:func:`backend.tasks.seq_probe.seq_probe_set`: the Attention page's 8
inputs and 56 more) and decodes each greedily, as the attention probe does (it never sees the target). The
snapshot is an ordinary hidden-state record (:mod:`backend.store.hidden`) over the probe set's one token
stream, so the Hidden states page reads it as it reads a language model's:

- layers ``0 .. E-1`` are the encoder's layers (``meta.layer_names``: "encoder layer 0", ...), forward and,
  for a bidirectional encoder, backward, with a state at each input character (each input from a zero state,
  the backward direction from its last character: as the packed encoder reads it);
- layers ``E .. E+D-1`` are the decoder's (forward only), with a state at each output position: the state
  that wrote that character, from the decoder's first state (the bridge of the encoder's final state) and
  the inputs it was fed (the previous character and, with attention, the context);
- a layer has no state at the other part's positions (NaN; the page draws a gap, selections and matches
  never find a cell on there, correlations skip them).

``h``, ``c`` and every gate come from the unrolled replay (:func:`backend.probes.replay.replay`) with the
modules' own weights; ``tests/integration/test_seq2seq_states.py`` checks them against the fused modules.

Example::

    states, written = capture_seq2seq(model, seq_probe_set("dates-seq2seq"))
    states[(0, "bwd", "h")].shape        # (tokens, hidden): NaN outside the input characters
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..store.hidden import KIND, write_hidden_snapshot
from ..tasks.seq_probe import SeqProbeSet, seq_probe_set
from .hidden import describe
from .hooks import SnapshotProbe
from .replay import replay

StateKey = tuple[int, str, str]


@torch.no_grad()
def encoder_states(model: nn.Module, x: torch.Tensor) -> dict[tuple[int, str], dict[str, torch.Tensor]]:
    """The encoder's states over input ids ``x`` ``(items, max input)`` (0 padding on the right), time first:
    each row from a zero state, the backward direction from the row's last real character."""
    rnn = model.rnn
    lengths = (x != 0).sum(1).clamp_min(1)
    resets = {}
    if rnn.bidirectional:
        last = lengths - 1
        resets = {int(t): (last == t) for t in torch.unique(last).tolist() if t < x.shape[1] - 1}
    return replay(rnn, model.embedding(x), reset_at_bwd=resets)


@torch.no_grad()
def decoder_states(model: nn.Module, x: torch.Tensor, steps: int) -> tuple[dict, torch.Tensor]:
    """The decoder's states over ``steps`` greedy output steps, and the ids it wrote ``(items, steps)``.

    :meth:`Seq2Seq.greedy` runs as it always does; a pre-hook on the decoder keeps what each step fed it
    (its input, and its first state), and the replay runs the decoder's cell over those inputs from that state.
    """
    fed: list[torch.Tensor] = []
    first: list = []

    def keep(_module, args):
        fed.append(args[0].detach())
        if not first:
            first.append(args[1])

    handle = model.decoder.register_forward_pre_hook(keep)
    try:
        written, _ = model.greedy(x, steps=steps)
    finally:
        handle.remove()
    return replay(model.decoder, torch.cat(fed, dim=1), hx=first[0]), written


def capture_seq2seq(model: nn.Module, probe: SeqProbeSet,
                    device: torch.device | str = "cpu") -> tuple[dict[StateKey, np.ndarray], np.ndarray]:
    """Every state of the encoder's and the decoder's layers over ``probe``'s token stream, float16
    ``(tokens, hidden)`` with NaN where a layer has no state (module docstring), and the ids the decoder
    wrote ``(items, steps)``."""
    was_training = model.training
    model.eval()
    try:
        x = torch.as_tensor(probe.x, device=device)
        enc = encoder_states(model, x)
        dec, written = decoder_states(model, x, probe.y.shape[1])
    finally:
        model.train(was_training)
    n, hid = probe.n_tokens, model.rnn.hidden_size
    out: dict[StateKey, np.ndarray] = {}
    for parts, where, offset in ((enc, probe.enc_pos, 0), (dec, probe.dec_pos, model.rnn.num_layers)):
        pos = np.concatenate(where)  # stream positions, and the (step, item) each one's state is at
        step = torch.as_tensor(np.concatenate([np.arange(len(p)) for p in where]))
        item = torch.as_tensor(np.concatenate([np.full(len(p), i) for i, p in enumerate(where)]))
        for (layer, d), by_state in parts.items():
            for name, arr in by_state.items():  # (time, items, hidden)
                full = np.full((n, hid), np.nan, np.float16)
                full[pos] = arr.cpu()[step, item].to(torch.float16).numpy()
                out[(layer + offset, d, name)] = full
    return out, written.cpu().numpy()


def stream_of(probe: SeqProbeSet, written: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The snapshot's token ids (what the decoder wrote at the output positions) and its ``correct`` track."""
    ids = probe.ids.copy()
    correct = np.zeros(probe.n_tokens, np.float32)
    for i, pos in enumerate(probe.dec_pos):
        wrote = written[i, :len(pos)]
        ids[pos] = wrote
        correct[pos] = wrote == probe.ids[pos]
    return ids, correct


def describe_seq2seq(model: nn.Module) -> dict:
    """What a snapshot of ``model`` holds: the encoder's and the decoder's layers, named (the record's meta)."""
    enc, dec = describe(model.rnn), describe(model.decoder)
    enc.pop("continuous", None)  # each probe item from a zero state: no long text to carry a state across
    e, d = model.rnn.num_layers, model.decoder.num_layers
    return dict(enc, layers=e + d, parts={"encoder": list(range(e)), "decoder": list(range(e, e + d))},
                layer_names=[f"encoder layer {i}" for i in range(e)] + [f"decoder layer {i}" for i in range(d)],
                layer_directions=[enc["directions"]] * e + [dec["directions"]] * d)


class Seq2SeqStateProbe(SnapshotProbe):
    """Records the encoder's and the decoder's states over the task's probe items every ``every`` steps."""

    kind = KIND
    weight = 0.5  # beside the attention probe (1): these runs' first view is Attention, it keeps most snapshots

    def setup(self, trainer) -> bool:
        model = trainer.model
        if not all(isinstance(getattr(model, m, None), nn.RNNBase) for m in ("rnn", "decoder")):
            raise ValueError(f"{type(model).__name__} has no recurrent encoder and decoder")
        self.probe = seq_probe_set(trainer.info.name)
        self._meta = dict(describe_seq2seq(model), source=self.probe.source, segment=0, warmup=0)
        return True

    def take(self, trainer):
        states, written = capture_seq2seq(trainer.model, self.probe, trainer.device)
        return (states, written), self._meta

    def write(self, step: int, payload, meta) -> None:
        states, written = payload
        ids, correct = stream_of(self.probe, written)
        tracks = dict(self.probe.tracks, correct=correct)
        write_hidden_snapshot(self.store, self.run_id, step, states, ids, self.probe.vocab, tracks, meta)
