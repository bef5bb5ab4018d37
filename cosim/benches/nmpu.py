"""cocotb bench of the NMPU (``rtl/nmpu.py``) against its golden model, and its Python door.

Python side (pytest, ``aimcflow vectors nmpu``, ``make bench``):

* :func:`build` builds (or reuses) the Verilated NMPU for given RTL parameters.
* :func:`bench_params` packs RTL + golden parameters into the bench's JSON parameters.
* Beat helpers (:func:`load_beats`, :func:`decode_outputs`, on ``rtl/protocol.py``) map the
  golden model's arrays onto the RTL's stream protocol (module docstring of ``rtl/nmpu.py``).

cocotb side:

* ``random_jobs``: constrained-random jobs (T row tiles, C columns, activation, output
  signedness, coefficients) until ``vectors`` vectors have been checked; random valid gaps
  on ``i``/``load``, random backpressure on ``o``; one job is cut by a reset mid-stream,
  its delivered prefix checked, then reloaded and rerun from the start; with ``measure``,
  a full-throughput job measures cycles against ``V * T * ceil(C/lanes) + LATENCY``.
* ``file_vectors``: one job from an ``.npz`` (``aimcflow vectors nmpu --sim verilator``),
  outputs written to an ``.npz``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import TB, ReadyPromise, Scoreboard, StreamSink, StreamSource
from aimcflow.models.periphery import nmpu as golden
from aimcflow.models.periphery.fixedpoint import signed_range
from aimcflow.rtl.nmpu import LATENCY, Nmpu
from aimcflow.rtl.params import NmpuRtlParams
from aimcflow.rtl.protocol import groups, nmpu_input_fields, nmpu_load_beats, nmpu_output_values
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

MODULE = "aimcflow.cosim.benches.nmpu"
TOPLEVEL = "aimcflow_nmpu"


def build(rtl: NmpuRtlParams, toplevel: str = TOPLEVEL, sim: str = "verilator"):
    """The cached Verilator (or Icarus) build of the NMPU with these parameters."""

    return build_component(Nmpu(rtl), toplevel, name=f"nmpu-l{rtl.lanes}", sim=sim)


def bench_params(rtl: NmpuRtlParams, gp: golden.NmpuParams, **kw: Any) -> dict[str, Any]:
    """JSON parameters of a bench run: both parameter sets plus run options."""
    return {"rtl": dataclasses.asdict(rtl), "golden": dataclasses.asdict(gp), **kw}


def _params(p: dict[str, Any]) -> tuple[NmpuRtlParams, golden.NmpuParams]:
    return NmpuRtlParams(**p["rtl"]), golden.NmpuParams(**p["golden"])


@dataclass
class Job:
    """One coefficient set and its vectors: ``a`` (V,T,C), ``e`` (V,T) and the golden params
    (activation, signedness, clamp, leaky_k) in force for them."""

    a: np.ndarray
    e: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    mult: np.ndarray
    bias: np.ndarray
    gp: golden.NmpuParams

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape  # type: ignore[return-value]

    def expected(self) -> np.ndarray:
        return golden.nmpu(self.a, self.e, self.gain, self.offset, self.mult, self.bias, self.gp)


def load_beats(job: Job, rtl: NmpuRtlParams) -> dict[str, np.ndarray]:
    """Load-stream beats for a job (registers, gain/offset per tile, mult/bias), encoded by
    ``rtl/protocol.py`` -- the one place that knows the load protocol -- as field arrays."""
    lo, hi = golden.rtl_clamp_bounds(job.gp)
    beats = nmpu_load_beats(
        rtl,
        job.gain,
        job.offset,
        job.mult,
        job.bias,
        activation=job.gp.activation,
        out_signed=job.gp.out_signed,
        leaky_k=job.gp.leaky_k,
        clamp_lo=lo,
        clamp_hi=hi,
    )
    return {k: np.array([b[k] for b in beats], dtype=np.int64) for k in beats[0]}


def decode_outputs(
    fields: dict[str, np.ndarray], V: int, C: int, lanes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Output beats -> ``y`` (V,C) and ``last`` (V,G); expects exactly ``V * G`` beats."""
    y = nmpu_output_values(fields["y"][: V * groups(C, lanes)], C, lanes)
    return y, fields["last"].reshape(V, groups(C, lanes))


