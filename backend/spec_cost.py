"""What a spec costs before its model is built: the parameter count and the training memory.

Torch-free (the New run form shows both as the user types). ``backend.spec`` re-exports :func:`estimate`,
:func:`count_params` and :class:`Cost`.

Example::

    cost = estimate(RunSpec.for_task("digits-cnn"))   # Cost(params=..., memory_bytes=...)
    cost.describe()                                   # "6,090 parameters, about 24.6 MiB to train"
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import GATES, RECURRENT, TRANSFORMER_MLP, ModelSpec, RunSpec, spec_info
from .tasks.registry import TaskInfo


@dataclass(frozen=True)
class Cost:
    """Size of a model before it is built: parameters and a training-memory estimate."""

    params: int
    memory_bytes: int

    def describe(self) -> str:
        return f"{self.params:,} parameters, about {_human_bytes(self.memory_bytes)} to train"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def count_params(spec: RunSpec | ModelSpec, info: TaskInfo | None = None) -> tuple[int, int]:
    """Parameters of the model a spec builds, and floats of activation a sample holds at a training step's
    peak (:func:`backend.memory.activation_floats`; for a ``ModelSpec`` alone: 64-token sequences).

    The parameters equal ``sum(p.numel() for p in build_model(spec).parameters())``
    (a test checks it for many random specs).
    """
    from .memory import activation_floats

    m = spec.model if isinstance(spec, RunSpec) else spec
    info = info or spec_info(spec)  # type: ignore[arg-type]
    if m.family == "skipgram":  # word and context vectors
        params = 2 * info.vocab_size * m.embedding_dim
    elif m.family == "textcnn":
        n, emb = m.channels[0], m.embedding_dim
        params = info.vocab_size * emb + sum(emb * n * k + n for k in m.kernel_sizes)
        params += n * len(m.kernel_sizes) * info.n_classes + info.n_classes
    elif m.family in RECURRENT and info.kind == "seq2seq":
        params = _seq2seq_params(m, info)
    elif m.family in RECURRENT:
        dirs = 2 if m.bidirectional else 1
        g, h = GATES[m.family], m.hidden_size
        if info.kind in ("lm", "text", "tag"):
            n_in, params = m.embedding_dim, info.vocab_size * m.embedding_dim
        else:
            n_in, params = info.input_shape[0] * info.input_shape[2], 0
        for layer in range(m.layers):
            fan_in = n_in if layer == 0 else h * dirs
            params += dirs * (g * h * (fan_in + h) + 2 * g * h)
        params += h * dirs * info.n_outputs + info.n_outputs
    elif m.family == "transformer":
        context = spec.seq_len if isinstance(spec, RunSpec) else 64
        params = _transformer_params(info.vocab_size, m.hidden_size, m.layers, context)
    elif m.family == "sparse-ae":  # tied weights, no bias
        params = info.input_shape[0] * m.channels[0] * m.kernel_sizes[0] ** 2
    elif m.family == "mlp":
        c, h, w = info.input_shape
        fan_in, params = c * h * w, 0
        for _ in range(m.layers):
            params += fan_in * m.hidden_size + m.hidden_size
            fan_in = m.hidden_size
        params += fan_in * info.n_classes + info.n_classes
    else:
        c, h, w = info.input_shape
        params = 0
        for i, out_c in enumerate(m.channels):
            params += c * out_c * m.kernel_for(i) ** 2 + out_c
            c = out_c
            if m.pooling != "none":
                h, w = h // 2, w // 2
        params += c * h * w * info.n_classes + info.n_classes
    return params, activation_floats(spec, info)


def _transformer_params(vocab: int, d: int, layers: int, context: int) -> int:
    """Parameters of ``backend.models.transformer.TransformerLM`` (kept torch-free here for the form).

    >>> _transformer_params(8, 32, 2, 128)  # tokens, positions, 2 blocks, final LayerNorm, output layer
    30088
    """
    f = TRANSFORMER_MLP * d
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)  # norms, attention, MLP
    return vocab * d + context * d + layers * block + 2 * d + (d * vocab + vocab)


def _recurrent_params(family: str, n_in: int, h: int, layers: int, dirs: int) -> int:
    g = GATES[family]
    return sum(dirs * (g * h * ((n_in if i == 0 else h * dirs) + h) + 2 * g * h) for i in range(layers))


def _seq2seq_params(m: ModelSpec, info: TaskInfo) -> int:
    """backend.models.seq2seq.Seq2Seq: two embeddings, encoder, bridge, attention, decoder, output layer."""
    h, e, v, dirs = m.hidden_size, m.embedding_dim, info.vocab_size, 2 if m.bidirectional else 1
    ctx = 0 if m.attention == "none" else h * dirs
    attention = {"additive": ctx * h + h * h + h + h, "multiplicative": ctx * h, "none": 0}[m.attention]
    return (2 * v * e + _recurrent_params(m.family, e, h, m.layers, dirs) + h * dirs * h + h + attention
            + _recurrent_params(m.family, e + ctx, h, m.layers, 1) + (h + ctx) * v + v)


def estimate(spec: RunSpec) -> Cost:
    """Parameter count, and the memory training takes: the peak resident memory a run adds to its trainer
    process on CPU (weights, gradients, optimizer state, and the larger of a training step's activations
    and an evaluation pass, with the allocator's slack), within about 30 % of measured; the parts and what
    each counts: :func:`backend.memory.memory_parts`."""
    from .memory import memory_parts

    info = spec_info(spec)
    params, _ = count_params(spec, info)
    return Cost(params=params, memory_bytes=memory_parts(spec, info, params).total)
