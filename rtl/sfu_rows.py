"""The SFU's row operations: softmax and layernorm (docs/SPEC.md "Special-function unit").

Both buffer one row (``Memory``, ``ceil(max / lanes)`` words of ``lanes`` values), reduce
it while it streams in, compute one per-row scalar by sequential integer arithmetic, then
stream the row out at one beat per cycle through a single output register (valid stays
until taken; a stall of ``o`` only delays the next beat).

softmax, per row of L <= seq_max elements (G = ceil(L / lanes) beats):
    IN   G cycles  store x, running max m
    EXP  G cycles  E = exp(x - m) per lane (one combinational stage), store E, sum S
    DIV  F + 1     factor = floor(2**F / S), restoring division, one quotient bit a cycle
    OUT  G cycles  p = min(rshr(E * factor, F - out_bits + 1), 2**(out_bits-1) - 1)
    latency (last input beat -> first output transfer): G + F + 3 edges;
    a row occupies the unit 3 G + F + 1 cycles.

layernorm, per row of D <= width_max elements:
    IN   G cycles  store x, S1 = sum x, S2 = sum x**2
    PREP 1         Q = D S2 - S1**2, shifted left 2 ln_guard
    SQRT nb        r = floor(sqrt(Q << 2 h)), digit-by-digit (restoring, 2 bits of Q a cycle;
                   the same floor(sqrt) as the golden model's Newton iteration, no divider)
    DIV  R + 1     factor = floor(2**R / r)
    OUT  G cycles  w = rshr((D x - S1) factor, R - h - ln_frac); y = sat(rshr(w mult, shift))
    latency: nb + R + 4 edges; a row occupies the unit 2 G + nb + R + 2 cycles.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from .nmpu import saturate
from .sfu_units import (
    RowCounter,
    SfuRtlParams,
    _bits,
    row_regs,
    rshr_const,
    rshr_var,
    unit_signature,
)


def softmax_latency(p: SfuRtlParams, groups: int) -> int:
    """Edges from the last input beat of a row to its first output transfer."""
    return groups + p.sm_recip_bits + 3


def layernorm_latency(p: SfuRtlParams) -> int:
    return p.ln_root_bits + p.ln_recip_bits + 4


def softmax_row_cycles(p: SfuRtlParams, groups: int) -> int:
    """Cycles one row occupies the unit at full input and output rate."""
    return 3 * groups + p.sm_recip_bits + 1


def layernorm_row_cycles(p: SfuRtlParams, groups: int) -> int:
    return 2 * groups + p.ln_root_bits + p.ln_recip_bits + 2


class Reciprocal:
    """``floor(2**F / den)`` by restoring division, one quotient bit per clock (F + 1
    clocks; the numerator's only 1 bit enters at the first step).  ``q_bits`` must hold
    the quotient; a zero ``den`` gives all ones."""

    def __init__(self, F: int, den_bits: int, q_bits: int, name: str):
        self.F, self.name = F, name
        self.rem = Signal(unsigned(den_bits + 1), name=f"{name}_rem")
        self.quot = Signal(unsigned(q_bits), name=f"{name}_quot")
        self.cnt = Signal(range(F + 1), name=f"{name}_cnt")
        self.factor = Signal(unsigned(q_bits), name=f"{name}_factor")

    def start(self, m: Module) -> None:
        m.d.sync += [self.rem.eq(0), self.quot.eq(0), self.cnt.eq(self.F)]

    def step(self, m: Module, den):
        """One step (inside the divide state); returns the "last step" condition, on
        which ``factor`` takes the quotient."""
        rem2 = Signal(unsigned(len(self.rem) + 1), name=f"{self.name}_rem2")
        m.d.comb += rem2.eq((self.rem << 1) | (self.cnt == self.F))
        ge = rem2 >= den
        quot = (self.quot << 1) | ge
        m.d.sync += [self.rem.eq(Mux(ge, rem2 - den, rem2)), self.quot.eq(quot)]
        m.d.sync += self.cnt.eq(self.cnt - 1)
        done = self.cnt == 0
        with m.If(done):
            m.d.sync += self.factor.eq(quot)
        return done


class SoftmaxUnit(wiring.Component):
    """Integer softmax over rows (see the module docstring)."""

    def __init__(self, p: SfuRtlParams):
        self.p = p
        super().__init__(unit_signature(p, row_regs(p)))

    def _exp(self, m: Module, x, mx, j: int):
        """E = rshr(P(r), min(q, 31)) of ``d = x - mx <= 0`` (golden ``int_exp``)."""
        p = self.p
        neg = Signal(unsigned(p.wide_bits + 1), name=f"sm_negd{j}")
        m.d.comb += neg.eq(mx - x)
        frac = p.sm_frac + p.log2e_bits
        u = Signal(unsigned(len(neg) + _bits(p.log2e)), name=f"sm_u{j}")
        m.d.comb += u.eq(neg * p.log2e)
        q = u >> frac
        r = Signal(unsigned(p.exp_r_bits), name=f"sm_r{j}")
        m.d.comb += r.eq(u >> (frac - p.exp_r_bits))
        qc = Signal(unsigned(5), name=f"sm_q{j}")
        m.d.comb += qc.eq(Mux(q > 31, 31, q))
        rb = p.exp_r_bits
        h = Signal(signed(p.exp_frac + 3), name=f"sm_h{j}")
        m.d.comb += h.eq(p.exp_c1 + rshr_const(r * p.exp_c2, rb))
        poly = Signal(signed(p.exp_frac + 3), name=f"sm_p{j}")
        m.d.comb += poly.eq(p.exp_c0 + rshr_const(h * r, rb))
        return rshr_var(m, poly, qc, f"sm_e{j}")

    def elaborate(self, platform):
        p, m = self.p, Module()
        lanes = p.lanes
        depth = -(-p.seq_max // lanes)
        xs, es = signed(p.wide_bits), unsigned(p.exp_frac + 1)
        m.submodules.xbuf = xbuf = Memory(shape=data.ArrayLayout(xs, lanes), depth=depth, init=[])
        m.submodules.ebuf = ebuf = Memory(shape=data.ArrayLayout(es, lanes), depth=depth, init=[])
        xw, xr = xbuf.write_port(), xbuf.read_port(domain="comb")
        ew, er = ebuf.write_port(), ebuf.read_port(domain="comb")
        row = RowCounter(m, p, self.groups, self.last_lanes, "sm")
        g = row.g
        m.d.comb += [xw.addr.eq(g), xr.addr.eq(g), ew.addr.eq(g), er.addr.eq(g)]
        m.d.comb += xw.data.eq(self.i.payload.a)

        mx = Signal(xs)
        s_bits = _bits(p.seq_max * p.exp_c0)
        ssum = Signal(unsigned(s_bits))
        F = p.sm_recip_bits
        q_bits = _bits((1 << F) // p.exp_c0)
        div = Reciprocal(F, s_bits, q_bits, "sm_div")
        factor = div.factor

        # beat max over valid lanes
        lo = -(1 << (p.wide_bits - 1))
        bmax = Signal(xs, name="sm_bmax")
        cur = Mux(row.lane_ok(0), self.i.payload.a[0], lo)
        for j in range(1, lanes):
            v = Mux(row.lane_ok(j), self.i.payload.a[j], lo)
            t = Signal(xs, name=f"sm_max{j}")
            m.d.comb += t.eq(Mux(v > cur, v, cur))
            cur = t
        m.d.comb += bmax.eq(cur)
        prev = Mux(g == 0, lo, mx)

        # exp of the row word being read, and its masked sum
        exps = [self._exp(m, xr.data[j], mx, j) for j in range(lanes)]
        bsum = Signal(unsigned(s_bits), name="sm_bsum")
        m.d.comb += bsum.eq(sum(Mux(row.lane_ok(j), exps[j], 0) for j in range(lanes)))
        for j in range(lanes):
            m.d.comb += ew.data[j].eq(exps[j])

        out_free = ~self.o.valid | self.o.ready
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        o_sh = F - (p.out_bits - 1)
        top = (1 << (p.out_bits - 1)) - 1

        with m.FSM(name="sm_state"):
            with m.State("IN"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.comb += xw.en.eq(1)
                    m.d.sync += mx.eq(Mux(bmax > prev, bmax, prev))
                    row.step(m, 1)
                    with m.If(row.last):
                        m.next = "EXP"
            with m.State("EXP"):
                m.d.comb += ew.en.eq(1)
                m.d.sync += ssum.eq(Mux(g == 0, 0, ssum) + bsum)
                row.step(m, 1)
                with m.If(row.last):
                    div.start(m)
                    m.next = "DIV"
            with m.State("DIV"):
                with m.If(div.step(m, ssum)):
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(out_free):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(row.last)]
                    for j in range(lanes):
                        pr = rshr_const(er.data[j] * factor, o_sh)
                        m.d.sync += self.o.payload.y[j].eq(Mux(pr > top, top, pr))
                    row.step(m, 1)
                    with m.If(row.last):
                        m.next = "IN"
        return m


class LayerNormUnit(wiring.Component):
    """Integer layernorm over rows (see the module docstring)."""

    def __init__(self, p: SfuRtlParams):
        self.p = p
        super().__init__(
            unit_signature(
                p,
                row_regs(p)
                | {
                    "d_len": unsigned(_bits(p.len_max)),
                    "mult": signed(p.mult_bits),
                    "shift": unsigned(_bits(p.shift_max)),
                },
            )
        )

    def elaborate(self, platform):
        p, m = self.p, Module()
        lanes = p.lanes
        depth = -(-p.width_max // lanes)
        xs = signed(p.wide_bits)
        m.submodules.xbuf = xbuf = Memory(shape=data.ArrayLayout(xs, lanes), depth=depth, init=[])
        xw, xr = xbuf.write_port(), xbuf.read_port(domain="comb")
        row = RowCounter(m, p, self.groups, self.last_lanes, "ln")
        g = row.g
        m.d.comb += [xw.addr.eq(g), xr.addr.eq(g), xw.data.eq(self.i.payload.a)]

        wb = _bits(p.width_max)
        s1 = Signal(signed(p.wide_bits + wb + 1))
        s2 = Signal(unsigned(2 * p.wide_bits + wb))
        nb = p.ln_root_bits
        qs = Signal(unsigned(2 * nb))
        root = Signal(unsigned(nb))
        srem = Signal(unsigned(nb + 2))
        cnt = Signal(range(nb))
        R = p.ln_recip_bits
        q_bits = R - p.ln_guard + 1
        div = Reciprocal(R, nb, q_bits, "ln_div")
        factor = div.factor

        bs1 = Signal.like(s1, name="ln_bs1")
        bs2 = Signal.like(s2, name="ln_bs2")
        xin = [Mux(row.lane_ok(j), self.i.payload.a[j], 0) for j in range(lanes)]
        m.d.comb += [bs1.eq(sum(xin)), bs2.eq(sum(v * v for v in xin))]

        D = self.d_len
        qv = Signal(signed(2 * p.wide_bits + 2 * wb + 2), name="ln_q")
        m.d.comb += qv.eq(D * s2 - s1 * s1)

        out_free = ~self.o.valid | self.o.ready
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        lo, hi = -(1 << (p.out_bits - 1)), (1 << (p.out_bits - 1)) - 1

        with m.FSM(name="ln_state"):
            with m.State("IN"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.comb += xw.en.eq(1)
                    m.d.sync += [
                        s1.eq(Mux(g == 0, 0, s1) + bs1),
                        s2.eq(Mux(g == 0, 0, s2) + bs2),
                    ]
                    row.step(m, 1)
                    with m.If(row.last):
                        m.next = "PREP"
            with m.State("PREP"):
                m.d.sync += [
                    qs.eq(qv.as_unsigned() << (2 * p.ln_guard)),
                    root.eq(0),
                    srem.eq(0),
                    cnt.eq(nb - 1),
                ]
                m.next = "SQRT"
            with m.State("SQRT"):
                rem2 = Signal(unsigned(nb + 3), name="ln_rem2")
                m.d.comb += rem2.eq((srem << 2) | qs[2 * nb - 2 :])
                trial = (root << 2) | 1
                ge = rem2 >= trial
                m.d.sync += [
                    srem.eq(Mux(ge, rem2 - trial, rem2)),
                    root.eq((root << 1) | ge),
                    qs.eq(qs << 2),
                    cnt.eq(cnt - 1),
                ]
                with m.If(cnt == 0):
                    div.start(m)
                    m.next = "DIV"
            with m.State("DIV"):
                with m.If(div.step(m, root)):
                    m.next = "OUT"
            with m.State("OUT"):
                with m.If(out_free):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(row.last)]
                    for j in range(lanes):
                        num = Signal(signed(p.wide_bits + wb + 2), name=f"ln_num{j}")
                        m.d.comb += num.eq(D * xr.data[j] - s1)
                        w = Signal(signed(p.ln_w_bits), name=f"ln_w{j}")
                        m.d.comb += w.eq(rshr_const(num * factor, p.ln_w_shift))
                        z = rshr_var(m, w * self.mult, self.shift, f"ln_z{j}")
                        m.d.sync += self.o.payload.y[j].eq(saturate(m, z, lo, hi, f"ln_y{j}"))
                    row.step(m, 1)
                    with m.If(row.last):
                        m.next = "IN"
        return m