def _rand_signed(rng: np.random.Generator, bits: int, size) -> np.ndarray:
    """Signed ``bits``-wide values: 15 % corners (min, max, 0, +-1), else log-uniform
    magnitude, so that small and full-scale values are both common."""
    lo, hi = signed_range(bits)
    size = tuple(np.atleast_1d(size))
    k = rng.integers(0, bits, size=size)
    mag = (rng.random(size) * (np.left_shift(np.int64(1), k))).astype(np.int64)
    v = np.where(rng.random(size) < 0.5, -mag, mag)
    corners = np.array([lo, hi, 0, 1, -1], dtype=np.int64)
    pick = rng.random(size) < 0.15
    v = np.where(pick, corners[rng.integers(0, len(corners), size=size)], v)
    return np.clip(v, lo, hi)


def random_job(
    rng: np.random.Generator,
    rtl: NmpuRtlParams,
    base: golden.NmpuParams,
    V: int,
    activation: str | None = None,
    T: int | None = None,
    C: int | None = None,
) -> Job:
    """A constrained-random job: T in 1..max_tiles, C in 1..3*lanes (often not a multiple
    of lanes), random activation/signedness/leaky_k/clamp, coefficients with corners."""
    T = T or int(rng.integers(1, rtl.max_tiles, endpoint=True))
    C = C or int(rng.integers(1, min(3 * rtl.lanes, rtl.max_cols), endpoint=True))
    act = activation or str(rng.choice(golden.ACTIVATIONS))
    n = base.out_bits
    lo_hi = np.sort(rng.integers(-(1 << n), 1 << n, size=2, endpoint=True))
    gp = dataclasses.replace(
        base,
        activation=act,
        out_signed=bool(rng.integers(0, 2)),
        leaky_k=int(rng.integers(0, 31, endpoint=True)),
        clamp_lo=int(lo_hi[0]),
        clamp_hi=int(lo_hi[1]),
    )
    a = _rand_signed(rng, base.adc_bits, (V, T, C))
    # exponents: uniform, with e_min/e_max corners overweighted
    e = rng.integers(base.e_min, base.e_max, size=(V, T), endpoint=True)
    corner = rng.random((V, T))
    e = np.where(corner < 0.1, base.e_min, np.where(corner > 0.9, base.e_max, e))
    zero_vec = rng.random(V) < 0.02  # some all-zero input vectors
    a[zero_vec] = 0
    return Job(
        a=a,
        e=e,
        gain=_rand_signed(rng, base.gain_bits, (T, C)),
        offset=_rand_signed(rng, base.offset_bits, (T, C)),
        mult=_rand_signed(rng, base.mult_bits, C),
        bias=_rand_signed(rng, base.bias_bits, C),
        gp=gp,
    )


# ---------------------------------------------------------------- cocotb side


