"""The level-4 test benches: one column job at a time through ``periphery_top``.

:class:`NetworkTB` drives ``periphery_top`` through ``network_top``'s bypass with per-beat
agents (:mod:`.agents`), one Python wake-up per clock (random gaps, backpressure, live
tiles); :class:`RingNetworkTB` feeds ``network_top``'s rings (:mod:`aimcflow.cosim.network_top`)
and wakes once per refill/drain.  Both present the same stream timing with no gaps, share
the job's beat words, ideal-cycle rule and output decoding (:mod:`.jobs`), and return
``(ColumnResult, RTL cycles, ideal cycles)`` per job.
"""

from __future__ import annotations

import time

import numpy as np
from aimcflow.models.nn.golden import ColumnJob, ColumnResult
from aimcflow.rtl.periphery_top import PeripheryTop
from aimcflow.rtl.protocol import groups
from amaranth.lib.wiring import In
from cocotb.handle import Immediate
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from ..benches.periphery_top import StatusMonitor, top_codecs
from ..network_top import COUNT_BITS, IN_RINGS, OUT_RINGS, TARGETS, NetworkTop, NetworkTopParams
from ..streams import PROGRESS_BOUND, TB, StreamSink, StreamSource, transfers
from .agents import AnswerSource, NetTileResponder
from .jobs import (
    RecordingTile,
    decode_result,
    ideal_cycles,
    last_flags_ok,
    load_words,
    x_segment_words,
)


