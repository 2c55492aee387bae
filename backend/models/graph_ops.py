"""What a model graph (:mod:`backend.models.graph`) may call, and the checks before every call.

A graph names its operators; this module turns a name into a callable only for an allowlisted aten
operator, a Python operator on plain numbers, or ``deepscope.recurrent`` (the fused ``nn.LSTM``/``GRU``/
``RNN`` kernel), and checks each call's arguments first: against the operator's schema (a dtype must be a
``torch.dtype``: ``torch.ops`` takes a bare int unchecked and crashes on a bad one), the recurrent
kernel's shapes as ``nn.LSTM.forward`` checks them, and sizes against :data:`MAX_ELEMENTS`. Arguments
travel as JSON (:func:`encode_arg`, :func:`decode_arg`). Anything else is a :class:`GraphError`.

Example::

    fn = resolve_op("aten.linear.default")            # torch.ops.aten.linear.default
    check_call(fn, [x, w, b], {}, "linear")            # GraphError unless the arguments fit its schema
    resolve_op("aten.from_file.default")               # GraphError: Try it does not run it
"""
from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import nn

RECURRENT_OP = "deepscope.recurrent.default"
RECURRENT_MODES = ("lstm", "gru", "rnn_tanh", "rnn_relu")
MAX_ELEMENTS = 1 << 26  # largest tensor (or size list) a graph may make: 64M elements, 256 MB of float32

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


def decode_arg(value: Any, env: dict[str, Any]) -> Any:
    """An argument as :func:`encode_arg` wrote it, node references looked up in ``env``."""
    if isinstance(value, list):
        return [decode_arg(v, env) for v in value]
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


def check_call(fn, args: list, kwargs: dict, name: str, target: str) -> None:
    """Everything checked before node ``name`` calls ``fn``: sizes, an aten op's schema, an arange's length
    (the recurrent op checks its own shapes, the Python operators their operands)."""
    _check_sizes(args, kwargs, name)
    if isinstance(fn, torch._ops.OpOverload):
        _check_schema(fn, args, kwargs, name)
    if target.startswith("aten.arange."):
        _check_range(args, name)


def check_output(value: Any, name: str) -> None:
    """A tensor over MAX_ELEMENTS made by one op (a repeat, an expand made contiguous) stops the graph."""
    for t in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(t, torch.Tensor) and t.numel() > MAX_ELEMENTS:
            raise GraphError(f"node {name[:40]} made a tensor of {t.numel():,} elements: too large")

