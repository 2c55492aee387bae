"""``Run.watch`` saves the user's language model for Try it: exported once, its weights at every snapshot.

At ``watch`` the model is exported with ``torch.export`` (non-strict, eval mode, no gradients, the
user's random state untouched) on a piece of the probe text, with the text's length dynamic, and
its graph is stored in deepscope's own format (:mod:`backend.models.graph`: allowlisted operators and
plain arguments, nothing that runs code when read). The export is checked before it counts: the graph,
run by :class:`~backend.models.graph.GraphModel` on texts of three lengths, must give the model's own
logits. Then :class:`ModelFileProbe`, a snapshot probe like the others (same cadence, same cost
budget), copies the weights the graph reads in the training thread and writes
``checkpoints/model-step-<step>.pt`` in the probes' writer thread (:mod:`backend.models.graph_file`).

Recurrent layers (plain ``nn.LSTM``/``nn.GRU``/``nn.RNN``) are exported as one custom op,
``deepscope::recurrent``, the fused kernel itself: traced as usual, ``aten.lstm`` unrolls over time
and fixes the text's length in the graph (``reshape(-1, hidden)`` after it would then only read texts of
the probe's length). The op also tells Try it which tensors are a recurrent layer's weights and input,
so it can replay them and show every layer's states and gates.

Which models: token ids in (``(batch, time)`` or ``(time, batch)``), next-token logits out
(``(batch, time, vocab)``, ``(time, batch, vocab)`` or ``(time, vocab)``, alone or the first such tensor of
what ``forward`` returns), with ``vocab=`` a list of single characters. Anything else is not saved and
the reason goes in the run's spec (``spec["model"]["try"]``), shown by Try it; a model that should qualify
but cannot be exported (data-dependent control flow, unsupported operators) is also warned about once.

Example::

    export = export_lm(model, probe_ids, vocab)       # ExportedLM; ValueError saying why not
    probe = ModelFileProbe(store, run_id, model, export, every=100)
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from ..models.graph import FORMAT, VERSION, GraphModel, check_op, encode_arg
from ..models.graph_file import FILE_LIMIT
from ..probes.hooks import SnapshotProbe

log = logging.getLogger(__name__)
SAMPLE = 24              # tokens of the probe text the model is exported and checked on
CHECK_LENGTHS = (1, 5)   # and texts of these lengths (the sample's is the third)
QUIET = ("torch._export", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
         "torch._functorch", "torch._subclasses")
_OP = None


@dataclass
class ExportedLM:
    """A model's graph (:mod:`backend.models.graph`) and what its weights are called in the live model."""

    graph: dict
    keys: list[str]                                  # state-dict names of the tensors the graph reads
    constants: dict[str, Tensor] = field(default_factory=dict)   # tensors fixed at export ("constant:...")
    seconds: float = 0.0
    graph_json: str = ""

    def weights(self, model: nn.Module) -> dict[str, Tensor]:
        """The tensors the graph reads, as ``model`` holds them now, copied to the CPU."""
        live = {**dict(model.named_parameters(remove_duplicate=False)),
                **dict(model.named_buffers(remove_duplicate=False))}
        out = {k: live[k].detach().to("cpu", copy=True) for k in self.keys}
        out.update((k, v.to("cpu", copy=True)) for k, v in self.constants.items())
        return out


def _register_op():
    """``deepscope::recurrent``, once per process: the fused recurrent kernel, opaque to the tracer, with a
    shape function that keeps the text's length symbolic."""
    global _OP
    if _OP is not None:
        return _OP
    from ..models.graph_ops import recurrent

    @torch.library.custom_op("deepscope::recurrent", mutates_args=())
    def op(x: Tensor, h0: Tensor, c0: Tensor, params: list[Tensor], mode: str, has_biases: bool, num_layers: int,
           bidirectional: bool, batch_first: bool) -> tuple[Tensor, Tensor, Tensor]:
        return recurrent(x, h0, c0, params, mode, has_biases, num_layers, bidirectional, batch_first)

    @op.register_fake
    def _(x, h0, c0, params, mode, has_biases, num_layers, bidirectional, batch_first):
        width = h0.shape[-1] * (2 if bidirectional else 1)
        return x.new_empty((x.shape[0], x.shape[1], width)), h0.new_empty(h0.shape), c0.new_empty(c0.shape)

    _OP = torch.ops.deepscope.recurrent.default
    return _OP


