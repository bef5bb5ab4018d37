"""Run-time registers written from a ``load`` stream ``{reg, value}`` (always ready): the
shared register file of the stream units between layers (residual add, pooling)."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Signal


def write_registers(m: Module, load, table: Sequence[tuple[int, Signal]]) -> None:
    """``load`` is always ready; a beat sets register ``table[k][1]`` whose number
    ``table[k][0]`` equals ``load.payload.reg`` to ``load.payload.value`` (truncated to the
    register's width: the sender keeps values in range).  Unknown numbers are ignored."""
    m.d.comb += load.ready.eq(1)
    with m.If(load.valid):
        with m.Switch(load.payload.reg):
            for reg, sig in table:
                with m.Case(reg):
                    m.d.sync += sig.eq(load.payload.value)
