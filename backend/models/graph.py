"""A user's exported model, run op by op from plain data: no pickle, no generated code, no import by name.

A model from a user's own script cannot be rebuilt from a spec, so the client API exports it
(:mod:`backend.client.model_export`, with ``torch.export``) and writes its graph in this format: a
JSON object whose ``nodes`` are the model's input, its weights (by state-dict key) and calls of
allowlisted operators with plain arguments; the weights are tensors beside it in the same file, read
with ``torch.load(weights_only=True)``. :class:`GraphModel` runs that list in order.

Why not ``torch.export.load``: in torch 2.13 it unpickles what the file asks it to (``torch.load``
with ``weights_only=False`` for weights and constants whose entry says ``use_pickle``, ``pickle.loads``
for opaque constants, ``torch._C._pickle_load_obj`` for script objects, a ``weights_only=False`` fallback
for the sample inputs: torch/export/pt2_archive/_package.py, torch/_export/serde/serialize.py) and builds
an ``fx.GraphModule`` whose generated Python source it ``exec``s; its own docstring says never to load
data from an untrusted source. The data folder is writable by people
deepscope trusts with data only (docs/security.md), so its files are read as data here: an operator
outside :data:`ALLOWED_OPS`, a reference to a node not yet computed, a size over :data:`MAX_ELEMENTS`
or any other malformed entry is a :class:`GraphError` (a ValueError: the Try it page shows it).

Recurrent layers are exported as one op, ``deepscope.recurrent`` (the fused ``nn.LSTM``/``GRU``/``RNN``
kernels themselves; :mod:`backend.client.model_export` says why), which this module runs with
``torch.lstm``/``torch.gru``/``torch.rnn_*`` and can replay to show every layer's states and gates.

Example::

    model = GraphModel(json.loads(file["graph"]), file["weights"])
    model.logits(torch.tensor([3, 1, 4]))            # (3, vocab): next-token logits after each token
    logits, states = model.logits_and_states(ids)     # states[(0, "fwd")]["c"]: (T, hidden)
"""
from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import nn

FORMAT, VERSION = "deepscope-graph", 1
RECURRENT_OP = "deepscope.recurrent.default"
RECURRENT_MODES = ("lstm", "gru", "rnn_tanh", "rnn_relu")
MAX_NODES = 20_000
MAX_ELEMENTS = 1 << 26  # largest tensor (or size list) a graph may make: 64M elements, 256 MB of float32
LAYOUTS = {"batch_first": (1, 0), "time_first": (0, 1)}  # where (batch, time) sit in the input ids
LOGIT_SHAPES = ("btv", "tbv", "tv")

