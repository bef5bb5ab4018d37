"""Pooling unit: running max or sum over a window's positions, then (average) a
fixed-point reciprocal and saturation, ``lanes`` channels per clock.

Numerics are docs/SPEC.md "Pooling"; the golden model is ``aimcflow.models.periphery.pool``.
The window geometry (size, stride, padding) is the order of the input beats: the sender
streams, per output position, the window's input positions one beat each (padded
positions are not sent: they never win a max and add 0 to a sum, the divisor being
folded into ``mult``/``shift``).  So the unit itself is a window reducer::

    r = max over the window's beats of x        (KIND = max)
    r = sum over the window's beats of x        (KIND = avg)
    y = r (max) | sat(rshr(r * mult, shift), bits) or satu(..) by SIGNED (avg)

Ports (``amaranth.lib.stream``, a beat transfers when ``valid`` and ``ready`` are high):

``i`` (In) — payload ``{x: lanes x signed(bits+1), last: 1}``: one window position of
    ``lanes`` channels; ``last`` marks the window's last position.  At most ``max_window``
    beats per window (the sum register is sized for that).
``o`` (Out) — payload ``{y: lanes x signed(bits+1)}``: one beat per window, in order.
``load`` (In) — payload ``{reg: 2, value: signed(load_bits)}``, always ready; register
    ``reg`` := ``value``: 0 KIND (0 max, 1 avg), 1 SIGNED (output format of an average),
    2 MULT, 3 SHIFT.  Load only between windows with no output in flight.  A reset
    restores the ``*_reset`` parameters and starts a new window.

Timing: initiation interval 1 per input beat (a window of ``K`` positions takes ``K``
clocks; outputs leave at most one per clock).  ``LATENCY = 3``: the output of a window
whose last beat is transferred at clock edge ``k`` is valid after edge ``k + 2`` and
transferred at edge ``k + 3`` at the earliest, so ``N`` windows of ``K`` positions at full
rate take ``N K + LATENCY`` clocks.  A stall of ``o`` freezes the pipeline
(``i.ready = ~o.valid | o.ready``), so backpressure never drops data.

Pipeline: the accumulator (one ``sum_bits`` register per lane, holding the running max or
sum) hands the window's result to S1 on its last beat; S2 registers ``r * mult`` and ``r``;
the output register holds the rounding shift and saturation, or ``r`` for a max.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .codes import PoolKind, PoolReg
from .nmpu import saturate
from .params import PoolWidths
from .registers import write_registers

LATENCY = 3
"""Clock edges from a window's last input transfer to the earliest transfer of its output."""

KIND_MAX, KIND_AVG = (k.value for k in PoolKind)
REG_KIND, REG_SIGNED, REG_MULT, REG_SHIFT = (r.value for r in PoolReg)


@dataclass(frozen=True)
class PoolRtlParams(PoolWidths):
    """Elaboration parameters: the widths (:class:`~aimcflow.rtl.params.PoolWidths`) and
    register reset values (``*_reset``)."""

    kind_reset: int = KIND_MAX
    signed_reset: bool = False
    mult_reset: int = 1
    shift_reset: int = 0

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ValueError(f"lanes = {self.lanes} must be >= 1")
        if not 2 <= self.bits <= 24:
            raise ValueError(f"bits = {self.bits} must be in 2 .. 24")
        if not 2 <= self.mult_bits <= 32:
            raise ValueError(f"mult_bits = {self.mult_bits} must be in 2 .. 32")
        if not 1 <= self.max_window <= 1 << 16:
            raise ValueError(f"max_window = {self.max_window} must be in 1 .. 65536")
        if self.kind_reset not in (KIND_MAX, KIND_AVG):
            raise ValueError(f"kind_reset = {self.kind_reset} must be 0 (max) or 1 (avg)")
        if not 0 <= self.shift_reset <= self.shift_max:
            raise ValueError(f"shift_reset = {self.shift_reset} must be in 0 .. {self.shift_max}")

    @property
    def load_bits(self) -> int:
        return max(self.mult_bits, self.shift_max.bit_length() + 1)


