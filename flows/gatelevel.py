"""Gate-level check: a block mapped to the OSU 0.18 um cells (:mod:`aimcflow.flows.sta`),
simulated by Icarus with the library's own Verilog cell models (Debian
``qflow-tech-osu018``: ``osu018_stdcells.v``, zero delay: Icarus ignores ``specify``
blocks unless asked), driven by the same cocotb bench and golden model as the RTL.

It shows that the synthesized netlist still computes what the RTL does, with the buffer
trees :mod:`aimcflow.flows.fanout` adds before timing (the netlist simulated is the one
``synth --liberty`` times).  The memories are mapped to flip-flops (the netlist has no
macro), so benches use small memory sizes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aimcflow.cosim.runner import build as runner_build

from .fanout import repair_fanout
from .sta import CELL_MODELS, MAX_FANOUT, liberty, map_block


def gate_level_build(
    gen, lib_name: str = "osu018", period_ns: float = 10.0, fanout_limit: int = MAX_FANOUT
):
    """Map ``gen`` (a :class:`~aimcflow.cosim.blocks.GeneratedBlock`) to ``lib_name`` and
    compile the netlist plus cell models with Icarus: a cached
    :class:`aimcflow.cosim.runner.Build` whose ``run`` takes the block's bench.  Nets with
    more than ``fanout_limit`` loads get buffer trees first (``synth --liberty``'s limit by
    default; a lower one puts trees on many more nets)."""
    lib = liberty(lib_name)
    mapped = map_block(gen.verilog, gen.module, lib, period_ns, memories=True)
    repaired = repair_fanout(mapped.netlist, lib, fanout_limit)
    with tempfile.TemporaryDirectory(prefix="aimcflow-gl-") as tmp:
        net = Path(tmp) / f"{gen.module}_{lib_name}.v"
        net.write_text(repaired.netlist)
        build = runner_build(
            [net, CELL_MODELS[lib_name]], gen.module, name=f"{gen.name}-gl-{lib_name}", sim="icarus"
        )
    build.mapped = mapped  # area and cells of the map, before the buffer trees
    build.repair = repaired  # the buffers added: what was simulated is repaired.netlist
    return build
