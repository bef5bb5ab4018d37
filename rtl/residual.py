"""Residual-add unit: two activation streams brought to one scale, added, saturated and
activated, ``lanes`` elements per clock.

Numerics are docs/SPEC.md "Residual add"; the golden model is
``aimcflow.models.periphery.residual`` and the activation/output saturation is the NMPU's
own logic (:func:`aimcflow.rtl.nmpu.activate`, same registers and codes)::

    z = rshr(a * mult_a + b * mult_b, shift);  s = sat(z, out_bits + 1);  y = out_sat(act(s))

Ports (``amaranth.lib.stream``, a beat transfers when ``valid`` and ``ready`` are high):

``i`` (In) — payload ``{a: lanes x signed(in_bits+1), b: lanes x signed(in_bits+1),
    last: 1}``: element ``j`` of both branches in lane ``j``.  The branch formats (signed or
    unsigned ``in_bits``) are the caller's: any value of the port width is computed exactly.
    ``last`` is passed through unchanged (it marks the end of a vector for the consumer).
``o`` (Out) — payload ``{y: lanes x signed(out_bits+1), last: 1}``, one beat per ``i`` beat,
    in order.  ``y`` holds the exact output value (unsigned outputs are 0 .. 2**out_bits-1).
``load`` (In) — payload ``{reg: 4, value: signed(load_bits)}``, always ready; register
    ``reg`` := ``value``: 0 ACTIVATION (0 none, 1 relu, 2 leaky, 3 clamp), 1 OUT_SIGNED,
    2 LEAKY_K, 3 CLAMP_LO, 4 CLAMP_HI (numbers and meaning as the NMPU's), 5 MULT_A,
    6 MULT_B, 7 SHIFT.  Load only while no beat is in flight; the data path reads the
    registers without interlock.  A reset restores the ``*_reset`` parameters.

Timing: initiation interval 1 (one beat per clock while ``o`` is ready).  ``LATENCY = 3``:
an input beat transferred at clock edge ``k`` has its output valid after edge ``k + 2`` and
transferred at edge ``k + 3`` at the earliest, so N beats at full rate take
``N + LATENCY`` clocks.  A stall of ``o`` freezes the pipeline (``i.ready = ~o.valid |
o.ready``), so backpressure never drops data.

Pipeline: S1 registers the two products, S2 the rounded and saturated sum ``s``, the
output register holds activation and output saturation.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .codes import ResidualReg
from .nmpu import activate, saturate
from .params import ResidualWidths
from .registers import write_registers

LATENCY = 3
"""Clock edges from an input transfer to the earliest transfer of its output."""

(
    REG_ACTIVATION,
    REG_OUT_SIGNED,
    REG_LEAKY_K,
    REG_CLAMP_LO,
    REG_CLAMP_HI,
    REG_MULT_A,
    REG_MULT_B,
    REG_SHIFT,
) = (r.value for r in ResidualReg)


@dataclass(frozen=True)
class ResidualRtlParams(ResidualWidths):
    """Elaboration parameters: the widths (:class:`~aimcflow.rtl.params.ResidualWidths`) and
    register reset values (``*_reset``)."""

    activation_reset: int = 1
    out_signed_reset: bool = False
    leaky_k_reset: int = 3
    clamp_lo_reset: int = 0
    clamp_hi_reset: int = 127
    mult_a_reset: int = 1
    mult_b_reset: int = 1
    shift_reset: int = 0

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ValueError(f"lanes = {self.lanes} must be >= 1")
        for name in ("in_bits", "out_bits"):
            if not 2 <= getattr(self, name) <= 24:
                raise ValueError(f"{name} = {getattr(self, name)} must be in 2 .. 24")
        if not 2 <= self.mult_bits <= 32:
            raise ValueError(f"mult_bits = {self.mult_bits} must be in 2 .. 32")
        if not 0 <= self.activation_reset <= 3 or not 0 <= self.leaky_k_reset <= 31:
            raise ValueError("activation_reset must be 0..3 and leaky_k_reset 0..31")
        if not 0 <= self.shift_reset <= self.sum_bits:
            raise ValueError(f"shift_reset = {self.shift_reset} must be in 0 .. {self.sum_bits}")

    @property
    def load_bits(self) -> int:
        """Signed width of the load stream's value: a multiplier or a clamp bound."""
        return max(self.mult_bits, self.out_bits + 1, 7)