class Pool(wiring.Component):
    """The pooling unit; see the module docstring for the protocol."""

    def __init__(self, params: PoolRtlParams):
        self.params = p = params
        lane = signed(p.bits + 1)
        super().__init__(
            {
                "i": In(
                    stream.Signature(
                        data.StructLayout({"x": data.ArrayLayout(lane, p.lanes), "last": 1})
                    )
                ),
                "o": Out(
                    stream.Signature(data.StructLayout({"y": data.ArrayLayout(lane, p.lanes)}))
                ),
                "load": In(
                    stream.Signature(data.StructLayout({"reg": 2, "value": signed(p.load_bits)}))
                ),
            }
        )

    def elaborate(self, platform):
        p = self.params
        m = Module()
        n = p.bits

        # --- registers ---------------------------------------------------------------
        kind = Signal(init=p.kind_reset)
        out_signed = Signal(init=int(p.signed_reset))
        mult = Signal(signed(p.mult_bits), init=p.mult_reset)
        shift = Signal(range(p.shift_max + 1), init=p.shift_reset)
        write_registers(
            m,
            self.load,
            [(REG_KIND, kind), (REG_SIGNED, out_signed), (REG_MULT, mult), (REG_SHIFT, shift)],
        )

        # --- one global advance, frozen while o is stalled ----------------------------
        advance = Signal()
        accept = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
            accept.eq(self.i.valid & advance),
        ]

        # --- accumulator: running max or sum of the current window ---------------------
        first = Signal(init=1)  # the next beat starts a window
        acc = [Signal(signed(p.sum_bits), name=f"acc{j}") for j in range(p.lanes)]
        nxt = []
        for j in range(p.lanes):
            x = self.i.payload.x[j]
            new = Signal(signed(p.sum_bits), name=f"next{j}")
            bigger = Mux(x > acc[j], x, acc[j])
            m.d.comb += new.eq(Mux(first, x, Mux(kind == KIND_MAX, bigger, acc[j] + x)))
            nxt.append(new)
        v1 = Signal()
        r1 = [Signal(signed(p.sum_bits), name=f"r{j}") for j in range(p.lanes)]
        with m.If(accept):
            m.d.sync += first.eq(self.i.payload.last)
            m.d.sync += [acc[j].eq(nxt[j]) for j in range(p.lanes)]
        with m.If(advance):
            m.d.sync += v1.eq(accept & self.i.payload.last)
            with m.If(accept & self.i.payload.last):
                m.d.sync += [r1[j].eq(nxt[j]) for j in range(p.lanes)]

        # --- S2: reciprocal multiply (and the plain result for a max) -------------------
        v2 = Signal()
        prod2 = [Signal(signed(p.sum_bits + p.mult_bits), name=f"prod{j}") for j in range(p.lanes)]
        max2 = [Signal(signed(n + 1), name=f"max{j}") for j in range(p.lanes)]
        with m.If(advance):
            m.d.sync += v2.eq(v1)
            for j in range(p.lanes):
                # a max is one of the inputs: its low bits + 1 hold it exactly
                m.d.sync += [prod2[j].eq(r1[j] * mult), max2[j].eq(r1[j][: n + 1])]

        # --- output register: rounding shift (half up) and saturation, or the max -------
        half = (Const(1, 1) << shift) >> 1  # 2**(shift-1), 0 for shift = 0
        with m.If(advance):
            m.d.sync += self.o.valid.eq(v2)
            for j in range(p.lanes):
                rounded = Signal(signed(p.sum_bits + p.mult_bits + 1), name=f"rnd{j}")
                m.d.comb += rounded.eq((prod2[j] + half) >> shift)
                avg = Mux(
                    out_signed,
                    saturate(m, rounded, -(1 << (n - 1)), (1 << (n - 1)) - 1, f"sat_s{j}"),
                    saturate(m, rounded, 0, (1 << n) - 1, f"sat_u{j}"),
                )
                m.d.sync += self.o.payload.y[j].eq(Mux(kind == KIND_MAX, max2[j], avg))
        return m


def load_beats(kind: int, out_signed: bool, mult: int, shift: int) -> list[dict[str, int]]:
    """The ``load`` beats that set every register."""
    values = {REG_KIND: kind, REG_SIGNED: int(out_signed), REG_MULT: mult, REG_SHIFT: shift}
    return [{"reg": r, "value": int(v)} for r, v in values.items()]