class NmpuTB(TB):
    """Clock, reset, the ``i``/``load`` sources and the ``o`` sink of one NMPU."""

    def __init__(self, dut, rtl: NmpuRtlParams, seed: int, p_valid: float, p_ready: float):
        super().__init__(dut, seed)
        self.rtl = rtl
        comp = Nmpu(rtl)
        self.in_codec = PayloadCodec(comp.i.payload.shape())
        self.out_codec = PayloadCodec(comp.o.payload.shape())
        self.load_codec = PayloadCodec(comp.load.payload.shape())
        self.src = self.add(StreamSource(dut, "i", self.rng, p_valid))
        self.load = self.add(StreamSource(dut, "load", self.rng, p_valid))
        self.snk = self.add(StreamSink(dut, "o", self.rng, p_ready))
        self.promise = self.add(ReadyPromise(dut, "i", "o"))  # i.ready = ~o.valid | o.ready

    async def program(self, job: Job) -> None:
        beats = load_beats(job, self.rtl)
        self.load.send(self.load_codec.pack(beats))
        await self.run(lambda: self.load.idle, max_cycles=1000 * len(beats["kind"]) + 100)

    async def stream(self, job: Job, stop_after: int | None = None) -> int:
        """Send the job's vectors; return cycles until all (or ``stop_after``) output
        beats arrived.  The sink's word list is cleared first."""
        V, T, C = job.shape
        G = groups(C, self.rtl.lanes)
        self.snk.words.clear()
        self.src.send(self.in_codec.pack(nmpu_input_fields(job.a, job.e, self.rtl.lanes)))
        want = V * G if stop_after is None else stop_after
        return await self.run(
            lambda: len(self.snk.words) >= want, max_cycles=200 * V * T * G + 1000
        )

    def received(self, job: Job) -> tuple[np.ndarray, np.ndarray, int]:
        """Output so far as ``y`` (v,C), ``last`` (v,G) for the ``v`` complete vectors."""
        V, T, C = job.shape
        G = groups(C, self.rtl.lanes)
        n = len(self.snk.words) // G * G
        f = (
            self.out_codec.unpack(self.snk.words[:n])
            if n
            else {"y": np.zeros((0, self.rtl.lanes), np.int64), "last": np.zeros(0, np.int64)}
        )
        y, last = decode_outputs(f, n // G, C, self.rtl.lanes)
        return y, last, n // G


def _coverage(job: Job) -> np.ndarray:
    """Corner counts of a job: saturated accumulators, saturated outputs, zero vectors."""
    gp = job.gp
    acc = golden.accumulate(golden.affine(job.a, job.gain[None], job.offset[None]), job.e, gp)
    lo, hi = -(1 << (gp.acc_bits - 1)), (1 << (gp.acc_bits - 1)) - 1
    y = job.expected()
    if gp.out_signed:
        ylo, yhi = -(1 << (gp.out_bits - 1)), (1 << (gp.out_bits - 1)) - 1
    else:
        ylo, yhi = 0, (1 << gp.out_bits) - 1
    return np.array(
        [
            ((acc == lo) | (acc == hi)).sum(),
            ((y == ylo) | (y == yhi)).sum(),
            (job.a == 0).all(axis=(1, 2)).sum(),
        ]
    )


def _check_job(sb: Scoreboard, tb: NmpuTB, job: Job, exp: np.ndarray) -> int:
    y, last, v = tb.received(job)
    G = last.shape[1] if last.ndim == 2 else 1
    exp_last = np.zeros((v, G), np.int64)
    exp_last[:, -1] = 1
    V, T, C = job.shape
    return sb.check(
        {"y": y, "last": last},
        {"y": exp[:v], "last": exp_last},
        v,
        context=lambda i: f"T={T} C={C} act={job.gp.activation} signed={job.gp.out_signed}",
    )


@cocotb.test()
async def random_jobs(dut):
    """Constrained-random jobs until ``vectors`` vectors matched the golden model."""
    p = load_params()
    rtl, base = _params(p)
    total = int(p.get("vectors", 1000))
    tb = NmpuTB(
        dut,
        rtl,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.8)),
        float(p.get("p_ready", 0.7)),
    )
    rng = tb.rng
    sb = Scoreboard(f"nmpu lanes={rtl.lanes}")
    tb.start_clock()
    await tb.reset()
    t_start = time.perf_counter()
    result: dict[str, Any] = {}
    acts = list(golden.ACTIVATIONS)
    coverage = np.zeros(3, np.int64)
    job_i = 0
    reset_done = not p.get("reset_mid", True)
    while sb.compared < total:
        V = int(min(total - sb.compared, rng.integers(20, 200)))
        # every activation and the T=1 / T=max / C%lanes!=0 corners in the first jobs
        T = [1, rtl.max_tiles][job_i % 2] if job_i < 4 else None
        C = (rtl.lanes + 1 if job_i % 2 else max(1, rtl.lanes - 1)) if job_i < 4 else None
        job = random_job(rng, rtl, base, V, activation=acts[job_i % len(acts)], T=T, C=C)
        job_i += 1
        exp = job.expected()
        coverage += _coverage(job)
        await tb.program(job)
        if not reset_done and V >= 8:
            G = groups(job.shape[2], rtl.lanes)
            await tb.stream(job, stop_after=(V // 2) * G + 1)
            _check_job(sb, tb, job, exp)  # the prefix delivered before the reset
            await tb.reset()
            await tb.program(job)  # registers are reset; memories are reloaded too
            reset_done = True
            result["reset_after_beats"] = (V // 2) * G + 1
        await tb.stream(job)
        _check_job(sb, tb, job, exp)
        if sb.mismatches:
            break
    if p.get("measure"):
        V = int(p.get("measure_vectors", 200))
        T, C = int(p.get("measure_T", 1)), int(p.get("measure_C", 4 * rtl.lanes))
        job = random_job(rng, rtl, base, V, T=T, C=min(C, rtl.max_cols))
        tb.src.p_valid = tb.snk.p_ready = 1.0
        await tb.program(job)
        cycles = await tb.stream(job)
        _check_job(sb, tb, job, job.expected())
        G = groups(job.shape[2], rtl.lanes)
        ideal = V * T * G + LATENCY
        result.update(
            measure_vectors=V,
            measure_T=T,
            measure_C=job.shape[2],
            cycles=cycles,
            ideal_cycles=ideal,
            efficiency=ideal / cycles,
        )
    result.update(
        vectors=sb.compared,
        mismatches=sb.mismatches,
        errors=sb.errors,
        jobs=job_i,
        rtl_cycles=tb.cycle,
        wall_s=time.perf_counter() - t_start,
        acc_saturated=int(coverage[0]),
        out_saturated=int(coverage[1]),
        zero_vectors=int(coverage[2]),
        handshake_checked=tb.promise.checked,
        handshake_violations=tb.promise.violations,
    )
    save_result(result)
    assert sb.mismatches == 0, "\n".join(sb.errors)


@cocotb.test()
async def bare_clock(dut):
    """Reference cost: the same two triggers per cycle as :class:`TB`, no agents."""

    n = int(load_params().get("cycles", 100_000))
    Clock(dut.clk, 10, unit="ns").start()
    falling, readonly = FallingEdge(dut.clk), ReadOnly()
    t0 = time.perf_counter()
    for _ in range(n):
        await falling
        await readonly
    save_result({"cycles": n, "wall_s": time.perf_counter() - t0})


@cocotb.test()
async def file_vectors(dut):
    """One job from ``params['in']`` (.npz: a, e, gain, offset, mult, bias); ``y`` to
    ``params['out']`` (.npz).  No scoreboard: the caller decides what to compare."""
    p = load_params()
    rtl, gp = _params(p)
    with np.load(p["in"]) as f:
        job = Job(
            *(np.asarray(f[k], np.int64) for k in ("a", "e", "gain", "offset", "mult", "bias")),
            gp=gp,
        )
    tb = NmpuTB(
        dut,
        rtl,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 1.0)),
        float(p.get("p_ready", 1.0)),
    )
    tb.start_clock()
    await tb.reset()
    await tb.program(job)
    cycles = await tb.stream(job)
    y, last, v = tb.received(job)
    np.savez(p["out"], y=y, cycles=np.int64(cycles))
    save_result({"vectors": v, "cycles": cycles})
