"""The integer schedule of a converted network: which periphery unit computes what.

:func:`plan` groups the ops of an :class:`~aimcflow.models.nn.convert.AnalogNetwork` into
steps, each one periphery operation on integers:

* ``stage``: an analog layer plus the batch norm and the activation the NMPU absorbs
  (fused when the layer's, then the batch norm's, output has that op as its only reader);
* ``add``: a residual add plus the activation after it (the residual unit's own
  activation, docs/SPEC.md "Residual add");
* ``pool``: max or average pooling (docs/SPEC.md "Pooling"); the output keeps the input's
  format and scale;
* ``reshape``: flatten / view / transpose (data movement, no arithmetic);
* transformer steps ``attention``, ``layernorm``, ``gelu`` (the special-function unit),
  ``add_const`` and ``token_mean`` (:mod:`aimcflow.models.nn.seq_steps`), each indexing
  the program's ``seqs``.

An activation, clamp or batch norm that follows none of these cannot be compiled (it has
no integer unit of its own) and is a :class:`UserInputError` naming it.

A ReLU6 / Hardtanh / clamp after a stage or an add becomes the output saturation: the
compiler puts the top of the output range at the clamp's upper bound (or lower, at the
calibration percentile), so clipping at the code maximum *is* the clamp.  Lower bounds
other than 0 (unsigned) or ``-hi`` (signed, symmetric) are refused.

:func:`walk` runs a compiled schedule on integers: stage steps are handed to the caller
(a generator: level 3 answers with the golden periphery, level 4 with the RTL); add and
pool steps call their golden models (``models/periphery/residual.py``, ``pool.py``), or,
with ``ops=True``, are handed to the caller as well (level 4 runs them on their RTL and
compares with :func:`golden_add` / :func:`golden_pool`), and so are the transformer steps
that run on a unit (level 4 answers each of their unit requests with the RTL).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn import seq_steps
from aimcflow.models.nn.analog_ops import AnalogLayer, BatchNorm, LeakyReLU, ReLU, Reshape
from aimcflow.models.nn.graphops import Add, Clamp, Pool
from aimcflow.models.nn.seqops import Permute, Select
from aimcflow.models.nn.unit_requests import AddRequest, PoolRequest, Request
from aimcflow.models.periphery import pool as pool_model
from aimcflow.models.periphery import residual as res_model


@dataclass
class Step:
    """One integer operation: reads values ``src``, writes value ``out`` (value ids of the
    network: 0 the input, ``k + 1`` the output of op ``k``)."""

    kind: str  # stage | add | pool | reshape | a seq_steps.KINDS value
    src: tuple[int, ...]
    out: int
    index: int = 0  # stage index (stage), add index (add), pool index (pool)
    ops: list = field(default_factory=list)  # the network ops this step covers
    activation: str = "none"  # stage / add: none | relu | leaky
    leaky_k: int = 0
    clamp: tuple | None = None  # (lo, hi) float of a fused clamp, None without

    @property
    def name(self) -> str:
        return self.ops[0].name


@dataclass
class AddProgram:
    """A compiled residual add: formats and coefficients for the residual golden model."""

    name: str
    a_signed: bool
    b_signed: bool
    out_signed: bool
    activation: str
    leaky_k: int
    scale_a: float
    scale_b: float
    out_scale: float
    mult_a: int
    mult_b: int
    shift: int


@dataclass
class PoolProgram:
    """A compiled pooling: window, stride, padding, format and the average's reciprocal."""

    name: str
    kind: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    signed: bool
    scale: float
    mult: int
    shift: int


def _activation_of(op) -> tuple[str, int, tuple | None]:
    """(activation, leaky_k, clamp) of an activation op the periphery can apply."""

    if isinstance(op, ReLU):
        return "relu", 0, None
    if isinstance(op, LeakyReLU):
        k = -np.log2(op.slope) if op.slope > 0 else np.inf
        if not (np.isfinite(k) and float(k).is_integer() and 0 <= k <= 31):
            raise UserInputError(
                f"layer {op.name} (LeakyReLU): slope {op.slope} is not "
                "supported by the NMPU; allowed: 2**-k, k = 0..31"
            )
        return "leaky", int(k), None
    assert isinstance(op, Clamp)
    lo, hi = op.lo, op.hi
    if hi is None or hi <= 0 or lo not in (0.0, -hi):
        raise UserInputError(
            f"layer {op.name} (clamp {lo}, {hi}): the periphery clamps as its output "
            "saturation; allowed: lower bound 0 (ReLU6) or -upper (Hardtanh), upper > 0"
        )
    return ("relu" if lo == 0 else "none"), 0, (lo, hi)


