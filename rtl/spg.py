"""Stochastic pulse generator: R row lanes and C column lanes, one pulse slot per clock.

Numerics are those of docs/SPEC.md "Stochastic pulse generator" and the choices recorded
in ``models/periphery/spg.py`` (its golden model): translator
``q = min(2**P, scale(|v| * gain, value_bits - 1 + gain_frac - P))``; a 32-bit xorshift
(13, 17, 5) per lane whose low P bits are compared ``r < q`` every slot; lane ``k``
seeded with ``T**(k * 2**21) base`` (a constant GF(2) jump matrix per lane, i.e. an XOR
network evaluated once per seed load); a Bresenham accumulator in deterministic mode.

Ports (all ``amaranth.lib.stream``, valid/ready, backpressure honoured):

* ``seed``  (in): 32-bit seed; accepted only while idle; loads every lane's state.
* ``i``     (in): one update: ``x`` (R signed values), ``d`` (C signed values), ``gain_x``,
  ``gain_d`` (unsigned, ``gain_frac`` fractional bits), ``bl`` (slots, 0 = no slots),
  ``deterministic`` (1 bit).  Accepted while idle, or in the cycle the previous update's
  last slot is taken, so consecutive updates stream without a bubble.
* ``o``     (out): one slot per transfer: ``row``/``col`` pulse bits (bit k = lane k),
  ``row_neg``/``col_neg`` sign lines (1 = negative value), ``last`` on the update's final slot.
  Each lane's xorshift advances exactly once per transferred slot.

This module imports nothing from ``aimcflow.models``: the per-lane jump matrices arrive as
constants in ``SpgRtlParams.lane_jumps`` (computed by the golden model's ``rtl_lane_jumps``),
and the RTL only turns them into XOR networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import SpgWidths

XORSHIFT_SHIFTS = (13, 17, 5)
STATE_BITS = 32
ZERO_SEED_BASE = 0x9E3779B9


@dataclass(frozen=True)
class SpgRtlParams(SpgWidths):
    """Elaboration parameters: lane counts and the SPEC widths (:class:`SpgWidths`)."""

    rows: int = field(kw_only=True)
    cols: int = field(kw_only=True)
    #: lane k's seed jump ``T**(k * 2**21)`` as 32 column words (bit i of word j set: state
    #: bit j feeds output bit i), one matrix per lane; from ``models.periphery.spg.rtl_lane_jumps``
    lane_jumps: tuple[tuple[int, ...], ...] = field(kw_only=True)

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ValueError("rows and cols must be >= 1")
        # JSON hands the matrices over as lists; keep the frozen params hashable
        jumps = tuple(tuple(int(w) for w in m) for m in self.lane_jumps)
        object.__setattr__(self, "lane_jumps", jumps)
        if len(jumps) != self.lanes or any(
            len(m) != STATE_BITS or any(not 0 <= w < (1 << STATE_BITS) for w in m) for m in jumps
        ):
            raise ValueError(
                f"lane_jumps must hold rows + cols = {self.lanes} matrices of {STATE_BITS} "
                f"{STATE_BITS}-bit column words"
            )
        if not 1 <= self.prob_bits <= STATE_BITS:
            raise ValueError(f"prob_bits must be in 1..{STATE_BITS}")
        if self.translator_shift >= self.value_bits + self.gain_bits:
            raise ValueError("translator shift exceeds the |v| * gain product width")

    @property
    def bl_bits(self) -> int:
        return max(1, self.max_bl.bit_length())

    @property
    def lanes(self) -> int:
        return self.rows + self.cols


# --------------------------------------------------------------- GF(2) jumps in gates


def _gf2_matvec(m: tuple[int, ...], s: Signal):
    """Output bit i is the XOR of the state bits j whose column m[j] has bit i set."""
    bits = []
    for i in range(STATE_BITS):
        taps = [s[j] for j in range(STATE_BITS) if (m[j] >> i) & 1]
        bits.append(Cat(*taps).xor() if taps else Const(0, 1))
    return Cat(*bits)


def _xorshift(s):
    a, b, c = XORSHIFT_SHIFTS
    s = (s ^ (s << a))[:STATE_BITS]
    s = s ^ (s >> b)
    return (s ^ (s << c))[:STATE_BITS]


# --------------------------------------------------------------- the component


def update_layout(p: SpgRtlParams) -> data.StructLayout:
    return data.StructLayout(
        {
            "x": data.ArrayLayout(signed(p.value_bits), p.rows),
            "d": data.ArrayLayout(signed(p.value_bits), p.cols),
            "gain_x": unsigned(p.gain_bits),
            "gain_d": unsigned(p.gain_bits),
            "bl": unsigned(p.bl_bits),
            "deterministic": unsigned(1),
        }
    )


def slot_layout(p: SpgRtlParams) -> data.StructLayout:
    return data.StructLayout(
        {
            "row": data.ArrayLayout(unsigned(1), p.rows),
            "col": data.ArrayLayout(unsigned(1), p.cols),
            "row_neg": data.ArrayLayout(unsigned(1), p.rows),
            "col_neg": data.ArrayLayout(unsigned(1), p.cols),
            "last": unsigned(1),
        }
    )


class StochasticPulseGenerator(wiring.Component):
    """R + C stochastic (or deterministic) pulse lanes; see the module docstring."""

    def __init__(self, params: SpgRtlParams):
        self.params = params
        super().__init__(
            {
                "seed": In(stream.Signature(unsigned(STATE_BITS))),
                "i": In(stream.Signature(update_layout(params))),
                "o": Out(stream.Signature(slot_layout(params))),
            }
        )

    def _translate(self, m: Module, mag, gain, k: int):
        """q = min(2**P, scale(|v| * gain, shift)); unsigned P+1 bits.

        Written without constant operands (rounding through the carry bit, saturation
        through the high bits) so the Verilog has no width-extension warnings to waive."""
        p = self.params
        prod = Signal(p.value_bits + p.gain_bits, name=f"prod{k}")
        m.d.comb += prod.eq(mag * gain)
        e = p.translator_shift
        raw = Signal(len(prod) + max(0, -e) + 1, name=f"scaled{k}")
        if e <= 0:
            m.d.comb += raw.eq(prod << -e)
        else:
            # rshr(prod, e) = (prod >> e) + bit e-1: adding 2**(e-1) carries into bit e
            # exactly when that bit is set; no constant operand to widen
            m.d.comb += raw.eq(prod[e:] + prod[e - 1])
        P = p.prob_bits
        over = raw[P:].any()  # raw >= 2**P saturates to q = 2**P
        q = Signal(P + 1, name=f"qnext{k}")
        m.d.comb += q.eq(Cat(Mux(over, 0, raw[:P]), over))
        return q

    def elaborate(self, platform):
        p = self.params
        m = Module()
        L, P, W = p.lanes, p.prob_bits, p.bl_bits

        busy = Signal()
        bl = Signal(W + 2)  # as wide as the Bresenham sum it is compared with
        bl_m1 = Signal(W)  # bl - 1: index of the last slot
        det = Signal()
        slot = Signal(W)  # index of the current slot within the update
        state = [Signal(STATE_BITS, name=f"state{k}", init=ZERO_SEED_BASE) for k in range(L)]
        q = [Signal(P + 1, name=f"q{k}") for k in range(L)]
        n = [Signal(W + 1, name=f"n{k}") for k in range(L)]
        acc = [Signal(W + 1, name=f"acc{k}") for k in range(L)]
        neg = [Signal(name=f"neg{k}") for k in range(L)]

        last = Signal()
        m.d.comb += last.eq(slot == bl_m1)
        take = Signal()  # an output slot is transferred this cycle
        m.d.comb += take.eq(self.o.valid & self.o.ready)

        # seed first when idle; a new update when idle or while the last slot leaves
        m.d.comb += [
            self.seed.ready.eq(~busy),
            self.i.ready.eq((~busy & ~self.seed.valid) | (busy & last & self.o.ready)),
            self.o.valid.eq(busy),
        ]

        # per-lane values of the incoming update
        upd = self.i.payload
        values = [upd.x[k] for k in range(p.rows)] + [upd.d[k] for k in range(p.cols)]
        gains = [upd.gain_x] * p.rows + [upd.gain_d] * p.cols

        pulses = []
        for k in range(L):
            stoch = q[k][P] | (state[k][:P] < q[k][:P])  # r < q with r < 2**P
            step = Signal(W + 2, name=f"step{k}")
            m.d.comb += step.eq(acc[k] + n[k])
            bres = step >= bl
            pulse = Signal(name=f"pulse{k}")
            m.d.comb += pulse.eq(Mux(det, bres, stoch))
            pulses.append(pulse)
            with m.If(take):
                m.d.sync += [
                    state[k].eq(_xorshift(state[k])),
                    acc[k].eq(Mux(bres, step - bl, step)),
                ]

        m.d.comb += [
            self.o.payload.row.eq(Cat(*pulses[: p.rows])),
            self.o.payload.col.eq(Cat(*pulses[p.rows :])),
            self.o.payload.row_neg.eq(Cat(*neg[: p.rows])),
            self.o.payload.col_neg.eq(Cat(*neg[p.rows :])),
            self.o.payload.last.eq(last),
        ]

        with m.If(take):
            m.d.sync += slot.eq(slot + 1)
            with m.If(last):
                m.d.sync += busy.eq(0)

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(upd.bl.any()),
                bl.eq(upd.bl),
                bl_m1.eq(upd.bl - 1),
                det.eq(upd.deterministic),
                slot.eq(0),
            ]
        for k in range(L):
            v = values[k]
            sign = v[-1]
            mag = Signal(p.value_bits, name=f"mag{k}")  # |v|; |-2**(n-1)| still fits unsigned
            m.d.comb += mag.eq(Mux(sign, -v, v))
            qk = self._translate(m, mag, gains[k], k)
            blq = Signal(W + P + 1, name=f"blq{k}")
            m.d.comb += blq.eq(upd.bl * qk)
            nk = (blq[P:] + blq[P - 1])[: W + 1]  # rshr(bl * q, P), round half up
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [q[k].eq(qk), n[k].eq(nk), acc[k].eq(0), neg[k].eq(sign)]

        base = Signal(STATE_BITS)
        m.d.comb += base.eq(
            Mux(self.seed.payload.any(), self.seed.payload, Const(ZERO_SEED_BASE, STATE_BITS))
        )
        with m.If(self.seed.valid & self.seed.ready):
            for k, mat in enumerate(p.lane_jumps):
                m.d.sync += state[k].eq(_gf2_matvec(mat, base))

        return m
