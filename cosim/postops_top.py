"""``postops_top``: the residual-add unit and the pooling unit side by side in one cosim
toplevel, their streams exposed with prefixes (``res_i``, ``res_o``, ``res_load``,
``pool_i``, ``pool_o``, ``pool_load``).

A cocotb process simulates one toplevel, so level 4 needs every block of a network in
one wrapper; this is that wrapper's between-layer part, and the prototype of how a level-4
bench drives it: :class:`~aimcflow.cosim.benches.residual.ResidualTB` and
:class:`~aimcflow.cosim.benches.pool.PoolTB` take a port ``prefix`` and attach to the same
toplevel (one clock, one reset), so network code can run an add or a pool on the RTL
between two NMPU stages.  The units share nothing but clock and reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimcflow.rtl.pool import Pool, PoolRtlParams
from aimcflow.rtl.residual import ResidualAdd, ResidualRtlParams
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

PREFIXES = {"residual": "res_", "pool": "pool_", "sfu": "sfu_"}
"""Port prefix of each unit's streams in a level-4 wrapper (``network_top`` also has the SFU)."""


@dataclass(frozen=True)
class PostOpsTopParams:
    residual: ResidualRtlParams
    pool: PoolRtlParams


class PostOpsTop(wiring.Component):
    """Both units; every stream of unit ``u`` is the port ``PREFIXES[u] + name``."""

    def __init__(self, params: PostOpsTopParams):
        self.params = params
        self._res = ResidualAdd(params.residual)
        self._pool = Pool(params.pool)
        members = {}
        for unit, prefix in (("_res", "res_"), ("_pool", "pool_")):
            sig = getattr(self, unit).signature.members
            for name in ("i", "load"):
                members[prefix + name] = In(sig[name].signature.flip())
            members[prefix + "o"] = Out(sig["o"].signature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.residual = self._res
        m.submodules.pool = self._pool
        for unit, prefix in ((self._res, "res_"), (self._pool, "pool_")):
            for name in ("i", "load", "o"):
                wiring.connect(m, wiring.flipped(getattr(self, prefix + name)), getattr(unit, name))
        return m
