"""Build a torch module from a :class:`~backend.spec.RunSpec`.

Image models take ``(batch, channels, height, width)`` floats and return class
logits; recurrent image models read the rows of the image as time steps.
Language models take ``(batch, time)`` token ids and return ``(batch, time, vocab)``
logits. Recurrent layers stay the fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (cuDNN on
GPU); probes replay them separately.

Example::

    model = build_model(RunSpec.for_task("digits-cnn"))
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ..spec import RECURRENT, ModelSpec, RunSpec, spec_info
from ..tasks import TaskInfo
from .transformer import TransformerLM

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
RNN_CLASSES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class MLP(nn.Module):
    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = 1
        for d in info.input_shape:
            fan_in *= d
        for _ in range(m.layers):
            layers += [nn.Linear(fan_in, m.hidden_size), ACTIVATIONS[m.activation or "relu"](), nn.Dropout(m.dropout)]
            fan_in = m.hidden_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(fan_in, info.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class CNN(nn.Module):
    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        c, h, w = info.input_shape
        convs: list[nn.Module] = []
        for i, out_c in enumerate(m.channels):
            k = m.kernel_for(i)
            convs += [nn.Conv2d(c, out_c, k, padding=k // 2), ACTIVATIONS[m.activation or "relu"]()]
            if m.pooling != "none":
                convs.append(nn.MaxPool2d(2) if m.pooling == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = out_c
        self.features = nn.Sequential(*convs)
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(c * h * w, info.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).flatten(1)))


class SparseAutoencoder(nn.Module):
    """Convolutional k-sparse autoencoder with tied weights (Makhzani & Frey 2013, one layer).

    Encode: noise is added to the input (training only), the filters ``encoder`` (no bias) respond,
    ReLU, and only the ``top_k`` strongest responses per input (over filters and positions) stay.
    Decode: the same filters, transposed, paint the kept responses back. After each optimiser
    step :meth:`after_step` rescales every filter to unit length, so sparsity, not shrinking
    weights, is what the code has to work with. Returns the reconstruction, the input's shape.
    """

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        c = info.input_shape[0]
        self.encoder = nn.Conv2d(c, m.channels[0], m.kernel_sizes[0], bias=False)
        self.top_k, self.noise = m.top_k, m.noise
        self.after_step()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The sparse code: filter responses with all but the ``top_k`` largest per input set to 0."""
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        a = torch.relu(self.encoder(x))
        flat = a.flatten(1)
        keep = torch.zeros_like(flat).scatter_(1, flat.topk(min(self.top_k, flat.shape[1]), dim=1).indices, 1.0)
        return (flat * keep).view_as(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv_transpose2d(self.codes(x), self.encoder.weight)

    @torch.no_grad()
    def after_step(self) -> None:
        w = self.encoder.weight
        w /= w.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, *([1] * (w.dim() - 1)))


