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
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from aimcflow.cosim.benches.mgmt import segment_beats
from aimcflow.cosim.benches.nmpu import _rand_signed
from aimcflow.models.periphery import residual as golden
from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
from aimcflow.rtl import residual as rtl_residual
from aimcflow.rtl.residual import LATENCY, ResidualAdd, ResidualRtlParams

MODULE = "aimcflow.cosim.benches.residual"
TOPLEVEL = "aimcflow_residual"


def build(rtl: ResidualRtlParams, toplevel: str = TOPLEVEL):
    """The cached Verilator build of the unit with these parameters."""
    from aimcflow.cosim.runner import build_component

    return build_component(ResidualAdd(rtl), toplevel, name=f"residual-l{rtl.lanes}")


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
try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a dependency; keep import-light users working
    cocotb = None

if cocotb is not None:
    from aimcflow.cosim.packing import port_codecs
    from aimcflow.cosim.runner import load_params, save_result
    from aimcflow.cosim.streams import TB, Scoreboard, StreamSink, StreamSource

    class ResidualTB(TB):
        """Clock, reset, the ``i``/``load`` sources and the ``o`` sink of one unit."""

        def __init__(self, dut, rtl: ResidualRtlParams, seed: int, p_valid: float, p_ready: float):
            super().__init__(dut, seed)
            self.rtl = rtl
            self.codec = port_codecs(ResidualAdd(rtl), ("i", "o", "load"))
            self.src = self.add(StreamSource(dut, "i", self.rng, p_valid))
            self.load = self.add(StreamSource(dut, "load", self.rng, p_valid))
            self.snk = self.add(StreamSink(dut, "o", self.rng, p_ready))

        async def program(self, job: Job) -> None:
            beats = load_beats(job.gp, job.coeffs)
            fields = {k: np.array([b[k] for b in beats]) for k in beats[0]}
            self.load.send(self.codec["load"].pack(fields))
            await self.run(lambda: self.load.idle, max_cycles=1000 * len(beats) + 100)

        async def stream(self, job: Job, stop_after: int | None = None) -> int:
            """Send the job's vectors; cycles until all (or ``stop_after``) outputs arrived."""
            V, N = job.a.shape
            G = -(-N // self.rtl.lanes)
            self.snk.words.clear()
            self.src.send(self.codec["i"].pack(input_beats(job.a, job.b, self.rtl.lanes)))
            want = V * G if stop_after is None else stop_after
            return await self.run(lambda: len(self.snk.words) >= want, 200 * V * G + 1000)

        def check(self, sb: Scoreboard, job: Job, exp: np.ndarray) -> int:
            """Compare every complete vector received so far."""
            V, N = job.a.shape
            G = -(-N // self.rtl.lanes)
            v = len(self.snk.words) // G
            if v == 0:
                return 0
            f = self.codec["o"].unpack(self.snk.words[: v * G])
            y, last = decode_outputs(f, v, N, self.rtl.lanes)
            exp_last = np.zeros((v, G), np.int64)
            exp_last[:, -1] = 1
            gp, c = job.gp, job.coeffs
            return sb.check(
                {"y": y, "last": last},
                {"y": exp[:v], "last": exp_last},
                v,
                context=lambda i: f"N={N} act={gp.activation} signed={gp.out_signed} {c}",
            )

    def _coverage(job: Job, y: np.ndarray) -> np.ndarray:
        """Outputs on the low rail, on the high rail, and sums that were exact ties."""
        gp, c = job.gp, job.coeffs
        lo, hi = golden.input_range(gp.out_bits, gp.out_signed)
        total = job.a * c.mult_a + job.b * c.mult_b
        ties = ((total & ((1 << c.shift) - 1)) == 1 << (c.shift - 1)).sum() if c.shift else 0
        return np.array([(y == lo).sum(), (y == hi).sum(), ties])

    @cocotb.test()
    async def random_jobs(dut):
        """Constrained-random jobs until ``vectors`` vectors matched the golden model."""
        p = load_params()
        rtl, base = _params(p)
        total = int(p.get("vectors", 1000))
        tb = ResidualTB(
            dut,
            rtl,
            int(p.get("seed", 1)),
            float(p.get("p_valid", 0.8)),
            float(p.get("p_ready", 0.7)),
        )
        rng = tb.rng
        sb = Scoreboard(f"residual lanes={rtl.lanes}")
        tb.start_clock()
        await tb.reset()
        t_start = time.perf_counter()
        result: dict[str, Any] = {}
        coverage = np.zeros(3, np.int64)
        job_i = 0
        reset_done = not p.get("reset_mid", True)
        while sb.compared < total:
            V = int(min(total - sb.compared, rng.integers(20, 300)))
            job = random_job(rng, base, V, activation=ACTIVATIONS[job_i % len(ACTIVATIONS)])
            job_i += 1
            exp = job.expected()
            coverage += _coverage(job, exp)
            await tb.program(job)
            if not reset_done and V >= 8:
                G = -(-job.a.shape[1] // rtl.lanes)
                await tb.stream(job, stop_after=(V // 2) * G + 1)
                tb.check(sb, job, exp)  # the prefix delivered before the reset
                await tb.reset()
                await tb.program(job)  # registers are reset too
                reset_done = True
                result["reset_after_beats"] = (V // 2) * G + 1
            await tb.stream(job)
            tb.check(sb, job, exp)
            if sb.mismatches:
                break
        if p.get("measure"):
            V, N = int(p.get("measure_vectors", 200)), 4 * rtl.lanes
            job = random_job(rng, base, V, N=N)
            tb.src.p_valid = tb.snk.p_ready = 1.0
            await tb.program(job)
            cycles = await tb.stream(job)
            tb.check(sb, job, job.expected())
            ideal = V * 4 + LATENCY
            result.update(
                measure_beats=V * 4, cycles=cycles, ideal_cycles=ideal, efficiency=ideal / cycles
            )
        result.update(
            vectors=sb.compared,
            mismatches=sb.mismatches,
            errors=sb.errors,
            jobs=job_i,
            rtl_cycles=tb.cycle,
            wall_s=time.perf_counter() - t_start,
            low_rail=int(coverage[0]),
            high_rail=int(coverage[1]),
            ties=int(coverage[2]),
        )
        save_result(result)
        assert sb.mismatches == 0, "\n".join(sb.errors)

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
        V, N = job.a.shape
        f = tb.codec["o"].unpack(tb.snk.words)
        y, _ = decode_outputs(f, V, N, rtl.lanes)
        np.savez(p["out"], y=y.reshape(a.shape), cycles=np.int64(cycles))
        save_result({"vectors": V, "cycles": cycles})