class NetworkTB(TB):
    """``periphery_top`` with the network's tiles behind it; one column job at a time."""

    def __init__(self, dut, nrtl, mrtl, seed: int, p_valid: float, p_ready: float):
        super().__init__(dut, seed)
        self.nrtl, self.mrtl = nrtl, mrtl
        self.codec = c = top_codecs(PeripheryTop(nrtl, mrtl))
        last_bit = next(leaf.offset for leaf in c["adc"].leaves if leaf.name == "last")
        self.xsrc = self.add(StreamSource(dut, "x", self.rng, p_valid, lean=True))
        self.nload = self.add(StreamSource(dut, "nmpu_load", self.rng, p_valid, lean=True))
        self.mload = self.add(StreamSource(dut, "mgmt_load", self.rng, p_valid, lean=True))
        self.dac = self.add(StreamSink(dut, "dac", self.rng, p_ready, lean=True))
        # the responder drives before the adc source, so an answer is offered in the
        # cycle after the last DAC beat (a tile with no conversion latency)
        self.adc = AnswerSource(dut, "adc", self.rng, p_valid, last_bit=last_bit, dac=self.dac)
        self.tile = self.add(NetTileResponder(self.dac, self.adc, c["dac"], c["adc"], nrtl.lanes))
        self.add(self.adc)
        self.osnk = self.add(StreamSink(dut, "o", self.rng, p_ready, lean=True))
        # read every clock: the skid buffer between adc and the controller delays a
        # record by one clock or more (backpressure), so no cheaper rule says when
        self.status = self.add(StatusMonitor(dut))
        # only agents with work in a phase are called (status drives nothing, the
        # responder samples nothing)
        self.loop_s = 0.0  # wall time inside the per-cycle loop
        self.protocol_errors: list[str] = []  # per job: broken stream promises
        self.drivers = [a.drive for a in self.agents if a is not self.status]
        self.samplers = [a.sample for a in self.agents if a is not self.tile]

    async def run(self, until, max_cycles: int, hooks=()) -> int:
        """:meth:`TB.run` over the bound agent methods of the phases."""
        falling, readonly = FallingEdge(self.dut.clk), ReadOnly()
        drivers, samplers = self.drivers, self.samplers
        t0 = time.perf_counter()
        start = cycle = self.cycle
        end = start + max_cycles
        moved, last_move = transfers(self.agents), start
        try:
            while not until():
                if cycle >= end:
                    raise AssertionError(f"timeout after {max_cycles} cycles")
                if (cycle - start) % 256 == 0:  # no-progress bound, as streams.TB.run
                    now = transfers(self.agents)
                    if now != moved:
                        moved, last_move = now, cycle
                    elif cycle - last_move > PROGRESS_BOUND:
                        raise AssertionError(f"no beat transferred for {cycle - last_move} cycles")
                await falling
                for d in drivers:
                    d()
                await readonly
                for smp in samplers:
                    smp()
                cycle += 1
        finally:
            self.cycle = cycle
            self.loop_s += time.perf_counter() - t0
        return cycle - start

    def result(
        self, job: ColumnJob, nw: list, mw: list, seg_beats: list[int], o_words, status_words, a
    ) -> tuple[ColumnResult, int]:
        """The RTL's result of a job from its captured ``o``/``status`` words and its ideal
        cycles (``nw``/``mw``: the load words, ``seg_beats``: beats per row tile's segment)."""
        res = decode_result(self.codec, self.nrtl.lanes, job, o_words, status_words, a)
        if not last_flags_ok(self.codec, self.nrtl.lanes, job, o_words):
            self.protocol_errors.append("o.last is not set on exactly each vector's final beat")
        G = groups(len(job.mult), self.nrtl.lanes)
        return res, ideal_cycles(len(nw) + len(mw), seg_beats, res.iters, G)

    async def run_job(
        self, job: ColumnJob, rec: list[RecordingTile], coef: dict, gold=None
    ) -> tuple[ColumnResult, int, int]:
        """Program (coefficients ``coef``, :func:`.jobs.job_coefficients`), stream and
        collect one column job; returns the RTL's result, the cycles it took and its
        ideal cycles (:func:`.jobs.ideal_cycles`)."""
        start = self.cycle
        nw, mw = load_words(self.codec, self.nrtl, job, coef)
        self.nload.send(nw)
        self.mload.send(mw)
        await self.run(lambda: self.nload.idle and self.mload.idle, max_cycles=100_000)
        V, T, C = len(job.x_segments[0]), len(job.x_segments), len(job.mult)
        G = groups(C, self.nrtl.lanes)
        xl = self.mrtl.x_lanes
        words, nbs = x_segment_words(self.codec["x"], xl, job.x_segments)
        for agent in (self.osnk, self.status):
            agent.words.clear()
        self.dac.words.clear()
        self.tile.start(job, rec, xl)
        self.xsrc.send(words)
        beats = sum(nbs) * V + V * T * G
        osnk, status = self.osnk.words, self.status.words
        await self.run(
            lambda: len(osnk) >= V * G and len(status) >= V * T,
            max_cycles=100 * beats * (job.mgmt.bound_max_iter + 1) + 10_000,
        )
        self.tile.job = None
        res, ideal = self.result(job, nw, mw, nbs, osnk, status, self.tile.a)
        return res, self.cycle - start, ideal


