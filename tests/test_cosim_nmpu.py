"""The NMPU RTL under Verilator against its golden model (cocotb bench cosim/benches/nmpu.py).

``make test`` covers every swept value once (lanes 1/4/8/16, adc.bits 4/8/10, out_bits 4/8)
with >= 20 000 random vectors in total; ``make soak`` runs the full cross product with
>= 1 000 000 vectors.  Each bench also cuts one job by a reset mid-stream and checks it.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil

import pytest
from aimcflow.cosim import runner
from aimcflow.cosim.benches import nmpu as bench
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.rtlparams import nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.nmpu import NmpuParams

LANES, ADC_BITS, OUT_BITS = (1, 4, 8, 16), (4, 8, 10), (4, 8)
# covering set: each value of each swept parameter at least once (lanes needs 4 builds)
COVER = [(1, 4, 4), (4, 10, 8), (8, 8, 4), (16, 10, 8)]
FULL = list(itertools.product(LANES, ADC_BITS, OUT_BITS))
FAST_VECTORS = 5_000  # x 4 configs = 20 000 in `make test`
SOAK_VECTORS = 1_000_000 // len(FULL) + 1


def _setup(lanes: int, adc_bits: int, out_bits: int, acc_extra: int | None = None):
    changes = {"nmpu.lanes": lanes, "adc.bits": adc_bits, "nmpu.out_bits": out_bits}
    cfg = load_config("baseline-ftj")
    if acc_extra is not None:  # a narrow accumulator makes saturation common
        changes["nmpu.acc_bits"] = adc_bits + cfg.nmpu.gain_bits + acc_extra
    cfg = cfg.replace(**changes)
    return cfg, nmpu_params(cfg), NmpuParams.from_config(cfg), generate_block(cfg, "nmpu")


def _run(lanes, adc_bits, out_bits, vectors, acc_extra=None, **kw):
    cfg, rtl, gp, gen = _setup(lanes, adc_bits, out_bits, acc_extra)
    b = runner.build(gen.verilog, gen.module, name=f"nmpu-l{lanes}")
    r = b.run(
        bench.MODULE, bench.bench_params(rtl, gp, vectors=vectors, **kw), testcase="random_jobs"
    )
    return b, rtl, gp, r.result


@pytest.mark.cosim
@pytest.mark.parametrize("lanes,adc_bits,out_bits", COVER)
def test_cosim_nmpu_random(lanes, adc_bits, out_bits):
    _, _, _, res = _run(
        lanes,
        adc_bits,
        out_bits,
        FAST_VECTORS,
        acc_extra=2 if lanes in (1, 8) else None,
        seed=lanes * 100 + adc_bits,
        measure=True,
        measure_vectors=200,
        measure_C=4 * lanes + 1,
    )
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= FAST_VECTORS
    # the docstring's handshake, every cycle under random output stalls
    assert res["handshake_violations"] == 0 and res["handshake_checked"] > res["vectors"]
    assert "reset_after_beats" in res  # the mid-stream reset happened and was checked
    # the corners really occurred: saturated accumulators and outputs, all-zero vectors
    assert res["acc_saturated"] > 0 and res["out_saturated"] > 0 and res["zero_vectors"] > 0
    # Throughput: V vectors x C columns at full rate take V*ceil(C/lanes) + LATENCY cycles
    # ideally; the RTL promises II=1 without bubbles, so >= 0.95 of that.
    assert res["efficiency"] >= 0.95, res


@pytest.mark.cosim
def test_cosim_nmpu_scoreboard_catches_wrong_golden():
    """The bench is not vacuous: a golden model one bit off in out_shift must fail it."""

    cfg, rtl, gp, gen = _setup(4, 10, 8)
    b = runner.build(gen.verilog, gen.module, name="nmpu-l4")
    wrong = dataclasses.replace(gp, out_shift=gp.out_shift - 1)
    with pytest.raises(runner.CosimFailure) as err:
        b.run(
            bench.MODULE,
            bench.bench_params(rtl, wrong, vectors=300, reset_mid=False),
            testcase="random_jobs",
            waves_on_failure=False,
        )
    shutil.rmtree(err.value.run_dir)  # the deliberate failure's kept run directory


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("lanes,adc_bits,out_bits", FULL)
def test_cosim_nmpu_soak(lanes, adc_bits, out_bits):
    _, _, _, res = _run(
        lanes,
        adc_bits,
        out_bits,
        SOAK_VECTORS,
        seed=7 + lanes + adc_bits,
        acc_extra=2 if out_bits == 4 else None,
        measure=True,
    )
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= SOAK_VECTORS
    assert res["efficiency"] >= 0.95, res
