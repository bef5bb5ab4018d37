"""Fanout repair of a mapped netlist: a buffer tree on every net that drives too many pins.

ABC buffers only the nets inside the logic it maps; a register's output is one of ABC's
inputs, so the column-group register of the NMPU, which addresses every row of a flop
memory, kept tens of thousands of loads and its delay dominated the timing report.  This
pass does on the mapped netlist what OpenROAD's ``repair_design`` does before placement in
a LibreLane flow: every net with more than ``limit`` data-pin loads is split into a
balanced tree of buffer cells, each driving at most ``limit`` pins.  It only adds
buffers and re-points input pins, so the logic is unchanged (the gate-level check in
:mod:`aimcflow.flows.gatelevel` simulates a repaired netlist against the golden model).

What it leaves alone, on purpose:

* clock pins (``CLK``): the clock tree is clock-tree synthesis' job, after placement;
* pins of cells the liberty does not know (SRAM macro black boxes): their loads stay on the
  original net; a black box has no pin capacitance, so OpenSTA gives them no delay anyway;
* ``assign`` aliases: Yosys connects every cell to one name per net, so an alias adds no
  cell load.

Buffers go wherever the pin order of the netlist puts them: without placement, which pins
share a buffer is arbitrary, so wire load is not modelled (neither is it before the repair).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BUFFER_CELL = "BUFX4"
"""The OSU 0.18 um buffer with the strongest drive (``BUFX4``)."""

_INSTANCE = re.compile(r"^  (\w+) (\\\S+ |\w+) \((.*?)\n  \);", re.M | re.S)
_PIN = re.compile(r"\.(\w+)\(([^()]*)\)")


@dataclass(frozen=True)
class Repair:
    """A repaired netlist and what the repair added: buffers, their area (um^2), and the
    largest data-pin fanout before and after."""

    netlist: str
    buffers: int
    buffer_area_um2: float
    nets_repaired: int
    max_fanout_before: int
    max_fanout_after: int


@cache
def _liberty_cells(lib: Path) -> tuple[dict[str, frozenset[str]], dict[str, float]]:
    """Per cell of the liberty: its input pins and its area (um^2)."""
    inputs: dict[str, frozenset[str]] = {}
    areas: dict[str, float] = {}
    text = lib.read_text()
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*cell\s*\((\w+)\)", text, re.M)]
    for (pos, name), (end, _) in zip(starts, starts[1:] + [(len(text), "")], strict=True):
        body = text[pos:end]
        area = re.search(r"^\s*area\s*:\s*([\d.]+)", body, re.M)
        areas[name] = float(area.group(1)) if area else 0.0
        pins = re.finditer(r"pin\s*\((\w+)\)\s*\{[^{}]*?direction\s*:\s*(\w+)", body, re.S)
        inputs[name] = frozenset(p.group(1) for p in pins if p.group(2) == "input")
    return inputs, areas


def _data_loads(netlist: str, lib: Path) -> dict[str, list[tuple[int, int]]]:
    """Net name -> the (start, end) text spans of every liberty-cell data input pin it drives."""
    inputs, _ = _liberty_cells(lib)
    loads: dict[str, list[tuple[int, int]]] = {}
    for inst in _INSTANCE.finditer(netlist):
        pins = inputs.get(inst.group(1))
        if not pins:  # not a liberty cell: a macro black box
            continue
        base = inst.start(3)
        for pin in _PIN.finditer(inst.group(3)):
            if pin.group(1) not in pins or pin.group(1) == "CLK":
                continue
            net = pin.group(2).strip()
            if not net or net[0].isdigit():  # a constant, not a net
                continue
            loads.setdefault(net, []).append((base + pin.start(2), base + pin.end(2)))
    return loads


def max_fanout(netlist: str, lib: Path) -> int:
    """The largest number of liberty-cell data input pins (clock pins excluded) one net drives."""
    return max(map(len, _data_loads(netlist, lib).values()), default=0)


def repair_fanout(netlist: str, lib: Path, limit: int = 16) -> Repair:
    """Split every net of ``netlist`` (one flat module, ``write_verilog -noattr``) that drives
    more than ``limit`` data pins into a balanced tree of :data:`BUFFER_CELL` cells."""
    if limit < 2:
        raise ValueError(f"fanout limit {limit}: at least 2")
    loads = _data_loads(netlist, lib)
    before = max(map(len, loads.values()), default=0)
    edits: list[tuple[int, int, str]] = []
    wires: list[str] = []
    cells: list[str] = []
    repaired = 0
    tag = "aimcflow_fanout"
    if tag in netlist:
        raise ValueError(f"netlist already has names with {tag!r}: repaired twice?")
    for net, spans in loads.items():
        if len(spans) <= limit:
            continue
        repaired += 1
        # a sink is an input pin of the netlist (its text span) or of a new buffer (its index)
        sinks: list[tuple[int, int] | int] = list(spans)
        while len(sinks) > limit:
            groups = -(-len(sinks) // limit)
            size, extra = divmod(len(sinks), groups)  # balanced: sizes differ by at most 1
            nxt: list[tuple[int, int] | int] = []
            pos = 0
            for g in range(groups):
                n = size + (g < extra)
                wire = f"{tag}_n{len(cells)}"
                wires.append(wire)
                for s in sinks[pos : pos + n]:
                    _connect(s, wire, edits, cells)
                pos += n
                cells.append(
                    f"  {BUFFER_CELL} {tag}_b{len(cells)} (\n    .A(@),\n    .Y({wire})\n  );"
                )
                nxt.append(len(cells) - 1)
            sinks = nxt
        for s in sinks:
            _connect(s, net, edits, cells)
    if not cells:
        return Repair(netlist, 0, 0.0, 0, before, before)
    parts, pos = [], 0
    for start, end, net in sorted(edits):  # one pass: the netlist may be 100s of MB
        parts += [netlist[pos:start], net]
        pos = end
    text = "".join(parts) + netlist[pos:]
    head = text.index(";", text.index("module ")) + 1  # after the module's port list
    end = text.rindex("endmodule")
    decl = "".join(f"\n  wire {w};" for w in wires)
    text = text[:head] + decl + text[head:end] + "\n".join(cells) + "\n" + text[end:]
    _, areas = _liberty_cells(lib)
    return Repair(
        text,
        len(cells),
        len(cells) * areas[BUFFER_CELL],
        repaired,
        before,
        max_fanout(text, lib),
    )


def _connect(sink, net: str, edits: list, cells: list[str]) -> None:
    """Point ``sink`` (an input-pin text span, or the index of a new buffer) at ``net``."""
    if net.startswith("\\"):  # an escaped identifier ends at white space only
        net += " "
    if isinstance(sink, int):
        cells[sink] = cells[sink].replace("(@)", f"({net})", 1)
    else:
        edits.append((sink[0], sink[1], net))
