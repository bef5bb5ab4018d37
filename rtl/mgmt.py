"""Noise + bound management controller for one tile: input exponent, DAC codes, retries.

Numerics are exactly docs/SPEC.md; the golden model is
``aimcflow.models.periphery.mgmt.manage`` (with the tile behind the ``dac``/``adc`` streams).

Ports (all ``amaranth.lib.stream``; a beat transfers when valid and ready are high):

``x`` (In) — one input segment ``x[0..R)`` per management run, payload
    ``{x: x_lanes x (signed|unsigned)(x_bits), last: 1}``; ``x_lanes`` values per beat in
    row order, ``last`` on the final beat.  Pad the final beat with zeros (zero never
    changes ``max|x|``; its DAC code is 0).  At most ``max_rows`` rows (``max_beats`` beats).
``dac`` (Out) — DAC codes to the tile, payload ``{d: x_lanes x signed(dac_bits), iter: 4,
    last: 1}``: the segment's beats in the same order, ``iter`` = management iteration
    (0 first, +1 per bound-management retry), ``last`` on the final beat.  Sent once per
    iteration.
``adc`` (In) — the tile's answer to each ``dac`` segment, payload ``{a: lanes x
    signed(adc_bits), sat_any: 1, last: 1}``: ``ceil(C / lanes)`` beats, ``sat_any`` (some
    code of the whole answer is the ADC's most negative or most positive code) the same on
    every beat, ``last`` on the final beat.  Answers that trigger a retry are consumed and
    dropped; the final answer passes through to ``o`` beat by beat.
``o`` (Out) — to the NMPU, payload ``{a: lanes x signed(adc_bits), e: range(e_min, e_max+1),
    iter: 4, sat_any: 1, last: 1}``: the final answer's beats with the final ``e``, ``iter``
    and ``sat_any``.  ``o.valid`` / ``adc.ready`` are a combinational pass-through, so the
    NMPU's backpressure reaches the tile.
``load`` (In) — registers, payload ``{reg: 1, value: 4}``, always ready: reg 0 NOISE
    (0 off, 1 absmax_pow2), reg 1 BOUND_MAX_ITER (0..15).  Write only while no segment
    is in flight.

Payloads are packed like the NMPU's (``StructLayout`` fields LSB-first in the order listed,
array element 0 lowest).  A reset returns the controller to waiting for a segment's first
``x`` beat; registers return to ``noise_reset`` / ``bound_max_iter_reset``.

Sequence per segment: receive ``x`` into one of two buffers (a Memory of 2 x
``max_beats`` words) while tracking ``max|x|``; pick ``e`` combinationally from that maximum
and read the buffer's first word in the launch clock: the clock the segment's last ``x``
beat arrives when the controller is idle, else the clock the previous segment's final
answer delivers its last beat; stream ``dac`` from the next clock on, one beat per clock;
take the answer; on ``sat_any`` with ``iter < bound_max_iter`` and ``e < e_max`` drop it,
``e += 1``, ``iter += 1`` and re-stream ``dac`` from the buffer, launched in the clock the
dropped answer's last beat arrives.
Latency: the first ``dac`` beat is valid 1 clock after the launch clock (its segment's last
``x`` beat, the previous answer's last ``adc`` beat or the dropped answer's last beat,
whichever is later), then one beat per clock; ``adc`` -> ``o`` is combinational (0 clocks).
So with a tile that answers at once and no backpressure the ``dac``/``adc`` interface
carries a beat in every clock.  Because of the second buffer, the next segment's ``x``
streams in while the current one is being processed (``x.ready`` is low only while both
buffers hold unfinished segments).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .codes import MgmtReg
from .nmpu import exponent_shape, saturate
from .params import MgmtRtlParams

ITER_BITS = 4


def exponent_thresholds(p: MgmtRtlParams) -> dict[int, int]:
    """Largest ``M = max|x|`` for which exponent ``e`` keeps ``scale(M, e) <= dac_max``.

    ``e <= 0``: ``M << -e <= dac_max``  <=>  ``M <= dac_max >> -e``.
    ``e > 0``: ``floor((M + 2**(e-1)) / 2**e) <= dac_max``  <=>
    ``M <= (dac_max + 1) * 2**e - 2**(e-1) - 1``.
    """
    dac_max = (1 << (p.dac_bits - 1)) - 1
    return {
        e: (dac_max >> -e) if e <= 0 else ((dac_max + 1) << e) - (1 << (e - 1)) - 1
        for e in range(p.e_min, p.e_max + 1)
    }


class MgmtController(wiring.Component):
    """The management controller; see the module docstring for ports and protocol."""

    def __init__(self, params: MgmtRtlParams):
        self.params = p = params
        x_shape = signed(p.x_bits) if p.x_signed else unsigned(p.x_bits)
        e_shape = exponent_shape(p.e_min, p.e_max)
        self.x_layout = data.StructLayout({"x": data.ArrayLayout(x_shape, p.x_lanes), "last": 1})
        self.dac_layout = data.StructLayout(
            {"d": data.ArrayLayout(signed(p.dac_bits), p.x_lanes), "iter": ITER_BITS, "last": 1}
        )
        self.adc_layout = data.StructLayout(
            {"a": data.ArrayLayout(signed(p.adc_bits), p.lanes), "sat_any": 1, "last": 1}
        )
        self.out_layout = data.StructLayout(
            {
                "a": data.ArrayLayout(signed(p.adc_bits), p.lanes),
                "e": e_shape,
                "iter": ITER_BITS,
                "sat_any": 1,
                "last": 1,
            }
        )
        self.load_layout = data.StructLayout({"reg": 1, "value": ITER_BITS})
        super().__init__(
            {
                "x": In(stream.Signature(self.x_layout)),
                "dac": Out(stream.Signature(self.dac_layout)),
                "adc": In(stream.Signature(self.adc_layout)),
                "o": Out(stream.Signature(self.out_layout)),
                "load": In(stream.Signature(self.load_layout)),
            }
        )

    def elaborate(self, platform):
        p = self.params
        m = Module()

        noise = Signal(init=p.noise_reset)
        bound_max_iter = Signal(ITER_BITS, init=p.bound_max_iter_reset)
        m.d.comb += self.load.ready.eq(1)
        with m.If(self.load.valid):
            with m.If(self.load.payload.reg == MgmtReg.NOISE):
                m.d.sync += noise.eq(self.load.payload.value)
            with m.Else():
                m.d.sync += bound_max_iter.eq(self.load.payload.value)

        # Two x buffers (banks): the next segment streams in while this one is processed.
        MB = p.max_beats
        m.submodules.x_mem = x_mem = Memory(shape=self.x_layout["x"].shape, depth=2 * MB, init=[])
        wp = x_mem.write_port()
        # transparent: a one-beat segment's word is read in the clock it is written
        rp = x_mem.read_port(transparent_for=(wp,))

        e = Signal(exponent_shape(p.e_min, p.e_max))
        it = Signal(ITER_BITS)
        sat_latched = Signal()
        rd_addr = Signal(range(MB + 1))
        full = [Signal(name=f"bank{b}_full") for b in range(2)]
        bank_beats = [Signal(range(MB + 1), name=f"bank{b}_beats") for b in range(2)]
        bank_max = [Signal(p.x_bits, name=f"bank{b}_max_abs") for b in range(2)]

        # --- input side: fill the bank in_bank while it is free, tracking max|x| -------
        in_bank = Signal()
        wr_addr = Signal(range(MB))
        beat_max = Signal(p.x_bits)
        abs_vals = []
        for j in range(p.x_lanes):
            v = self.x.payload.x[j]
            a = Signal(p.x_bits, name=f"abs{j}")
            m.d.comb += a.eq(Mux(v < 0, -v, v) if p.x_signed else v)
            abs_vals.append(a)
        running = abs_vals[0]
        for j, a in enumerate(abs_vals[1:], 1):
            # a Signal per step: the bare Mux chain duplicates `running` in the netlist at
            # every step (2**x_lanes copies: 132k Verilog lines for 16 lanes)
            step = Signal(p.x_bits, name=f"max_upto{j}")
            m.d.comb += step.eq(Mux(a > running, a, running))
            running = step
        m.d.comb += beat_max.eq(running)
        in_max = Mux(in_bank, bank_max[1], bank_max[0])
        x_take = Signal()
        segment_in = Signal()
        m.d.comb += [
            self.x.ready.eq(~Mux(in_bank, full[1], full[0])),
            x_take.eq(self.x.valid & self.x.ready),
            segment_in.eq(x_take & self.x.payload.last),
            wp.addr.eq(Mux(in_bank, MB + wr_addr, wr_addr)),
            wp.data.eq(self.x.payload.x),
            wp.en.eq(x_take),
        ]
        new_max_abs = Signal(p.x_bits)  # max|x| of the filling segment up to this beat
        m.d.comb += new_max_abs.eq(Mux((wr_addr == 0) | (beat_max > in_max), beat_max, in_max))
        with m.If(x_take):
            new_max = new_max_abs
            for b in range(2):
                with m.If(in_bank == b):
                    m.d.sync += bank_max[b].eq(new_max)
                    with m.If(self.x.payload.last):
                        m.d.sync += bank_beats[b].eq(wr_addr + 1)
            with m.If(self.x.payload.last):
                m.d.sync += [wr_addr.eq(0), in_bank.eq(~in_bank)]
            with m.Else():
                m.d.sync += wr_addr.eq(wr_addr + 1)

        # --- processing side: the bank proc_bank ---------------------------------------
        proc_bank = Signal()
        segment_done = Signal()
        for b in range(2):
            with m.If(segment_in & (in_bank == b)):
                m.d.sync += full[b].eq(1)
            with m.Elif(segment_done & (proc_bank == b)):
                m.d.sync += full[b].eq(0)
        n_beats = Mux(proc_bank, bank_beats[1], bank_beats[0])

        # --- launching a segment's DAC stream -----------------------------------------
        # A segment is launched in the clock its predecessor's final answer completes (or,
        # when idle, the clock its own last x beat arrives), so its first DAC beat is valid
        # in the next clock: e is picked combinationally from the bank's max|x| (merged
        # with the arriving beat's when the segment completes in that very clock) and the
        # bank's first word is read in the launch clock.
        cand_bank = Signal()  # the bank a new segment would be launched from
        cand_full = Mux(cand_bank, full[1], full[0])
        cand_arriving = Signal()
        m.d.comb += cand_arriving.eq(segment_in & (in_bank == cand_bank))
        max_abs = Signal(p.x_bits)
        m.d.comb += max_abs.eq(
            Mux(cand_full, Mux(cand_bank, bank_max[1], bank_max[0]), new_max_abs)
        )
        cand_beats = Mux(cand_full, Mux(cand_bank, bank_beats[1], bank_beats[0]), wr_addr + 1)

        # --- exponent from max|x| (smallest fitting e wins: later statements override) --
        e_next = Signal.like(e)
        m.d.comb += e_next.eq(p.e_max)
        for cand, thr in sorted(exponent_thresholds(p).items(), reverse=True):
            if thr >= (1 << p.x_bits) - 1:  # every x_bits magnitude fits: no comparator
                m.d.comb += e_next.eq(cand)
            else:
                with m.If(max_abs <= thr):
                    m.d.comb += e_next.eq(cand)
        with m.If((noise == 0) | (max_abs == 0)):
            m.d.comb += e_next.eq(0)

        # --- DAC codes from the buffered x and the current e -------------------------
        dac_valid = Signal()
        dac_last = Signal()
        m.d.comb += [
            self.dac.valid.eq(dac_valid),
            self.dac.payload.last.eq(dac_last),
            self.dac.payload.iter.eq(it),
        ]
        # only the shift directions the exponent range allows (no constant comparisons,
        # no zero-width signals)
        left = right = Const(0, 1)
        if p.e_min < 0:
            left = Signal(range(-p.e_min + 1))
            m.d.comb += left.eq(Mux(e < 0, -e, 0))
        if p.e_max > 0:
            right = Signal(range(p.e_max + 1))
            m.d.comb += right.eq(Mux(e > 0, e, 0))
        half = (Const(1, 1) << right) >> 1
        d_lo, d_hi = -(1 << (p.dac_bits - 1)), (1 << (p.dac_bits - 1)) - 1
        for j in range(p.x_lanes):
            xv = rp.data[j]
            scaled = Mux(e <= 0, xv << left, (xv + half) >> right) if p.e_max > 0 else xv << left
            m.d.comb += self.dac.payload.d[j].eq(saturate(m, scaled, d_lo, d_hi, f"scaled{j}"))
        dac_advance = Signal()
        m.d.comb += [
            dac_advance.eq(~dac_valid | self.dac.ready),
            rp.addr.eq(Mux(proc_bank, MB + rd_addr, rd_addr)),
            rp.en.eq(dac_advance),
        ]

        # --- answer pass-through fields ----------------------------------------------
        m.d.comb += [
            self.o.payload.a.eq(self.adc.payload.a),
            self.o.payload.e.eq(e),
            self.o.payload.iter.eq(it),
            self.o.payload.last.eq(self.adc.payload.last),
        ]
        final = Signal()
        m.d.comb += final.eq(~self.adc.payload.sat_any | (it >= bound_max_iter) | (e == p.e_max))

        # launch requests from the FSM (at most one per clock, never while dac is valid)
        launch_new = Signal()  # first iteration of the segment in cand_bank
        launch_retry = Signal()  # next iteration of the segment in proc_bank
        m.d.comb += cand_bank.eq(proc_bank)

        def finish_segment() -> None:
            """The final answer's last beat transfers in this clock: free its bank and
            launch the next segment right away if it is (or is just becoming) complete."""
            m.d.comb += [segment_done.eq(1), cand_bank.eq(~proc_bank)]
            m.d.sync += proc_bank.eq(~proc_bank)
            with m.If(cand_full | cand_arriving):
                m.d.comb += launch_new.eq(1)
                m.next = "SEND_D"
            with m.Else():
                m.next = "WAIT_X"

        with m.FSM():
            with m.State("WAIT_X"):
                with m.If(cand_full | cand_arriving):
                    m.d.comb += launch_new.eq(1)
                    m.next = "SEND_D"
            with m.State("SEND_D"):
                with m.If(dac_advance):
                    with m.If(rd_addr < n_beats):
                        m.d.sync += [
                            dac_valid.eq(1),
                            dac_last.eq(rd_addr == n_beats - 1),
                            rd_addr.eq(rd_addr + 1),
                        ]
                    with m.Else():
                        m.d.sync += dac_valid.eq(0)
                with m.If(dac_valid & dac_last & self.dac.ready):
                    m.next = "ANSWER_FIRST"
            with m.State("ANSWER_FIRST"):
                with m.If(final):
                    m.d.comb += [
                        self.o.valid.eq(self.adc.valid),
                        self.adc.ready.eq(self.o.ready),
                        self.o.payload.sat_any.eq(self.adc.payload.sat_any),
                    ]
                    with m.If(self.adc.valid & self.o.ready):
                        m.d.sync += sat_latched.eq(self.adc.payload.sat_any)
                        m.next = "FORWARD"
                        with m.If(self.adc.payload.last):
                            finish_segment()
                with m.Else():
                    m.d.comb += self.adc.ready.eq(1)
                    with m.If(self.adc.valid):
                        m.next = "DRAIN"
                        with m.If(self.adc.payload.last):
                            m.d.comb += launch_retry.eq(1)
                            m.next = "SEND_D"
            with m.State("FORWARD"):
                m.d.comb += [
                    self.o.valid.eq(self.adc.valid),
                    self.adc.ready.eq(self.o.ready),
                    self.o.payload.sat_any.eq(sat_latched),
                ]
                with m.If(self.adc.valid & self.o.ready & self.adc.payload.last):
                    finish_segment()
            with m.State("DRAIN"):
                m.d.comb += self.adc.ready.eq(1)
                with m.If(self.adc.valid & self.adc.payload.last):
                    m.d.comb += launch_retry.eq(1)
                    m.next = "SEND_D"

        # a launch reads word 0 of its bank now, so the first DAC beat is valid next clock
        # (launches happen only outside SEND_D, where dac_valid is low: these statements,
        # later in the netlist, override nothing that matters there)
        with m.If(launch_new):
            m.d.comb += rp.addr.eq(Mux(cand_bank, MB, 0))
            m.d.sync += [
                e.eq(e_next),
                it.eq(0),
                rd_addr.eq(1),
                dac_valid.eq(1),
                dac_last.eq(cand_beats == 1),
            ]
        with m.If(launch_retry):
            m.d.comb += rp.addr.eq(Mux(proc_bank, MB, 0))
            m.d.sync += [
                e.eq(e + 1),
                it.eq(it + 1),
                rd_addr.eq(1),
                dac_valid.eq(1),
                dac_last.eq(n_beats == 1),
            ]
        return m


Mgmt = MgmtController
"""Short alias."""