def _recurrent_forward(self: nn.RNNBase, input, hx=None):
    """``nn.LSTM``/``GRU``/``RNN.forward`` as one ``deepscope::recurrent`` call (batched tensors only)."""
    if not isinstance(input, Tensor) or input.dim() != 3:
        return type(self).forward(self, input, hx)  # packed or unbatched: as usual
    mode = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}[self.mode]
    shape = (self.num_layers * (2 if self.bidirectional else 1), input.shape[0 if self.batch_first else 1],
             self.hidden_size)
    if hx is None:
        h0 = torch.zeros(shape, dtype=input.dtype, device=input.device)
        c0 = torch.zeros_like(h0)
    else:
        h0, c0 = hx if mode == "lstm" else (hx, torch.zeros_like(hx))
    params = [getattr(self, name) for name in self._flat_weights_names]
    out, h, c = _register_op()(input, h0, c0, params, mode, self.bias, self.num_layers, self.bidirectional,
                               self.batch_first)
    return out, ((h, c) if mode == "lstm" else h)


@contextlib.contextmanager
def _tracing(model: nn.Module):
    """Eval mode, no gradients, no warnings or log lines from torch, the user's random state and module
    modes as they were afterwards; plain recurrent modules traced as one op."""
    modes = [(m, m.training) for m in model.modules()]
    rnns = [m for m in model.modules() if type(m) in (nn.LSTM, nn.GRU, nn.RNN) and not getattr(m, "proj_size", 0)]
    saved = [(m, m.__dict__.get("forward")) for m in rnns]
    loggers = [(logging.getLogger(n), logging.getLogger(n).level) for n in QUIET]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            for lg, _ in loggers:
                lg.setLevel(logging.CRITICAL)
            model.eval()
            for m in rnns:
                m.forward = types.MethodType(_recurrent_forward, m)
            yield device
    finally:
        for m, fwd in saved:
            if fwd is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = fwd
        for m, mode in modes:
            m.training = mode
        for lg, level in loggers:
            lg.setLevel(level)


def _logits_leaf(out: Any, n: int, vocab_size: int, layout: str) -> tuple[int, str] | None:
    """Which leaf of ``forward``'s output holds next-token logits, and their shape."""
    for i, leaf in enumerate(pytree.tree_leaves(out)):
        if isinstance(leaf, Tensor) and leaf.is_floating_point():
            shape = tuple(leaf.shape)
            if shape == ((1, n, vocab_size) if layout == "batch_first" else (n, 1, vocab_size)):
                return i, "btv" if layout == "batch_first" else "tbv"
            if shape == (n, vocab_size):
                return i, "tv"
    return None


def _as_input(ids: Tensor, layout: str) -> Tensor:
    return ids.reshape(1, -1) if layout == "batch_first" else ids.reshape(-1, 1)


def _eager_logits(model: nn.Module, ids: Tensor, layout: str, leaf: int, shape: str) -> Tensor:
    out = pytree.tree_leaves(model(_as_input(ids, layout)))[leaf].float().cpu()
    return {"btv": lambda t: t[0], "tbv": lambda t: t[:, 0], "tv": lambda t: t}[shape](out)


class NotALanguageModel(ValueError):
    """The model's outputs hold no next-token logits over the vocabulary (a tagger, a classifier): Try it,
    which runs language models, notes it without warning the user."""


def find_layout(model: nn.Module, sample: Tensor, vocab_size: int) -> tuple[str, int, str]:
    """``(layout, leaf, shape)``: how ``model`` reads ``sample`` (token ids: batch or time first) and where
    its logits are. A layout counts only when a later prediction depends on the first token (fed the other
    way round, a recurrent model reads every token as a sequence of its own)."""
    n = len(sample)
    other = sample.clone()
    other[0] = (other[0] + 1) % vocab_size
    tried = []
    for layout in ("batch_first", "time_first"):
        try:
            found = _logits_leaf(model(_as_input(sample, layout)), n, vocab_size, layout)
        except Exception as exc:  # noqa: BLE001 - the user's forward may refuse this layout
            tried.append(f"{layout}: {type(exc).__name__}")
            continue
        if found is None:
            tried.append(f"{layout}: no (…, {n}, {vocab_size}) logits")
            continue
        a = _eager_logits(model, sample, layout, *found)
        b = _eager_logits(model, other, layout, *found)
        if not torch.allclose(a[1:], b[1:]):
            return layout, *found
        tried.append(f"{layout}: each token read alone")
    raise NotALanguageModel("the model does not map token ids to next-token logits over the vocabulary (tried "
                     + "; ".join(tried) + ")")


