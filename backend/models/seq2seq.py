"""Encoder-decoder with attention (sequence to sequence), and a per-token tagger.

:class:`Seq2Seq` reads input ids ``(batch, time)`` (0 = padding, on the right) with a recurrent encoder
(``nn.GRU``/``nn.LSTM``/``nn.RNN``, packed, optionally bidirectional), then writes the output one token at
a time with a recurrent decoder of ``layers`` layers that starts from a projection of the encoder's final
state (``bridge``). With attention, before each output step the decoder's top state (the query) scores
every encoder state (the keys), the softmax of the scores over the real input tokens weights the
encoder states into a context vector, which is fed to the decoder with the previous token and to the
output layer (Bahdanau et al. 2015):

- ``additive``: ``score(s, h_j) = v . tanh(W_q s + W_k h_j)`` (Bahdanau);
- ``multiplicative``: ``score(s, h_j) = s . W h_j`` (Luong's "general");
- ``none``: no context at all: everything the decoder knows comes through the encoder's final state.

Training feeds the decoder the true previous token with probability ``teacher_forcing`` (per sample and
step), else its own greedy prediction. :meth:`Seq2Seq.greedy` decodes free-running (it never sees the
target) and returns the attention weights.

Example::

    model = build_model(RunSpec.for_task("dates-seq2seq"))
    logits = model(x, y, teacher_forcing=1.0)          # (batch, out_len, vocab)
    ids, attn = model.greedy(x, steps=11)              # (batch, 11), (batch, 11, in_len)
"""
from __future__ import annotations

import torch
from torch import nn

from ..tasks.dates import BOS

