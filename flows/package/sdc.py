"""SDC constraints and the clock/reset spec of a generated top.

Every aimcflow block has one clock domain: the port ``clk`` (rising edge) and a synchronous,
active-high reset ``rst`` (Amaranth's ``sync`` domain).  Ports are split into the
*analog side* (the converter interface: ``dac``, ``adc`` and the converter control
signals) and the *host side* (everything else); each side gets its own input and output
delay, a fixed fraction of the clock period (:data:`IO_FRACTIONS`), so the budget left
inside the block is the rest of the period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANALOG_PREFIXES = ("dac", "adc", "soc", "busy", "tile")
"""Port name prefixes of the converter (analog) side of ``periphery_top``/``mgmt``."""

IO_FRACTIONS = {"host": (0.3, 0.3), "analog": (0.4, 0.4)}
"""(input delay, output delay) per side as fractions of ``clock.period_ns``: the host's
logic outside the block takes 30 % of the period; the converters' digital edge 40 %."""

RESET_MIN_CYCLES = 2
"""Minimum reset assertion in clock cycles (the benches hold ``rst`` this long)."""


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" | "output"
    width: int

    @property
    def side(self) -> str:
        if self.name in ("clk", "rst"):
            return self.name
        return "analog" if self.name.split("__")[0] in ANALOG_PREFIXES else "host"


def top_ports(verilog: str, top: str) -> list[Port]:
    """The ports of module ``top`` as Yosys writes them (``input [W-1:0] name;``)."""
    m = re.search(rf"^module {re.escape(top)}\s*\(.*?\);(.*?)^endmodule", verilog, re.S | re.M)
    if not m:
        raise ValueError(f"module {top} not found in the Verilog")
    ports = []
    for d, hi, lo, name in re.findall(
        r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\\?\S+?)\s*;",
        m.group(1),
        re.M,
    ):
        width = abs(int(hi) - int(lo)) + 1 if hi else 1
        ports.append(Port(name, d, width))
    return ports


def sdc(verilog: str, top: str, period_ns: float, header: str = "") -> str:
    """SDC for ``top``: the clock on ``clk``, input/output delays per side, the reset."""
    ports = top_ports(verilog, top)
    lines = [f"# {header}" if header else "# aimcflow constraints", f"# top module {top}"]
    lines += [
        f"create_clock -name clk -period {period_ns:.3f} [get_ports clk]",
        "set_clock_uncertainty 0.1 [get_clocks clk]",
        "# synchronous active-high reset: timed like any other input (host side)",
        f"set_input_delay -clock clk {IO_FRACTIONS['host'][0] * period_ns:.3f} [get_ports rst]",
    ]
    for side in ("host", "analog"):
        fin, fout = IO_FRACTIONS[side]
        ins = [p.name for p in ports if p.direction == "input" and p.side == side]
        outs = [p.name for p in ports if p.direction == "output" and p.side == side]
        if ins or outs:
            lines.append(f"# {side} side")
        if ins:
            lines.append(
                f"set_input_delay -clock clk {fin * period_ns:.3f} [get_ports {{{' '.join(ins)}}}]"
            )
        if outs:
            lines.append(
                f"set_output_delay -clock clk {fout * period_ns:.3f} "
                f"[get_ports {{{' '.join(outs)}}}]"
            )
    return "\n".join(lines) + "\n"


def clock_reset_spec(period_ns: float) -> str:
    """The written clock and reset spec of every generated top (Markdown)."""
    fh_in, fh_out = IO_FRACTIONS["host"]
    fa_in, fa_out = IO_FRACTIONS["analog"]
    return f"""# Clock and reset

- **One clock domain.** Every generated module has one clock port, `clk`; every register
  is clocked on its rising edge.  There is no second clock, no gated clock and no
  clock-domain crossing inside: a converter running on another clock must be
  synchronised outside these modules.
- **Clock period:** {period_ns:g} ns (`clock.period_ns` of the config), i.e.
  {1000.0 / period_ns:g} MHz; the SDC files in `constraints/` use it.
- **Reset:** `rst`, **synchronous, active high**.  Hold it high for at least
  **{RESET_MIN_CYCLES} rising edges of `clk`** with `clk` running.  After reset every stream
  is empty (`valid` low), every register holds its documented reset value, and the
  coefficient memories are *not* cleared (load them again).  `rst` is timed like a host
  input (no false path): drive it from a flop synchronised to `clk`.
- **Stream handshake:** a beat transfers on a rising edge where `valid` and `ready` are
  both high; a source holds `valid` and its payload until then (waves in `waves/`).
- **I/O budget in the SDC:** host-side inputs arrive {fh_in:.0%} of the period after the
  edge and outputs must be stable {fh_out:.0%} before the next; analog-side (converter)
  ports use {fa_in:.0%} / {fa_out:.0%}.
"""


def clock_period_ns(cfg) -> float:
    """``clock.period_ns`` of the config (10 ns where the config has no ``[clock]``)."""
    clock = getattr(cfg, "clock", None)
    return float(clock.period_ns) if clock is not None else 10.0
