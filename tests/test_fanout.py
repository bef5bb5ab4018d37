"""Buffer trees on high-fanout nets (:mod:`aimcflow.flows.fanout`): every net ends with at
most the limit of data-pin loads, every original pin still reaches its original driver
through buffers only, and clock pins, constants and black-box pins are left alone.

A tiny liberty written here stands in for OSU 0.18 um (same cell and pin names), so the
structure is checked without the Debian library; the gate-level benches
(``tests/test_gatelevel.py``) simulate a repaired OSU netlist against the golden models."""

from __future__ import annotations

import math
import re

import pytest
from aimcflow.flows.fanout import BUFFER_CELL, max_fanout, repair_fanout

LIBERTY = """library (tiny) {
cell (INVX1) {
  area : 16;
  pin (A) { direction : input; capacitance : 0.01; }
  pin (Y) { direction : output; function : "(!A)"; }
}
cell (BUFX4) {
  area : 32;
  pin (A) { direction : input; }
  pin (Y) { direction : output; function : "A"; }
}
cell (DFFPOSX1) {
  area : 96;
  pin (CLK) { direction : input; clock : true; }
  pin (D) { direction : input; }
  pin (Q) { direction : output; }
}
}
"""


def netlist(loads: int) -> str:
    """A flop ``q`` driving ``loads`` inverters, a constant, and a black-box pin; the clock
    drives the flop and every inverter's own flop."""
    cells = ["  DFFPOSX1 _1_ (\n    .CLK(clk),\n    .D(d),\n    .Q(\\q[0] )\n  );"]
    for i in range(loads):
        cells.append(f"  INVX1 _{i + 10}_ (\n    .A(\\q[0] ),\n    .Y(y[{i}])\n  );")
        cells.append(f"  DFFPOSX1 _f{i}_ (\n    .CLK(clk),\n    .D(1'h0),\n    .Q(z[{i}])\n  );")
    cells.append("  sram_box mem (\n    .clk(clk),\n    .raddr(\\q[0] )\n  );")
    return (
        "module top(clk, d, y);\n  input clk;\n  input d;\n"
        f"  output [{loads - 1}:0] y;\n  wire [{loads - 1}:0] z;\n  wire \\q[0] ;\n"
        + "\n".join(cells)
        + "\nendmodule\n"
    )


def drivers(text: str) -> dict[str, str]:
    """Buffer output net -> its input net."""
    return dict(
        (m.group(2), m.group(1))
        for m in re.finditer(
            rf"{BUFFER_CELL} \S+ \(\n    \.A\(([^()]*)\),\n    \.Y\(([^()]*)\)", text
        )
    )


@pytest.fixture
def lib(tmp_path):
    p = tmp_path / "tiny.lib"
    p.write_text(LIBERTY)
    return p


@pytest.mark.parametrize(("loads", "limit"), [(100, 4), (17, 16), (16, 16), (1000, 16)])
def test_tree_bounds_fanout_and_keeps_every_pin_on_its_driver(lib, loads, limit):
    before = netlist(loads)
    assert max_fanout(before, lib) == loads  # the clock (2 x loads + 1 pins) is not counted
    r = repair_fanout(before, lib, limit)
    assert r.max_fanout_before == loads
    assert r.max_fanout_after == max_fanout(r.netlist, lib) <= limit
    # a balanced tree: ceil(loads / limit) buffers on the first level, and so on up
    expect, level = 0, loads
    while level > limit:
        level = math.ceil(level / limit)
        expect += level
    assert r.buffers == expect and r.buffer_area_um2 == 32.0 * expect
    assert r.nets_repaired == (loads > limit)
    up = drivers(r.netlist)
    for i in range(loads):  # every inverter still reads q, through buffers only
        net = re.search(rf"INVX1 _{i + 10}_ \(\n    \.A\(([^()]*)\)", r.netlist).group(1).strip()
        depth = 0
        while net in up:
            net, depth = up[net].strip(), depth + 1
        assert net == "\\q[0]"
        assert depth == (math.ceil(math.log(loads, limit) - 1e-9) - 1 if loads > limit else 0)
    # clock, constant and the black box's pin untouched
    assert r.netlist.count(".CLK(clk)") == loads + 1 and r.netlist.count(".D(1'h0)") == loads
    assert ".raddr(\\q[0] )" in r.netlist
    # an escaped name keeps the white space that ends it wherever the repair wrote it
    assert not re.search(r"\\[^\s]*\)", r.netlist)
    # every new wire is declared once
    for w in up:
        assert r.netlist.count(f"wire {w};") == 1


def test_repairing_twice_is_refused(lib):
    r = repair_fanout(netlist(40), lib, 4)
    with pytest.raises(ValueError, match="repaired twice"):
        repair_fanout(r.netlist, lib, 4)


def test_concatenated_assigns_become_one_per_bit():
    """OpenSTA's reader refuses ``assign {...} = ...``: each becomes per-bit assigns, the
    bits paired most significant first as Verilog pairs them; slices, whole wires, escaped
    names and constants all expand to their bits."""
    from aimcflow.flows.sta import split_concat_assigns

    text = (
        "module m(a, o);\n  input [3:0] a;\n  output [5:0] o;\n  wire [2:0] \\w ;\n"
        "  assign { o[5:4], \\w [2:1], o[0] } = { a[3], 2'h1, a[1:0] };\n"
        "  assign { o[5:1] } = { a, 1'h1 };\n"
        "  assign o[3:1] = 3'h0;\nendmodule\n"
    )
    got = [line.strip() for line in split_concat_assigns(text).splitlines() if "assign" in line]
    assert got == [
        "assign o[5] = a[3];",
        "assign o[4] = 1'b0;",
        "assign \\w [2] = 1'b1;",
        "assign \\w [1] = a[1];",
        "assign o[0] = a[0];",
        "assign o[5] = a[3];",
        "assign o[4] = a[2];",
        "assign o[3] = a[1];",
        "assign o[2] = a[0];",
        "assign o[1] = 1'b1;",
        "assign o[3:1] = 3'h0;",  # no concatenation on the left: left as it is
    ]
