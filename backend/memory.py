"""The memory training a spec takes, known before anything is built: what :func:`backend.spec.estimate` says.

The figure is the peak resident memory (RSS) that a run adds to its trainer process on CPU (float32, no
mixed precision), over a process that has imported torch and the training code and loaded the task's
data (200-400 MiB for the built-in tasks; not counted, it is the same for every spec of a task):

* **runtime**: code of the kernels the first steps run, and their buffers (10-24 MiB by family);
* **weights, gradients and optimizer state**: 4 bytes a parameter each; the state is 0 (sgd) to 2 (adam,
  adadelta, rmsprop with momentum) copies;
* **one training step's activations at their peak**: the batch (capped at the training set of a built-in
  task, as the trainer's epoch permutation caps it), what autograd saves for the backward pass (layer
  outputs, dropout masks, max-pool indices, the recurrent layers' oneDNN workspace), the backward pass's
  gradients of the largest layer, and for a language model the logits, their log-softmax and its
  gradient over every position (``batch x seq_len x vocab`` floats, about 3.3 copies); or the optimizer's
  temporaries (the size of its largest tensor), if larger;
* or **an evaluation pass** (no gradients; chunks of 1024 inputs, 64 windows of a language model, 8192
  word2vec pairs) on top of what the training steps left in the heap, when that is larger.

Tensors under 32 MiB come from glibc's heap, where freed blocks stay resident and fragment: measured, the
process holds 1.3 (recurrent models, word2vec) to 2.8 (MLP) times their bytes at its peak (``HEAP_SLACK``);
larger ones are mapped and given back when freed. The per-family coefficients (floats per unit) were
measured with ``bench/memory_estimate.py`` (peak RSS of a fresh process training the spec, minus its RSS
before the model was built) and, for the live bytes alone, the same with glibc's mmap threshold fixed
(``MALLOC_MMAP_THRESHOLD_``); within 30 % of measured for every spec measured. Not counted: the run's probes
and checkpoints (hooks), and a GPU's own memory (on CUDA the activations live on the device, bf16/fp16 under
autocast); measured with one torch thread.

Example::

    parts = memory_parts(RunSpec.for_task("code-lstm"))
    parts.total        # bytes, = estimate(spec).memory_bytes
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .spec import ModelSpec, RunSpec
    from .tasks.registry import TaskInfo

FLOAT = 4
MIB = 2**20
# code of the kernels the first steps run and their buffers (oneDNN generates convolution and recurrent kernels)
RUNTIME_BYTES = {"mlp": 10 * MIB, "skipgram": 10 * MIB, "cnn": 20 * MIB, "textcnn": 20 * MIB,
                 "sparse-ae": 24 * MIB, "recurrent": 24 * MIB, "packed": 12 * MIB,
                 "transformer": 40 * MIB}  # measured: its first evaluation adds 20-40 MiB whatever the size
MMAP_MIN = 32 * MIB  # glibc's largest dynamic mmap threshold: smaller blocks come from the heap
# Peak RSS over live bytes of heap-sized tensors, measured: a feed-forward net's many equal-sized
# activations and gradients fragment the heap most
HEAP_SLACK = {"mlp": 2.8, "cnn": 1.6, "textcnn": 1.5, "sparse-ae": 1.3, "skipgram": 1.3, "recurrent": 1.3,
              "packed": 1.3, "transformer": 1.3}
MAPPED_SLACK = 1.05  # peaks creep up over the first steps

# Training-set and validation-set sizes of the built-in tasks whose batches come from a fixed set
# (backend.tasks.data; a test checks them): a batch larger than the training set holds all of it.
TRAIN_SIZES = {"digits-cnn": 1438, "patches-cnn": 19_500, "natural-patches": 100_000,
               "sentiment-cnn": 20_000, "sentiment-lstm": 20_000, "dates-seq2seq": 40_000, "tags-bidir": 20_000,
               "numbers-seq2seq": 40_000}
VAL_SIZES = {"digits-cnn": 359, "patches-cnn": 2600, "natural-patches": 4096,
             "sentiment-cnn": 2000, "sentiment-lstm": 2000, "dates-seq2seq": 2000, "tags-bidir": 2000,
             "numbers-seq2seq": 2000}
MEAN_TOKENS = {"sentiment-cnn": 9.3, "sentiment-lstm": 9.3,  # real tokens of a built-in review (of 32)
               "dates-seq2seq": 16.0, "tags-bidir": 8.5,  # of a date (of 40), of a tagged sentence (of 16)
               "numbers-seq2seq": 36.8}  # of a number in words (of 96)
EVAL_CHUNK, LM_EVAL_BATCH, W2V_EVAL_PAIRS = 1024, 64, 8192  # as backend.training.trainer evaluates

# Optimizers (torch's single-tensor CPU code): state tensors a parameter, temporaries of one tensor's size
OPT_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adagrad": 1, "rmsprop": 1, "adadelta": 2}
OPT_TEMPS = {"sgd": 0, "momentum": 0, "adam": 2, "adagrad": 1, "rmsprop": 1, "adadelta": 2}

# oneDNN recurrent layers (language models, image rows), floats a time step and sample: each layer and
# direction keeps a workspace of RNN_LAYER x hidden; the backward pass of a layer needs RNN_TOP x hidden
# more (scratch, gradients) while the output layer's logits are gone again; the input RNN_INPUT x width.
RNN_LAYER = {"lstm": 7.5, "gru": 8.4, "rnn": 2.3}
RNN_TOP = {"lstm": 9.5, "gru": 3.9, "rnn": 2.0}
RNN_INPUT = {"lstm": 2.8, "gru": 1.8, "rnn": 0.8}
LM_LOGITS = 3.3  # logits, log-softmax, its gradient (and the logits' one): copies of batch x seq_len x vocab
LM_TOKEN = 55.0  # token ids (int64 windows, positions), argmax and other per-token odds and ends
# Packed recurrent layers (text classifiers: torch's own cells, one autograd node a step), floats a token
PACKED_LAYER = {"lstm": 13.0, "gru": 10.5, "rnn": 2.1}
PACKED_EVAL = {"lstm": 6.0, "gru": 2.5, "rnn": 2.0}
PACKED_INPUT = 1.45  # the packed embeddings (and their gradient), a token and embedding unit
MAXPOOL_SAVED, AVGPOOL_SAVED = 0.75, 0.25  # pooled output (and int64 indices) a conv-output element
CNN_TRANSIENT = 2.6  # gradients of a conv layer's output in its backward pass, per output element
# Transformer blocks, floats a token and d_model unit: what a block saves for its backward pass (its input,
# the norms' outputs, q k v, attention output and its contiguous copy, projection, the MLP's 4 d twice, ...)
TF_LAYER = 19.0
TF_DROPOUT = 6.0    # with dropout: three masks and outputs a block
TF_ATTN_SAVED = 3.0  # with dropout the fused kernel is not used: scores, weights and mask, a token, head and key


@dataclass(frozen=True)
class Tensors:
    """``floats`` held at a peak in tensors of about ``each`` floats (heap or mapped, by their size);
    ``at_peak`` False: freed before the step's peak, but their heap blocks stay resident."""

    floats: float
    each: float
    at_peak: bool = True


