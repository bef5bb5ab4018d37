"""The importer's transformer ops (:mod:`aimcflow.models.nn.importer` walks the graph and
hands these nodes here):

=============================================  ==========================================
aten op                                        op (:mod:`aimcflow.models.nn.seqops`)
=============================================  ==========================================
scaled_dot_product_attention (no mask,         Attention (QK^T, softmax, AV on the SFU)
dropout 0, not causal)
matmul / bmm (q, k^T) [* or / a scalar],       Attention (the explicit form: fused when
softmax over the last axis, matmul / bmm (p,   the scores' and the probabilities' only
v)                                             reader is the next op of the pattern)
layer_norm (over the last axis)                LayerNorm (gamma/beta folded into the
                                               linear layers that read it)
gelu (approximate='none')                      GELU
transpose / permute (batch axis kept)          Permute (data movement)
add (activation + parameter), the positional   AddConst
embedding
mean over the token axis (B, L, D) -> (B, D)   TokenMean (mean pooling)
expand of a parameter, cat with it (the class  ConcatConst (the constant joins the
token), select (x[:, 0])                       activation's format), Select
sym_size                                       nothing (a shape, not an activation)
=============================================  ==========================================
"""

from __future__ import annotations

import math

import numpy as np
from aimcflow.models.nn import seqops as so
from aimcflow.models.nn.analog_ops import AnalogLayer, Reshape

SEQ_OPS = (
    "scaled_dot_product_attention (no mask, no dropout, not causal)",
    "matmul-softmax-matmul attention (q k^T [* or / scalar], softmax(-1), p v)",
    "layer_norm (last axis)",
    "gelu (erf)",
    "transpose / permute (batch kept)",
    "add of a parameter (positional embedding)",
    "mean over tokens",
    "class token (expand of a parameter, cat, select)",
)
_MATMULS = ("matmul", "bmm")
_SCALES = ("mul", "div")