def _rnn(family: str, n_in: int, hidden: int, layers: int, bidirectional: bool, dropout: float,
         activation: str | None) -> nn.RNNBase:
    kwargs = dict(input_size=n_in, hidden_size=hidden, num_layers=layers, batch_first=True,
                  bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
    if family == "rnn":
        kwargs["nonlinearity"] = "relu" if activation == "relu" else "tanh"
    return {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[family](**kwargs)


def encode_packed(embedding: nn.Embedding, rnn: nn.RNNBase, tokens: torch.Tensor):
    """Run ``rnn`` over the real tokens only (padding 0 on the right is never read, in either direction).

    Returns the outputs ``(batch, longest, hidden * directions)`` (zeros on padding), the final state
    as ``rnn`` returns it, and the mask of real tokens ``(batch, longest)``.
    """
    lengths = (tokens != 0).sum(1).clamp_min(1)
    longest = int(lengths.max())
    tokens = tokens[:, :longest]  # batches of short inputs need not run over the longest input's padding
    packed = nn.utils.rnn.pack_padded_sequence(embedding(tokens), lengths.cpu(), batch_first=True,
                                               enforce_sorted=False)
    out, state = rnn(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=longest)
    return out, state, tokens != 0


class Attention(nn.Module):
    """Scores of a query against every key, as softmax weights over the unmasked keys."""

    def __init__(self, kind: str, query: int, key: int):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.w_k = nn.Linear(key, query, bias=False)
            self.w_q = nn.Linear(query, query)
            self.v = nn.Linear(query, 1, bias=False)
        else:
            self.w = nn.Linear(key, query, bias=False)

    def keys(self, enc: torch.Tensor) -> torch.Tensor:
        """What the scores need of the encoder states, computed once per input (not per output step)."""
        return self.w_k(enc) if self.kind == "additive" else self.w(enc)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "additive":
            scores = self.v(torch.tanh(keys + self.w_q(query)[:, None, :]))[..., 0]
        else:
            scores = torch.bmm(keys, query[:, :, None])[..., 0]
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Seq2Seq(nn.Module):
    """Recurrent encoder, attention, recurrent decoder, output layer (the module docstring)."""

    def __init__(self, m, info):
        super().__init__()
        h, dirs, v, e = m.hidden_size, 2 if m.bidirectional else 1, info.vocab_size, m.embedding_dim
        self.family, self.layers, self.attention_kind = m.family, m.layers, m.attention
        self.embedding = nn.Embedding(v, e, padding_idx=0)  # input characters (the hidden-state probe's)
        self.rnn = _rnn(m.family, e, h, m.layers, m.bidirectional, m.dropout, m.activation)  # the encoder
        self.bridge = nn.Linear(h * dirs, h)
        ctx = 0 if m.attention == "none" else h * dirs
        self.attention = None if m.attention == "none" else Attention(m.attention, h, h * dirs)
        self.target_embedding = nn.Embedding(v, e)
        self.decoder = _rnn(m.family, e + ctx, h, m.layers, False, m.dropout, m.activation)
        self.head = nn.Linear(h + ctx, v)
        self.bidirectional = m.bidirectional

    # -- parts ------------------------------------------------------------------------------
    def _start(self, tokens: torch.Tensor):
        enc, state, mask = encode_packed(self.embedding, self.rnn, tokens)
        h = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        final = torch.cat([h[-2], h[-1]], dim=1) if self.bidirectional else h[-1]
        s = torch.tanh(self.bridge(final))[None].repeat(self.layers, 1, 1).contiguous()
        dec_state = (s, torch.zeros_like(s)) if self.family == "lstm" else s
        keys = self.attention.keys(enc) if self.attention is not None else None
        return enc, keys, mask, dec_state

    def _step(self, prev: torch.Tensor, dec_state, enc, keys, mask):
        """One output step: logits ``(B, vocab)``, the new state, attention weights ``(B, in)`` or None."""
        emb = self.target_embedding(prev)
        weights = None
        if self.attention is not None:
            top = (dec_state[0] if isinstance(dec_state, tuple) else dec_state)[-1]
            weights = self.attention(top, keys, mask)
            context = torch.bmm(weights[:, None, :], enc)[:, 0]
            emb = torch.cat([emb, context], dim=1)
        out, dec_state = self.decoder(emb[:, None, :], dec_state)
        out = out[:, 0]
        if weights is not None:
            out = torch.cat([out, context], dim=1)
        return self.head(out), dec_state, weights

    # -- use ---------------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, target: torch.Tensor, teacher_forcing: float = 1.0) -> torch.Tensor:
        """Logits ``(B, T_out, vocab)`` of every output step of ``target`` ``(B, T_out)``."""
        enc, keys, mask, state = self._start(tokens)
        prev = torch.full_like(target[:, 0], BOS)
        logits = []
        for t in range(target.shape[1]):
            out, state, _ = self._step(prev, state, enc, keys, mask)
            logits.append(out)
            if t + 1 < target.shape[1]:
                prev = self._next_input(out, target[:, t], teacher_forcing)
        return torch.stack(logits, dim=1)

    @staticmethod
    def _next_input(logits: torch.Tensor, truth: torch.Tensor, teacher_forcing: float) -> torch.Tensor:
        if teacher_forcing >= 1.0:
            return truth
        own = logits.detach().argmax(-1)
        if teacher_forcing <= 0.0:
            return own
        use_truth = torch.rand(truth.shape, device=truth.device) < teacher_forcing
        return torch.where(use_truth, truth, own)

    @torch.no_grad()
    def greedy(self, tokens: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Free-running decoding: ids ``(B, steps)`` and attention ``(B, steps, longest input)`` (None
        without attention). Each step is fed the previous step's argmax, never the target."""
        enc, keys, mask, state = self._start(tokens)
        prev = torch.full((tokens.shape[0],), BOS, dtype=torch.long, device=tokens.device)
        ids, maps = [], []
        for _ in range(steps):
            out, state, weights = self._step(prev, state, enc, keys, mask)
            prev = out.argmax(-1)
            ids.append(prev)
            if weights is not None:
                maps.append(weights)
        return torch.stack(ids, dim=1), (torch.stack(maps, dim=1) if maps else None)


class RecurrentTagger(nn.Module):
    """Token ids ``(B, T)`` (0 = padding, on the right) -> embedding -> recurrent layers (packed: a
    backward direction starts at the last real token) -> per-token tag logits ``(B, T, tags)``."""

    def __init__(self, m, info):
        super().__init__()
        self.embedding = nn.Embedding(info.vocab_size, m.embedding_dim, padding_idx=0)
        self.rnn = _rnn(m.family, m.embedding_dim, m.hidden_size, m.layers, m.bidirectional, m.dropout,
                        m.activation)
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(m.hidden_size * (2 if m.bidirectional else 1), info.n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _, _ = encode_packed(self.embedding, self.rnn, tokens)
        logits = self.head(self.dropout(out))
        if logits.shape[1] < tokens.shape[1]:  # the batch's padding columns: logits of the same width
            logits = nn.functional.pad(logits, (0, 0, 0, tokens.shape[1] - logits.shape[1]))
        return logits


def teacher_forcing_at(spec, step: int, total: int) -> float:
    """The teacher-forcing ratio of ``spec`` at ``step`` (1-based) of ``total``: constant, or linear from
    ``teacher_forcing`` at the first step to ``teacher_forcing_floor`` at the last.

    >>> from types import SimpleNamespace as S
    >>> linear = S(teacher_forcing=1.0, teacher_forcing_schedule="linear", teacher_forcing_floor=0.2)
    >>> teacher_forcing_at(linear, 51, 101)
    0.6
    """
    start = spec.teacher_forcing
    if spec.teacher_forcing_schedule != "linear" or total <= 1:
        return start
    frac = min(1.0, max(0.0, (step - 1) / (total - 1)))
    return round(start + (spec.teacher_forcing_floor - start) * frac, 6)