@dataclass(frozen=True)
class MemoryParts:
    """Bytes of each part of a run's training memory; ``total`` is what ``estimate`` reports."""

    runtime: int
    weights: int
    gradients: int
    optimizer: int
    train_step: int
    evaluation: int

    @property
    def total(self) -> int:
        return self.runtime + self.weights + self.gradients + self.optimizer + max(self.train_step, self.evaluation)


def memory_parts(spec: "RunSpec", info: "TaskInfo | None" = None, params: int | None = None) -> MemoryParts:
    """The parts of ``spec``'s training memory in bytes (the module docstring says what each counts)."""
    from .spec import count_params, spec_info

    info = info or spec_info(spec)
    params = count_params(spec, info)[0] if params is None else params
    m = spec.model
    kind = _kind(m, info)
    slack = HEAP_SLACK[kind]
    states = OPT_STATES[spec.optimizer] + (spec.optimizer == "rmsprop" and spec.momentum > 0)
    temps = (OPT_TEMPS[spec.optimizer] + (spec.weight_decay > 0)) * FLOAT * largest_tensor(spec, info)
    grads_heap = FLOAT * largest_tensor(spec, info) < MMAP_MIN  # a new gradient every step
    train, evaluation = _activations(spec, info)
    train_heap, train_mapped = _resident([t for t in train if t.at_peak], slack)
    step_heap = max(train_heap, _resident(train, 1.0)[0])  # what the step left in the heap, under evaluation
    eval_heap, eval_mapped = _resident(evaluation, slack)
    return MemoryParts(runtime=RUNTIME_BYTES[kind], weights=FLOAT * params,
                       gradients=int(FLOAT * params * (slack if grads_heap else 1.0)),
                       optimizer=FLOAT * states * params,
                       train_step=int(max(train_heap + train_mapped, temps)),
                       evaluation=int(eval_mapped + max(eval_heap, step_heap)))


