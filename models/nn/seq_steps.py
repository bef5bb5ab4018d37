"""Integer steps of a transformer graph (level 3): compile and run.

Each op of :mod:`aimcflow.models.nn.seqops` becomes one step of the integer schedule
(:mod:`aimcflow.models.nn.schedule`) whose numerics are a golden model's:

* ``attention``: per image and head, the SFU's ``matmul`` (``q k^T``, wide output with
  LSB ``2**-sm_frac``: ``mult / 2**shift = s_q s_k scale 2**sm_frac``), ``softmax``
  (probabilities with LSB ``2**-(out_bits-1)``) and ``matmul`` (``p v``, narrow output:
  ``mult / 2**shift = 2**-(out_bits-1) s_v / s_out``) -- docs/SPEC.md "Special-function
  unit";
* ``layernorm``: the SFU's ``layernorm`` over the last axis (``mult / 2**shift =
  2**-ln_frac / s_out``); gamma and beta are folded into the next linear layers by the
  importer, a LayerNorm whose affine could not be folded is refused;
* ``gelu``: the SFU's ``gelu`` (input and output LSB ``2**-gelu_frac``; the stage before
  it is compiled to that output scale);
* ``add_const``: the residual unit's add with the constant (a positional embedding)
  quantized as its second operand;
* ``token_mean``: the pooling unit's average over the token axis;
* ``concat_const``: a constant (class token) quantized to the activation's own format
  (round half up, saturated) and joined to it (data movement).

Output scales come from the float outputs on the calibration images (the percentile rule
of the compiler).  ``sfu="float"`` runs attention, layernorm and GELU in float64 on the
dequantized integer inputs and quantizes the result to the same output format: the gap to
``sfu="int"`` is what the integer approximations cost.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn import seqops as so
from aimcflow.models.nn.analog_ops import AnalogLayer
from aimcflow.models.nn.unit_requests import AddRequest, PoolRequest, Request, SfuRequest, answer
from aimcflow.models.periphery import pool as pool_model
from aimcflow.models.periphery import residual as res_model
from aimcflow.models.periphery import sfu as sfu_model
from aimcflow.models.periphery.fixedpoint import quantize_input

KINDS = {
    so.Attention: "attention",
    so.LayerNorm: "layernorm",
    so.GELU: "gelu",
    so.AddConst: "add_const",
    so.TokenMean: "token_mean",
    so.ConcatConst: "concat_const",
}
SFU_KINDS = ("attention", "layernorm", "gelu")
UNIT_KINDS = (*SFU_KINDS, "add_const", "token_mean")
"""The steps made of unit requests (:func:`step_requests`); ``concat_const`` is data movement."""
SFU_MODES = ("int", "float")


@dataclass
class SeqProgram:
    """A compiled transformer step: input/output formats and integer coefficients."""

    name: str
    kind: str
    in_scales: list
    in_signed: list
    out_scale: float
    out_signed: bool
    coeffs: dict = field(default_factory=dict)  # name -> int
    scale: float = 1.0  # attention: the float scale of q k^T
    eps: float = 0.0  # layernorm: the model's eps (float SFU)
    const: np.ndarray | None = field(default=None, repr=False)  # add_const: its integers

    def meta(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "const"}
        if self.const is not None:
            d["const_shape"] = list(self.const.shape)
        return d


def _code_max(bits: int, signed: bool) -> int:
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def _top_scale(y: np.ndarray, last: bool, percentile: float, bits: int) -> float:
    flat = np.abs(y).reshape(-1)
    top = float(np.max(flat)) if last else float(np.percentile(flat, percentile))
    return (top if top > 0 else 1.0) / _code_max(bits, True)


def sfu_params(cfg) -> sfu_model.SfuParams:
    """The SFU's parameters; its operand and output widths must be the NMPU's output width
    (the SFU reads and writes the activations the tiles' periphery produces)."""
    p = sfu_model.SfuParams.from_config(cfg)
    n = cfg.nmpu.out_bits
    if not (p.in_bits == p.out_bits == n):
        raise UserInputError(
            f"sfu.in_bits = {p.in_bits}, sfu.out_bits = {p.out_bits}, nmpu.out_bits = {n}: "
            "a transformer needs all three equal (the SFU reads and writes NMPU activations)"
        )
    return p


def check_fits(net, input_shape: tuple[int, ...], cfg) -> None:
    """Refuse, before any work, a network whose attention or layernorm shapes the SFU
    cannot hold, or whose SFU widths do not match the NMPU's (one zero image is run
    through the float network to learn every op's input shape)."""
    ops = [op for op in net.ops if type(op) in KINDS]
    if not ops:
        return
    p = sfu_params(cfg)
    shapes: dict[int, tuple] = {}

    def step(op, *h):
        shapes[id(op)] = tuple(h[0].shape[1:])
        return op.forward_ideal(h[0]) if isinstance(op, AnalogLayer) else op(*h)

    net.run(np.zeros((1, *input_shape)), step)
    for op in ops:
        shp = shapes[id(op)]
        if isinstance(op, so.Attention) and (shp[-2] > p.seq_max or shp[-1] > p.width_max):
            raise UserInputError(
                f"attention {op.name}: sequence length {shp[-2]}, head width {shp[-1]}; the "
                f"SFU holds sequences up to sfu.seq_max = {p.seq_max} and head widths up to "
                f"sfu.width_max = {p.width_max}"
            )
        if isinstance(op, so.LayerNorm) and shp[-1] > p.width_max:
            raise UserInputError(
                f"layer norm {op.name}: width {shp[-1]}; the SFU holds rows up to "
                f"sfu.width_max = {p.width_max}"
            )


# ---------------------------------------------------------------------------- compile
def compile_step(kind: str, op, ins: list, fmts: list, cfg, last: bool, percentile: float):
    """``ins``: the float values the integer inputs stand for on the calibration images,
    ``fmts``: their (scale, signed).  Returns (program, integer outputs, (scale, signed))."""
    bits = cfg.nmpu.out_bits
    scales, signs = [f[0] for f in fmts], [f[1] for f in fmts]
    sp = SeqProgram(op.name, kind, scales, signs, 1.0, True)
    if kind in SFU_KINDS:
        p = sfu_params(cfg)
    if kind == "attention":
        if not all(signs):
            raise UserInputError(
                f"attention {op.name}: q, k and v must be signed activations (linear layers "
                "without ReLU); the SFU's matmul takes signed operands"
            )
        sp.scale = op.scale
        sq, sk, sv = scales
        y = op(*ins)
        sp.out_scale = _top_scale(y, last, percentile, bits)
        ms, ss = sfu_model.requant_coeffs(sq * sk * op.scale * 2.0**p.sm_frac, p)
        mo, sh = sfu_model.requant_coeffs(2.0 ** -(p.out_bits - 1) * sv / sp.out_scale, p)
        sp.coeffs = {"mult_s": ms, "shift_s": ss, "mult_o": mo, "shift_o": sh}
    elif kind == "layernorm":
        if op.gamma is not None or op.beta is not None:
            raise UserInputError(
                f"layer norm {op.name}: its gamma/beta could not be folded into the layers "
                "that read it (allowed: every reader a linear layer); the SFU only normalizes"
            )
        sp.eps = op.eps
        sp.out_scale = _top_scale(op(ins[0]), last, percentile, bits)
        m, s = sfu_model.requant_coeffs(2.0**-p.ln_frac / sp.out_scale, p)
        sp.coeffs = {"mult": m, "shift": s}
    elif kind == "gelu":
        lsb = 2.0**-p.gelu_frac
        if not signs[0] or scales[0] != lsb:
            raise UserInputError(
                f"gelu {op.name}: its input must come straight from a linear layer (compiled "
                f"to the SFU's GELU format, signed LSB 2**-sfu.gelu_frac)"
            )
        sp.out_scale = lsb
    elif kind == "add_const":
        c = op.const
        sc = float(np.max(np.abs(c))) / _code_max(bits, True) or 1.0
        sp.const = quantize_input(c, sc, bits, True)
        sp.out_scale = _top_scale(op(ins[0]), last, percentile, bits)
        params = _add_params(cfg, signs[0])
        rc = res_model.residual_coeffs(scales[0], sc, sp.out_scale, params)
        sp.coeffs = {"mult_a": rc.mult_a, "mult_b": rc.mult_b, "shift": rc.shift}
    elif kind == "concat_const":
        sp.out_scale, sp.out_signed = scales[0], signs[0]
        sp.const = quantize_input(op.const, scales[0], bits, signs[0])
        sp.coeffs = {"axis": op.axis, "front": int(op.front)}
    else:  # token_mean: the pooling unit's average, same format out
        sp.out_scale, sp.out_signed = scales[0], signs[0]
        params = pool_model.PoolParams.from_config(cfg, signed=signs[0])
        c = pool_model.avg_coeffs(int(ins[0].shape[1]), params)
        sp.coeffs = {"mult": c.mult, "shift": c.shift}
    ints = [
        quantize_input(v, s, bits, g) for v, s, g in zip(ins, scales, sp.in_signed, strict=True)
    ]
    y_int = run_step(sp, ints, cfg, "int")
    return sp, y_int, (sp.out_scale, sp.out_signed)


def _add_params(cfg, a_signed: bool):
    return res_model.ResidualParams.from_config(
        cfg, a_signed=a_signed, b_signed=True, out_signed=True, activation="none", leaky_k=0
    )


# -------------------------------------------------------------------------------- run
def _job(jobs, step: str, req: SfuRequest, y: np.ndarray) -> None:
    """Record one SFU job (what the SFU's load and input streams carry, and its answer)."""
    if jobs is not None:
        jobs.append(
            {
                "step": step,
                "op": req.op,
                "x": req.x,
                "b": req.b,
                "mult": int(req.mult),
                "shift": int(req.shift),
                "wide": bool(req.wide),
                "y": y,
            }
        )


def step_requests(sp: SeqProgram, ins: list, cfg) -> Generator[Request, np.ndarray, np.ndarray]:
    """One compiled step on integer inputs as the unit jobs it is made of: yields each
    :mod:`~aimcflow.models.nn.unit_requests` request and composes the step from the
    integer outputs sent back (attention's softmax reads the scores that came back, its
    second matmul the probabilities); returns the step's integer output.

    * attention (q, k, v (..., L, d)): per image and head a ``matmul`` ``q k^T`` (wide),
      one ``softmax`` over every score row, per image and head a ``matmul`` ``p v``;
    * layernorm, gelu: one SFU job over every row (last axis);
    * add_const (B, ...): one residual add of the rows (one per image) and the constant,
      the same for every image;
    * token_mean (B, L, D): one average pooling of (B, D, L, 1) maps over the whole L;
    * concat_const: no request (data movement)."""
    c, x0 = sp.coeffs, np.asarray(ins[0], np.int64)
    if sp.kind in SFU_KINDS:
        p = sfu_model.SfuParams.from_config(cfg)
    if sp.kind == "attention":
        q, k, v = (np.asarray(x, np.int64) for x in ins)
        lead, L = q.shape[:-2], q.shape[-2]
        q, k, v = (x.reshape(-1, *x.shape[-2:]) for x in (q, k, v))
        heads = len(q) // max(1, len(x0))  # (image, head) pairs in image order
        s = []
        for i in range(len(q)):  # one matmul job per image and head (2-D operands)
            req = SfuRequest(
                "matmul", q[i], p, k[i].T, c["mult_s"], c["shift_s"], True, image=i // heads
            )
            s.append((yield req))
        s = np.stack(s)
        pr = (yield SfuRequest("softmax", s.reshape(-1, L), p)).reshape(s.shape)
        o = []
        for i in range(len(q)):
            req = SfuRequest("matmul", pr[i], p, v[i], c["mult_o"], c["shift_o"], image=i // heads)
            o.append((yield req))
        return np.stack(o).reshape(*lead, L, v.shape[-1])
    if sp.kind in ("layernorm", "gelu"):
        rows = x0.reshape(-1, x0.shape[-1])
        req = SfuRequest(sp.kind, rows, p, None, c.get("mult", 1), c.get("shift", 0))
        return (yield req).reshape(x0.shape)
    if sp.kind == "add_const":
        a = x0.reshape(len(x0), -1)
        b = np.broadcast_to(sp.const.reshape(1, -1), a.shape)
        coeffs = res_model.ResidualCoeffs(c["mult_a"], c["mult_b"], c["shift"])
        y = yield AddRequest(a, b, _add_params(cfg, sp.in_signed[0]), coeffs)
        return y.reshape(x0.shape)
    if sp.kind == "concat_const":
        op = so.ConcatConst(sp.name, sp.const, sp.coeffs["axis"], bool(sp.coeffs["front"]))
        return op(x0)
    # token_mean: (B, L, D) as (B, D, L, 1) maps, one window over all L tokens
    params = pool_model.PoolParams.from_config(cfg, signed=sp.in_signed[0])
    L = x0.shape[1]
    req = PoolRequest(
        np.ascontiguousarray(x0.transpose(0, 2, 1)[..., None]),
        "avg",
        (L, 1),
        (L, 1),
        (0, 0),
        params,
        pool_model.PoolCoeffs(c["mult"], c["shift"]),
    )
    return (yield req).reshape(len(x0), -1)


def run_step(sp: SeqProgram, ins: list, cfg, sfu: str = "int", jobs=None) -> np.ndarray:
    """One compiled step on integer inputs -> integer outputs; ``sfu``: "int" (every
    request of :func:`step_requests` answered by its golden model) or "float" (attention,
    layernorm and GELU in float, see the module docstring).  ``jobs`` (a list): every SFU
    request is appended to it as one job (op, operands, registers, output)."""
    if sp.kind in SFU_KINDS and sfu == "float":
        xs = [np.asarray(x, np.float64) * s for x, s in zip(ins, sp.in_scales, strict=True)]
        if sp.kind == "attention":
            y = so.Attention(sp.name, sp.scale)(*xs)
        elif sp.kind == "layernorm":
            y = so.LayerNorm(sp.name, sp.eps).normalize(xs[0])
        else:
            y = so.GELU(sp.name)(xs[0])
        return quantize_input(y, sp.out_scale, cfg.nmpu.out_bits, True)
    gen = step_requests(sp, ins, cfg)
    try:
        req = next(gen)
        while True:
            y = answer(req)
            if isinstance(req, SfuRequest):
                _job(jobs, sp.name, req, y)
            req = gen.send(y)
    except StopIteration as stop:
        return stop.value
