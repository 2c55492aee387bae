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

from ..spec import RECURRENT, ModelSpec, RunSpec
from ..tasks import TaskInfo, get_task

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
    info = get_task(spec.task)
    m = spec.model
    if m.family in RECURRENT:
        return RecurrentLM(m, info) if info.kind == "lm" else RecurrentClassifier(m, info)
    return CNN(m, info) if m.family == "cnn" else MLP(m, info)


_RNN_PARAM = re.compile(r"^(?P<mod>.*)\.(weight|bias)_(ih|hh)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


def layer_key(param_name: str) -> str:
    """Group a parameter under its layer: ``rnn.weight_hh_l1_reverse`` -> ``rnn.l1_reverse``,
    ``features.0.weight`` -> ``features.0``."""
    match = _RNN_PARAM.match(param_name)
    if match:
        return f"{match['mod']}.l{match['layer']}{match['rev'] or ''}"
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name