def _graph(ep, layout: str, shape: str, leaf: int, vocab: Sequence[str]) -> tuple[dict, list[str], dict]:
    """The exported program in deepscope's format, the state-dict keys it reads and its constants."""
    from torch.export.graph_signature import InputKind, OutputKind

    specs = {s.arg.name: s for s in ep.graph_signature.input_specs if hasattr(s.arg, "name")}
    nodes, keys, constants, outputs = [], [], {}, None
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            spec = specs[node.name]
            if spec.kind == InputKind.USER_INPUT:
                nodes.append({"name": node.name, "op": "input"})
            elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
                keys.append(spec.target)
                nodes.append({"name": node.name, "op": "weight", "key": spec.target})
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                constants[f"constant:{spec.target}"] = ep.constants[spec.target].detach()
                nodes.append({"name": node.name, "op": "weight", "key": f"constant:{spec.target}"})
            else:
                raise ValueError(f"its graph needs a {spec.kind.name.lower()} input")
        elif node.op == "call_function":
            target = _target_name(node.target)
            check_op(target)
            nodes.append({"name": node.name, "op": "call", "target": target, "args": encode_arg(list(node.args)),
                          "kwargs": {k: encode_arg(v) for k, v in node.kwargs.items()}})
        elif node.op == "output":
            outputs = encode_arg(list(node.args[0]))
        else:
            raise ValueError(f"its graph has a {node.op} node (a subgraph or module call)")
    users = [i for i, s in enumerate(ep.graph_signature.output_specs) if s.kind == OutputKind.USER_OUTPUT]
    graph = {"format": FORMAT, "version": VERSION, "layout": layout, "logits_shape": shape, "logits": users[leaf],
             "outputs": outputs, "nodes": nodes, "vocab": list(vocab), "torch": torch.__version__}
    return graph, keys, constants


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)                                   # aten.linear.default, deepscope.recurrent.default
    if getattr(target, "__module__", None) == "_operator":
        return f"operator.{target.__name__}"
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__name__', target)}"


def export_lm(model: nn.Module, ids: Tensor, vocab: Sequence[str]) -> ExportedLM:
    """Export ``model`` (a character language model) for Try it; ValueError saying why it cannot be."""
    if any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(vocab):
        raise ValueError("Try it encodes typed text character by character: vocab must list distinct single "
                         "characters")
    started = time.perf_counter()
    n = min(SAMPLE, len(ids))
    n = n + 1 if n == len(vocab) and n < len(ids) else n
    if n < 2:
        raise ValueError("the probe text is too short to export the model on (2 tokens at least)")
    with _tracing(model) as device:
        sample = ids[:n].to(device=device, dtype=torch.long)
        layout, leaf, shape = find_layout(model, sample, len(vocab))
        time_dim = torch.export.Dim("T", min=1)
        try:
            ep = torch.export.export(model, (_as_input(sample, layout),),
                                     dynamic_shapes=({1 if layout == "batch_first" else 0: time_dim},))
        except Exception as exc:  # noqa: BLE001 - whatever the tracer cannot follow
            raise ValueError(f"torch.export cannot trace it ({type(exc).__name__}: "
                             f"{_first_line(exc)})") from None
        graph, keys, constants = _graph(ep, layout, shape, leaf, vocab)
        exported = ExportedLM(graph=graph, keys=keys, constants=constants)
        weights = exported.weights(model)
        size = sum(t.numel() * t.element_size() for t in weights.values())
        if size > FILE_LIMIT:
            raise ValueError(f"its weights take {size / 2**20:,.0f} MiB, over the {FILE_LIMIT // 2**20} MiB a model "
                             "file may hold")
        runner = GraphModel(graph, weights)
        for length in (*CHECK_LENGTHS, n):
            want = _eager_logits(model, sample[:length], layout, leaf, shape)
            got = runner.logits(sample[:length].cpu())
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-3, atol=1e-4 * max(
                    1.0, float(want.abs().max()))):
                raise ValueError(f"its exported graph does not reproduce the model on a text of {length} "
                                 "tokens (the forward depends on the text's length in a way the export fixed)")
    exported.graph_json = json.dumps(graph, separators=(",", ":"))
    exported.seconds = time.perf_counter() - started
    return exported


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0][:240] if lines else type(exc).__name__


class ModelFileProbe(SnapshotProbe):
    """Saves the weights of an exported model at the snapshot cadence (files: :mod:`backend.models.graph_file`)."""

    kind = "model"
    weight = 0.5  # copying the weights is cheap next to a hidden-state replay

    def __init__(self, store, run_id: str, model: nn.Module, exported: ExportedLM, **kwargs):
        super().__init__(store, run_id, **kwargs)
        self.model, self.exported = model, exported

    def _steps_done(self) -> set[int]:
        return set()  # model files are not indexed in the store: nothing to ask it

    def take(self, trainer):
        return self.exported.weights(self.model), {}

    def write(self, step: int, payload, meta: dict) -> None:
        from ..models.graph_file import write_model_file

        write_model_file(self.store.run_dir(self.run_id) / "checkpoints", step, self.exported.graph_json, payload)

    def _write_tolerant(self, step: int, payload, meta: dict) -> None:
        started = time.monotonic()
        self.write(step, payload, meta)  # a file, not the store: nothing to retry
        self._write_s = time.monotonic() - started
