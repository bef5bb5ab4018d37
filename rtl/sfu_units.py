"""The SFU's shared pieces and its streaming units: elaboration parameters
(:class:`SfuRtlParams`), stream layouts, rounding helpers, the row beat counter, and the
two II = 1 units, lane-wise matmul and GELU (docs/SPEC.md "Special-function unit"; the top
level and the protocol are in ``rtl/sfu.py``, the row ops in ``rtl/sfu_rows.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .codes import SfuOp, SfuReg
from .nmpu import saturate

OP_MATMUL, OP_SOFTMAX, OP_LAYERNORM, OP_GELU = (o.value for o in SfuOp)
REG_OP, REG_LEN, REG_MULT, REG_SHIFT, REG_WIDE = (r.value for r in SfuReg)
MATMUL_LATENCY = 3
GELU_LATENCY = 3


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class SfuRtlParams:
    """SFU elaboration parameters: the golden ``SfuParams`` widths and the constants it
    derives (``cosim/rtlparams.py`` ``sfu_rtl_params`` fills them from the golden model)."""

    lanes: int
    seq_max: int
    width_max: int
    in_bits: int
    wide_bits: int
    out_bits: int
    mult_bits: int
    sm_frac: int
    gelu_frac: int
    exp_frac: int
    exp_r_bits: int
    log2e_bits: int
    phi_frac: int
    ln_frac: int
    ln_guard: int
    log2e: int
    exp_c0: int
    exp_c1: int
    exp_c2: int
    sm_recip_bits: int
    gelu_clip: int
    gelu_ka: int
    gelu_phi_shift: int
    ln_root_bits: int
    ln_recip_bits: int
    ln_w_shift: int
    ln_w_bits: int
    acc_bits: int
    shift_max: int

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.seq_max < 2 or self.width_max < 2:
            raise ValueError("lanes >= 1, seq_max >= 2 and width_max >= 2 are required")
        if self.ln_w_shift < 0 or self.gelu_phi_shift < 0:
            raise ValueError("negative internal shift: widths inconsistent")

    @property
    def len_max(self) -> int:
        """Largest LEN register value (K or L)."""
        return max(self.seq_max, self.width_max)

    @property
    def max_groups(self) -> int:
        return -(-self.len_max // self.lanes)


def in_layout(p: SfuRtlParams) -> data.StructLayout:
    return data.StructLayout(
        {
            "a": data.ArrayLayout(signed(p.wide_bits), p.lanes),
            "b": data.ArrayLayout(signed(p.in_bits), p.lanes),
        }
    )


def out_layout(p: SfuRtlParams) -> data.StructLayout:
    return data.StructLayout({"y": data.ArrayLayout(signed(p.wide_bits), p.lanes), "last": 1})


def load_layout() -> data.StructLayout:
    return data.StructLayout({"reg": 3, "value": signed(32)})


def unit_signature(p: SfuRtlParams, regs: dict) -> wiring.Signature:
    """Signature of an op unit: the top's ``i``/``o`` streams plus register inputs."""
    members = {
        "i": In(stream.Signature(in_layout(p))),
        "o": Out(stream.Signature(out_layout(p))),
    }
    members.update({k: In(v) for k, v in regs.items()})
    return wiring.Signature(members)


def row_regs(p: SfuRtlParams) -> dict:
    """Register inputs of a unit that walks rows: beats per row and valid lanes of the
    last beat (the top derives both from LEN)."""
    return {"groups": unsigned(_bits(p.max_groups)), "last_lanes": unsigned(_bits(p.lanes))}


def rshr_var(m: Module, v, shift, name: str):
    """``rshr(v, shift)`` for a run-time ``shift >= 0``: ``(v + (2**shift >> 1)) >> shift``."""
    half = (Const(1, 1) << shift) >> 1
    held = Signal(signed(max(len(v), len(half)) + 1), name=name)
    m.d.comb += held.eq(v + half)
    return held >> shift


def rshr_const(v, s: int):
    """``rshr(v, s)`` for a constant ``s >= 0``."""
    return (v + (1 << (s - 1))) >> s if s > 0 else v


def pipeline_handshake(m: Module, unit) -> tuple[Signal, Signal]:
    """``(advance, accept)`` of a unit whose pipeline moves as one: it advances unless its
    output register holds a beat that is not taken, and takes an input beat when it does."""
    advance, accept = Signal(), Signal()
    m.d.comb += [
        advance.eq(~unit.o.valid | unit.o.ready),
        unit.i.ready.eq(advance),
        accept.eq(unit.i.valid & advance),
    ]
    return advance, accept


class RowCounter:
    """Beat counter over a row of L elements: ``g`` in ``0..G-1``, ``last`` on ``G-1``,
    ``lane_ok(j)``: element ``g*lanes + j < L``."""

    def __init__(self, m: Module, p: SfuRtlParams, groups, last_lanes, name: str):
        self.g = Signal(range(p.max_groups), name=f"{name}_g")
        self.last = Signal(name=f"{name}_last")
        m.d.comb += self.last.eq(self.g == groups - 1)
        self._last_lanes = last_lanes

    def lane_ok(self, j: int):
        return ~self.last | (j < self._last_lanes)

    def step(self, m: Module, domain_stmt_cond) -> None:
        with m.If(domain_stmt_cond):
            m.d.sync += self.g.eq(Mux(self.last, 0, self.g + 1))


