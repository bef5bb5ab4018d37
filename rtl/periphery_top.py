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
``status`` (Out, plain signals, no backpressure) — ``{valid, e, iter, sat_any}``: ``valid``
    is high for one clock when the first beat of a management result enters the NMPU; the
    other fields are that result's ``e``, ``iter``, ``sat_any`` (one per vector and row tile,
    in segment order).  For monitors and the network simulator's statistics.  In Verilog
    one vector ``status``: bit 0 valid, then e, iter (4 bits), sat_any (LSB-first).

The controller's final answer streams straight into the NMPU (no buffer), and the
controller's second input buffer takes the next segment's ``x`` meanwhile, so input
transfer, tile conversion and NMPU accumulation overlap: the controller launches the next
segment (or retry) in the clock the previous answer's last beat enters the NMPU, so with a
tile that answers at once and no backpressure the tile interface carries a ``dac`` or
``adc`` beat in every clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .memories import MemorySpec
from .mgmt import ITER_BITS, MgmtController
from .nmpu import Nmpu, exponent_shape
from .params import MgmtRtlParams, NmpuRtlParams


@dataclass(frozen=True)
class PeripheryTopParams:
    """Both blocks' parameters; the shared ones (lanes, adc_bits, e_min, e_max) must agree."""

    nmpu: NmpuRtlParams
    mgmt: MgmtRtlParams

    def __post_init__(self) -> None:
        for name in ("lanes", "adc_bits", "e_min", "e_max"):
            a, b = getattr(self.nmpu, name), getattr(self.mgmt, name)
            if a != b:
                raise ValueError(f"periphery_top: nmpu.{name} = {a} but mgmt.{name} = {b}")
        if self.nmpu.memories != self.mgmt.memories:
            raise ValueError("periphery_top: nmpu and mgmt must use the same memories style")


class PeripheryTop(wiring.Component):
    """Controller + NMPU; see the module docstring for ports."""

    def __init__(self, nmpu: NmpuRtlParams, mgmt: MgmtRtlParams):
        self.params = params = PeripheryTopParams(nmpu=nmpu, mgmt=mgmt)
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
                "status": Out(status),
            }
        )

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
        wiring.connect(m, wiring.flipped(self.adc), mgmt.adc)
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
        m.d.comb += [
            self.status.valid.eq(beat & first),
            self.status.e.eq(mgmt.o.payload.e),
            self.status.iter.eq(mgmt.o.payload.iter),
            self.status.sat_any.eq(mgmt.o.payload.sat_any),
        ]
        return m
