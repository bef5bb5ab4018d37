"""Memory arrays built as flip-flops or as banked 1R1W SRAM macros (``rtl/memories.py``).

The macro variant of a block must compute exactly what the flops variant does: the NMPU
and controller benches run on it against the same golden models (0 mismatches), with
word widths that need several width banks (lanes 8) and a coefficient array that needs
two depth banks (lanes 1: 4 tiles x 512 groups = 2048 words).
"""

from __future__ import annotations

import re

import pytest
from aimcflow.models.config import load_config


def _cfg(lanes: int):
    return load_config("baseline-ftj").replace(**{"nmpu.lanes": lanes})


def test_manifest_describes_every_array():
    from aimcflow.cosim.blocks import generate_block
    from aimcflow.rtl.memories import MACRO_MAX_DEPTH, MACRO_MAX_WIDTH

    cfg = _cfg(8)
    g = generate_block(cfg, "nmpu")
    by = {m["name"]: m for m in g.memories}
    assert set(by) == {"tile_coef", "col_coef", "acc_mem"}
    lanes, groups = 8, -(-cfg.tile.cols // 8)
    gain, adc = cfg.nmpu.gain_bits, cfg.adc.bits
    # widths from the SPEC's word layouts: {gain, offset = adc + gain bits} per lane
    assert by["tile_coef"]["width"] == lanes * (gain + adc + gain)
    assert by["tile_coef"]["depth"] == 4 * groups
    assert by["acc_mem"]["width"] == lanes * cfg.nmpu.acc_bits
    assert by["acc_mem"]["read_during_write"].startswith("new data")
    assert by["col_coef"]["read_during_write"] == "old data"
    for m in g.memories:
        mac = m["macro"]
        assert mac["width"] <= MACRO_MAX_WIDTH and mac["depth"] <= MACRO_MAX_DEPTH
        assert mac["width"] * mac["width_banks"] >= m["width"]
        assert mac["depth"] * mac["depth_banks"] >= m["depth"]
    # the flops Verilog holds each array as one Verilog memory of exactly that shape
    for m in g.memories:
        pat = rf"reg \[{m['width'] - 1}:0\] \\?{m['name']}\s*\[{m['depth'] - 1}:0\];"
        assert re.search(pat, g.verilog), m["name"]
    assert "_sram_1r1w_" not in g.verilog and not g.models
    top = generate_block(cfg, "periphery_top")
    assert [m["name"] for m in top.memories] == [
        "mgmt.x_mem",
        "nmpu.tile_coef",
        "nmpu.col_coef",
        "nmpu.acc_mem",
    ]


def test_macro_variant_instantiates_banks():
    from aimcflow.cosim.blocks import generate_block

    g = generate_block(_cfg(8), "nmpu", "macro")
    insts = re.findall(r"^\s*(aimcflow_sram_1r1w_d\d+_w\d+) (\S+) \(", g.verilog, re.M)
    want = sum(m["macro"]["banks"] for m in g.memories)
    assert len(insts) == want
    assert {i[0] for i in insts} == set(g.models)
    assert not re.search(r"reg \[\d+:0\] \\?tile_coef\s*\[", g.verilog)
    deep = generate_block(_cfg(1), "nmpu", "macro")
    tile = next(m for m in deep.memories if m["name"] == "tile_coef")
    assert tile["depth"] == 2048 and tile["macro"]["depth_banks"] == 2


def _nmpu_run(lanes: int, vectors: int, seed: int, memories: str) -> dict:
    from aimcflow.cosim import runner
    from aimcflow.cosim.benches import nmpu as bench
    from aimcflow.cosim.blocks import generate_block
    from aimcflow.cosim.rtlparams import nmpu_params
    from aimcflow.models.periphery.nmpu import NmpuParams

    cfg = _cfg(lanes)
    gen = generate_block(cfg, "nmpu", memories)
    name = f"nmpu-{memories}-l{lanes}"
    b = runner.build(gen.verilog, gen.module, name=name, models=gen.models)
    rtl = nmpu_params(cfg, memories=memories)
    gp = NmpuParams.from_config(cfg)
    r = b.run(
        bench.MODULE,
        bench.bench_params(rtl, gp, vectors=vectors, seed=seed),
        testcase="random_jobs",
    )
    return r.result


@pytest.mark.cosim
@pytest.mark.parametrize("lanes", [8, 1])
def test_cosim_nmpu_macro_memories(lanes):
    res = _nmpu_run(lanes, 2_000, 31 + lanes, "macro")
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= 2_000
    assert "reset_after_beats" in res
    if lanes == 8:
        # the same random run (gaps, backpressure, mid-stream reset) on the flops variant
        # takes exactly as many clocks: the macro wrapper keeps every latency
        flops = _nmpu_run(lanes, 2_000, 31 + lanes, "flops")
        assert flops["mismatches"] == 0
        assert (flops["vectors"], flops["rtl_cycles"]) == (res["vectors"], res["rtl_cycles"])


@pytest.mark.cosim
def test_cosim_mgmt_macro_memories():
    from aimcflow.cosim import runner
    from aimcflow.cosim.benches import mgmt as bench
    from aimcflow.cosim.blocks import generate_block
    from aimcflow.cosim.rtlparams import mgmt_params
    from aimcflow.models.periphery.mgmt import MgmtParams

    cfg = _cfg(4)
    gen = generate_block(cfg, "mgmt", "macro")
    assert any(m["read_during_write"].startswith("new") for m in gen.memories)
    b = runner.build(gen.verilog, gen.module, name="mgmt-macro-l4", models=gen.models)
    rtl = mgmt_params(cfg, memories="macro")
    res = b.run(
        bench.MODULE,
        bench.bench_params(rtl, MgmtParams.from_config(cfg), vectors=2_000, seed=5),
        testcase="random_segments",
    ).result
    assert res["mismatches"] == 0, res["errors"]
