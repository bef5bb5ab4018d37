"""cocotb bench of the management controller (``rtl/mgmt.py``) against its golden model.

The tile behind the ``dac``/``adc`` streams is Python: SPEC.md's ideal linear tile
``a = sat(rshr(d @ w, shift), adc.bits)`` (``models.periphery.mgmt.ideal_linear_tile``, the
same function ``aimcflow vectors mgmt --sim golden`` uses).  A :class:`TileResponder`
collects each ``dac`` segment, checks its DAC codes against the golden
``dac_codes(x, e0 + iter)``, and queues the answer beats on ``adc``.

cocotb tests:

* ``random_segments``: constrained-random jobs (noise mode, bound_max_iter, R rows, C
  columns, weights, shift) with random valid gaps and backpressure on every stream, one
  job cut by a reset mid-stream; scoreboard on ``o`` (a, e, iter, sat_any per vector) and
  on every ``dac`` segment.
* ``file_vectors``: ``x``, ``w``, ``shift`` from an ``.npz`` -> ``a, e, iter, sat_any``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec, port_codecs
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import TB, CycleCheck, Scoreboard, StreamSink, StreamSource, top_bit
from aimcflow.models.periphery import mgmt as golden
from aimcflow.rtl.mgmt import MgmtController
from aimcflow.rtl.params import MgmtRtlParams
from aimcflow.rtl.protocol import answer_beats, groups, mgmt_reg_beats, segment_beats

MODULE = "aimcflow.cosim.benches.mgmt"
TOPLEVEL = "aimcflow_mgmt"
W_BITS = golden.IDEAL_TILE_W_BITS


def build(rtl: MgmtRtlParams, toplevel: str = TOPLEVEL, sim: str = "verilator"):
    """The cached Verilator (or Icarus) build of the management controller."""
    return build_component(MgmtController(rtl), toplevel, name=f"mgmt-l{rtl.lanes}", sim=sim)


def bench_params(rtl: MgmtRtlParams, gp: golden.MgmtParams, **kw: Any) -> dict[str, Any]:
    return {"rtl": dataclasses.asdict(rtl), "golden": dataclasses.asdict(gp), **kw}


def _params(p: dict[str, Any]) -> tuple[MgmtRtlParams, golden.MgmtParams]:
    return MgmtRtlParams(**p["rtl"]), golden.MgmtParams(**p["golden"])


@dataclass
class Job:
    """Segments ``x`` (V,R) against one ideal tile ``w`` (R,C), ``shift``; golden params
    carry the job's noise mode and bound_max_iter."""

    x: np.ndarray
    w: np.ndarray
    shift: int
    gp: golden.MgmtParams

    def tile(self):
        return golden.ideal_linear_tile(self.w, self.shift, self.gp.adc_bits)

    def expected(self):
        return golden.manage(self.x, self.tile(), self.gp)


def _rand_x(rng: np.random.Generator, gp: golden.MgmtParams, shape) -> np.ndarray:
    """Inputs in the x format with a random per-vector magnitude (so every exponent
    occurs), corners (range ends) and some all-zero vectors."""
    lo, hi = gp.x_range
    V, R = shape
    k = rng.integers(0, gp.x_bits + 1, size=(V, 1))
    span = np.left_shift(np.int64(1), k)
    x = rng.integers(-(span if lo < 0 else 0), span, size=(V, R), endpoint=False)
    x = np.clip(x, lo, hi)
    corner = rng.random((V, R)) < 0.03
    x = np.where(corner, np.where(rng.random((V, R)) < 0.5, lo, hi), x)
    x[rng.random(V) < 0.03] = 0
    return x.astype(np.int64)