def plan(net) -> list[Step]:
    """Group ``net``'s ops into integer steps (see the module docstring)."""

    n = len(net.ops)
    readers: dict[int, list[int]] = {}
    for k in range(n):
        for v in net.wire(k):
            readers.setdefault(v, []).append(k)

    def only_reader(v: int):
        r = readers.get(v, [])
        return r[0] if len(r) == 1 and v != net.output_value else None

    fused: set[int] = set()
    steps: list[Step] = []
    counts = {"stage": 0, "add": 0, "pool": 0, "reshape": 0, "seq": 0}
    for k, op in enumerate(net.ops):
        if k in fused:
            continue
        src = net.wire(k)
        if isinstance(op, (AnalogLayer, Add)):
            kind = "stage" if isinstance(op, AnalogLayer) else "add"
            st = Step(kind, src, k + 1, counts[kind], [op])
            j = only_reader(st.out)
            if kind == "stage" and j is not None and isinstance(net.ops[j], BatchNorm):
                st.ops.append(net.ops[j])
                fused.add(j)
                st.out = j + 1
                j = only_reader(st.out)
            if j is not None and isinstance(net.ops[j], (ReLU, LeakyReLU, Clamp)):
                st.activation, st.leaky_k, st.clamp = _activation_of(net.ops[j])
                st.ops.append(net.ops[j])
                fused.add(j)
                st.out = j + 1
        elif isinstance(op, Pool):
            st = Step("pool", src, k + 1, counts["pool"], [op])
        elif isinstance(op, (Reshape, Permute, Select)):
            st = Step("reshape", src, k + 1, counts["reshape"], [op])
        elif type(op) in seq_steps.KINDS:
            st = Step(seq_steps.KINDS[type(op)], src, k + 1, counts["seq"], [op])
            counts["seq"] += 1
            steps.append(st)
            continue
        else:
            where = (
                "a Linear/Conv2d"
                if isinstance(op, BatchNorm)
                else "a Linear/Conv2d (+BatchNorm) or a residual add"
            )
            raise UserInputError(
                f"layer {getattr(op, 'name', '?')} ({type(op).__name__}): the chip applies it "
                f"only directly after {where}"
            )
        counts[st.kind] += 1
        steps.append(st)
    return steps


def walk(
    prog, h0: np.ndarray, *, ops: bool = False, sfu: str = "int"
) -> Generator[tuple[Any, Any], np.ndarray, np.ndarray]:
    """Run ``prog``'s schedule on the integer input ``h0``: yields ``(stage index, integer
    input)`` for each stage and expects its integer output back (``send``); add and pool
    steps run here on their golden models (:func:`golden_add`, :func:`golden_pool`),
    reshapes as data movement, transformer steps on their units' golden models (``sfu="float"``:
    the SFU's ops in float, :func:`~aimcflow.models.nn.seq_steps.run_step`).  With ``ops=True`` add and pool steps and the
    transformer steps that run on a unit (:data:`~aimcflow.models.nn.seq_steps.UNIT_KINDS`:
    attention, layernorm, gelu, add_const, token_mean) are handed to the caller too, and
    every request is ``(step, inputs)`` (a :class:`Step` and its list of integer inputs):
    level 4 answers them with their RTL (a transformer step through
    :func:`~aimcflow.models.nn.seq_steps.step_requests`); ``concat_const`` and reshapes
    stay here (data movement).  Returns the output value's integers."""

    last_use: dict[int, int] = {}
    for i, s in enumerate(prog.steps):
        for v in s.src:
            last_use[v] = i
    vals: dict[int, Any] = {0: h0}
    for i, s in enumerate(prog.steps):
        ins = [vals[v] for v in s.src]
        if s.kind == "reshape":
            y = s.ops[0](ins[0])
        elif s.kind in seq_steps.KINDS.values() and not (ops and s.kind in seq_steps.UNIT_KINDS):
            y = seq_steps.run_step(prog.seqs[s.index], ins, prog.cfg, sfu)
        elif ops:
            y = yield s, ins
        elif s.kind == "stage":
            y = yield s.index, ins[0]
        elif s.kind == "add":
            y = golden_add(prog, s.index, ins[0], ins[1])
        else:
            y = golden_pool(prog, s.index, ins[0])
        vals[s.out] = y
        for v in s.src:
            if last_use.get(v) == i and v != prog.output:
                vals.pop(v, None)
    return vals[prog.output]


