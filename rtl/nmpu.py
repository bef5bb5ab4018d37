"""Near-memory fixed-point unit (NMPU): per-column affine correction, exponent shift,
saturating row-tile accumulation, output multiplier + bias, activation, saturation.

Numerics are exactly docs/SPEC.md; the golden model is ``aimcflow.models.periphery.nmpu``
(same operand widths: ``offset_bits`` default ``adc_bits + gain_bits``, ``bias_bits``
default ``acc_bits``; clamp registers hold bounds already saturated to the output range,
``rtl_clamp_bounds`` of the golden model).

Ports (all ``amaranth.lib.stream``, valid/ready, a beat transfers when both are high):

``i`` (In) — ADC codes, payload ``{a: lanes x signed(adc_bits), e: range(e_min, e_max+1)}``.
    Beat order per vector: for ``t in 0..T-1`` (row tile), for ``g in 0..G-1`` (column
    group, ``G = ceil(C / lanes)``): one beat with ``a[v, t, g*lanes + j]`` in lane ``j`` and
    ``e[v, t]``.  Lanes past column ``C-1`` are don't-care.  Vectors follow back to back.
``o`` (Out) — outputs, payload ``{y: lanes x signed(out_bits+1), last: 1}``: one beat per
    column group after the last row tile, ``g = 0..G-1``, ``last`` on ``g = G-1``.  ``y``
    holds the exact output value (unsigned outputs are 0..2**out_bits-1).  Lanes past column
    ``C-1`` are don't-care.
``load`` (In) — coefficients and registers, payload ``{kind: 2, tile, group, a: lanes x
    signed, b: lanes x signed}``, always ready:

    - ``kind = 0``: ``gain[tile][group*lanes + j] = a[j]``, ``offset[...] = b[j]`` (all lanes).
    - ``kind = 1``: ``mult[group*lanes + j] = a[j]``, ``bias[...] = b[j]``.
    - ``kind = 2``: register number ``group`` := ``b[0]``:
      0 ACTIVATION (0 none, 1 relu, 2 leaky, 3 clamp), 1 OUT_SIGNED, 2 LEAKY_K,
      3 CLAMP_LO, 4 CLAMP_HI, 5 N_TILES (T, 1..max_tiles), 6 N_COLS (C, 1..max_cols).

    Load only while no vector is in flight (``o`` has delivered every output); the data
    path reads the memories and registers without interlock.

Registers reset to the ``*_reset`` parameters, N_TILES to 1 and N_COLS to ``max_cols``; a
reset also restarts the beat counters (the next ``i`` beat is vector start, t = 0, g = 0).

Payload packing (Verilog / cocotb): each payload is one flat vector, the fields of its
``StructLayout`` packed LSB-first in the order listed above, array element 0 lowest;
signed fields are two's complement in their own width.

Timing: initiation interval 1 (one ``i`` beat per clock with ``o`` ready), no bubble
between vectors.  Latency ``LATENCY = 4``: a last-row-tile input beat transferred at
clock edge ``k`` has its output beat valid from edge ``k + 3`` and transferred at edge
``k + 4`` at the earliest.  So with T = 1 and ``o`` always ready, V vectors of C columns
take ``V * ceil(C / lanes) + LATENCY`` clocks from the first input transfer (edge 0) to the
last output transfer (edge ``V * ceil(C / lanes) - 1 + LATENCY``) — the test measures it.  A stall of ``o`` freezes the whole
pipeline (``i.ready = ~o.valid | o.ready``), so backpressure never drops data.
Maxima: ``max_tiles`` row tiles, ``max_cols`` columns (elaboration parameters).

Pipeline: S0 accepts and addresses the memories; S1 computes ``p``, the shift and the
saturating sum, writing the accumulator memory (read port transparent to that write, so a
group revisited on the next beat sees its new value); S2 registers ``acc`` with ``mult``/
``bias``; S3 multiplies; the output register holds rounding, bias, activation, saturation.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .codes import Activation, NmpuLoad, NmpuReg
from .memories import MemorySpec, memory_1r1w
from .params import NmpuRtlParams

LATENCY = 4
"""Clock edges from a last-row-tile input transfer to the earliest transfer of its output."""


def lane_groups(n: Value, lanes: int) -> Value:
    """``ceil(n / lanes)`` of a run-time unsigned count ``n``: beats of ``lanes`` values
    (a shift when ``lanes`` is a power of two)."""
    if lanes & (lanes - 1) == 0:
        return (n + (lanes - 1)) >> (lanes.bit_length() - 1)
    return (n + (lanes - 1)) // lanes


def _bits(n: int) -> int:
    """Unsigned bits to hold 0..n."""
    return max(1, int(n).bit_length())


def exponent_shape(e_min: int, e_max: int) -> Shape:
    """Shape of an input exponent ``e`` in ``[e_min, e_max]`` (at least one bit: a
    zero-width port is not portable Verilog)."""
    shape = Shape.cast(range(e_min, e_max + 1))
    return shape if shape.width else unsigned(1)


def shape_range(v) -> tuple[int, int]:
    """Inclusive value range of ``v``'s shape."""
    shape = Value.cast(v).shape()
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def saturate(m: Module, v, lo: int, hi: int, name: str) -> Value:
    """``v`` clamped to the constant range ``[lo, hi]``.

    ``v`` is first held in a Signal named ``name``: Amaranth emits an expression once per
    use, so the three uses below would otherwise copy its whole logic cone.  A bound
    ``v``'s shape can never pass gets no comparator (a constant comparison is dead logic
    and a lint warning)."""
    v = Value.cast(v)
    held = Signal(v.shape(), name=name)
    m.d.comb += held.eq(v)
    v_lo, v_hi = shape_range(held)
    out = held
    if hi < v_hi:
        out = Mux(held > hi, hi, out)
    if lo > v_lo:
        out = Mux(held < lo, lo, out)
    return out


