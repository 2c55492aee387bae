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
outside :data:`ALLOWED_OPS`, arguments that do not fit its schema, a reference to a node not yet computed,
a size over :data:`MAX_ELEMENTS` or any other malformed entry is a :class:`GraphError` (a ValueError: the
Try it page shows it). What may be called, and the checks before each call: :mod:`backend.models.graph_ops`.

Recurrent layers are exported as one op, ``deepscope.recurrent`` (the fused ``nn.LSTM``/``GRU``/``RNN``
kernels themselves; :mod:`backend.client.model_export` says why), which this module runs with
``torch.lstm``/``torch.gru``/``torch.rnn_*`` and can replay to show every layer's states and gates.

Example::

    model = GraphModel(json.loads(file["graph"]), file["weights"])
    model.logits(torch.tensor([3, 1, 4]))            # (3, vocab): next-token logits after each token
    logits, states = model.logits_and_states(ids)     # states[(0, "fwd")]["c"]: (T, hidden)
"""
from __future__ import annotations

from typing import Any

import torch

from .graph_ops import ALLOWED_OPS, DTYPES, MAX_ELEMENTS, RECURRENT_MODES, RECURRENT_OP, GraphError, check_call, \
    check_op, check_output, decode_arg, encode_arg, rebuild_recurrent, recurrent, resolve_op

__all__ = ["FORMAT", "VERSION", "GraphError", "GraphModel", "check_graph", "encode_arg", "check_op", "ALLOWED_OPS",
           "MAX_ELEMENTS", "RECURRENT_MODES", "RECURRENT_OP"]

FORMAT, VERSION = "deepscope-graph", 1
MAX_NODES = 20_000
LAYOUTS = {"batch_first": (1, 0), "time_first": (0, 1)}  # where (batch, time) sit in the input ids
LOGIT_SHAPES = ("btv", "tbv", "tv")


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
                args, kwargs = decode_arg(args, env), {str(k): decode_arg(v, env) for k, v in kwargs.items()}
                check_call(fn, args, kwargs, name, node["target"])
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
                check_output(value, name)
                env[name] = value
        out = decode_arg(self.graph["outputs"], env)
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
