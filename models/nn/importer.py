"""Import a model from a ``torch.export`` graph (``ExportedProgram``, aten-level ops).

One importer serves the built-in workloads and users' models: an ``nn.Module`` is first
exported (``torch.export.export`` on an example input of the data set's shape, eval mode),
a ``.pt2`` file written by ``torch.export.save`` is read with :func:`load_pt2` (weights and
graph only, nothing unpickled with code).  The graph is then walked node by node and
turned into the ops of :class:`~aimcflow.models.nn.convert.AnalogNetwork`:

=========================================  ==============================================
aten op                                    op
=========================================  ==============================================
linear, conv2d / convolution (groups 1)    AnalogLayer (weights on analog tiles)
batch_norm, _native_batch_norm_legit_no_   BatchNorm (eval statistics: an affine per
training                                   channel, folded into the NMPU by the compiler)
relu, leaky_relu, hardtanh (ReLU6), clamp  ReLU, LeakyReLU, Clamp
max_pool2d, avg_pool2d,                    Pool (adaptive to 1x1 and ``mean`` over H, W
adaptive_avg_pool2d (1x1), mean (H, W)     are an average pool over the whole input)
add (tensor + tensor)                      Add (residual)
flatten, view, reshape, (un)squeeze        Reshape (the batch dimension is kept)
dropout, identity, clone, alias, detach    nothing (no-ops in eval mode)
attention, layer_norm, gelu, transpose,    transformer ops: see
positional-embedding add, token mean       :mod:`aimcflow.models.nn.importer_seq`
=========================================  ==============================================

A linear layer on (B, ..., features) runs on every vector of the leading axes (tokens).

Anything else is a :class:`UserInputError` naming the node, its op and this list.  Each op
reads the values named by its wire: value 0 is the network input, value ``k + 1`` the
output of op ``k``.
"""

from __future__ import annotations

import math
import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn import graphops as g
from aimcflow.models.nn import importer_seq as seq
from aimcflow.models.nn.analog_ops import (
    AnalogLayer,
    BatchNorm,
    ConvGeometry,
    LeakyReLU,
    ReLU,
    Reshape,
)

SUPPORTED_OPS = (
    "linear",
    "conv2d (groups 1)",
    "batch_norm (eval)",
    "relu",
    "relu6 / hardtanh / clamp",
    "leaky_relu",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d (1x1)",
    "mean over H, W",
    "add (tensor + tensor)",
    "flatten / view / reshape / unflatten / (un)squeeze",
    "dropout / identity (no-ops)",
    *seq.SEQ_OPS,
)
MAX_BATCH = 1 << 20  # largest batch an exported program accepts
MAX_GRAPH_NODES = 100_000  # a bound on the graph walked (ResNet-20: ~80 nodes)

_NOOPS = {
    "dropout",
    "alias",
    "clone",
    "detach",
    "contiguous",
    "lift_fresh_copy",
    "_assert_tensor_metadata",
}
_RESHAPES = {"flatten", "view", "reshape", "_unsafe_view", "unflatten", "unsqueeze", "squeeze"}


@dataclass
class Imported:
    """An imported graph: ops (see module docstring), their wires, and the input shape
    (without batch) the graph was exported for."""

    ops: list
    wires: list  # per op: tuple of value ids it reads
    input_shape: tuple[int, ...]
    output: int  # the value id of the logits