def random_job(
    rng: np.random.Generator,
    rtl: MgmtRtlParams,
    base: golden.MgmtParams,
    V: int,
    R: int | None = None,
    C: int | None = None,
    noise: str | None = None,
) -> Job:
    R = R or int(rng.integers(1, min(3 * rtl.x_lanes, rtl.max_rows), endpoint=True))
    C = C or int(rng.integers(1, 3 * rtl.lanes, endpoint=True))
    gp = dataclasses.replace(
        base,
        noise=noise or str(rng.choice(golden.NOISE_MODES)),
        bound_max_iter=int(rng.integers(0, 15, endpoint=True)),
    )
    w = rng.integers(-(1 << 6), 1 << 6, size=(R, C), endpoint=True)
    # shift chosen so that about half the answers saturate the ADC (bound management runs)
    typical = np.log2(max(1.0, np.sqrt(R) * (1 << (gp.dac_bits - 1)) * 40))
    shift = max(0, int(round(typical - (gp.adc_bits - 1) + rng.normal(0, 1.5))))
    return Job(_rand_x(rng, gp, (V, R)), w.astype(np.int64), shift, gp)


# ---------------------------------------------------------------- cocotb side


class TileResponder:
    """The analog tile behind ``dac``/``adc``: answers each complete ``dac`` segment.

    ``segments`` lists, per answered segment, ``(d, iter)`` as received, for the
    scoreboard; ``tile_for`` maps the running segment index to a tile function (the
    top-level bench uses a different crossbar per row tile)."""

    def __init__(
        self,
        dac: StreamSink,
        adc: StreamSource,
        dac_codec: PayloadCodec,
        adc_codec: PayloadCodec,
        lanes: int,
        adc_bits: int,
    ) -> None:
        self.dac, self.adc = dac, adc
        self.dac_codec, self.adc_codec = dac_codec, adc_codec
        self.lanes, self.adc_bits = lanes, adc_bits
        self.seen = 0
        self.rows = 0
        self.tile_for = None
        self.segments: list[tuple[np.ndarray, int]] = []
        self.segment_index = 0  # input segments seen (a dac segment with iter 0)

    def start(self, rows: int, tile_for) -> None:
        self.rows, self.tile_for = rows, tile_for
        self.seen = len(self.dac.words)
        self.segment_index = 0

    def drive(self) -> None:
        words = self.dac.words
        if len(words) == self.seen:
            return
        f = self.dac_codec.unpack(words[self.seen :])
        ends = np.flatnonzero(f["last"])
        if not len(ends):
            return
        end = int(ends[0]) + 1
        d = f["d"][:end].reshape(-1)[: self.rows]
        it = int(f["iter"][0])
        self.seen += end
        self.segments.append((d, it))
        if it == 0:  # a new input segment; retries (iter > 0) ask the same crossbar
            self.segment_index += 1
        tile = self.tile_for(self.segment_index - 1)
        a, sat_any = tile(d[None, :], np.array([it]), np.array([True]))
        self.adc.send(self.adc_codec.pack(answer_beats(a[:1], sat_any[:1], self.lanes)))

    def sample(self) -> None:
        pass

    def flush(self) -> None:
        self.segments.clear()