class NmpuLoadLayout(data.StructLayout):
    def __init__(self, p: NmpuRtlParams):
        a_bits = max(p.gain_bits, p.mult_bits)
        b_bits = max(
            p.offset_bits, p.bias_bits, p.out_bits + 1, _bits(max(p.max_cols, p.max_tiles)) + 1, 6
        )
        super().__init__(
            {
                "kind": 2,
                "tile": _bits(p.max_tiles - 1),
                "group": _bits(max(p.max_groups - 1, NmpuReg.N_COLS.value)),
                "a": data.ArrayLayout(signed(a_bits), p.lanes),
                "b": data.ArrayLayout(signed(b_bits), p.lanes),
            }
        )


class Nmpu(wiring.Component):
    """The NMPU for one tile column group set; see the module docstring for the protocol."""

    def __init__(self, params: NmpuRtlParams):
        self.params = p = params
        self.in_layout = data.StructLayout(
            {
                "a": data.ArrayLayout(signed(p.adc_bits), p.lanes),
                "e": exponent_shape(p.e_min, p.e_max),
            }
        )
        self.out_layout = data.StructLayout(
            {
                "y": data.ArrayLayout(signed(p.out_bits + 1), p.lanes),
                "last": 1,
            }
        )
        self.load_layout = NmpuLoadLayout(p)
        super().__init__(
            {
                "i": In(stream.Signature(self.in_layout)),
                "o": Out(stream.Signature(self.out_layout)),
                "load": In(stream.Signature(self.load_layout)),
            }
        )

    def memory_specs(self) -> list[MemorySpec]:
        """The coefficient and accumulator arrays: per-tile ``{gain, offset}`` x lanes
        (``max_tiles`` x groups words), per-column ``{mult, bias}`` x lanes and the
        ``acc_bits`` accumulators x lanes (one word per column group).  The accumulator is
        read in the clock its previous group value may be written: transparent."""
        p = self.params
        lanes, G, st = p.lanes, p.max_groups, p.memories
        w = "$signature"  # the name Amaranth gave these write ports so far: keeps the Verilog
        tile_word = data.StructLayout(
            {"gain": signed(p.gain_bits), "offset": signed(p.offset_bits)}
        )
        col_word = data.StructLayout({"mult": signed(p.mult_bits), "bias": signed(p.bias_bits)})
        tiles = p.max_tiles * G
        return [
            MemorySpec(
                "tile_coef", data.ArrayLayout(tile_word, lanes), tiles, False, st, (w, "tile_rp")
            ),
            MemorySpec("col_coef", data.ArrayLayout(col_word, lanes), G, False, st, (w, "col_rp")),
            MemorySpec(
                "acc_mem",
                data.ArrayLayout(signed(p.acc_bits), lanes),
                G,
                True,
                st,
                ("acc_wp", "acc_rp"),
            ),
        ]

    def elaborate(self, platform):
        p = self.params
        m = Module()
        lanes, G = p.lanes, p.max_groups

        # --- registers -------------------------------------------------------------
        activation = Signal(2, init=p.activation_reset)
        out_signed = Signal(init=int(p.out_signed_reset))
        leaky_k = Signal(5, init=p.leaky_k_reset)
        clamp_shape = signed(p.out_bits + 1)
        # resets outside the register range saturate: same outputs (see module docstring)
        c_lo, c_hi = -(1 << p.out_bits), (1 << p.out_bits) - 1
        clamp_lo = Signal(clamp_shape, init=min(max(p.clamp_lo_reset, c_lo), c_hi))
        clamp_hi = Signal(clamp_shape, init=min(max(p.clamp_hi_reset, c_lo), c_hi))
        n_tiles = Signal(range(p.max_tiles + 1), init=1)
        n_groups = Signal(range(G + 1), init=G)

        # --- memories (see memory_specs) ---------------------------------------------
        tile_spec, col_spec, acc_spec = self.memory_specs()
        tile_wp, tile_rp = memory_1r1w(m, tile_spec)
        col_wp, col_rp = memory_1r1w(m, col_spec)
        acc_wp, acc_rp = memory_1r1w(m, acc_spec)

        # --- load stream: coefficients and registers --------------------------------
        ld = self.load
        m.d.comb += ld.ready.eq(1)
        m.d.comb += [
            tile_wp.addr.eq(ld.payload.tile * G + ld.payload.group),
            col_wp.addr.eq(ld.payload.group),
        ]
        for j in range(lanes):
            m.d.comb += [
                tile_wp.data[j].gain.eq(ld.payload.a[j]),
                tile_wp.data[j].offset.eq(ld.payload.b[j]),
                col_wp.data[j].mult.eq(ld.payload.a[j]),
                col_wp.data[j].bias.eq(ld.payload.b[j]),
            ]
        value = ld.payload.b[0]
        with m.If(ld.valid):
            with m.Switch(ld.payload.kind):
                with m.Case(NmpuLoad.TILE_COEF):
                    m.d.comb += tile_wp.en.eq(1)
                with m.Case(NmpuLoad.COL_COEF):
                    m.d.comb += col_wp.en.eq(1)
                with m.Case(NmpuLoad.REG):
                    with m.Switch(ld.payload.group):
                        with m.Case(NmpuReg.ACTIVATION):
                            m.d.sync += activation.eq(value)
                        with m.Case(NmpuReg.OUT_SIGNED):
                            m.d.sync += out_signed.eq(value)
                        with m.Case(NmpuReg.LEAKY_K):
                            m.d.sync += leaky_k.eq(value)
                        with m.Case(NmpuReg.CLAMP_LO):
                            m.d.sync += clamp_lo.eq(value)
                        with m.Case(NmpuReg.CLAMP_HI):
                            m.d.sync += clamp_hi.eq(value)
                        with m.Case(NmpuReg.N_TILES):
                            m.d.sync += n_tiles.eq(value)
                        with m.Case(NmpuReg.N_COLS):
                            m.d.sync += n_groups.eq(lane_groups(value.as_unsigned(), lanes))

        # --- pipeline control: one global advance, frozen while o is stalled ---------
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        accept = Signal()
        m.d.comb += [self.i.ready.eq(advance), accept.eq(self.i.valid & advance)]

        # --- S0: beat counters and memory addressing --------------------------------
        g = Signal(range(G))
        t = Signal(range(p.max_tiles))
        tile_base = Signal(range(p.max_tiles * G))
        g_last = Signal()
        t_first = Signal()
        t_last = Signal()
        m.d.comb += [
            g_last.eq(g == n_groups - 1),
            t_first.eq(t == 0),
            t_last.eq(t == n_tiles - 1),
        ]
        with m.If(accept):
            with m.If(g_last):
                m.d.sync += g.eq(0)
                with m.If(t_last):
                    m.d.sync += [t.eq(0), tile_base.eq(0)]
                with m.Else():
                    m.d.sync += [t.eq(t + 1), tile_base.eq(tile_base + G)]
            with m.Else():
                m.d.sync += g.eq(g + 1)
        m.d.comb += [
            tile_rp.addr.eq(tile_base + g),
            tile_rp.en.eq(advance),
            col_rp.addr.eq(g),
            col_rp.en.eq(advance),
            acc_rp.addr.eq(g),
            acc_rp.en.eq(advance),
        ]

        # --- S1: affine, exact shift, saturating accumulation -----------------------
        v1 = Signal()
        a1 = Signal(data.ArrayLayout(signed(p.adc_bits), lanes))
        shift1 = Signal(range(max(2, p.e_max - p.e_min + 1)))
        g1 = Signal.like(g)
        first1, last1, glast1 = Signal(), Signal(), Signal()
        with m.If(advance):
            m.d.sync += [
                v1.eq(accept),
                a1.eq(self.i.payload.a),
                shift1.eq(self.i.payload.e - p.e_min),
                g1.eq(g),
                first1.eq(t_first),
                last1.eq(t_last),
                glast1.eq(g_last),
            ]
        acc_lo, acc_hi = -(1 << (p.acc_bits - 1)), (1 << (p.acc_bits - 1)) - 1
        acc_new = Signal(data.ArrayLayout(signed(p.acc_bits), lanes))
        for j in range(lanes):
            coef = tile_rp.data[j]
            prod = coef.gain * a1[j] + coef.offset
            shifted = prod << shift1
            acc_old = Mux(first1, 0, acc_rp.data[j])
            m.d.comb += acc_new[j].eq(saturate(m, acc_old + shifted, acc_lo, acc_hi, f"sum{j}"))
        m.d.comb += [
            acc_wp.addr.eq(g1),
            acc_wp.data.eq(acc_new),
            acc_wp.en.eq(v1 & advance),
        ]

        # --- S2: final accumulator with its column coefficients ---------------------
        v2, glast2 = Signal(), Signal()
        acc2 = Signal.like(acc_new)
        col2 = Signal(col_spec.shape)
        with m.If(advance):
            m.d.sync += [
                v2.eq(v1 & last1),
                glast2.eq(glast1),
                acc2.eq(acc_new),
                col2.eq(col_rp.data),
            ]

        # --- S3: output multiplier --------------------------------------------------
        v3, glast3 = Signal(), Signal()
        prod3 = Signal(data.ArrayLayout(signed(p.acc_bits + p.mult_bits), lanes))
        bias3 = Signal(data.ArrayLayout(signed(p.bias_bits), lanes))
        with m.If(advance):
            m.d.sync += [v3.eq(v2), glast3.eq(glast2)]
            for j in range(lanes):
                m.d.sync += [prod3[j].eq(acc2[j] * col2[j].mult), bias3[j].eq(col2[j].bias)]

        # --- output register: rounding shift, bias, activation, saturation ----------
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v3), self.o.payload.last.eq(glast3)]
            for j in range(lanes):
                m.d.sync += self.o.payload.y[j].eq(
                    self._output_value(
                        m,
                        prod3[j],
                        bias3[j],
                        activation,
                        out_signed,
                        leaky_k,
                        clamp_lo,
                        clamp_hi,
                        j,
                    )
                )
        return m

    def _output_value(
        self, m: Module, prod, bias, activation, out_signed, leaky_k, clamp_lo, clamp_hi, lane: int
    ):
        """Combinational ``y`` of one lane from ``acc * mult`` (SPEC.md output stage)."""
        p = self.params
        if p.out_shift > 0:
            rounded = (prod + (1 << (p.out_shift - 1))) >> p.out_shift
        else:
            rounded = prod
        z_bits = max(p.acc_bits + p.mult_bits - p.out_shift + 2, p.bias_bits + 1) + 1
        z = Signal(signed(z_bits), name=f"z{lane}")
        m.d.comb += z.eq(rounded + bias)
        return activate(
            m, z, activation, out_signed, leaky_k, clamp_lo, clamp_hi, p.out_bits, str(lane)
        )


