"""Special-function unit (SFU): integer matmul, softmax, layernorm and GELU for transformers
whose weight-stationary layers run on analog tiles (docs/SPEC.md "Special-function unit";
golden model ``aimcflow.models.periphery.sfu``, whose derived constants arrive here in
:class:`SfuRtlParams`; this module imports nothing from ``aimcflow.models``).

Ports (``amaranth.lib.stream``, valid/ready; a beat transfers when both are high):

``load`` (In, always ready) -- register writes ``{reg: 3, value: signed(32)}``:
    0 OP (0 matmul, 1 softmax, 2 layernorm, 3 gelu), 1 LEN (matmul: K, the beats per
    result; the others: the row length L in elements), 2 MULT (signed ``mult_bits``),
    3 SHIFT (0 .. ``shift_max``), 4 WIDE (matmul saturates to ``wide_bits`` instead of
    ``out_bits``).  Write registers only while idle (every output delivered).  Reset
    values: OP 0, LEN 1, MULT 1, SHIFT 0, WIDE 0.
``i`` (In) -- ``{a: lanes x signed(wide_bits), b: lanes x signed(in_bits)}``.
    matmul: lane j accumulates ``a[j] * b[j]`` over K beats (``a`` holds ``in_bits``
    values); a row op: beat g carries elements ``g*lanes .. g*lanes+lanes-1`` of the row
    in ``a`` (``G = ceil(L / lanes)`` beats per row, lanes past L don't-care), ``b`` unused.
``o`` (Out) -- ``{y: lanes x signed(wide_bits), last: 1}``.  matmul: one beat per K input
    beats, lane j = result j, ``last`` = 1.  Row ops: G beats per row, ``last`` on the
    row's final beat; lanes past L are don't-care.

Timing (clock edges; "k" = edge of the last input beat of a result / row):

- matmul: II = 1 input beat; its output beat is transferred at edge k + 3 at the
  earliest (``MATMUL_LATENCY``); a stall of ``o`` freezes the pipeline.
- gelu: II = 1 beat, latency ``GELU_LATENCY`` = 3 edges per beat.
- softmax / layernorm: row ops, see ``rtl/sfu_rows.py``: a row is taken in G cycles,
  its first output beat follows ``softmax_latency`` / ``layernorm_latency`` edges after
  its last input beat, the G output beats at one per cycle; the next row is accepted once
  the last output beat is loaded into the output register.

Payload packing (Verilog / cocotb): as in ``rtl/nmpu.py``, each payload is one flat
vector, fields LSB-first in the listed order, array element 0 lowest.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .nmpu import lane_groups
from .sfu_rows import LayerNormUnit, SoftmaxUnit
from .sfu_units import (
    GELU_LATENCY,
    MATMUL_LATENCY,
    OP_GELU,
    OP_LAYERNORM,
    OP_MATMUL,
    OP_SOFTMAX,
    REG_LEN,
    REG_MULT,
    REG_OP,
    REG_SHIFT,
    REG_WIDE,
    GeluUnit,
    MatmulUnit,
    SfuRtlParams,
    _bits,
    in_layout,
    load_layout,
    out_layout,
)

__all__ = [
    "GELU_LATENCY",
    "MATMUL_LATENCY",
    "REG_LEN",
    "REG_MULT",
    "REG_OP",
    "REG_SHIFT",
    "REG_WIDE",
    "Sfu",
    "SfuRtlParams",
]


class Sfu(wiring.Component):
    """The SFU: registers, the four op units, and the stream multiplexers (the OP
    register picks the unit that sees ``i`` and drives ``o``)."""

    def __init__(self, params: SfuRtlParams):
        self.params = p = params
        super().__init__(
            {
                "i": In(stream.Signature(in_layout(p))),
                "o": Out(stream.Signature(out_layout(p))),
                "load": In(stream.Signature(load_layout())),
            }
        )

    def elaborate(self, platform):
        p, m = self.params, Module()
        op = Signal(2)
        length = Signal(unsigned(_bits(p.len_max)), init=1)
        groups = Signal(unsigned(_bits(p.max_groups)), init=1)
        last_lanes = Signal(unsigned(_bits(p.lanes)), init=1)
        mult = Signal(signed(p.mult_bits), init=1)
        shift = Signal(unsigned(_bits(p.shift_max)))
        wide = Signal()
        ld = self.load
        m.d.comb += ld.ready.eq(1)
        val = ld.payload.value
        with m.If(ld.valid):
            with m.Switch(ld.payload.reg):
                with m.Case(REG_OP):
                    m.d.sync += op.eq(val)
                with m.Case(REG_LEN):
                    n = val.as_unsigned()[: _bits(p.len_max)]
                    if p.lanes & (p.lanes - 1) == 0:
                        rest = (n - 1) & (p.lanes - 1)
                    else:
                        rest = (n - 1) % p.lanes
                    m.d.sync += [
                        length.eq(n),
                        groups.eq(lane_groups(n, p.lanes)),
                        last_lanes.eq(rest + 1),
                    ]
                with m.Case(REG_MULT):
                    m.d.sync += mult.eq(val)
                with m.Case(REG_SHIFT):
                    m.d.sync += shift.eq(val)
                with m.Case(REG_WIDE):
                    m.d.sync += wide.eq(val)

        units = {
            OP_MATMUL: MatmulUnit(p),
            OP_SOFTMAX: SoftmaxUnit(p),
            OP_LAYERNORM: LayerNormUnit(p),
            OP_GELU: GeluUnit(p),
        }
        m.submodules.matmul = mm = units[OP_MATMUL]
        m.submodules.softmax = sm = units[OP_SOFTMAX]
        m.submodules.layernorm = ln = units[OP_LAYERNORM]
        m.submodules.gelu = ge = units[OP_GELU]
        m.d.comb += [mm.k_len.eq(length), mm.mult.eq(mult), mm.shift.eq(shift), mm.wide.eq(wide)]
        m.d.comb += [sm.groups.eq(groups), sm.last_lanes.eq(last_lanes)]
        m.d.comb += [ge.groups.eq(groups), ge.last_lanes.eq(last_lanes)]
        m.d.comb += [
            ln.groups.eq(groups),
            ln.last_lanes.eq(last_lanes),
            ln.d_len.eq(length),
            ln.mult.eq(mult),
            ln.shift.eq(shift),
        ]
        for code, u in units.items():
            sel = op == code
            m.d.comb += [
                u.i.payload.eq(self.i.payload),
                u.i.valid.eq(self.i.valid & sel),
                u.o.ready.eq(self.o.ready & sel),
            ]
            with m.If(sel):
                m.d.comb += [
                    self.i.ready.eq(u.i.ready),
                    self.o.valid.eq(u.o.valid),
                    self.o.payload.eq(u.o.payload),
                ]
        return m
