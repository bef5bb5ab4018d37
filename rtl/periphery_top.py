"""``periphery_top``: management controller + NMPU for one tile column group.

Ports (streams unless marked; beat protocols in ``rtl/mgmt.py`` and ``rtl/nmpu.py``):

``x`` (In) — input segments, one per (vector, row tile) in the order v0 t0, v0 t1, ...,
    v0 t(T-1), v1 t0, ...: row tile ``t``'s rows of vector ``v`` (``mgmt.x`` protocol).
``dac`` (Out) / ``adc`` (In) — the tile interface (``mgmt.dac`` / ``mgmt.adc``): the Python
    analog model sits behind it.  Segments of row tile ``t`` must be answered by row tile
    ``t``'s crossbar with ``ceil(C / lanes)`` beats, ``C`` = the NMPU's N_COLS register.
``o`` (Out) — NMPU outputs (``nmpu.o``): ``ceil(C / lanes)`` beats per vector.
``nmpu_load`` (In) / ``mgmt_load`` (In) — coefficient and register writes (``nmpu.load`` /
    ``mgmt.load``).  N_TILES (T) of the NMPU sets how many segments make one vector.
``soc``, ``busy``, ``tile`` (Out, plain signals) — the converter interface of the tile:
    ``soc`` (start of conversion) is high for one clock, the clock after a request's last
    ``dac`` beat transferred (the row drivers hold that request's DAC codes): the selected
    tile's ADCs start converting.  ``busy`` is high for ``conv_cycles`` clocks from the
    ``soc`` clock on (the configured ADC's conversion latency: 2**bits for a ramp ADC,
    bits x share for SAR, 1 for the ideal one); ``adc`` is not ready meanwhile, so the
    codes are read from the clock after ``busy`` falls.  ``tile`` is the row tile (the
    row block of the crossbar) the current request addresses: the segment count of the
    current vector, from 0 to N_TILES - 1 (N_TILES as written to the NMPU), valid with
    the request's ``dac`` beats and held until its answer's last ``adc`` beat.
``status`` (Out, plain signals, no backpressure) — ``{valid, e, iter, sat_any}``: ``valid``
    is high for one clock when the first beat of a management result enters the NMPU; the
    other fields are that result's ``e``, ``iter``, ``sat_any`` (one per vector and row tile,
    in segment order).  For monitors and the network simulator's statistics.  In Verilog
    one vector ``status``: bit 0 valid, then e, iter (4 bits), sat_any (LSB-first).

No ready signal at the tile boundary depends combinationally on the other side:
``adc.ready`` comes from registers (a two-entry skid buffer between ``adc`` and the
controller, and ``busy``), ``dac.ready`` only feeds registers.  The skid buffer adds one
clock from an ``adc`` beat to its ``o`` effect and keeps one beat per clock.

The controller's final answer streams straight into the NMPU (no buffer), and the
controller's second input buffer takes the next segment's ``x`` meanwhile, so input
transfer, tile conversion and NMPU accumulation overlap: the controller launches the next
segment (or retry) in the clock the previous answer's last beat enters the NMPU, so with a
tile that answers at once and no backpressure the tile interface carries a ``dac`` or
``adc`` beat in every clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .codes import NmpuLoad, NmpuReg
from .memories import MemorySpec
from .mgmt import ITER_BITS, MgmtController
from .nmpu import Nmpu, exponent_shape
from .params import MgmtRtlParams, NmpuRtlParams


@dataclass(frozen=True)
class PeripheryTopParams:
    """Both blocks' parameters; the shared ones (lanes, adc_bits, e_min, e_max) must agree."""

    nmpu: NmpuRtlParams
    mgmt: MgmtRtlParams
    #: clocks a conversion keeps ``busy`` high (the ADC kind's latency, >= 1)
    conv_cycles: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.conv_cycles <= 1 << 20:
            raise ValueError(f"periphery_top: conv_cycles = {self.conv_cycles} must be 1 .. 2**20")
        for name in ("lanes", "adc_bits", "e_min", "e_max"):
            a, b = getattr(self.nmpu, name), getattr(self.mgmt, name)
            if a != b:
                raise ValueError(f"periphery_top: nmpu.{name} = {a} but mgmt.{name} = {b}")
        if self.nmpu.memories != self.mgmt.memories:
            raise ValueError("periphery_top: nmpu and mgmt must use the same memories style")


