"""cocotb bench of the residual-add unit (``rtl/residual.py``) against its golden model
(``models/periphery/residual.py``), and its Python door.

Python side (pytest, ``aimcflow vectors residual``):

* :func:`build`, :func:`bench_params`; :func:`input_beats` / :func:`decode_outputs` /
  :func:`load_beats` map golden arrays onto the stream protocol of ``rtl/residual.py``
  (vector ``v`` of ``N`` elements = ``ceil(N / lanes)`` beats, ``last`` on its final one).

cocotb side:

* ``random_jobs``: constrained-random jobs (N, branch and output formats, activation,
  coefficients calibrated from random scales or raw with corners) until ``vectors``
  vectors were checked; random valid gaps on ``i``/``load``, random backpressure on ``o``;
  one job cut by a reset mid-stream (prefix checked, then rerun); with ``measure`` a
  full-rate job measures cycles against ``beats + LATENCY``.
* ``file_vectors``: one job from an ``.npz`` (``aimcflow vectors residual --sim verilator``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.benches.mgmt import segment_beats
from aimcflow.cosim.benches.nmpu import _rand_signed
from aimcflow.cosim.benches.stream_unit import UnitTB, random_run
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import Scoreboard
from aimcflow.models.periphery import residual as golden
from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
from aimcflow.rtl import residual as rtl_residual
from aimcflow.rtl.residual import LATENCY, ResidualAdd, ResidualRtlParams

MODULE = "aimcflow.cosim.benches.residual"
TOPLEVEL = "aimcflow_residual"


def build(rtl: ResidualRtlParams, toplevel: str = TOPLEVEL, sim: str = "verilator"):
    """The cached Verilator (or Icarus) build of the unit with these parameters."""
    return build_component(ResidualAdd(rtl), toplevel, name=f"residual-l{rtl.lanes}", sim=sim)


def bench_params(rtl: ResidualRtlParams, gp: golden.ResidualParams, **kw: Any) -> dict[str, Any]:
    """JSON parameters of a bench run: both parameter sets plus run options."""
    return {"rtl": dataclasses.asdict(rtl), "golden": dataclasses.asdict(gp), **kw}


def _params(p: dict[str, Any]) -> tuple[ResidualRtlParams, golden.ResidualParams]:
    return ResidualRtlParams(**p["rtl"]), golden.ResidualParams(**p["golden"])


@dataclass
class Job:
    """Vectors ``a``, ``b`` (V,N) with the golden params (formats, activation) and
    coefficients in force for them."""

    a: np.ndarray
    b: np.ndarray
    gp: golden.ResidualParams
    coeffs: golden.ResidualCoeffs

    def expected(self) -> np.ndarray:
        return golden.residual_add(self.a, self.b, self.gp, self.coeffs)


def input_beats(a: np.ndarray, b: np.ndarray, lanes: int) -> dict[str, np.ndarray]:
    """``a``, ``b`` (V,N) -> ``i`` beat fields in stream order."""
    sa, sb = segment_beats(a, lanes), segment_beats(b, lanes)
    return {"a": sa["x"], "b": sb["x"], "last": sa["last"]}


def decode_outputs(fields: dict[str, np.ndarray], V: int, N: int, lanes: int):
    """``o`` beats -> ``y`` (V,N) and ``last`` (V,G); expects ``V * ceil(N/lanes)`` beats."""
    G = -(-N // lanes)
    return fields["y"].reshape(V, G * lanes)[:, :N], fields["last"].reshape(V, G)


def load_beats(gp: golden.ResidualParams, c: golden.ResidualCoeffs) -> list[dict[str, int]]:
    """``load`` beats for a golden parameter set and its coefficients."""
    lo, hi = rtl_clamp_bounds(gp)  # duck-typed: the NMPU's output-format fields
    return rtl_residual.load_beats(
        ACTIVATIONS.index(gp.activation),
        gp.out_signed,
        gp.leaky_k,
        lo,
        hi,
        c.mult_a,
        c.mult_b,
        c.shift,
    )


def _rand_format(rng, bits: int, signed: bool, size) -> np.ndarray:
    v = _rand_signed(rng, bits + 1, size)
    lo, hi = golden.input_range(bits, signed)
    return np.clip(v, lo, hi)


def random_job(
    rng: np.random.Generator,
    base: golden.ResidualParams,
    V: int,
    N: int | None = None,
    activation: str | None = None,
) -> Job:
    """Random formats/activation, N in 1..3*lanes, coefficients calibrated from random
    scales (realistic), raw random with corners, or small (shift 0..3: rounding ties)."""
    N = N or int(rng.integers(1, 3 * base.lanes, endpoint=True))
    n = base.out_bits
    lo_hi = np.sort(rng.integers(-(1 << n), 1 << n, size=2, endpoint=True))
    gp = dataclasses.replace(
        base,
        a_signed=bool(rng.integers(0, 2)),
        b_signed=bool(rng.integers(0, 2)),
        out_signed=bool(rng.integers(0, 2)),
        activation=activation or str(rng.choice(ACTIVATIONS)),
        leaky_k=int(rng.integers(0, 31, endpoint=True)),
        clamp_lo=int(lo_hi[0]),
        clamp_hi=int(lo_hi[1]),
    )
    mode = rng.random()
    if mode < 0.45:
        sa, sb, sy = 2.0 ** rng.uniform(-3, 3, size=3)
        c = golden.residual_coeffs(sa, sb, sy, gp)
    else:
        ma, mb = _rand_signed(rng, gp.mult_bits, 2)
        if mode < 0.8:  # shifts around the useful range
            shift = int(rng.integers(max(0, gp.mult_bits - 4), gp.mult_bits + 2, endpoint=True))
        else:  # small multipliers and shifts: rounding ties are common
            ma, mb = ma % 16 - 8, mb % 16 - 8
            shift = int(rng.integers(0, 3, endpoint=True))
        c = golden.ResidualCoeffs(int(ma), int(mb), min(shift, gp.shift_max))
    return Job(
        a=_rand_format(rng, gp.in_bits, gp.a_signed, (V, N)),
        b=_rand_format(rng, gp.in_bits, gp.b_signed, (V, N)),
        gp=gp,
        coeffs=c,
    )


# ---------------------------------------------------------------- cocotb side
class ResidualTB(UnitTB):
    """The unit's streams; a vector is one row of ``a``/``b`` (``ceil(N/lanes)`` beats)."""

    def __init__(
        self,
        dut,
        rtl: ResidualRtlParams,
        seed: int,
        p_valid: float,
        p_ready: float,
        prefix: str = "",
    ):
        super().__init__(dut, ResidualAdd(rtl), seed, p_valid, p_ready, prefix)
        self.rtl = rtl

    def input_fields(self, job: Job) -> dict[str, np.ndarray]:
        return input_beats(job.a, job.b, self.rtl.lanes)

    def load_fields(self, job: Job) -> list[dict[str, int]]:
        return load_beats(job.gp, job.coeffs)

    def vectors(self, job: Job) -> int:
        return job.a.shape[0]

    def beats_per_vector(self, job: Job) -> int:
        return -(-job.a.shape[1] // self.rtl.lanes)

    def received(self, job: Job, v: int) -> np.ndarray:
        f = self.codec["o"].unpack(self.snk.words[: v * self.beats_per_vector(job)])
        return decode_outputs(f, v, job.a.shape[1], self.rtl.lanes)

    def check(self, sb: Scoreboard, job: Job, exp: np.ndarray) -> int:
        v = self.complete(job)
        if v == 0:
            return 0
        y, last = self.received(job, v)
        exp_last = np.zeros_like(last)
        exp_last[:, -1] = 1
        gp, c, N = job.gp, job.coeffs, job.a.shape[1]
        return sb.check(
            {"y": y, "last": last},
            {"y": exp[:v], "last": exp_last},
            v,
            context=lambda i: f"N={N} act={gp.activation} signed={gp.out_signed} {c}",
        )


def _coverage(job: Job, y: np.ndarray) -> dict[str, int]:
    """Outputs on the low rail, on the high rail, and sums that were exact ties."""
    gp, c = job.gp, job.coeffs
    lo, hi = golden.input_range(gp.out_bits, gp.out_signed)
    total = job.a * c.mult_a + job.b * c.mult_b
    ties = ((total & ((1 << c.shift) - 1)) == 1 << (c.shift - 1)).sum() if c.shift else 0
    return {"low_rail": (y == lo).sum(), "high_rail": (y == hi).sum(), "ties": ties}


@cocotb.test()
async def random_jobs(dut):
    """Constrained-random jobs until ``vectors`` vectors matched the golden model."""
    p = load_params()
    rtl, base = _params(p)
    tb = ResidualTB(
        dut, rtl, int(p.get("seed", 1)), float(p.get("p_valid", 0.8)), float(p.get("p_ready", 0.7))
    )
    rng = tb.rng

    def new_job(i: int) -> Job:
        V = int(rng.integers(20, 300))
        return random_job(rng, base, V, activation=ACTIVATIONS[i % len(ACTIVATIONS)])

    def measure_job() -> Job:
        return random_job(rng, base, int(p.get("measure_vectors", 200)), N=4 * rtl.lanes)

    result = await random_run(
        tb,
        p,
        f"residual lanes={rtl.lanes}",
        new_job,
        _coverage,
        measure_job,
        lambda job: job.a.shape[0] * tb.beats_per_vector(job) + LATENCY,
    )
    save_result(result)
    assert result["mismatches"] == 0, "\n".join(result["errors"])


@cocotb.test()
async def file_vectors(dut):
    """One job from ``params['in']`` (.npz: a, b, mult_a, mult_b, shift); ``y`` to
    ``params['out']``.  No scoreboard: the caller compares."""
    p = load_params()
    rtl, gp = _params(p)
    with np.load(p["in"]) as f:
        a, b = (np.asarray(f[k], np.int64) for k in ("a", "b"))
        c = golden.ResidualCoeffs(*(int(f[k]) for k in ("mult_a", "mult_b", "shift")))
    job = Job(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), gp, c)
    tb = ResidualTB(dut, rtl, int(p.get("seed", 1)), 1.0, 1.0)
    tb.start_clock()
    await tb.reset()
    await tb.program(job)
    cycles = await tb.stream(job)
    y, _ = tb.received(job, job.a.shape[0])
    np.savez(p["out"], y=y.reshape(a.shape), cycles=np.int64(cycles))
    save_result({"vectors": job.a.shape[0], "cycles": cycles})