def activation_floats(spec: "RunSpec | ModelSpec", info: "TaskInfo") -> int:
    """Floats of activation a sample holds at a training step's peak (live tensors, before the allocator's
    slack; a language model's sample is one sequence). A ``ModelSpec`` alone: batches of 64 samples of 64
    tokens."""
    if not hasattr(spec, "model"):  # a ModelSpec
        spec = SimpleNamespace(model=spec, batch_size=64, seq_len=64, data_file=None)
    train, _ = _activations(spec, info)  # type: ignore[arg-type]
    return int(sum(t.floats for t in train if t.at_peak) / max(1, train_batch(spec, info)))  # type: ignore[arg-type]


def train_batch(spec: "RunSpec", info: "TaskInfo") -> int:
    """Samples in a training batch: the spec's batch size, at most the training set of a built-in task."""
    n = None if spec.data_file else TRAIN_SIZES.get(info.name)
    return min(spec.batch_size, n) if n else spec.batch_size


def _eval_batch(spec: "RunSpec", info: "TaskInfo") -> int:
    n = None if spec.data_file else VAL_SIZES.get(info.name)
    return min(EVAL_CHUNK, n) if n else EVAL_CHUNK


def _kind(m: "ModelSpec", info: "TaskInfo") -> str:
    from .spec import RECURRENT

    if m.family in RECURRENT:
        return "packed" if info.kind in ("text", "tag", "seq2seq") else "recurrent"
    return m.family


def _resident(tensors: list[Tensors], slack: float) -> tuple[float, float]:
    """Bytes resident for ``tensors`` at their peak: (in heap-sized tensors, in mapped ones)."""
    heap = sum(FLOAT * t.floats for t in tensors if FLOAT * t.each < MMAP_MIN)
    mapped = sum(FLOAT * t.floats for t in tensors if FLOAT * t.each >= MMAP_MIN)
    return heap * slack, mapped * MAPPED_SLACK


def _activations(spec: "RunSpec", info: "TaskInfo") -> tuple[list[Tensors], list[Tensors]]:
    """Activation tensors of a training step at its peak, and of an evaluation pass."""
    from .spec import RECURRENT

    m, b, eb = spec.model, train_batch(spec, info), _eval_batch(spec, info)
    if m.family == "skipgram":
        return _skipgram(spec, info)
    if m.family == "transformer":
        return _transformer(m, info, b, spec.seq_len)
    if m.family in RECURRENT:
        if info.kind == "lm":
            return _language_model(m, info, b, spec.seq_len)
        if info.kind in ("text", "tag", "seq2seq"):  # sequence tasks: packed encoders, decoders like them
            return _packed(spec, info, b, eb)
        c, rows, w = info.input_shape
        train = [Tensors(b * rows * x.floats, b * rows * x.each) for x in _rnn_step(m, c * w, 0)]
        return train, [Tensors(eb * rows * (c * w + 2 * _dirs(m) * m.hidden_size), eb * rows * m.hidden_size)]
    family = {"textcnn": _textcnn, "sparse-ae": _sparse_ae, "mlp": _mlp, "cnn": _cnn}[m.family]
    return family(m, info, b, eb)


def _dirs(m: "ModelSpec") -> int:
    return 2 if m.bidirectional else 1


def _rnn_step(m: "ModelSpec", n_in: int, vocab: int) -> list[Tensors]:
    """Floats a time step and sample of oneDNN recurrent layers in training (and ``vocab`` logits)."""
    d, h, f = _dirs(m), m.hidden_size, m.family
    layers = m.layers * d * h * RNN_LAYER[f]
    if d == 2:  # both directions' outputs and their concatenation, every layer
        layers += m.layers * d * h
    if m.dropout > 0:  # between layers: mask and output
        layers += 2 * (m.layers - 1) * d * h
    top = max(LM_LOGITS * vocab + d * h, h * RNN_TOP[f] * (1.1 if d == 2 else 1.0))
    return [Tensors(layers, layers / m.layers), Tensors(top, max(vocab, d * h)),
            Tensors(RNN_INPUT[f] * n_in, n_in)]


def _language_model(m: "ModelSpec", info: "TaskInfo", b: int, t: int) -> tuple[list[Tensors], list[Tensors]]:
    tokens = b * t
    train = [Tensors(tokens * x.floats, tokens * x.each) for x in _rnn_step(m, m.embedding_dim, info.vocab_size)]
    train.append(Tensors(tokens * LM_TOKEN, tokens * 2))
    e_tokens = LM_EVAL_BATCH * t
    evaluation = [Tensors(e_tokens * (m.embedding_dim + 2 * _dirs(m) * m.hidden_size + LM_TOKEN),
                          e_tokens * _dirs(m) * m.hidden_size),
                  Tensors(e_tokens * 3 * info.vocab_size, e_tokens * info.vocab_size)]
    return train, evaluation