class MgmtTB(TB):
    def __init__(self, dut, rtl: MgmtRtlParams, seed: int, p_valid: float, p_ready: float):
        super().__init__(dut, seed)
        self.rtl = rtl
        comp = MgmtController(rtl)
        self.codec = c = port_codecs(comp, ("x", "dac", "adc", "o", "load"))
        self.xsrc = self.add(StreamSource(dut, "x", self.rng, p_valid))
        self.load = self.add(StreamSource(dut, "load", self.rng, p_valid))
        self.dac = self.add(StreamSink(dut, "dac", self.rng, p_ready))
        self.adc = self.add(StreamSource(dut, "adc", self.rng, p_valid))
        self.osnk = self.add(StreamSink(dut, "o", self.rng, p_ready))
        self.tile = self.add(
            TileResponder(self.dac, self.adc, c["dac"], c["adc"], rtl.lanes, rtl.adc_bits)
        )
        # the module docstring's promises, every cycle: adc -> o is a combinational
        # pass-through, and a dac segment streams one beat per clock once started
        sig = {k: getattr(dut, k) for k in ("adc__valid", "adc__ready", "o__valid", "o__ready")}
        sig |= {
            "dac_v": dut.dac__valid,
            "dac_r": dut.dac__ready,
            "dac_last": top_bit("dac__payload"),
        }
        self.promise = self.add(
            CycleCheck(
                dut,
                sig,
                {
                    "o only with adc, adc.ready = o.ready": lambda n, _: (
                        not n["o__valid"]
                        or (n["adc__valid"] == 1 and n["adc__ready"] == n["o__ready"])
                    ),
                    "dac one beat per clock": lambda n, p: (
                        p is None
                        or not (p["dac_v"] and not (p["dac_r"] and p["dac_last"]))
                        or n["dac_v"] == 1
                    ),
                },
            )
        )

    async def program(self, gp: golden.MgmtParams) -> None:
        self.load.send(self.codec["load"].pack(mgmt_reg_beats(gp.noise, gp.bound_max_iter)))
        await self.run(lambda: self.load.idle, max_cycles=10_000)

    async def stream(self, job: Job, stop_after: int | None = None) -> int:
        V, R = job.x.shape
        C = job.w.shape[1]
        B = groups(C, self.rtl.lanes)
        self.osnk.words.clear()
        self.dac.words.clear()
        self.tile.segments.clear()
        tile = job.tile()
        self.tile.start(R, lambda i: tile)
        self.xsrc.send(self.codec["x"].pack(segment_beats(job.x, self.rtl.x_lanes)))
        want = V * B if stop_after is None else stop_after
        budget = 200 * V * (groups(R, self.rtl.x_lanes) + B) * (job.gp.bound_max_iter + 1)
        return await self.run(lambda: len(self.osnk.words) >= want, max_cycles=budget + 1000)

    def received(self, job: Job):
        C = job.w.shape[1]
        B = groups(C, self.rtl.lanes)
        n = len(self.osnk.words) // B * B
        v = n // B
        if not n:
            return v, {}
        f = self.codec["o"].unpack(self.osnk.words[:n])
        first = np.arange(v) * B
        got = {
            "a": f["a"].reshape(v, B * self.rtl.lanes)[:, :C],
            "e": f["e"][first],
            "iter": f["iter"][first],
            "sat_any": f["sat_any"][first],
        }
        # every beat of one answer carries the same e/iter/sat_any and last on the final
        same = all((f[k].reshape(v, B) == got[k][:, None]).all() for k in ("e", "iter", "sat_any"))
        last_ok = (f["last"].reshape(v, B) == (np.arange(B) == B - 1)).all()
        got["beats_consistent"] = np.full(v, int(same and last_ok))
        return v, got


def check_dac(
    sb: Scoreboard, tb: MgmtTB, job: Job, e0: np.ndarray, iters: np.ndarray, v: int
) -> None:
    """Every DAC segment sent for the first ``v`` vectors, in order, against golden."""
    segs = tb.tile.segments
    exp_d, exp_it = [], []
    for i in range(v):
        for k in range(int(iters[i]) + 1):
            e = min(int(e0[i]) + k, job.gp.e_max)
            exp_d.append(golden.dac_codes(job.x[i : i + 1], np.array([e]), job.gp)[0])
            exp_it.append(k)
    n = min(len(exp_d), len(segs))
    if n == 0:
        return
    sb.check(
        {"d": np.stack([s[0] for s in segs[:n]]), "iter": np.array([s[1] for s in segs[:n]])},
        {"d": np.stack(exp_d[:n]), "iter": np.array(exp_it[:n])},
        n,
    )