class RingNetworkTB(NetworkTB):
    """The same column jobs on ``network_top``'s rings (ring mode, see
    :mod:`aimcflow.cosim.network_top`): Python wakes once per refill/drain, not once
    per clock.  The tile answers are the ones the golden controller's run recorded,
    pre-loaded in request order (the tile model is a pure function of the request,
    module docstring); every DAC request the RTL made is captured and compared with
    the golden controller's afterwards, so a different or extra request is a
    mismatch (a missing answer shows up as a timeout)."""

    # the clock toggles in the simulator (cocotb's C++ clock), not in a Python coroutine:
    # between refills Python has nothing to do per clock, and the Python clock's two
    # wakes per cycle were most of an Icarus run's time
    clock_impl = "gpi"

    def __init__(self, dut, nrtl, mrtl, seed: int, ring: NetworkTopParams):
        super().__init__(dut, nrtl, mrtl, seed, 1.0, 1.0)
        self.ring = ring
        top = NetworkTop(ring)
        self.widths = top.widths
        self.k = ring.k
        self.falling, self.readonly = FallingEdge(dut.clk), ReadOnly()
        self.stop_rise = RisingEdge(dut.stop)
        self.in_wp = {n: 0 for n in IN_RINGS}
        self.in_mod = 1 << ((ring.in_words - 1).bit_length() + 1)
        self.out_rp = {n: 0 for n in OUT_RINGS}
        self.targets = {n: 0 for n in TARGETS}
        self.out: dict[str, list[int]] = {n: [] for n in OUT_RINGS}
        self.wake_count = 0
        dut.bypass.value = 0
        dut.go.value = 0
        # every input defined from time 0: Verilator starts inputs at 0, Icarus at X, and
        # an X anywhere near the run enable (a target, a read pointer, the stall levels and
        # seed, a bypassed port) makes every counter X for good
        for path, member, _ in top.signature.flatten(top):
            if member.flow == In:
                getattr(dut, "__".join(map(str, path))).value = 0
        self.stall_level = 0

    async def set_stalls(self, fraction: float, seed: int) -> None:
        """Random stalls on ``o``, ``dac`` and ``adc`` in ``fraction`` of the cycles
        (network_top's seeded xorshift; call after reset)."""
        self.stall_level = min(255, max(0, round(fraction * 256)))
        await self.falling
        self._set("stall_seed", seed & 0xFFFFFFFF)
        self._set("stall_seed_wen", 1)
        self._set("stall_o", self.stall_level)
        self._set("stall_tile", self.stall_level)
        await self.falling
        self._set("stall_seed_wen", 0)

    def _u(self, name: str) -> int:
        return getattr(self.dut, name).value.to_unsigned()

    def _set(self, name: str, value: int) -> None:
        getattr(self.dut, name).value = Immediate(int(value))

    async def _feed(self, feeds: dict[str, list]) -> None:
        """At a falling edge with ``go`` low: write wide words while there is room;
        a ring whose words are all written is marked ``final``."""
        k = self.k
        room = {}
        for n in feeds:
            used = (self.in_wp[n] - self._u(f"{n}_rp")) % self.in_mod
            room[n] = self.ring.in_words - used
        active = set()
        while True:
            now = set()
            for n, st in feeds.items():
                ws, i = st
                if i < len(ws) and room[n] > 0:
                    chunk = ws[i : i + k]
                    w = self.widths[n]
                    val = len(chunk) << (k * w)
                    for j, word in enumerate(chunk):
                        val |= word << (j * w)
                    self._set(f"{n}_wdata", val)
                    st[1] = i + len(chunk)
                    room[n] -= 1
                    self.in_wp[n] = (self.in_wp[n] + 1) % self.in_mod
                    now.add(n)
            for n in active ^ now:
                self._set(f"{n}_wen", int(n in now))
            active = now
            if not now:
                break
            await self.falling
        for n in IN_RINGS:  # a ring with nothing more to come must not stop the run
            ws, i = feeds.get(n, ((), 0))
            self._set(f"{n}_final", int(i >= len(ws)))

    async def _drain(self) -> None:
        """At a falling edge with ``go`` low: read every captured beat, ``k`` per clock."""
        k = self.k
        left = {}
        for n in OUT_RINGS:
            c = self._u(f"{n}_count")
            if c != self.out_rp[n]:
                left[n] = (c - self.out_rp[n]) % (1 << COUNT_BITS)
        while left:
            for n in left:
                self._set(f"{n}_rp", self.out_rp[n])
            await self.falling
            for n in list(left):
                w, m = self.widths[n], (1 << self.widths[n]) - 1
                take = min(k, left[n])
                # only the ``take`` low words: Icarus leaves never-written ring words X
                # (Verilator 0); an X in a taken word still fails int()
                v = int(str(getattr(self.dut, f"{n}_rdata").value)[-take * w :], 2)
                self.out[n].extend((v >> (j * w)) & m for j in range(take))
                self.out_rp[n] = (self.out_rp[n] + take) % (1 << COUNT_BITS)
                left[n] -= take
                if not left[n]:
                    del left[n]
                    self._set(f"{n}_rp", self.out_rp[n])

    async def run_rings(self, feeds: dict[str, list], add: dict[str, int], max_cycles: int):
        """Feed ``feeds`` (ring -> words), raise the targets by ``add`` and let
        ``periphery_top`` run until they are met; raises on timeout."""
        await self.falling
        for n, a in add.items():
            self.targets[n] = (self.targets[n] + a) % (1 << COUNT_BITS)
            self._set(f"{n}_target", self.targets[n])
        start = self._u("cycles")
        self._set("limit", start + max_cycles)
        st = {n: [ws, 0] for n, ws in feeds.items()}
        t0 = time.perf_counter()
        last = (-1, -1)
        try:
            while True:
                await self._feed(st)
                self._set("go", 1)
                await self.readonly
                if not self.dut.stop.value:
                    await self.stop_rise
                self.wake_count += 1
                await self.falling
                self._set("go", 0)
                await self._drain()
                if self.dut.done.value:
                    break
                now = self._u("cycles")
                if now - start >= max_cycles:
                    raise AssertionError(f"timeout after {max_cycles} cycles")
                fed = sum(i for _, i in st.values())
                if now == last[0] and fed == last[1]:  # stopped with nothing to give
                    raise AssertionError(f"network_top stalled at cycle {now}")
                last = (now, fed)
        finally:
            self.cycle = self._u("cycles")
            self.loop_s += time.perf_counter() - t0

    async def run_job(
        self, job: ColumnJob, rec: list[RecordingTile], coef: dict, gold=None
    ) -> tuple[ColumnResult, int, int]:
        start = self._u("cycles")
        nw, mw = load_words(self.codec, self.nrtl, job, coef)
        await self.run_rings(
            {"nmpu_load": nw, "mgmt_load": mw},
            {"nmpu_load": len(nw), "mgmt_load": len(mw)},
            max_cycles=100_000,
        )
        V, T, C = len(job.x_segments[0]), len(job.x_segments), len(job.mult)
        G = groups(C, self.nrtl.lanes)
        xl = self.mrtl.x_lanes
        words, nbs = x_segment_words(self.codec["x"], xl, job.x_segments)
        # the golden controller's requests and the recorded answers, in request order
        tile = self.tile
        tile.start(job, rec, xl)
        memo = tile.memo
        dac_exp: list[int] = []
        seg_ids: list[tuple[int, int, int, int]] = []  # (v, t, k, first beat)
        answers: list[int] = []
        its = np.asarray(gold.iters, dtype=np.int64)
        for v in range(V):
            for t in range(T):
                nb = nbs[t]
                for kk in range(int(its[v, t]) + 1):
                    pos, dw, aw, a = memo[(t, kk)]
                    q = int(pos[v])
                    seg_ids.append((v, t, kk, len(dac_exp)))
                    dac_exp.extend(dw[q * nb : (q + 1) * nb])
                    answers.extend(aw[q * G : (q + 1) * G])
                tile.a[v, t] = a[q]
        for n in OUT_RINGS:
            self.out[n] = []
        beats = sum(nbs) * V + V * T * G
        await self.run_rings(
            {"x": words, "adc": answers},
            {"o": V * G, "status": V * T},
            max_cycles=100 * beats * (job.mgmt.bound_max_iter + 1) + 10_000,
        )
        tile.job = None
        got = self.out["dac"]
        tile.requests = len(seg_ids)
        tile.live_calls = 0
        if got != dac_exp:
            ends = [s[3] for s in seg_ids[1:]] + [len(dac_exp)]
            for (v, t, kk, b0), b1 in zip(seg_ids, ends, strict=True):
                if got[b0:b1] != dac_exp[b0:b1]:
                    tile.dac_mismatches.append((v, t, kk))
            if len(got) > len(dac_exp):  # requests beyond the golden controller's
                tile.dac_mismatches.append((V, T - 1, -1))
        res, ideal = self.result(job, nw, mw, nbs, self.out["o"], self.out["status"], tile.a)
        return res, self._u("cycles") - start, ideal