def add_args(prog, index: int) -> tuple[res_model.ResidualParams, res_model.ResidualCoeffs]:
    """The residual golden model's parameters and coefficients of compiled add ``index``."""
    ap = prog.adds[index]
    return add_params(prog.cfg, ap), res_model.ResidualCoeffs(ap.mult_a, ap.mult_b, ap.shift)


def golden_add(prog, index: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Compiled add ``index`` on branch integers ``a``, ``b`` (same shape): the residual
    golden model (docs/SPEC.md "Residual add")."""
    return res_model.residual_add(a, b, *add_args(prog, index))


def pool_args(prog, index: int) -> tuple[pool_model.PoolParams, pool_model.PoolCoeffs]:
    """The pooling golden model's parameters and coefficients of compiled pool ``index``
    (its kind and geometry are in ``prog.pools[index]``)."""
    pp = prog.pools[index]
    params = pool_model.PoolParams.from_config(prog.cfg, signed=pp.signed)
    return params, pool_model.PoolCoeffs(pp.mult, pp.shift)


def golden_pool(prog, index: int, x: np.ndarray) -> np.ndarray:
    """Compiled pool ``index`` on maps ``x`` (V,C,H,W): the pooling golden model
    (docs/SPEC.md "Pooling")."""
    pp = prog.pools[index]
    params, coeffs = pool_args(prog, index)
    return pool_model.pool(x, pp.kind, pp.kernel, pp.stride, params, coeffs, pp.padding)


def op_requests(prog, step: Step, ins: list) -> Generator[Request, np.ndarray, np.ndarray]:
    """The unit requests of an op step that :func:`walk` hands out with ``ops=True``
    (:mod:`aimcflow.models.nn.unit_requests`): one residual add of the branches' rows (one
    per image) for an add, one pooling for a pool, a transformer step's from
    :func:`~aimcflow.models.nn.seq_steps.step_requests`; sends each request's integer
    output back in, returns the step's output (as :func:`golden_add`, :func:`golden_pool`
    or :func:`~aimcflow.models.nn.seq_steps.run_step` would)."""
    if step.kind == "add":
        a, b = (np.asarray(v, np.int64) for v in ins)
        y = yield AddRequest(
            a.reshape(len(a), -1), b.reshape(len(b), -1), *add_args(prog, step.index)
        )
        return y.reshape(a.shape)
    if step.kind == "pool":
        pp = prog.pools[step.index]
        x = np.asarray(ins[0], np.int64)
        params, coeffs = pool_args(prog, step.index)
        return (yield PoolRequest(x, pp.kind, pp.kernel, pp.stride, pp.padding, params, coeffs))
    return (yield from seq_steps.step_requests(prog.seqs[step.index], ins, prog.cfg))


def add_params(cfg, ap: AddProgram):
    """The residual golden model's parameters of one compiled add."""
    return res_model.ResidualParams.from_config(
        cfg,
        a_signed=ap.a_signed,
        b_signed=ap.b_signed,
        out_signed=ap.out_signed,
        activation=ap.activation,
        leaky_k=ap.leaky_k,
    )


def run_walk(prog, h0: np.ndarray, stage, sfu: str = "int") -> np.ndarray:
    """:func:`walk` with a synchronous ``stage(i, h) -> y``."""
    gen = walk(prog, h0, sfu=sfu)
    try:
        req = next(gen)
        while True:
            req = gen.send(stage(*req))
    except StopIteration as stop:
        return stop.value


def placement(prog, stage_where: str, where: dict[str, str] | None = None) -> list[dict]:
    """Per step of ``prog``: its name, kind and where it runs; stages run on
    ``stage_where``; add and pool steps on their golden models (Python) unless ``where``
    names another place for the kind (a level-4 run that has their RTL in the loop);
    reshapes are data movement."""
    places = {
        "add": "golden model (Python, models/periphery/residual.py)",
        "pool": "golden model (Python, models/periphery/pool.py)",
        "reshape": "data movement (no arithmetic)",
        **{k: "SFU golden model (Python, models/periphery/sfu.py)" for k in seq_steps.SFU_KINDS},
        "add_const": "golden model (Python, models/periphery/residual.py)",
        "token_mean": "golden model (Python, models/periphery/pool.py)",
        "concat_const": "data movement (a constant joins the activation)",
        **(where or {}),
    }
    return [
        {"op": s.name, "kind": s.kind, "ran": stage_where if s.kind == "stage" else places[s.kind]}
        for s in prog.steps
    ]