# aten operators (by name; their in-place variants too) a language model's forward may use. Left out on
# purpose: ops that read files (from_file), return uninitialised memory (empty*), view raw storage
# (as_strided, set_, _unsafe_view) or run code (higher-order ops with subgraphs). Their arguments are
# checked against the op's schema before the call (_check_schema): torch.ops takes a bare int for a dtype,
# layout or memory format without a range check, and an invalid one crashes the process.
ALLOWED_OPS = frozenset("""
    abs add addcmul addcdiv addmm adaptive_avg_pool1d adaptive_avg_pool2d adaptive_max_pool1d alias all amax amin
    any arange argmax argmin avg_pool1d avg_pool2d baddbmm batch_norm bitwise_and bitwise_not bitwise_or bmm cat
    chunk clamp clamp_max clamp_min clone constant_pad_nd contiguous conv1d conv2d convolution copy cos cumsum
    detach div dropout einsum elu embedding eq erf exp expand expand_as feature_dropout fill flatten flip floor
    floor_divide full full_like gather ge gelu glu group_norm gt hardtanh index index_select instance_norm
    layer_norm le leaky_relu lift_fresh_copy linalg_vector_norm linear log log_softmax logical_and logical_not
    logical_or logsumexp lt masked_fill matmul max max_pool1d max_pool2d maximum mean min minimum mish mm mul
    narrow native_layer_norm ne neg new_full new_ones new_zeros norm ones ones_like pad permute pow reciprocal relu
    remainder repeat reshape rms_norm rsqrt rsub scalar_tensor scaled_dot_product_attention select sigmoid sign
    silu sin slice softmax softplus split split_with_sizes sqrt square squeeze stack sub sum sym_numel sym_size
    sym_storage_offset sym_stride t tanh to transpose tril triu type_as unbind unflatten unsqueeze var view where
    zeros zeros_like _log_softmax _softmax _to_copy _native_batch_norm_legit_no_training
""".split())
# Python operators on sizes (dynamic shapes: ``T * 60``) and on multi-output ops (getitem); pow is left out
# (``10 ** 10 ** 9`` would hang), and results are checked (see _arith).
OPERATORS = ("getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "eq", "ne", "lt", "le", "gt", "ge")
MAX_INT = 1 << 62
DTYPES = {name: getattr(torch, name) for name in (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")}
LAYOUT_NAMES = {"strided": torch.strided}
MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format, "preserve_format": torch.preserve_format}


class GraphError(ValueError):
    """A model file whose graph cannot be run: malformed, or asking for something not allowed."""


# -- encoding (the client writes) and decoding (Try it reads) arguments --------------------------------

def encode_arg(value: Any) -> Any:
    """An fx node argument as JSON: node references, numbers, strings, lists, dtypes and devices.
    ValueError for anything else (the model cannot be saved in this format)."""
    if isinstance(value, torch.fx.Node):
        return {"ref": value.name}
    if isinstance(value, (list, tuple)):
        return [encode_arg(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise ValueError(f"an argument of type {type(value).__name__} ({str(value)[:60]})")


def _decode(value: Any, env: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_decode(v, env) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise GraphError(f"unknown argument {str(value)[:80]}")
    (tag, v), = value.items()
    try:
        if tag == "ref":
            return env[v]
        if tag == "float":
            return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}[v]
        if tag == "device":
            return torch.device("cpu")  # Try it runs on the dashboard's CPU, whatever the user trained on
        return {"dtype": DTYPES, "layout": LAYOUT_NAMES, "memory_format": MEMORY_FORMATS}[tag][v]
    except (KeyError, TypeError):
        raise GraphError(f"unknown argument {str(value)[:80]} (a node used before it is computed, or a value "
                         "deepscope does not read)") from None


def resolve_op(target: Any):
    """The callable a node names: an allowlisted aten operator, a Python operator, or the recurrent op."""
    if not isinstance(target, str):
        raise GraphError("a node's target is not a name")
    if target == RECURRENT_OP:
        return recurrent
    parts = target.split(".")
    if len(parts) == 2 and parts[0] == "operator" and parts[1] in OPERATORS:
        return _getitem if parts[1] == "getitem" else _arith(getattr(operator, parts[1]))
    if len(parts) == 3 and parts[0] == "aten" and parts[1].removesuffix("_") in ALLOWED_OPS:
        packet = getattr(torch.ops.aten, parts[1], None)
        overload = getattr(packet, parts[2], None) if packet is not None and parts[2].isidentifier() else None
        if isinstance(overload, torch._ops.OpOverload):
            return overload
    raise GraphError(f"the model uses {target[:80]}, which Try it does not run")


def _is_int(v) -> bool:
    return isinstance(v, int) and -(1 << 63) <= v < (1 << 63)


# what a value of each schema type must be (Optional[...] and List[...] are unwrapped by _fits)
ATOMS = {
    "Tensor": lambda v: isinstance(v, torch.Tensor),
    "int": _is_int, "SymInt": _is_int,
    "float": lambda v: isinstance(v, (int, float)), "number": lambda v: isinstance(v, (int, float)),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str) and len(v) <= 64,
    "ScalarType": lambda v: isinstance(v, torch.dtype) and v in DTYPES.values(),
    "Layout": lambda v: v is torch.strided,
    "Device": lambda v: isinstance(v, torch.device) and v.type == "cpu",
    "MemoryFormat": lambda v: isinstance(v, torch.memory_format),
}


def _fits(kind: str, v: Any) -> bool:
    if kind.startswith("Optional[") and kind.endswith("]"):
        return v is None or _fits(kind[9:-1], v)
    if kind.startswith("List[") and kind.endswith("]"):
        inner = kind[5:-1]
        if isinstance(v, (list, tuple)):
            return len(v) <= 1024 and all(_fits(inner, x) for x in v)
        return inner in ("int", "SymInt") and _is_int(v)  # int[1] dim: a bare int
    check = ATOMS.get(kind)
    return check is not None and check(v)


def _check_schema(op: torch._ops.OpOverload, args: list, kwargs: dict, name: str) -> None:
    """Every argument is of the type the op's schema says (a dtype is a torch.dtype, not an int)."""
    params = op._schema.arguments
    positional = [p for p in params if not p.kwarg_only]
    if len(args) > len(positional):
        raise GraphError(f"node {name[:40]} passes {len(args)} arguments to {op} (it takes {len(positional)})")
    by_name = {p.name: p for p in params}
    pairs = list(zip(positional, args))
    for key, value in kwargs.items():
        if key not in by_name or any(p.name == key for p, _ in pairs):
            raise GraphError(f"node {name[:40]} passes {key[:20]!r} to {op}, which it does not take")
        pairs.append((by_name[key], value))
    for p, value in pairs:
        if not _fits(str(p.real_type), value):
            raise GraphError(f"node {name[:40]}: argument {p.name} of {op} must be {p.real_type}")


def check_op(target: str) -> None:
    """GraphError unless ``target`` (``aten.linear.default``) is one :class:`GraphModel` runs."""
    resolve_op(target)


def _getitem(values, index):
    """One output of a multi-output op (``getitem(lstm, 0)``): nothing else."""
    if not isinstance(values, (tuple, list)) or not isinstance(index, int) or not -len(values) <= index < len(values):
        raise GraphError("getitem of something other than an op's outputs")
    return values[index]


def _arith(fn):
    """``fn`` on plain numbers only (a string times 10**9 would fill the memory), with a bounded result."""
    def checked(*args):
        if len(args) > 2 or not all(isinstance(a, (int, float)) for a in args):
            raise GraphError(f"operator.{fn.__name__} on something other than numbers")
        out = fn(*args)
        if isinstance(out, int) and abs(out) > MAX_INT:
            raise GraphError(f"operator.{fn.__name__} made a number too large")
        return out
    return checked


def _check_range(args: list, name: str) -> None:
    """``arange``'s length, before it is allocated."""
    nums = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if not nums:
        raise GraphError(f"node {name[:40]} asks for a range without bounds")
    start, end, step = (0, nums[0], 1) if len(nums) == 1 else (*nums[:2], nums[2] if len(nums) > 2 else 1)
    if not step or not math.isfinite((end - start) / step) or abs((end - start) / step) > MAX_ELEMENTS:
        raise GraphError(f"node {name[:40]} asks for a range too long")


# -- the recurrent op ------------------------------------------------------------------------------

def recurrent(x, h0, c0, params, mode, has_biases, num_layers, bidirectional, batch_first):
    """``nn.LSTM``/``GRU``/``RNN``'s fused kernel (eval: no dropout): ``(output, h_n, c_n)``; ``c_n`` is
    zeros for the families without a cell state. Shapes are checked first, as ``nn.LSTM.forward`` does."""
    check_recurrent(x, h0, c0, params, mode, has_biases, num_layers, bidirectional, batch_first)
    args = (has_biases, int(num_layers), 0.0, False, bool(bidirectional), bool(batch_first))
    if mode == "lstm":
        return tuple(torch.lstm(x, (h0, c0), list(params), *args))
    out, h = {"gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}[mode](x, h0, list(params),
                                                                                            *args)
    return out, h, torch.zeros_like(h)


def check_recurrent(x, h0, c0, params, mode, has_biases, num_layers, bidirectional, batch_first) -> None:
    """GraphError unless the arguments are those of an ``nn.LSTM``/``GRU``/``RNN`` call: the fused kernels
    trust the module to have checked the shapes of the input, the state and every weight."""
    if mode not in RECURRENT_MODES or not all(isinstance(b, bool) for b in (has_biases, bidirectional, batch_first)) \
            or not isinstance(num_layers, int) or not 1 <= num_layers <= 64 or not isinstance(params, (list, tuple)):
        raise GraphError("a recurrent op of the model graph has malformed settings")
    tensors = [x, h0, c0, *params]
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype == x.dtype for t in tensors):
        raise GraphError("a recurrent op of the model graph needs float tensors of one dtype")
    dirs, gates, per = (2 if bidirectional else 1), {"lstm": 4, "gru": 3}.get(mode, 1), (4 if has_biases else 2)
    if x.dim() != 3 or h0.dim() != 3 or len(params) != num_layers * dirs * per:
        raise GraphError("a recurrent op of the model graph has inputs of the wrong shape")
    hidden, batch = h0.shape[2], x.shape[0 if batch_first else 1]
    if tuple(h0.shape) != (num_layers * dirs, batch, hidden) or c0.shape != h0.shape or hidden < 1:
        raise GraphError("a recurrent op's initial state does not fit its input")
    for layer in range(num_layers):
        width = x.shape[2] if layer == 0 else dirs * hidden
        for d in range(dirs):
            w = params[(layer * dirs + d) * per:(layer * dirs + d + 1) * per]
            want = [(gates * hidden, width), (gates * hidden, hidden)] + [(gates * hidden,)] * (per - 2)
            if [tuple(t.shape) for t in w] != want:
                raise GraphError(f"a recurrent op's weights of layer {layer} do not fit its sizes")


def rebuild_recurrent(params, mode: str, has_biases: bool, num_layers: int, bidirectional: bool) -> nn.RNNBase:
    """The ``nn.LSTM``/``GRU``/``RNN`` (batch first) whose weights are ``params``: what replay() reads."""
    cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(mode, nn.RNN)
    extra = {"nonlinearity": mode.removeprefix("rnn_")} if cls is nn.RNN else {}
    w_hh = params[1]
    rnn = cls(params[0].shape[1], w_hh.shape[1], int(num_layers), bias=bool(has_biases), batch_first=True,
              bidirectional=bool(bidirectional), device="meta", **extra)
    rnn.load_state_dict(dict(zip(rnn._flat_weights_names, params)), assign=True)
    return rnn


# -- the model -------------------------------------------------------------------------------------

def check_graph(graph: Any) -> dict:
    """``graph`` if it is a deepscope graph this version reads (structure only; ops are checked as it runs)."""
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise GraphError("not a deepscope model graph")
    if graph.get("version") != VERSION:
        raise GraphError(f"model graph version {str(graph.get('version'))[:20]}; this deepscope reads {VERSION}")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list) or not 0 < len(nodes) <= MAX_NODES:
        raise GraphError("the model graph has no nodes, or too many")
    if not isinstance(graph.get("layout"), str) or graph["layout"] not in LAYOUTS or \
            graph.get("logits_shape") not in LOGIT_SHAPES:
        raise GraphError("the model graph does not say how it reads token ids and writes logits")
    if not isinstance(graph.get("logits"), int) or not isinstance(graph.get("outputs"), list):
        raise GraphError("the model graph does not say which output holds the logits")
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or \
                node.get("op") not in ("input", "weight", "call"):
            raise GraphError("a node of the model graph is malformed")
        if node["op"] == "call":
            check_op(node.get("target"))
        elif node["op"] == "weight" and not isinstance(node.get("key"), str):
            raise GraphError("a weight of the model graph has no name")
    if sum(node["op"] == "input" for node in nodes) != 1:
        raise GraphError("the model graph must read exactly one input")
    return graph


class GraphModel:
    """A model graph (:func:`check_graph`) with its weights, run on CPU in eval mode.

    ``logits(ids)`` takes 1-D token ids and returns ``(T, vocab)``; the graph's own layout (batch or time
    first) and logits shape are handled here. ``carry`` lets a caller feed a text in pieces, each
    recurrent layer starting from the state the previous piece left (generation, one token at a time).
    """

    def __init__(self, graph: dict, weights: dict[str, torch.Tensor]):
        self.graph = check_graph(graph)
        missing = [n["key"] for n in graph["nodes"] if n["op"] == "weight" and n.get("key") not in weights]
        if missing:
            raise GraphError(f"the model file has no weights for {', '.join(map(str, missing[:5]))}")
        bad = [k for k, v in weights.items() if not _plain_tensor(v)]
        if bad:
            raise GraphError(f"the model file's weights hold something other than dense CPU tensors "
                             f"({str(bad[0])[:40]})")
        self.weights = {k: v.detach() for k, v in weights.items()}
        self.layout, self.logits_shape = graph["layout"], graph["logits_shape"]

    def run(self, ids: torch.Tensor, carry: dict[int, tuple] | None = None,
            capture: list | None = None) -> torch.Tensor:
        """Logits ``(T, vocab)`` for 1-D ``ids``. ``carry``: {recurrent op index: (h, c)}, read and updated;
        ``capture``: a list that gets, per recurrent op, its input and weights (for :meth:`states`)."""
        x = ids.reshape(1, -1) if self.layout == "batch_first" else ids.reshape(-1, 1)
        env: dict[str, Any] = {}
        n_rec = 0
        for node in self.graph["nodes"]:
            name, op = node["name"], node["op"]
            if op == "input":
                env[name] = x
            elif op == "weight":
                env[name] = self.weights[node["key"]]
            else:
                fn = resolve_op(node["target"])
                args, kwargs = node.get("args", []), node.get("kwargs") or {}
                if not isinstance(args, list) or not isinstance(kwargs, dict):
                    raise GraphError(f"node {name[:40]} has malformed arguments")
                args, kwargs = _decode(args, env), {str(k): _decode(v, env) for k, v in kwargs.items()}
                _check_sizes(args, kwargs, name)
                if isinstance(fn, torch._ops.OpOverload):
                    _check_schema(fn, args, kwargs, name)
                if node["target"].startswith("aten.arange."):
                    _check_range(args, name)
                if fn is recurrent:
                    args = self._recurrent_args(args, n_rec, carry, capture)
                try:
                    value = fn(*args, **kwargs)
                except GraphError:
                    raise
                except (RuntimeError, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError,
                        OverflowError, RecursionError) as exc:
                    raise GraphError(f"the model graph failed at {name[:40]} ({node['target']}): "
                                     f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}"
                                     ) from None
                if fn is recurrent:
                    if carry is not None:
                        carry[n_rec] = (value[1], value[2])
                    n_rec += 1
                _check_output(value, name)
                env[name] = value
        out = _decode(self.graph["outputs"], env)
        try:
            logits = out[self.graph["logits"]]
        except (IndexError, TypeError):
            raise GraphError("the model graph's logits output is missing") from None
        if not isinstance(logits, torch.Tensor):
            raise GraphError("the model graph's logits output is not a tensor")
        return _as_tv(logits, self.logits_shape, len(ids))

    def _recurrent_args(self, args: list, index: int, carry, capture) -> list:
        if len(args) != 9 or not isinstance(args[3], list):
            raise GraphError("a recurrent op of the model graph has malformed arguments")
        if carry is not None and index in carry:
            args = [args[0], *carry[index], *args[3:]]
        if capture is not None:
            capture.append(args)
        return args

    def logits(self, ids) -> torch.Tensor:
        """Next-token logits ``(T, vocab)`` after each of the 1-D ``ids``."""
        with torch.no_grad():
            return self.run(torch.as_tensor(ids, dtype=torch.long).reshape(-1)).float()

    def logits_and_states(self, ids) -> tuple[torch.Tensor, dict]:
        """:meth:`logits` and, for every recurrent op of the graph, every state and gate at every token:
        ``{(layer, direction): {state: (T, hidden) float32}}``, layers numbered on across ops. A recurrent
        op fed a non-zero initial state, or an LSTM with projections, is left out (replay starts at zero)."""
        from ..probes.replay import replay

        capture: list = []
        with torch.no_grad():
            logits = self.run(torch.as_tensor(ids, dtype=torch.long).reshape(-1), capture=capture).float()
            states, first = {}, 0
            for x, h0, c0, params, mode, has_biases, layers, bidirectional, batch_first in capture:
                try:
                    rnn = rebuild_recurrent(params, mode, has_biases, layers, bidirectional)
                except (RuntimeError, ValueError, TypeError, IndexError, AttributeError):
                    continue
                if rnn.hidden_size != h0.shape[-1] or bool(h0.abs().sum() or c0.abs().sum()):
                    continue
                seq = x if batch_first else x.transpose(0, 1)
                for (layer, d), by_state in replay(rnn, seq.float()).items():
                    states[(first + layer, d)] = {k: v[:, 0] for k, v in by_state.items()}
                first += int(layers)
        return logits, states