def activate(
    m: Module, z, activation, out_signed, leaky_k, clamp_lo, clamp_hi, out_bits: int, tag: str
) -> Value:
    """SPEC.md's activation and output saturation of a signed value ``z``, by the activation
    registers (``activation`` code, ``out_signed``, ``leaky_k``, clamp bounds held as in
    :class:`Nmpu`); combinational.  Shared by every block with the NMPU's activation set
    (``tag`` makes the helper signals' names unique within the module)."""
    half_k = (Const(1, unsigned(1)) << leaky_k) >> 1
    leaky = Mux(z >= 0, z, (z + half_k) >> leaky_k)
    act = Signal(signed(len(z) + 1), name=f"act{tag}")
    with m.Switch(activation):
        with m.Case(Activation.NONE):
            m.d.comb += act.eq(z)
        with m.Case(Activation.RELU):
            m.d.comb += act.eq(Mux(z < 0, 0, z))
        with m.Case(Activation.LEAKY):
            m.d.comb += act.eq(leaky)
        with m.Case(Activation.CLAMP):
            m.d.comb += act.eq(Mux(z < clamp_lo, clamp_lo, Mux(z > clamp_hi, clamp_hi, z)))
    n = out_bits
    return Mux(
        out_signed,
        saturate(m, act, -(1 << (n - 1)), (1 << (n - 1)) - 1, f"sat_s{tag}"),
        saturate(m, act, 0, (1 << n) - 1, f"sat_u{tag}"),
    )