class ResidualAdd(wiring.Component):
    """The residual-add unit; see the module docstring for the protocol."""

    def __init__(self, params: ResidualRtlParams):
        self.params = p = params
        lane = signed(p.in_bits + 1)
        super().__init__(
            {
                "i": In(
                    stream.Signature(
                        data.StructLayout(
                            {
                                "a": data.ArrayLayout(lane, p.lanes),
                                "b": data.ArrayLayout(lane, p.lanes),
                                "last": 1,
                            }
                        )
                    )
                ),
                "o": Out(
                    stream.Signature(
                        data.StructLayout(
                            {"y": data.ArrayLayout(signed(p.out_bits + 1), p.lanes), "last": 1}
                        )
                    )
                ),
                "load": In(
                    stream.Signature(data.StructLayout({"reg": 4, "value": signed(p.load_bits)}))
                ),
            }
        )

    def elaborate(self, platform):
        p = self.params
        m = Module()
        n = p.out_bits

        # --- registers (the NMPU's activation set, then the add's coefficients) -------
        c_lo, c_hi = -(1 << n), (1 << n) - 1  # clamp registers: signed out_bits + 1
        activation = Signal(2, init=p.activation_reset)
        out_signed = Signal(init=int(p.out_signed_reset))
        leaky_k = Signal(5, init=p.leaky_k_reset)
        clamp_lo = Signal(signed(n + 1), init=min(max(p.clamp_lo_reset, c_lo), c_hi))
        clamp_hi = Signal(signed(n + 1), init=min(max(p.clamp_hi_reset, c_lo), c_hi))
        mult_a = Signal(signed(p.mult_bits), init=p.mult_a_reset)
        mult_b = Signal(signed(p.mult_bits), init=p.mult_b_reset)
        shift = Signal(range(p.sum_bits + 1), init=p.shift_reset)
        write_registers(
            m,
            self.load,
            [
                (REG_ACTIVATION, activation),
                (REG_OUT_SIGNED, out_signed),
                (REG_LEAKY_K, leaky_k),
                (REG_CLAMP_LO, clamp_lo),
                (REG_CLAMP_HI, clamp_hi),
                (REG_MULT_A, mult_a),
                (REG_MULT_B, mult_b),
                (REG_SHIFT, shift),
            ],
        )

        # --- one global advance, frozen while o is stalled ----------------------------
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # --- S1: the two products -----------------------------------------------------
        prod_shape = signed(p.in_bits + 1 + p.mult_bits)
        v1, last1 = Signal(), Signal()
        pa = [Signal(prod_shape, name=f"pa{j}") for j in range(p.lanes)]
        pb = [Signal(prod_shape, name=f"pb{j}") for j in range(p.lanes)]
        with m.If(advance):
            m.d.sync += [v1.eq(self.i.valid), last1.eq(self.i.payload.last)]
            for j in range(p.lanes):
                m.d.sync += [
                    pa[j].eq(self.i.payload.a[j] * mult_a),
                    pb[j].eq(self.i.payload.b[j] * mult_b),
                ]

        # --- S2: exact sum, rounding shift (half up), saturation to out_bits + 1 ---------
        v2, last2 = Signal(), Signal()
        s2 = [Signal(signed(n + 1), name=f"s{j}") for j in range(p.lanes)]
        half = (Const(1, 1) << shift) >> 1  # 2**(shift-1), 0 for shift = 0
        with m.If(advance):
            m.d.sync += [v2.eq(v1), last2.eq(last1)]
            for j in range(p.lanes):
                total = Signal(signed(p.sum_bits + 1), name=f"sum{j}")
                m.d.comb += total.eq(pa[j] + pb[j] + half)
                m.d.sync += s2[j].eq(saturate(m, total >> shift, c_lo, c_hi, f"z{j}"))

        # --- output register: activation and output saturation --------------------------
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.last.eq(last2)]
            for j in range(p.lanes):
                m.d.sync += self.o.payload.y[j].eq(
                    activate(
                        m, s2[j], activation, out_signed, leaky_k, clamp_lo, clamp_hi, n, str(j)
                    )
                )
        return m


def load_beats(
    activation: int,
    out_signed: bool,
    leaky_k: int,
    clamp_lo: int,
    clamp_hi: int,
    mult_a: int,
    mult_b: int,
    shift: int,
) -> list[dict[str, int]]:
    """The ``load`` beats that set every register (clamp bounds already in the register's
    signed ``out_bits + 1`` range, e.g. the golden model's ``rtl_clamp_bounds``)."""
    values = {
        REG_ACTIVATION: activation,
        REG_OUT_SIGNED: int(out_signed),
        REG_LEAKY_K: leaky_k,
        REG_CLAMP_LO: clamp_lo,
        REG_CLAMP_HI: clamp_hi,
        REG_MULT_A: mult_a,
        REG_MULT_B: mult_b,
        REG_SHIFT: shift,
    }
    return [{"reg": r, "value": int(v)} for r, v in values.items()]