class MatmulUnit(wiring.Component):
    """Lane-wise multiply-accumulate over K beats, then ``sat(rshr(acc*mult, shift), n)``."""

    def __init__(self, p: SfuRtlParams):
        self.p = p
        super().__init__(
            unit_signature(
                p,
                {
                    "k_len": unsigned(_bits(p.len_max)),
                    "mult": signed(p.mult_bits),
                    "shift": unsigned(_bits(p.shift_max)),
                    "wide": unsigned(1),
                },
            )
        )

    def elaborate(self, platform):
        p, m = self.p, Module()
        advance, accept = pipeline_handshake(m, self)
        k = Signal(range(p.len_max))
        k_last = Signal()
        m.d.comb += k_last.eq(k == self.k_len - 1)
        acc_shape = signed(p.acc_bits)
        acc = [Signal(acc_shape, name=f"acc{j}") for j in range(p.lanes)]
        fin = [Signal(acc_shape, name=f"fin{j}") for j in range(p.lanes)]
        v1 = Signal()
        with m.If(accept):
            m.d.sync += k.eq(Mux(k_last, 0, k + 1))
        for j in range(p.lanes):
            a = self.i.payload.a[j][: p.in_bits].as_signed()
            s = Signal(acc_shape, name=f"sum{j}")
            m.d.comb += s.eq(Mux(k == 0, 0, acc[j]) + a * self.i.payload.b[j])
            with m.If(accept):
                m.d.sync += acc[j].eq(s)
            with m.If(advance):
                m.d.sync += fin[j].eq(s)
        with m.If(advance):
            m.d.sync += v1.eq(accept & k_last)
        # S2: output multiplier; output register: rounding shift and saturation
        v2 = Signal()
        prod = [Signal(signed(p.acc_bits + p.mult_bits), name=f"prod{j}") for j in range(p.lanes)]
        with m.If(advance):
            m.d.sync += v2.eq(v1)
            for j in range(p.lanes):
                m.d.sync += prod[j].eq(fin[j] * self.mult)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.last.eq(1)]
            for j in range(p.lanes):
                z = rshr_var(m, prod[j], self.shift, f"mm_z{j}")
                nlo, nhi = -(1 << (p.out_bits - 1)), (1 << (p.out_bits - 1)) - 1
                wlo, whi = -(1 << (p.wide_bits - 1)), (1 << (p.wide_bits - 1)) - 1
                m.d.sync += self.o.payload.y[j].eq(
                    Mux(
                        self.wide,
                        saturate(m, z, wlo, whi, f"mm_w{j}"),
                        saturate(m, z, nlo, nhi, f"mm_n{j}"),
                    )
                )
        return m


class GeluUnit(wiring.Component):
    """Elementwise I-BERT GELU, II = 1, three pipeline registers."""

    def __init__(self, p: SfuRtlParams):
        self.p = p
        super().__init__(unit_signature(p, row_regs(p)))

    def elaborate(self, platform):
        p, m = self.p, Module()
        advance, accept = pipeline_handshake(m, self)
        row = RowCounter(m, p, self.groups, self.last_lanes, "gelu")
        row.step(m, accept)
        B = p.gelu_clip
        xs = signed(p.in_bits)
        v1, l1 = Signal(), Signal()
        x1 = [Signal(xs, name=f"gx1_{j}") for j in range(p.lanes)]
        s1 = [Signal(unsigned(2 * _bits(B)), name=f"gs1_{j}") for j in range(p.lanes)]
        v2, l2 = Signal(), Signal()
        x2 = [Signal(xs, name=f"gx2_{j}") for j in range(p.lanes)]
        phi2 = [Signal(unsigned(p.phi_frac + 1), name=f"gphi{j}") for j in range(p.lanes)]
        with m.If(advance):
            m.d.sync += [v1.eq(accept), l1.eq(row.last), v2.eq(v1), l2.eq(l1)]
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.last.eq(l2)]
        lo, hi = -(1 << (p.in_bits - 1)), (1 << (p.in_bits - 1)) - 1
        for j in range(p.lanes):
            x = self.i.payload.a[j][: p.in_bits].as_signed()
            mag = Signal(unsigned(p.in_bits), name=f"gmag{j}")
            m.d.comb += mag.eq(Mux(x < 0, -x, x))
            c = Mux(mag > B, B, mag)
            diff = Signal(signed(_bits(B) + 1), name=f"gdiff{j}")
            m.d.comb += diff.eq(c - B)
            phi = Signal(unsigned(p.phi_frac + 1), name=f"gphir{j}")
            m.d.comb += phi.eq(rshr_const(s1[j] * p.gelu_ka, p.gelu_phi_shift))
            with m.If(advance):
                m.d.sync += [
                    x1[j].eq(x),
                    s1[j].eq(diff * diff),
                    x2[j].eq(x1[j]),
                    phi2[j].eq(Mux(x1[j] < 0, phi, (1 << p.phi_frac) - phi)),
                    self.o.payload.y[j].eq(
                        saturate(m, rshr_const(x2[j] * phi2[j], p.phi_frac), lo, hi, f"gy{j}")
                    ),
                ]
        return m