# ---------------------------------------------------------------------------- loading
@contextmanager
def _weights_only_loads():
    """Force every ``torch.load`` inside to ``weights_only=True`` (torch honours
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` over a caller's request to load without it)."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def load_pt2(path: str | Path):
    """The ``ExportedProgram`` of a ``.pt2`` archive, read without unpickling code.

    ``torch.export.load`` documents that it uses pickle: tensors it could not store flat go
    through ``torch.load`` (falling back to a full, code-running unpickle), TorchScript objects
    through the TorchScript unpickler and opaque constants through ``pickle.loads``.  So
    the archive is checked first: an entry of a custom or opaque object is refused, and
    the load runs with every ``torch.load`` forced to ``weights_only=True``.
    """
    # lazy: torch (~2 s)
    import torch
    from torch.export.pt2_archive import constants as pt2c

    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserInputError(f"model '{p}': not a .pt2 archive ({exc})") from None
    bad = [
        n
        for n in names
        if f"/{pt2c.CONSTANTS_DIR}" in f"/{n}"
        and Path(n).name.startswith(
            (pt2c.CUSTOM_OBJ_FILENAME_PREFIX, pt2c.OPAQUE_OBJ_FILENAME_PREFIX)
        )
    ]
    if bad:
        raise UserInputError(
            f"model '{p}': holds pickled Python objects ({bad[0]}); only graphs with tensor "
            "weights are accepted (export a model of plain torch layers)"
        )
    try:
        with _weights_only_loads():
            return torch.export.load(p)
    except Exception as exc:  # noqa: BLE001 -- any unreadable archive is the user's input
        raise UserInputError(
            f"model '{p}': not a readable torch.export archive ({type(exc).__name__}: {exc})"
        ) from None


def export_module(model, input_shape: tuple[int, ...]):
    """``torch.export.export`` of ``model`` (eval mode) on a (2, *input_shape) zero input,
    the batch dimension dynamic (the saved program runs any batch size)."""
    # lazy: torch (~2 s)
    import torch

    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    try:
        with torch.no_grad():
            return torch.export.export(
                model, (torch.zeros((2, *input_shape), dtype=dtype),), dynamic_shapes=({0: batch},)
            )
    except Exception as exc:  # noqa: BLE001 -- a model that cannot run the data is user input
        raise UserInputError(
            f"model cannot be exported for inputs of shape (batch, "
            f"{', '.join(map(str, input_shape))}): {type(exc).__name__}: {str(exc)[:300]}"
        ) from None


# ---------------------------------------------------------------------------- the walk
def _np(t, what: str) -> np.ndarray:
    a = t.detach().cpu().double().numpy().copy()
    if not np.all(np.isfinite(a)):
        raise UserInputError(f"layer {what} has NaN or Inf values; the model cannot be mapped")
    return a


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))


def _bound_args(node) -> dict[str, Any]:
    """The node's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    out: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
    return out


def _shape(node) -> tuple[int, ...] | None:
    val = node.meta.get("val")
    return tuple(int(s) for s in val.shape) if hasattr(val, "shape") else None


