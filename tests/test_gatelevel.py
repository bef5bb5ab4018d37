"""Gate-level check: the NMPU and the management controller mapped to the OSU 0.18 um
cells (Debian qflow-tech-osu018), simulated by Icarus with the library's Verilog cell
models, pass their RTL benches (random valid gaps and backpressure on) with 0 mismatches
against the golden models.  The synthesized netlist computes what the RTL does.

Memories become flip-flops in the netlist, so the configuration is small (2 lanes, 8
columns, 16 rows).  The management controller's netlist (~2,300 cells) runs its 2,000
vectors in under a minute and is in ``make test``; the NMPU's (~21,500 cells) takes ~18
minutes on a loaded 2-core machine and is in ``make soak``.
"""

from __future__ import annotations

import pytest
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.rtlparams import mgmt_params, nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams

pytestmark = [pytest.mark.cosim, pytest.mark.osu018]

VECTORS = 2000
SMALL = {"nmpu.lanes": 2, "tile.cols": 8, "tile.rows": 16}


@pytest.mark.slow
def test_nmpu_gate_level_equals_golden():
    from aimcflow.cosim.benches import nmpu as bench
    from aimcflow.flows.gatelevel import gate_level_build

    cfg = load_config("baseline-ftj").replace(**SMALL)
    sizes = {"max_tiles": 2, "max_cols": 8}
    b = gate_level_build(generate_block(cfg, "nmpu", **sizes))
    assert b.mapped.cells > 1000  # a real netlist of cells, not the RTL
    assert b.repair.buffers > 0 and b.repair.max_fanout_after <= 16 < b.repair.max_fanout_before
    r = b.run(
        bench.MODULE,
        bench.bench_params(nmpu_params(cfg, **sizes), NmpuParams.from_config(cfg), vectors=VECTORS),
        testcase="random_jobs",
    ).result
    assert r["mismatches"] == 0, r["errors"]
    assert r["vectors"] >= VECTORS and r["out_saturated"] > 0


def test_mgmt_gate_level_equals_golden():
    from aimcflow.cosim.benches import mgmt as bench
    from aimcflow.flows.gatelevel import gate_level_build

    cfg = load_config("baseline-ftj").replace(**SMALL)
    # ABC already keeps this small netlist's nets at 16 loads, so the buffer trees of
    # synth --liberty are exercised with a limit of 4: the function must survive them
    b = gate_level_build(generate_block(cfg, "mgmt"), fanout_limit=4)
    assert b.mapped.cells > 1000
    assert b.repair.buffers > 100 and b.repair.max_fanout_after <= 4 < b.repair.max_fanout_before
    r = b.run(
        bench.MODULE,
        bench.bench_params(mgmt_params(cfg), MgmtParams.from_config(cfg), vectors=VECTORS),
        testcase="random_segments",
    ).result
    assert r["mismatches"] == 0, r["errors"]
    assert r["vectors"] >= VECTORS and sum(r["iter_histogram"][1:]) > 0
