"""``periphery_top`` (controller + NMPU) under Verilator against the chained golden models
(cosim/benches/periphery_top.py): outputs, per-segment status and every DAC segment."""

from __future__ import annotations

import pytest
from aimcflow.cosim import runner
from aimcflow.cosim.benches import periphery_top as bench
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.rtlparams import mgmt_params, nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams

FAST_VECTORS = 20_000  # >= 20 000 random vectors per block, periphery_top included
SOAK_CONFIGS = [(1, 4, 4), (4, 8, 8), (8, 10, 4), (16, 10, 8)]
SOAK_VECTORS = 1_000_000 // len(SOAK_CONFIGS) + 1


def _run(lanes: int, adc_bits: int, out_bits: int, vectors: int, **kw) -> dict:
    cfg = load_config("baseline-ftj").replace(
        **{"nmpu.lanes": lanes, "adc.bits": adc_bits, "nmpu.out_bits": out_bits}
    )
    gen = generate_block(cfg, "periphery_top")
    b = runner.build(gen.verilog, gen.module, name=f"top-l{lanes}")
    r = b.run(
        bench.MODULE,
        bench.bench_params(
            nmpu_params(cfg),
            mgmt_params(cfg),
            NmpuParams.from_config(cfg),
            MgmtParams.from_config(cfg),
            vectors=vectors,
            **kw,
        ),
        testcase="random_jobs",
    )
    return r.result


@pytest.mark.cosim
def test_cosim_periphery_top_random():
    res = _run(4, 8, 4, FAST_VECTORS, seed=11)
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= FAST_VECTORS
    assert res["segments"] >= FAST_VECTORS  # one status record per (vector, row tile)
    assert "reset_after_beats" in res


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("lanes,adc_bits,out_bits", SOAK_CONFIGS)
def test_cosim_periphery_top_soak(lanes, adc_bits, out_bits):
    res = _run(lanes, adc_bits, out_bits, SOAK_VECTORS, seed=5 + lanes)
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= SOAK_VECTORS
