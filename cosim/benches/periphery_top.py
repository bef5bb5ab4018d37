"""cocotb bench of ``periphery_top`` (controller + NMPU of one tile) against the golden models.

Per job: V vectors of T row tiles, each row tile ``t`` answered by its own ideal linear
crossbar ``w[t]`` (R,C) behind the ``dac``/``adc`` streams (:class:`mgmt.TileResponder`).
Expected outputs chain the two golden models exactly as the network simulator does:
``manage`` per row tile gives ``a[:, t]``, ``e[:, t]``; ``nmpu`` turns them into ``y``.
The ``status`` port (one ``e, iter, sat_any`` per segment) is checked too.

cocotb test ``random_jobs``: random valid gaps/backpressure on every stream, a reset in
mid-stream, scoreboards on ``o``, on ``status`` and on every DAC segment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec, port_codecs
from aimcflow.cosim.runner import load_params, save_result
from aimcflow.cosim.streams import TB, Scoreboard, StreamSink, StreamSource
from aimcflow.models.periphery import mgmt as mgolden
from aimcflow.models.periphery import nmpu as ngolden
from aimcflow.rtl.params import MgmtRtlParams, NmpuRtlParams
from aimcflow.rtl.periphery_top import PeripheryTop
from aimcflow.rtl.protocol import groups, mgmt_reg_beats, segment_beats

from . import mgmt as mbench
from . import nmpu as nbench

MODULE = "aimcflow.cosim.benches.periphery_top"
TOPLEVEL = "aimcflow_periphery_top"


def bench_params(
    nrtl: NmpuRtlParams,
    mrtl: MgmtRtlParams,
    ngp: ngolden.NmpuParams,
    mgp: mgolden.MgmtParams,
    **kw: Any,
) -> dict[str, Any]:
    return {
        "nmpu_rtl": dataclasses.asdict(nrtl),
        "mgmt_rtl": dataclasses.asdict(mrtl),
        "nmpu_golden": dataclasses.asdict(ngp),
        "mgmt_golden": dataclasses.asdict(mgp),
        **kw,
    }


@dataclass
class TopJob:
    x: np.ndarray  # (V, T, R)
    w: np.ndarray  # (T, R, C)
    shift: int
    coef: nbench.Job  # gain/offset (T,C), mult/bias (C,), NMPU golden params
    mgp: mgolden.MgmtParams

    def tiles(self):
        return [
            mgolden.ideal_linear_tile(self.w[t], self.shift, self.mgp.adc_bits)
            for t in range(self.w.shape[0])
        ]

    def expected(self):
        """``y`` (V,C) and per segment (v, t) ``e``, ``iter``, ``sat_any`` (V*T,)."""
        V, T, R = self.x.shape
        res = [mgolden.manage(self.x[:, t], tile, self.mgp) for t, tile in enumerate(self.tiles())]
        a = np.stack([r[0] for r in res], axis=1)
        e = np.stack([r[1] for r in res], axis=1)
        it = np.stack([r[2] for r in res], axis=1)
        sat = np.stack([r[3] for r in res], axis=1)
        c = self.coef
        y = ngolden.nmpu(a, e, c.gain, c.offset, c.mult, c.bias, c.gp)
        return y, e.reshape(-1), it.reshape(-1), sat.reshape(-1).astype(np.int64)


def top_codecs(comp: PeripheryTop) -> dict:
    """Payload codecs of every ``periphery_top`` port: its streams and the ``status`` word."""
    c = port_codecs(comp, ("x", "dac", "adc", "o", "nmpu_load", "mgmt_load"))
    c["status"] = PayloadCodec(comp.signature.members["status"].shape)
    return c


def random_job(rng, nrtl, mrtl, ngp, mgp, V: int) -> TopJob:
    T = int(rng.integers(1, nrtl.max_tiles, endpoint=True))
    C = int(rng.integers(1, 3 * nrtl.lanes, endpoint=True))
    mj = mbench.random_job(rng, mrtl, mgp, V * T, C=C)
    R = mj.x.shape[1]
    coef = nbench.random_job(rng, nrtl, ngp, 1, T=T, C=C)
    w = np.stack(
        [mj.w] + [rng.integers(-(1 << 6), 1 << 6, size=(R, C), endpoint=True) for _ in range(T - 1)]
    )
    return TopJob(mj.x.reshape(V, T, R), w.astype(np.int64), mj.shift, coef, mj.gp)


class StatusMonitor:
    """Records the ``status`` word whenever its ``valid`` field (bit 0) is high."""

    def __init__(self, dut) -> None:
        self.sig = dut.status
        self.words: list[int] = []

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        # valid (bit 0) first: the other fields are don't-care (X under Icarus) without it
        v = self.sig.value
        if str(v)[-1] != "1":
            return
        self.words.append(v.to_unsigned())

    def flush(self) -> None:
        pass


class TopTB(TB):
    def __init__(self, dut, nrtl, mrtl, seed, p_valid, p_ready):
        super().__init__(dut, seed)
        self.nrtl, self.mrtl = nrtl, mrtl
        self.codec = c = top_codecs(PeripheryTop(nrtl, mrtl))
        self.xsrc = self.add(StreamSource(dut, "x", self.rng, p_valid))
        self.nload = self.add(StreamSource(dut, "nmpu_load", self.rng, p_valid))
        self.mload = self.add(StreamSource(dut, "mgmt_load", self.rng, p_valid))
        self.dac = self.add(StreamSink(dut, "dac", self.rng, p_ready))
        self.adc = self.add(StreamSource(dut, "adc", self.rng, p_valid))
        self.osnk = self.add(StreamSink(dut, "o", self.rng, p_ready))
        self.status = self.add(StatusMonitor(dut))
        self.tile = self.add(
            mbench.TileResponder(self.dac, self.adc, c["dac"], c["adc"], mrtl.lanes, mrtl.adc_bits)
        )

    async def program(self, job: TopJob) -> None:
        self.nload.send(self.codec["nmpu_load"].pack(nbench.load_beats(job.coef, self.nrtl)))
        regs = mgmt_reg_beats(job.mgp.noise, job.mgp.bound_max_iter)
        self.mload.send(self.codec["mgmt_load"].pack(regs))
        await self.run(lambda: self.nload.idle and self.mload.idle, max_cycles=100_000)

    async def stream(self, job: TopJob, stop_after: int | None = None) -> int:
        V, T, R = job.x.shape
        C = job.w.shape[2]
        G = groups(C, self.nrtl.lanes)
        for agent in (self.osnk, self.dac, self.status):
            agent.words.clear()
        tiles = job.tiles()
        self.tile.segments.clear()
        self.tile.start(R, lambda seg: tiles[seg % T])
        self.xsrc.send(
            self.codec["x"].pack(segment_beats(job.x.reshape(V * T, R), self.mrtl.x_lanes))
        )
        want = V * G if stop_after is None else stop_after
        beats = V * T * (groups(R, self.mrtl.x_lanes) + G) * (job.mgp.bound_max_iter + 1)
        return await self.run(lambda: len(self.osnk.words) >= want, max_cycles=200 * beats + 1000)


def check(sbs: dict[str, Scoreboard], tb: TopTB, job: TopJob, exp) -> None:
    y_exp, e_exp, it_exp, sat_exp = exp
    V, T, R = job.x.shape
    C = job.w.shape[2]
    G = groups(C, tb.nrtl.lanes)
    v = len(tb.osnk.words) // G
    if v:
        f = tb.codec["o"].unpack(tb.osnk.words[: v * G])
        y, last = nbench.decode_outputs(f, v, C, tb.nrtl.lanes)
        sbs["o"].check(
            {"y": y},
            {"y": y_exp},
            v,
            context=lambda i: f"T={T} R={R} C={C} noise={job.mgp.noise}",
        )
    n = min(len(tb.status.words), v * T)
    if n:
        s = tb.codec["status"].unpack(tb.status.words[:n])
        sbs["status"].check(
            {"e": s["e"], "iter": s["iter"], "sat_any": s["sat_any"]},
            {"e": e_exp, "iter": it_exp, "sat_any": sat_exp},
            n,
        )
    x_flat = job.x.reshape(V * T, R)
    segs = tb.tile.segments
    e0 = mgolden.choose_exponent(x_flat, job.mgp)
    exp_d = []
    for i in range(n):
        for k in range(int(it_exp[i]) + 1):
            exp_d.append(mgolden.dac_codes(x_flat[i : i + 1], np.array([e0[i] + k]), job.mgp)[0])
    m = min(len(exp_d), len(segs))
    if m:
        sbs["dac"].check({"d": np.stack([s_[0] for s_ in segs[:m]])}, {"d": np.stack(exp_d[:m])}, m)


@cocotb.test()
async def random_jobs(dut):
    p = load_params()
    nrtl, mrtl = NmpuRtlParams(**p["nmpu_rtl"]), MgmtRtlParams(**p["mgmt_rtl"])
    ngp = ngolden.NmpuParams(**p["nmpu_golden"])
    mgp = mgolden.MgmtParams(**p["mgmt_golden"])
    total = int(p.get("vectors", 500))
    tb = TopTB(
        dut,
        nrtl,
        mrtl,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.8)),
        float(p.get("p_ready", 0.7)),
    )
    sbs = {k: Scoreboard(f"periphery_top {k}") for k in ("o", "status", "dac")}
    tb.start_clock()
    await tb.reset()
    rng = tb.rng
    result: dict[str, Any] = {}
    reset_done = not p.get("reset_mid", True)
    jobs = 0
    while sbs["o"].compared < total:
        V = int(min(total - sbs["o"].compared, rng.integers(10, 80)))
        job = random_job(rng, nrtl, mrtl, ngp, mgp, V)
        jobs += 1
        exp = job.expected()
        await tb.program(job)
        if not reset_done and V >= 8:
            G = groups(job.w.shape[2], nrtl.lanes)
            await tb.stream(job, stop_after=(V // 2) * G + 1)
            check(sbs, tb, job, exp)
            await tb.reset()
            await tb.program(job)
            reset_done = True
            result["reset_after_beats"] = (V // 2) * G + 1
        await tb.stream(job)
        check(sbs, tb, job, exp)
        if any(sb.mismatches for sb in sbs.values()):
            break
    errors = [e for sb in sbs.values() for e in sb.errors]
    result.update(
        vectors=sbs["o"].compared,
        segments=sbs["status"].compared,
        dac_segments=sbs["dac"].compared,
        mismatches=sum(sb.mismatches for sb in sbs.values()),
        errors=errors,
        jobs=jobs,
        rtl_cycles=tb.cycle,
    )
    save_result(result)
    assert result["mismatches"] == 0, "\n".join(errors)
