"""Expose every register (and optionally every named net) of an Amaranth design on one
output port, for power simulation.

Method (chosen for robustness over reading Verilator internals): the design is
elaborated once; every signal that a statement of the ``sync`` domain assigns, in the
design and all its submodules, is a flip-flop of the netlist (Amaranth has no other way
to make state, memories excepted).  A wrapper component re-exports the design's ports
unchanged and adds ``power_state``, the concatenation of all of those registers in a
fixed (name-sorted, per-hierarchy) order.  Verilator cannot optimise a register away
while it drives a top-level output, and the C++ harness reads one wide port instead of
depending on Verilator's internal member naming.

Power models: ``registers`` (default) probes the ``sync``-assigned signals only; ``nets``
adds every signal a ``comb`` statement assigns (every named combinational ``Signal`` of
the design, e.g. the intermediates of the secure MAC's Boolean-to-arithmetic conversion),
appended after the registers.  Their settled values are sampled once per clock edge:
glitches are not modelled, and unnamed expressions (an adder tree's internal sums) are not
probed.

Limitations: ``lib.memory.Memory`` contents are not included (the MACs hold their
weights in registers; a design with memories is rejected rather than silently under-
counted).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Fragment, Module, Signal, Value
from amaranth.hdl._ir import Fragment as _Frag
from amaranth.lib import wiring
from amaranth.lib.wiring import Out


@dataclass(frozen=True)
class ProbedRegister:
    """One register in ``power_state``: hierarchical name, bit offset, width."""

    name: str
    offset: int
    width: int


POWER_MODELS = ("registers", "nets")


def _assigned(frag: Fragment, comb: bool, path: str = "") -> list[tuple[str, Signal]]:
    """Signals assigned in ``frag`` and its submodules: by ``comb`` statements if ``comb``,
    else by any clocked domain (the registers)."""

    out: list[tuple[str, Signal]] = []
    for domain, stmts in frag.statements.items():
        if (domain == "comb") != comb:
            continue
        sigs = stmts._lhs_signals()
        out += sorted(((f"{path}{s.name}", s) for s in sigs), key=lambda t: t[0])
    for sub, name, _src in frag.subfragments:
        if not isinstance(sub, _Frag) or type(sub).__name__ != "Fragment":
            raise TypeError(
                f"power probe: submodule {name!r} is a {type(sub).__name__} "
                "(memory or instance), whose state cannot be probed"
            )
        out += _assigned(sub, comb, f"{path}{name}.")
    return out


class PowerProbe(wiring.Component):
    """``dut``'s ports plus ``power_state`` (all registers of ``dut``, then, for the ``nets``
    power model, all its comb-assigned signals, concatenated)."""

    def __init__(self, dut: wiring.Component, power_model: str = "registers") -> None:
        if power_model not in POWER_MODELS:
            raise ValueError(f"power model {power_model!r}; known: {', '.join(POWER_MODELS)}")
        self._dut = dut
        self._frag = Fragment.get(dut, None)
        probed = _assigned(self._frag, comb=False)
        self.register_count = len(probed)
        if power_model == "nets":
            probed += _assigned(self._frag, comb=True)
        self._regs = [s for _, s in probed]
        offset = 0
        self.registers: list[ProbedRegister] = []  # registers first, then nets
        for name, s in probed:
            self.registers.append(ProbedRegister(name, offset, len(s)))
            offset += len(s)
        self.state_bits = offset
        members = dict(dut.signature.members)
        members["power_state"] = Out(self.state_bits)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._frag
        for path, member, value in self._dut.signature.flatten(self._dut):
            ours = self
            for p in path:
                ours = getattr(ours, p) if isinstance(p, str) else ours[p]
            if member.flow == wiring.In:
                m.d.comb += Value.cast(value).eq(Value.cast(ours))
            else:
                m.d.comb += Value.cast(ours).eq(Value.cast(value))
        m.d.comb += self.power_state.eq(Cat(*self._regs))
        return m