def _scalar(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _perm_of_transpose(ndim: int, d0: int, d1: int) -> tuple[int, ...]:
    p = list(range(ndim))
    p[d0 % ndim], p[d1 % ndim] = p[d1 % ndim], p[d0 % ndim]
    return tuple(p)


def _only_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _op_name(node) -> str:
    t = getattr(node, "target", None)
    return t._schema.name.split("::")[-1] if hasattr(t, "_schema") else ""


def visit_seq(w, node, op: str, a: dict, ins, outs) -> bool:
    """Emit the op of ``node`` into walker ``w`` if it is a transformer op; False if not
    one of them (the importer then reports it)."""
    if op == "sym_size":
        return True
    if op == "expand" and getattr(node.args[0], "name", "") in w.tensors:
        w.tensors[node.name] = w.tensors[node.args[0].name]  # a constant, not an activation
        return True
    if op == "cat":
        return _cat_const(w, node, a)
    if op == "select":
        if int(a["dim"]) % len(ins) == 0:
            raise w.unsupported(node, "a select on the batch axis")
        sel = so.Select(w.unique(node.name), int(a["dim"]) % len(ins), int(a["index"]))
        w.emit(node, sel, (w.src(node, node.args[0]),))
        return True
    if op in ("transpose", "permute"):
        nd = len(ins or ())
        perm = (
            _perm_of_transpose(nd, int(a["dim0"]), int(a["dim1"]))
            if op == "transpose"
            else tuple(int(d) % nd for d in a["dims"])
        )
        if not perm or perm[0] != 0:
            raise w.unsupported(node, "a transpose that moves the batch axis")
        w.emit(node, so.Permute(w.unique(node.name), perm), (w.src(node, node.args[0]),))
        return True
    if op == "layer_norm":
        shape = [int(s) for s in a["normalized_shape"]]
        if ins is None or len(shape) != 1 or shape[0] != ins[-1]:
            raise w.unsupported(node, f"a layer norm over {shape} (allowed: the last axis)")
        name = w.unique(node.name)
        gw, gb = a.get("weight"), a.get("bias")
        gamma = None if gw is None else w.tensor(gw, name).detach().double().numpy().copy()
        beta = None if gb is None else w.tensor(gb, name).detach().double().numpy().copy()
        w.emit(node, so.LayerNorm(name, float(a["eps"]), gamma, beta), (w.src(node, a["input"]),))
        return True
    if op == "gelu":
        if a.get("approximate", "none") != "none":
            raise w.unsupported(node, f"gelu approximate='{a['approximate']}' (allowed: 'none')")
        w.emit(node, so.GELU(w.unique(node.name)), (w.src(node, node.args[0]),))
        return True
    if op == "scaled_dot_product_attention":
        if a.get("attn_mask") is not None or a.get("is_causal"):
            raise w.unsupported(node, "attention with a mask (allowed: none, not causal)")
        if float(a.get("dropout_p", 0.0)) != 0.0 or a.get("enable_gqa"):
            raise w.unsupported(node, "attention with dropout or grouped queries")
        q, k, v = (a["query"], a["key"], a["value"])
        if len(ins or ()) != 4:
            raise w.unsupported(node, "attention on tensors that are not (B, heads, L, d)")
        scale = a.get("scale")
        scale = 1.0 / math.sqrt(ins[-1]) if scale is None else float(scale)
        srcs = (w.src(node, q), w.src(node, k), w.src(node, v))
        w.emit(node, so.Attention(w.unique(node.name), scale), srcs)
        return True
    if op in _MATMULS:
        return _explicit_attention(w, node)
    if op in ("softmax", "_softmax", "mul", "div") and node.name in w.pending:
        return True  # inside an explicit attention pattern: emitted at its matmul with v
    if op == "mean" and ins is not None and len(ins) == 3:
        dims = sorted(int(d) % 3 for d in (a.get("dim") or []))
        if dims != [1] or a.get("keepdim"):
            raise w.unsupported(
                node, f"a mean over dims {a.get('dim')} of (B, L, D) (allowed: dim 1, tokens)"
            )
        w.emit(node, so.TokenMean(w.unique(node.name)), (w.src(node, node.args[0]),))
        return True
    if (
        op in ("add", "add_")
        and len(node.args) > 1
        and getattr(node.args[1], "name", "") in (w.tensors)
    ):
        return _add_const(w, node, ins, a)
    return False


def _cat_const(w, node, a) -> bool:
    """``cat([constant, activation])`` or ``cat([activation, constant])`` (class token)."""
    parts = list(a["tensors"])
    is_const = [getattr(t, "name", "") in w.tensors for t in parts]
    if len(parts) != 2 or sum(is_const) != 1:
        raise w.unsupported(node, "a cat that is not of one constant and one activation")
    nd = len(node.meta["val"].shape)
    axis = int(a.get("dim", 0)) % nd
    if axis == 0:
        raise w.unsupported(node, "a cat along the batch axis")
    name = w.unique(node.name)
    ci = is_const.index(True)
    c = w.tensor(parts[ci], name).detach().double().numpy()
    if c.ndim == nd:
        c = c[0]
    act = parts[1 - ci]
    w.emit(node, so.ConcatConst(name, c.copy(), axis, ci == 0), (w.src(node, act),))
    return True


def _add_const(w, node, ins, a) -> bool:
    name = w.unique(node.name)
    c = w.tensor(node.args[1], name).detach().double().numpy()
    if a.get("alpha", 1) != 1:
        raise w.unsupported(node, f"add with alpha={a['alpha']} (allowed: 1)")
    shape = tuple(ins[1:]) if ins else ()
    if c.ndim == len(shape) + 1 and c.shape[0] == 1:
        c = c[0]
    try:
        c = np.broadcast_to(c, shape).copy()
    except ValueError:
        raise w.unsupported(
            node, f"an add of a constant of shape {c.shape} to activations {shape}"
        ) from None
    w.emit(node, so.AddConst(name, c), (w.src(node, node.args[0]),))
    return True


def _explicit_attention(w, node) -> bool:
    """``matmul(q, k^T)`` [``* s`` or ``/ s``] ``softmax(-1)`` ``matmul(p, v)``: checked at
    the first matmul (its nodes are remembered in ``w.pending``), emitted as one Attention
    at the second (v may be computed after q k^T); a matmul of two activations anywhere
    else is refused."""
    if node.name in w.pending:
        q, k, scale = w.pending[node.name]
        srcs = (w.src(node, q), w.src(node, k), w.src(node, node.args[1]))
        w.emit(node, so.Attention(w.unique(node.name), scale), srcs)
        return True
    chain, scale, cur = [node], 1.0, _only_user(node)
    while cur is not None and _op_name(cur) in _SCALES:
        s = _scalar(cur.args[1]) if len(cur.args) > 1 else None
        if s is None or cur.args[0] is not chain[-1]:
            break
        scale = scale * s if _op_name(cur) == "mul" else scale / s
        chain.append(cur)
        cur = _only_user(cur)
    sm_ok = cur is not None and _op_name(cur) in ("softmax", "_softmax")
    if sm_ok:
        nd = len(cur.meta["val"].shape)
        if int(cur.args[1]) % nd != nd - 1:
            raise w.unsupported(cur, f"a softmax over axis {cur.args[1]} (allowed: the last)")
    av = _only_user(cur) if sm_ok else None
    if av is None or _op_name(av) not in _MATMULS or av.args[0] is not cur:
        raise w.unsupported(
            node,
            "a product of two activations outside attention (allowed: matmul(q, k^T), "
            "optional scalar scale, softmax over the last axis, matmul(p, v))",
        )
    kt = node.args[1]
    nd = len(kt.meta["val"].shape) if hasattr(kt, "meta") and "val" in kt.meta else 0
    if _op_name(kt) != "transpose" or {int(d) % nd for d in kt.args[1:3]} != {nd - 2, nd - 1}:
        raise w.unsupported(node, "q @ k^T where k^T is not a transpose of the last two axes")
    for n in chain[1:] + [cur]:
        w.pending[n.name] = None
    w.pending[av.name] = (node.args[0], kt.args[0], scale)
    return True


def _linear_readers(ops: list, wires: list, v: int, width: int) -> list[int] | None:
    """The linear layers reading value ``v`` directly or through reshapes that keep the
    last axis (``width``); None if any other op reads it."""
    out: list[int] = []
    for j, ws in enumerate(wires):
        if v not in ws:
            continue
        op = ops[j]
        if isinstance(op, AnalogLayer) and op.kind == "linear":
            out.append(j)
        elif isinstance(op, Reshape) and op.shape is not None and op.shape[-1] == width:
            more = _linear_readers(ops, wires, j + 1, width)
            if more is None:
                return None
            out += more
        else:
            return None
    return out


def fold_layernorm_affine(ops: list, wires: list, output: int) -> None:
    """Fold each LayerNorm's gamma and beta into the linear layers that read it (every
    reader must be one, possibly through reshapes that keep the last axis):
    ``W' = diag(gamma) W``, ``b' = b + beta W``.  The integer SFU normalizes only; the
    tiles then hold the scaled weights.  Exact in float."""
    for k, op in enumerate(ops):
        if not isinstance(op, so.LayerNorm) or (op.gamma is None and op.beta is None):
            continue
        width = len(op.gamma if op.gamma is not None else op.beta)
        readers = _linear_readers(ops, wires, k + 1, width)
        if output == k + 1 or not readers:
            continue  # kept: level 3 refuses it (compile), level 2 applies it
        gamma = op.gamma if op.gamma is not None else np.ones(width)
        beta = op.beta if op.beta is not None else np.zeros(width)
        for j in readers:
            lay = ops[j]
            b = lay.bias if lay.bias is not None else np.zeros(lay.weight.shape[1])
            lay.bias = b + beta @ lay.weight
            lay.weight = gamma[:, None] * lay.weight
        op.gamma = op.beta = None