def check_job(sb_o: Scoreboard, sb_d: Scoreboard, tb: MgmtTB, job: Job, exp) -> int:
    a, e, it, sat = exp
    v, got = tb.received(job)
    if v == 0:
        return 0
    e0 = golden.choose_exponent(job.x, job.gp)
    check_dac(sb_d, tb, job, e0, it, v)
    return sb_o.check(
        got,
        {
            "a": a,
            "e": e,
            "iter": it,
            "sat_any": sat.astype(np.int64),
            "beats_consistent": np.ones(len(e), np.int64),
        },
        v,
        context=lambda i: (
            f"noise={job.gp.noise} "
            f"bmi={job.gp.bound_max_iter} R={job.x.shape[1]} "
            f"C={job.w.shape[1]} shift={job.shift}"
        ),
    )


@cocotb.test()
async def random_segments(dut):
    p = load_params()
    rtl, base = _params(p)
    total = int(p.get("vectors", 1000))
    tb = MgmtTB(
        dut,
        rtl,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.8)),
        float(p.get("p_ready", 0.7)),
    )
    sb_o, sb_d = Scoreboard(f"mgmt o lanes={rtl.lanes}"), Scoreboard("mgmt dac")
    tb.start_clock()
    await tb.reset()
    rng = tb.rng
    result: dict[str, Any] = {}
    reset_done = not p.get("reset_mid", True)
    jobs = 0
    iters_seen = np.zeros(16, np.int64)
    while sb_o.compared < total:
        V = int(min(total - sb_o.compared, rng.integers(20, 150)))
        # corners first: R = 1, R not a multiple of x_lanes, R = max_rows (few vectors)
        R = {0: 1, 1: rtl.x_lanes + 1, 2: rtl.max_rows}.get(jobs)
        if jobs == 2:
            V = min(V, 10)
        job = random_job(
            rng, rtl, base, V, R=R, noise=golden.NOISE_MODES[jobs % 2] if jobs < 4 else None
        )
        jobs += 1
        exp = job.expected()
        await tb.program(job.gp)
        if not reset_done and V >= 8:
            B = groups(job.w.shape[1], rtl.lanes)
            await tb.stream(job, stop_after=(V // 2) * B + 1)
            check_job(sb_o, sb_d, tb, job, exp)
            await tb.reset()
            await tb.program(job.gp)
            reset_done = True
            result["reset_after_beats"] = (V // 2) * B + 1
        await tb.stream(job)
        check_job(sb_o, sb_d, tb, job, exp)
        iters_seen += np.bincount(exp[2], minlength=16)[:16]
        if sb_o.mismatches or sb_d.mismatches:
            break
    result.update(
        vectors=sb_o.compared,
        mismatches=sb_o.mismatches + sb_d.mismatches,
        dac_segments=sb_d.compared,
        errors=sb_o.errors + sb_d.errors,
        jobs=jobs,
        iter_histogram=iters_seen.tolist(),
        rtl_cycles=tb.cycle,
        handshake_checked=tb.promise.checked,
        handshake_violations=tb.promise.violations,
    )
    save_result(result)
    assert sb_o.mismatches == 0 and sb_d.mismatches == 0, "\n".join(sb_o.errors + sb_d.errors)


@cocotb.test()
async def file_vectors(dut):
    """``x``, ``w``, ``shift`` from ``params['in']``; ``a, e, iter, sat_any`` to
    ``params['out']``."""
    p = load_params()
    rtl, gp = _params(p)
    with np.load(p["in"]) as f:
        job = Job(np.asarray(f["x"], np.int64), np.asarray(f["w"], np.int64), int(f["shift"]), gp)
    tb = MgmtTB(dut, rtl, int(p.get("seed", 1)), 1.0, 1.0)
    tb.start_clock()
    await tb.reset()
    await tb.program(gp)
    cycles = await tb.stream(job)
    v, got = tb.received(job)
    np.savez(
        p["out"],
        a=got["a"],
        e=got["e"],
        iter=got["iter"],
        sat_any=got["sat_any"].astype(bool),
        cycles=np.int64(cycles),
    )
    save_result({"vectors": v, "cycles": cycles})