class _Walker:
    def __init__(self, ep) -> None:
        self.ep = ep
        sig = ep.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.consts = dict(getattr(sig, "inputs_to_lifted_tensor_constants", {}) or {})
        self.state = ep.state_dict
        self.ops: list = []
        self.wires: list = []
        self.value: dict[str, int] = {}  # fx node name -> value id
        self.tensors: dict[str, Any] = {}  # fx node name -> parameter tensor
        self.names: set[str] = set()
        self.n_analog = 0
        self.pending: dict = {}  # explicit attention's nodes (importer_seq)

    # -- helpers
    def tensor(self, node, what: str):
        if node is None:
            return None
        if node.name not in self.tensors:
            raise UserInputError(
                f"graph node '{what}': its weight '{node.name}' is computed in the graph, "
                "not a parameter; supported: layers whose weights are parameters"
            )
        return self.tensors[node.name]

    def src(self, node, arg) -> int:
        if not hasattr(arg, "name") or arg.name not in self.value:
            raise UserInputError(
                f"graph node '{node.name}' ({node.target}): its input "
                f"{getattr(arg, 'name', arg)!r} is not an activation of the network"
            )
        return self.value[arg.name]

    def unique(self, base: str) -> str:
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}#{k}", k + 1
        self.names.add(name)
        return name

    def layer_name(self, node, weight) -> str:
        target = self.params.get(weight.name, node.name)
        return self.unique(target.rsplit(".", 1)[0] if "." in target else node.name)

    def emit(self, node, op, srcs: tuple[int, ...]) -> None:
        self.ops.append(op)
        self.wires.append(srcs)
        self.value[node.name] = len(self.ops)

    def alias(self, node, arg) -> None:
        self.value[node.name] = self.src(node, arg)

    def unsupported(self, node, why: str = "") -> UserInputError:
        op = str(node.target)
        return UserInputError(
            f"graph node '{node.name}' (op {op}){': ' + why if why else ''} is not "
            f"supported; supported ops: {', '.join(SUPPORTED_OPS)}"
        )

    # -- the walk
    def run(self) -> Imported:
        graph = self.ep.graph
        nodes = list(graph.nodes)
        if len(nodes) > MAX_GRAPH_NODES:
            raise UserInputError(f"graph has {len(nodes)} nodes; at most {MAX_GRAPH_NODES}")
        user_inputs = list(self.ep.graph_signature.user_inputs)
        if len(user_inputs) != 1:
            raise UserInputError(
                f"model takes {len(user_inputs)} inputs; supported: exactly one tensor input"
            )
        input_shape: tuple[int, ...] = ()
        output = 0
        for node in nodes:
            if node.op == "placeholder":
                if node.name in self.params:
                    self.tensors[node.name] = self.state[self.params[node.name]]
                elif node.name in self.consts:
                    self.tensors[node.name] = self.ep.constants[self.consts[node.name]]
                elif node.name == user_inputs[0]:
                    self.value[node.name] = 0
                    shp = _shape(node)
                    input_shape = shp[1:] if shp else ()
                else:
                    raise self.unsupported(node, "an input that is not a tensor")
                continue
            if node.op == "output":
                outs = node.args[0]
                outs = outs if isinstance(outs, (tuple, list)) else (outs,)
                if len(outs) != 1:
                    raise UserInputError(
                        f"model returns {len(outs)} outputs; supported: one tensor of logits"
                    )
                output = self.src(node, outs[0])
                continue
            if node.op != "call_function" or not hasattr(node.target, "_schema"):
                if node.op == "call_function" and getattr(node.target, "__name__", "") == "getitem":
                    if node.args[1] != 0:
                        raise self.unsupported(node, "an auxiliary output is used")
                    self.alias(node, node.args[0])
                    continue
                raise self.unsupported(node)
            self.visit(node)
        if self.n_analog == 0:
            raise UserInputError("model has no Linear or Conv2d layer: nothing to map onto tiles")
        seq.fold_layernorm_affine(self.ops, self.wires, output)
        return Imported(self.ops, self.wires, tuple(input_shape), output)

    def visit(self, node) -> None:  # noqa: C901 -- one branch per op

        op = node.target._schema.name.split("::")[-1]
        a = _bound_args(node)
        ins, outs = (
            (_shape(node.args[0]) if node.args and hasattr(node.args[0], "meta") else None),
            _shape(node),
        )
        if op in _NOOPS:
            self.alias(node, node.args[0])
            return
        if seq.visit_seq(self, node, op, a, ins, outs):
            return
        if op == "linear":
            w = self.tensor(a["weight"], node.name)
            name = self.layer_name(node, a["weight"])
            bias = a.get("bias")
            if ins is None or len(ins) < 2:
                raise self.unsupported(node, f"a linear layer on a {len(ins or ())}-d input")
            self.emit(
                node,
                AnalogLayer(
                    name,
                    self.n_analog,
                    "linear",
                    _np(w, name).T.copy(),
                    None if bias is None else _np(self.tensor(bias, name), name),
                ),
                (self.src(node, a["input"]),),
            )
            self.n_analog += 1
            return
        if op in ("conv2d", "convolution"):
            if op == "convolution" and (a["transposed"] or any(a["output_padding"])):
                raise self.unsupported(node, "a transposed convolution")
            if int(a["groups"]) != 1:
                raise self.unsupported(node, f"groups={a['groups']} (allowed: groups=1)")
            w = self.tensor(a["weight"], node.name)
            if w.ndim != 4:
                raise self.unsupported(node, f"a {w.ndim - 2}-d convolution")
            name = self.layer_name(node, a["weight"])
            k, s, d = tuple(w.shape[2:]), _pair(a["stride"]), _pair(a["dilation"])
            pad = a["padding"]
            if isinstance(pad, str):
                th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
                pad4 = (
                    (0, 0, 0, 0)
                    if pad == "valid"
                    else (th // 2, th - th // 2, tw // 2, tw - tw // 2)
                )
            else:
                ph, pw = _pair(pad)
                pad4 = (ph, ph, pw, pw)
            wn = _np(w, name)
            bias = a.get("bias")
            self.emit(
                node,
                AnalogLayer(
                    name,
                    self.n_analog,
                    "conv",
                    wn.reshape(wn.shape[0], -1).T.copy(),
                    None if bias is None else _np(self.tensor(bias, name), name),
                    ConvGeometry(int(w.shape[1]), (int(k[0]), int(k[1])), s, pad4, d),
                ),
                (self.src(node, a["input"]),),
            )
            self.n_analog += 1
            return
        if op in ("batch_norm", "_native_batch_norm_legit_no_training"):
            if op == "batch_norm" and a["training"]:
                raise self.unsupported(node, "batch norm in training mode (call model.eval())")
            name = self.unique(
                self.params.get(getattr(a["running_mean"], "name", ""), node.name).rsplit(".", 1)[0]
            )
            mean = _np(self.tensor(a["running_mean"], name), name)
            var = _np(self.tensor(a["running_var"], name), name)
            gw, gb = a.get("weight"), a.get("bias")
            gamma = _np(self.tensor(gw, name), name) if gw is not None else np.ones_like(mean)
            beta = _np(self.tensor(gb, name), name) if gb is not None else np.zeros_like(mean)
            scale = gamma / np.sqrt(var + float(a["eps"]))
            self.emit(
                node, BatchNorm(name, scale, beta - mean * scale), (self.src(node, a["input"]),)
            )
            return
        src = (
            (self.src(node, node.args[0]),) if node.args and hasattr(node.args[0], "name") else None
        )
        if op in ("relu", "relu_"):
            self.emit(node, ReLU(self.unique(node.name)), src)
        elif op in ("leaky_relu", "leaky_relu_"):
            self.emit(node, LeakyReLU(self.unique(node.name), float(a["negative_slope"])), src)
        elif op in ("hardtanh", "hardtanh_", "relu6", "clamp", "clamp_"):
            lo, hi = (
                (a.get("min_val", -1.0), a.get("max_val", 1.0))
                if op.startswith("hardtanh")
                else ((0.0, 6.0) if op == "relu6" else (a.get("min"), a.get("max")))
            )
            if any(v is not None and not isinstance(v, (int, float)) for v in (lo, hi)):
                raise self.unsupported(node, "clamp bounds that are tensors")
            self.emit(
                node,
                g.Clamp(
                    self.unique(node.name),
                    None if lo is None else float(lo),
                    None if hi is None else float(hi),
                ),
                src,
            )
        elif op in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
            k = _pair(a["kernel_size"])
            s = _pair(a["stride"]) if a.get("stride") else k
            p = _pair(a.get("padding", 0))
            if a.get("ceil_mode"):
                raise self.unsupported(node, "ceil_mode=True (allowed: False)")
            if op != "avg_pool2d" and _pair(a.get("dilation", 1)) != (1, 1):
                raise self.unsupported(node, "a dilated pool")
            if op == "avg_pool2d" and a.get("divisor_override") is not None:
                raise self.unsupported(node, "divisor_override")
            kind = "avg" if op == "avg_pool2d" else "max"
            self.emit(
                node,
                g.Pool(
                    self.unique(node.name), kind, k, s, p, bool(a.get("count_include_pad", True))
                ),
                src,
            )
        elif op in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d", "mean"):
            if ins is None or len(ins) != 4:
                raise self.unsupported(node, "pooling of a tensor that is not (B, C, H, W)")
            if op == "mean":
                dims = sorted(int(d) % 4 for d in (a.get("dim") or []))
                if dims != [2, 3]:
                    raise self.unsupported(node, f"a mean over dims {a.get('dim')} (allowed: H, W)")
            elif tuple(outs[2:]) != (1, 1):
                raise self.unsupported(node, f"an adaptive pool to {outs[2:]} (allowed: 1x1)")
            hw = (ins[2], ins[3])
            self.emit(node, g.Pool(self.unique(node.name), "avg", hw, hw), src)
            if op == "mean" and not a.get("keepdim"):
                self.ops.append(Reshape(self.unique(node.name + ".flat"), None))
                self.wires.append((len(self.ops) - 1,))
                self.value[node.name] = len(self.ops)
        elif op in ("add", "add_"):
            other = node.args[1] if len(node.args) > 1 else None
            if not hasattr(other, "name") or other.name not in self.value:
                raise self.unsupported(node, "an add of a constant (allowed: tensor + tensor)")
            if a.get("alpha", 1) != 1:
                raise self.unsupported(node, f"add with alpha={a['alpha']} (allowed: 1)")
            if _shape(node.args[0]) != _shape(other):
                raise self.unsupported(
                    node,
                    f"an add of shapes {_shape(node.args[0])} and {_shape(other)} "
                    "(allowed: equal shapes)",
                )
            self.emit(
                node,
                g.Add(self.unique(node.name)),
                (self.src(node, node.args[0]), self.src(node, other)),
            )
        elif op in _RESHAPES:
            if ins is None or outs is None or ins[0] != outs[0]:
                raise self.unsupported(node, "a reshape that changes the batch dimension")
            flat = len(outs) == 2 and outs[1] == math.prod(ins[1:])
            self.emit(node, Reshape(self.unique(node.name), None if flat else tuple(outs[1:])), src)
        else:
            raise self.unsupported(node)


def input_nodes(ep) -> list:
    """The graph's placeholder nodes of the user's inputs (not parameters or buffers)."""
    return [
        n
        for n in ep.graph.nodes
        if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs
    ]


def fixed_batch_module(ep):
    """``ep.module()``, made to take any batch size when the program was exported for one
    fixed batch ``B``: inputs go through in chunks of ``B`` (the last one zero-padded)."""
    # lazy: torch (~2 s)
    import torch

    gm = ep.module()
    inp = input_nodes(ep)
    b0 = inp[0].meta["val"].shape[0] if len(inp) == 1 else None
    if not isinstance(b0, int):
        return gm

    class FixedBatch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gm = gm

        def forward(self, x):
            outs = []
            for i in range(0, len(x), b0):
                xb = x[i : i + b0]
                pad = b0 - len(xb)
                if pad:
                    xb = torch.cat([xb, xb.new_zeros((pad, *xb.shape[1:]))])
                outs.append(self.gm(xb)[: b0 - pad])
            return torch.cat(outs)

    return FixedBatch()


def import_program(ep) -> Imported:
    """Walk an ``ExportedProgram`` into ops and wires (see the module docstring)."""
    return _Walker(ep).run()


def import_model(model, input_shape: tuple[int, ...] | None = None) -> Imported:
    """``model`` an ``ExportedProgram`` or an ``nn.Module`` (exported here on inputs of
    ``input_shape``, the per-image shape)."""
    # lazy: torch (~2 s)
    from torch.export import ExportedProgram

    if isinstance(model, ExportedProgram):
        return import_program(model)
    if input_shape is None:
        input_shape = infer_input_shape(model)
    return import_program(export_module(model, tuple(input_shape)))


def infer_input_shape(model) -> tuple[int, ...]:
    """The per-image input shape of a module whose first layer tells it: a Linear
    (in_features) or an Unflatten of dim 1 (the product of its sizes)."""
    # lazy: torch (~2 s)
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Linear):
            return (int(m.in_features),)
        if isinstance(m, nn.Unflatten) and m.dim == 1:
            return (int(math.prod(m.unflattened_size)),)
        if isinstance(m, nn.Conv2d):
            break
    raise UserInputError(
        "cannot tell the model's input shape from its first layer; give the input shape"
    )
