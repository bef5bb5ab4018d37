"""Gate-level check: a block mapped to the OSU 0.18 um cells (:mod:`aimcflow.flows.sta`),
simulated by Icarus with the library's own Verilog cell models (Debian
``qflow-tech-osu018``: ``osu018_stdcells.v``, zero delay: Icarus ignores ``specify``
blocks unless asked), driven by the same cocotb bench and golden model as the RTL.

It shows that the synthesized netlist still computes what the RTL does.  The memories
are mapped to flip-flops (the netlist has no macro), so benches use small memory sizes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aimcflow.cosim.runner import build as runner_build

from .sta import CELL_MODELS, liberty, map_block


def gate_level_build(gen, lib_name: str = "osu018", period_ns: float = 10.0):
    """Map ``gen`` (a :class:`~aimcflow.cosim.blocks.GeneratedBlock`) to ``lib_name`` and
    compile the netlist plus cell models with Icarus: a cached
    :class:`aimcflow.cosim.runner.Build` whose ``run`` takes the block's bench."""
    lib = liberty(lib_name)
    mapped = map_block(gen.verilog, gen.module, lib, period_ns, memories=True)
    with tempfile.TemporaryDirectory(prefix="aimcflow-gl-") as tmp:
        net = Path(tmp) / f"{gen.module}_{lib_name}.v"
        net.write_text(mapped.netlist)
        build = runner_build(
            [net, CELL_MODELS[lib_name]], gen.module, name=f"{gen.name}-gl-{lib_name}", sim="icarus"
        )
    build.mapped = mapped  # area, cells, fanout of what was simulated
    return build