def _transformer(m: "ModelSpec", info: "TaskInfo", b: int, t: int) -> tuple[list[Tensors], list[Tensors]]:
    """Transformer language model: every block's saved tensors, and the logits (as :func:`_language_model`)."""
    d, tokens = m.hidden_size, b * t
    per_layer = d * (TF_LAYER + (TF_DROPOUT if m.dropout > 0 else 0.0))
    if m.dropout > 0:
        per_layer += TF_ATTN_SAVED * m.heads * t
    train = [Tensors(tokens * (m.layers * per_layer + 3 * d), tokens * 4 * d),
             Tensors(tokens * (LM_LOGITS * info.vocab_size + d), tokens * info.vocab_size),
             Tensors(tokens * LM_TOKEN, tokens * 2)]
    e_tokens = LM_EVAL_BATCH * t
    evaluation = [Tensors(e_tokens * (8 * d + LM_TOKEN), e_tokens * 4 * d),
                  Tensors(e_tokens * 3 * info.vocab_size, e_tokens * info.vocab_size)]
    return train, evaluation


def _packed(spec: "RunSpec", info: "TaskInfo", b: int, eb: int) -> tuple[list[Tensors], list[Tensors]]:
    """Recurrent text classifiers: a packed sequence runs torch's own cell, step by step (small tensors)."""
    from .spec import GATES

    m = spec.model
    units, e, t_max = m.layers * _dirs(m) * m.hidden_size, m.embedding_dim, info.input_shape[0]
    tokens = t_max if spec.data_file else MEAN_TOKENS.get(info.name, t_max)
    step = GATES[m.family] * m.hidden_size  # a step's gates, for the batch still running at that step
    train = [Tensors(b * t_max * e, b * t_max * e),
             Tensors(b * tokens * (PACKED_LAYER[m.family] * units + PACKED_INPUT * e), b * step)]
    evaluation = [Tensors(eb * t_max * e, eb * t_max * e),
                  Tensors(eb * tokens * (PACKED_EVAL[m.family] * units + 2 * e), eb * step)]
    return train, evaluation


def _mlp(m: "ModelSpec", info: "TaskInfo", b: int, eb: int) -> tuple[list[Tensors], list[Tensors]]:
    fan_in = _numel(info.input_shape)
    h, drop = m.hidden_size, m.dropout > 0
    # each layer keeps its activation (and the dropout mask and output); backward adds one layer's gradient
    # unless the top layer's dropout tensors, freed first, make room for it
    per = fan_in + m.layers * h * (3 if drop else 1) + h * (0.2 if drop else 1.0) + 3 * info.n_classes
    return [Tensors(b * per, b * h)], [Tensors(eb * (fan_in + 2 * h + info.n_classes), eb * h)]


def _cnn(m: "ModelSpec", info: "TaskInfo", b: int, eb: int) -> tuple[list[Tensors], list[Tensors]]:
    """The peak is in the backward pass of the layer where what lower layers saved plus its own
    gradients (CNN_TRANSIENT x its output) is largest, or at the head (dropout mask and output, gradient)."""
    c, h, w = info.input_shape
    pool = {"max": MAXPOOL_SAVED, "avg": AVGPOOL_SAVED, "none": 0.0}[m.pooling]
    saved = [Tensors(b * c * h * w, b * c * h * w)]
    candidates, largest = [], 0
    for out_c in m.channels:
        n = out_c * h * w
        saved += [Tensors(b * n, b * n), Tensors(b * n * pool, b * n / 4)]
        candidates.append(saved + [Tensors(CNN_TRANSIENT * b * n, b * n)])
        largest = max(largest, n)
        if m.pooling != "none":
            h, w = h // 2, w // 2
    flat = out_c * h * w
    head = saved + [Tensors(b * flat * (3 if m.dropout > 0 else 1) + 3 * b * info.n_classes, b * flat)]
    candidates.append(head)
    train = max(candidates, key=lambda ts: sum(t.floats for t in ts))
    if train is not head:  # the upper layers' tensors, freed by then, left their heap blocks behind
        train = train + [Tensors(t.floats, t.each, at_peak=False) for t in head[len(train) - 1:]]
    return train, [Tensors(eb * 2 * largest, eb * largest)]


