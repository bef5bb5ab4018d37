"""The management controller RTL under Verilator against its golden model, with the SPEC's
ideal linear tile answering behind the dac/adc streams (cosim/benches/mgmt.py).

``make test``: >= 20 000 random vectors over three builds that together with the
periphery_top bench (lanes 4) cover lanes 1/4/8/16, adc.bits 4/8/10, out_bits 4/8 (the
controller's input width).  ``make soak``: the full cross product, >= 1 000 000 vectors.
"""

from __future__ import annotations

import itertools

import pytest
from aimcflow.cosim import runner
from aimcflow.cosim.benches import mgmt as bench
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.rtlparams import mgmt_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.mgmt import MgmtParams

COVER = [(1, 4, 8), (8, 10, 4), (16, 8, 8)]
FULL = list(itertools.product((1, 4, 8, 16), (4, 8, 10), (4, 8)))
FAST_VECTORS = 7_000  # x 3 configs = 21 000 in `make test`
SOAK_VECTORS = 1_000_000 // len(FULL) + 1


def _run(lanes: int, adc_bits: int, out_bits: int, vectors: int, **kw) -> dict:
    # leaky output -> signed controller input: exercises |x| of negative values
    cfg = load_config("baseline-ftj").replace(
        **{
            "nmpu.lanes": lanes,
            "adc.bits": adc_bits,
            "nmpu.out_bits": out_bits,
            "nmpu.activation": "leaky" if lanes != 16 else "relu",
        }
    )
    gen = generate_block(cfg, "mgmt")
    b = runner.build(gen.verilog, gen.module, name=f"mgmt-l{lanes}")
    r = b.run(
        bench.MODULE,
        bench.bench_params(mgmt_params(cfg), MgmtParams.from_config(cfg), vectors=vectors, **kw),
        testcase="random_segments",
    )
    return r.result


@pytest.mark.cosim
@pytest.mark.parametrize("lanes,adc_bits,out_bits", COVER)
def test_cosim_mgmt_random(lanes, adc_bits, out_bits):
    res = _run(lanes, adc_bits, out_bits, FAST_VECTORS, seed=lanes + 10 * adc_bits)
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= FAST_VECTORS
    # the docstring's pass-through and dac streaming, every cycle under random stalls
    assert not any(res["handshake_violations"].values()), res["handshake_violations"]
    assert res["handshake_checked"] > res["vectors"]
    assert "reset_after_beats" in res
    hist = res["iter_histogram"]
    # bound management really ran: retries happened, and some vectors needed several
    assert hist[0] < res["vectors"] and sum(hist[2:]) > 0, hist


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("lanes,adc_bits,out_bits", FULL)
def test_cosim_mgmt_soak(lanes, adc_bits, out_bits):
    res = _run(lanes, adc_bits, out_bits, SOAK_VECTORS, seed=3 + lanes + adc_bits)
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= SOAK_VECTORS