class TextCNN(nn.Module):
    """Kim (2014): word embeddings, 1-D convolutions of several n-gram widths, ReLU, max over time.

    Input ``(batch, time)`` token ids, 0 = padding. Each width ``k`` in ``kernel_sizes`` has
    ``channels[0]`` filters (``convs.<i>``, an ``nn.Conv1d`` over the embedding channels); a
    filter's output at position ``p`` reads tokens ``p .. p+k-1``. Positions whose window
    reaches into the padding are masked out before the max, so a filter's score is its best
    n-gram of the real text (:meth:`window_mask`).
    """

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        self.embedding = nn.Embedding(info.vocab_size, m.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(m.embedding_dim, m.channels[0], k) for k in m.kernel_sizes)
        self.act = ACTIVATIONS[m.activation or "relu"]()
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(m.channels[0] * len(m.kernel_sizes), info.n_classes)

    @staticmethod
    def window_mask(tokens: torch.Tensor, k: int) -> torch.Tensor:
        """``(batch, time - k + 1)``: True where the window of width ``k`` lies in the real text
        (always True at position 0, so a text shorter than ``k`` still has one window)."""
        length = (tokens != 0).sum(1, keepdim=True)
        pos = torch.arange(tokens.shape[1] - k + 1, device=tokens.device)[None, :]
        return (pos + k <= length) | (pos == 0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(1, 2)  # (B, emb, T)
        pooled = []
        for conv in self.convs:
            a = self.act(conv(x))  # (B, filters, T - k + 1)
            mask = self.window_mask(tokens, conv.kernel_size[0])[:, None, :]
            pooled.append(a.masked_fill(~mask, float("-inf")).amax(dim=2))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class SkipGram(nn.Module):
    """Word2vec's skip-gram with negative sampling (Mikolov et al. 2013).

    ``embedding`` holds the word vectors (what the Projections page maps), ``context`` the output
    vectors. :meth:`loss` of a batch of ``(center, context)`` pairs and ``negatives`` drawn from the
    noise distribution: ``-log sigma(u_c . v_o) - sum_n log sigma(-u_c . v_n)``, averaged.
    """

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        d = m.embedding_dim
        self.embedding = nn.Embedding(info.vocab_size, d)
        self.context = nn.Embedding(info.vocab_size, d)
        nn.init.uniform_(self.embedding.weight, -0.5 / d, 0.5 / d)
        nn.init.zeros_(self.context.weight)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.embedding(words)

    def loss(self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        u = self.embedding(center)                                   # (B, d)
        pos = (u * self.context(context)).sum(-1)                    # (B,)
        neg = torch.bmm(self.context(negatives), u[:, :, None])[..., 0]  # (B, K)
        return -(nn.functional.logsigmoid(pos) + nn.functional.logsigmoid(-neg).sum(-1)).mean()


class RecurrentTextClassifier(nn.Module):
    """Many-to-one: token ids (0 = padding, on the right) -> embedding -> recurrent layers (packed, so
    padding is never read, in either direction) -> the final hidden state of the last layer (both
    directions for a bidirectional one) -> class logits."""

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        self.embedding = nn.Embedding(info.vocab_size, m.embedding_dim, padding_idx=0)
        self.rnn = _recurrent(m, m.embedding_dim)
        self.bidirectional = m.bidirectional
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(m.hidden_size * (2 if m.bidirectional else 1), info.n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != 0).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state          # (layers * dirs, B, H)
        final = torch.cat([h[-2], h[-1]], dim=1) if self.bidirectional else h[-1]
        return self.head(self.dropout(final))


class RecurrentClassifier(nn.Module):
    """Reads image rows as a sequence; classifies from the last step's output."""

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        c, _, w = info.input_shape
        self.rnn = _recurrent(m, c * w)
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(m.hidden_size * (2 if m.bidirectional else 1), info.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W)
        out, _ = self.rnn(seq)
        return self.head(self.dropout(out[:, -1]))


class RecurrentLM(nn.Module):
    """Embedding -> recurrent layers -> per-token logits over the vocabulary."""

    def __init__(self, m: ModelSpec, info: TaskInfo):
        super().__init__()
        self.embedding = nn.Embedding(info.vocab_size, m.embedding_dim)
        self.rnn = _recurrent(m, m.embedding_dim)
        self.dropout = nn.Dropout(m.dropout)
        self.head = nn.Linear(m.hidden_size * (2 if m.bidirectional else 1), info.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(tokens))
        return self.head(self.dropout(out))


def _recurrent(m: ModelSpec, n_in: int) -> nn.Module:
    kwargs = dict(input_size=n_in, hidden_size=m.hidden_size, num_layers=m.layers, batch_first=True,
                  bidirectional=m.bidirectional, dropout=m.dropout if m.layers > 1 else 0.0)
    if m.family == "rnn":
        kwargs["nonlinearity"] = "relu" if m.activation == "relu" else "tanh"
    return RNN_CLASSES[m.family](**kwargs)


def build_model(spec: RunSpec) -> nn.Module:
    """The module a spec describes, initialised from ``torch``'s current seed."""
    info = spec_info(spec)
    m = spec.model
    if m.family in RECURRENT and info.kind in ("seq2seq", "tag"):  # sequence tasks (issue 16)
        from .seq2seq import RecurrentTagger, Seq2Seq
        return Seq2Seq(m, info) if info.kind == "seq2seq" else RecurrentTagger(m, info)
    if m.family in RECURRENT:
        if info.kind == "text":
            return RecurrentTextClassifier(m, info)
        return RecurrentLM(m, info) if info.kind == "lm" else RecurrentClassifier(m, info)
    if m.family == "skipgram":
        return SkipGram(m, info)
    if m.family == "transformer":  # language models only (the task registry's families say so)
        return TransformerLM(info.vocab_size, m.hidden_size, m.heads, m.layers, spec.seq_len, m.dropout)
    if m.family == "sparse-ae":
        return SparseAutoencoder(m, info)
    if m.family == "textcnn":
        return TextCNN(m, info)
    return CNN(m, info) if m.family == "cnn" else MLP(m, info)


_RNN_PARAM = re.compile(r"^(?P<mod>.*)\.(weight|bias)_(ih|hh)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


def layer_key(param_name: str) -> str:
    """Group a parameter under its layer: ``rnn.weight_hh_l1_reverse`` -> ``rnn.l1_reverse``,
    ``features.0.weight`` -> ``features.0``."""
    match = _RNN_PARAM.match(param_name)
    if match:
        return f"{match['mod']}.l{match['layer']}{match['rev'] or ''}"
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name