def _textcnn(m: "ModelSpec", info: "TaskInfo", b: int, eb: int) -> tuple[list[Tensors], list[Tensors]]:
    """Embedding output (and its contiguous copy and gradient), each width's activation and masked map
    kept for the max over time, and the backward pass's gradients of the widest map."""
    t, e, n = info.input_shape[0], m.embedding_dim, m.channels[0]
    maps = [n * (t - k + 1) for k in m.kernel_sizes]
    head = 2 * n * len(maps) if m.dropout > 0 else 0
    train = [Tensors(b * 3 * t * e, b * t * e), Tensors(b * (2 * sum(maps) + 2 * max(maps) + head), b * max(maps))]
    return train, [Tensors(eb * 2 * t * e, eb * t * e), Tensors(eb * 3 * max(maps), eb * max(maps))]


def _sparse_ae(m: "ModelSpec", info: "TaskInfo", b: int, eb: int) -> tuple[list[Tensors], list[Tensors]]:
    """Filter responses (activation, kept mask, code, gradients) and the patches (input, noise, output)."""
    c, h, w = info.input_shape
    k = m.kernel_sizes[0]
    responses = m.channels[0] * (h - k + 1) * (w - k + 1)
    return ([Tensors(b * 5 * responses, b * responses), Tensors(b * 6 * c * h * w, b * c * h * w)],
            [Tensors(eb * 3 * responses, eb * responses), Tensors(eb * 3 * c * h * w, eb * c * h * w)])


def _skipgram(spec: "RunSpec", info: "TaskInfo") -> tuple[list[Tensors], list[Tensors]]:
    """A pair's vectors and the negatives' (saved and their gradients), and one dense gradient of a table."""
    from .spec import W2V_NEGATIVES

    d, k, b, v = spec.model.embedding_dim, W2V_NEGATIVES, spec.batch_size, info.vocab_size
    return ([Tensors(b * (2 * k + 1) * d, b * k * d), Tensors(v * d, v * d)],
            [Tensors(W2V_EVAL_PAIRS * (k + 1) * d, W2V_EVAL_PAIRS * k * d)])


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def largest_tensor(spec: "RunSpec", info: "TaskInfo") -> int:
    """Elements of the model's largest parameter tensor (the optimizer's temporaries are its size).

    >>> from backend.spec import RunSpec; from backend.tasks import TASKS
    >>> largest_tensor(RunSpec.for_task("code-lstm"), TASKS["code-lstm"])  # weight_hh_l0: 4 x 128 x 128
    65536
    """
    from .spec import GATES, RECURRENT

    m = spec.model
    if m.family == "skipgram":
        return info.vocab_size * m.embedding_dim
    if m.family == "sparse-ae":
        return info.input_shape[0] * m.channels[0] * m.kernel_sizes[0] ** 2
    if m.family == "transformer":  # the MLP's two matrices, or a table
        d = m.hidden_size
        return max(4 * d * d, info.vocab_size * d, getattr(spec, "seq_len", 64) * d)
    if m.family == "textcnn":
        n = m.channels[0]
        return max(info.vocab_size * m.embedding_dim, m.embedding_dim * n * max(m.kernel_sizes),
                   n * len(m.kernel_sizes) * info.n_classes)
    if m.family in RECURRENT:
        d, h, g = _dirs(m), m.hidden_size, GATES[m.family]
        text = info.kind in ("lm", "text", "tag", "seq2seq")
        n_in = m.embedding_dim if text else info.input_shape[0] * info.input_shape[2]
        emb = info.vocab_size * m.embedding_dim if text else 0
        layer = g * h * max(n_in, h * d if m.layers > 1 else 0, h)
        if info.kind == "seq2seq":  # the decoder's input weights and the output layer read the context too
            ctx = 0 if m.attention == "none" else h * d
            return max(emb, layer, g * h * (n_in + ctx), (h + ctx) * info.n_outputs, h * d * h)
        return max(emb, layer, h * d * info.n_outputs)
    c, h, w = info.input_shape
    if m.family == "mlp":
        fan_in, big = c * h * w, 0
        for _ in range(m.layers):
            big, fan_in = max(big, fan_in * m.hidden_size), m.hidden_size
        return max(big, fan_in * info.n_classes)
    big = 0
    for i, out_c in enumerate(m.channels):
        big = max(big, c * out_c * m.kernel_for(i) ** 2)
        c = out_c
        if m.pooling != "none":
            h, w = h // 2, w // 2
    return max(big, c * h * w * info.n_classes)