class PeripheryTop(wiring.Component):
    """Controller + NMPU; see the module docstring for ports."""

    def __init__(self, nmpu: NmpuRtlParams, mgmt: MgmtRtlParams, conv_cycles: int = 1):
        self.params = params = PeripheryTopParams(nmpu=nmpu, mgmt=mgmt, conv_cycles=conv_cycles)
        self.mgmt = MgmtController(params.mgmt)
        self.nmpu = Nmpu(params.nmpu)
        status = data.StructLayout(
            {
                "valid": 1,
                "e": exponent_shape(params.mgmt.e_min, params.mgmt.e_max),
                "iter": ITER_BITS,
                "sat_any": 1,
            }
        )
        super().__init__(
            {
                "x": In(self.mgmt.x.signature.flip()),
                "dac": Out(self.mgmt.dac.signature),
                "adc": In(self.mgmt.adc.signature.flip()),
                "o": Out(self.nmpu.o.signature),
                "nmpu_load": In(self.nmpu.load.signature.flip()),
                "mgmt_load": In(self.mgmt.load.signature.flip()),
                "soc": Out(1),
                "busy": Out(1),
                "tile": Out(range(params.nmpu.max_tiles)),
                "status": Out(status),
            }
        )

    def converter(self, m: Module, mgmt: MgmtController) -> None:
        """``soc``/``busy`` and the skid buffer from ``adc`` to the controller."""
        p = self.params
        m.d.sync += self.soc.eq(self.dac.valid & self.dac.ready & self.dac.payload.last)
        # busy clocks after this one (one bit at least: a 0-bit signal is [-1:0] in Verilog)
        left = Signal(range(max(p.conv_cycles, 2)), name="conv_left")
        with m.If(self.soc):
            m.d.sync += left.eq(p.conv_cycles - 1)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.busy.eq(self.soc | (left != 0))
        # two-entry skid buffer: adc.ready is a register output, one beat per clock
        layout = self.adc.payload.shape()
        out_valid, skid_valid = Signal(name="adc_q_valid"), Signal(name="adc_skid_valid")
        out_data = Signal(layout, name="adc_q")
        skid_data = Signal(layout, name="adc_skid")
        m.d.comb += [
            self.adc.ready.eq(~skid_valid & ~self.busy),
            mgmt.adc.valid.eq(out_valid),
            mgmt.adc.payload.eq(out_data),
        ]
        take = self.adc.valid & self.adc.ready
        with m.If(~out_valid | mgmt.adc.ready):
            with m.If(skid_valid):
                m.d.sync += [out_data.eq(skid_data), out_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out_data.eq(self.adc.payload), out_valid.eq(take)]
        with m.Elif(take):
            m.d.sync += [skid_data.eq(self.adc.payload), skid_valid.eq(1)]

    def tile_select(self, m: Module, segment_done) -> None:
        """``tile``: segments of the current vector done so far, modulo the NMPU's
        N_TILES (a copy of that register, written by the same ``nmpu_load`` beat)."""
        p = self.params.nmpu
        n_tiles = Signal(range(p.max_tiles + 1), init=1, name="tile_count")
        ld = self.nmpu_load
        with m.If(
            ld.valid & (ld.payload.kind == NmpuLoad.REG) & (ld.payload.group == NmpuReg.N_TILES)
        ):
            m.d.sync += n_tiles.eq(ld.payload.b[0])
        with m.If(segment_done):
            m.d.sync += self.tile.eq(Mux(self.tile + 1 >= n_tiles, 0, self.tile + 1))

    def memory_specs(self) -> list[MemorySpec]:
        """The controller's and the NMPU's arrays, named by submodule."""
        return [s.prefixed("mgmt") for s in self.mgmt.memory_specs()] + [
            s.prefixed("nmpu") for s in self.nmpu.memory_specs()
        ]

    def elaborate(self, platform):
        m = Module()
        m.submodules.mgmt = mgmt = self.mgmt
        m.submodules.nmpu = nmpu = self.nmpu
        wiring.connect(m, wiring.flipped(self.x), mgmt.x)
        wiring.connect(m, mgmt.dac, wiring.flipped(self.dac))
        self.converter(m, mgmt)
        wiring.connect(m, nmpu.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.nmpu_load), nmpu.load)
        wiring.connect(m, wiring.flipped(self.mgmt_load), mgmt.load)

        # the controller's result stream carries more fields than the NMPU consumes
        m.d.comb += [
            nmpu.i.valid.eq(mgmt.o.valid),
            mgmt.o.ready.eq(nmpu.i.ready),
            nmpu.i.payload.a.eq(mgmt.o.payload.a),
            nmpu.i.payload.e.eq(mgmt.o.payload.e),
        ]
        first = Signal(init=1)
        beat = mgmt.o.valid & nmpu.i.ready
        with m.If(beat):
            m.d.sync += first.eq(mgmt.o.payload.last)
        self.tile_select(m, beat & mgmt.o.payload.last)
        m.d.comb += [
            self.status.valid.eq(beat & first),
            self.status.e.eq(mgmt.o.payload.e),
            self.status.iter.eq(mgmt.o.payload.iter),
            self.status.sat_any.eq(mgmt.o.payload.sat_any),
        ]
        return m