def _plain_tensor(t: Any) -> bool:
    """A dense CPU tensor of an ordinary dtype (no sparse, quantized or meta tensor reaches an op)."""
    return isinstance(t, torch.Tensor) and t.layout is torch.strided and t.device.type == "cpu" and \
        not t.is_quantized and t.dtype in DTYPES.values()


def _as_tv(logits: torch.Tensor, shape: str, n: int) -> torch.Tensor:
    want = {"btv": 3, "tbv": 3, "tv": 2}[shape]
    if logits.dim() != want:
        raise GraphError(f"the model's logits have {logits.dim()} dimensions, its file says {want}")
    out = {"btv": lambda t: t[0], "tbv": lambda t: t[:, 0], "tv": lambda t: t}[shape](logits)
    if out.shape[0] != n:
        raise GraphError(f"the model gave {out.shape[0]} predictions for {n} tokens")
    return out


def _ints(value):
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in value):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v)


def _check_sizes(args: list, kwargs: dict, name: str) -> None:
    """A size list over MAX_ELEMENTS (a planted graph asking for all the memory) is refused before the op."""
    for sizes in _ints([*args, *kwargs.values()]):
        if math.prod(abs(s) for s in sizes) > MAX_ELEMENTS:
            raise GraphError(f"node {name[:40]} asks for a tensor of {list(sizes)[:8]}: too large")


def _check_output(value: Any, name: str) -> None:
    for t in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(t, torch.Tensor) and t.numel() > MAX_ELEMENTS:
            raise GraphError(f"node {name[:40]} made a tensor of {t.numel():,} elements: too large")
