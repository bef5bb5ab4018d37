"""The SFU RTL under Verilator against its golden model (cocotb bench cosim/benches/sfu.py).

``make test``: two parameter sets (the default [sfu] config with 8 lanes; 3 lanes with a
short sequence so rows span odd beat counts), 10 000 random output rows each, every op,
random source gaps and output backpressure, one job cut by a reset mid-stream.
``make soak``: the same with 1 000 000 rows in total.
"""

from __future__ import annotations

import shutil

import pytest
from aimcflow.models.config import load_config

CONFIGS = [
    {},
    {"sfu.lanes": 3, "sfu.seq_max": 16, "sfu.width_max": 24, "sfu.gelu_frac": 3},
]
FAST_VECTORS = 10_000  # x 2 configs = 20 000 in `make test`
SOAK_VECTORS = 500_000  # x 2 = 1 000 000 in `make soak`


def _build(changes: dict):
    from aimcflow.cosim import runner
    from aimcflow.cosim.blocks import generate_block
    from aimcflow.cosim.rtlparams import sfu_params
    from aimcflow.models.periphery.sfu import SfuParams

    cfg = load_config("baseline-ftj").replace(**changes)
    gen = generate_block(cfg, "sfu")
    rtl = sfu_params(cfg)
    return (
        runner.build(gen.verilog, gen.module, name=f"sfu-l{rtl.lanes}"),
        rtl,
        SfuParams.from_config(cfg),
    )


def _run(changes: dict, vectors: int, **kw):
    from aimcflow.cosim.benches import sfu as bench

    b, rtl, gp = _build(changes)
    return b.run(
        bench.MODULE, bench.bench_params(rtl, gp, vectors=vectors, **kw), testcase="random_jobs"
    ).result


def _check(res: dict, vectors: int) -> None:
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= vectors
    assert "reset_after_beats" in res  # the mid-stream reset happened and was checked
    # matmul/GELU: i.ready = ~o.valid | o.ready in every cycle under random stalls
    assert res["handshake_violations"] == 0 and res["handshake_checked"] > res["vectors"]
    cov = res["coverage"]
    for op in ("matmul", "softmax", "layernorm", "gelu"):
        assert cov[f"{op}_rows"] > 0, cov
    # corners occurred: saturated matmul/GELU/layernorm outputs, all-equal rows
    assert cov["matmul_saturated"] > 0 and cov["layernorm_saturated"] > 0, cov
    assert cov["softmax_equal_rows"] > 0 and cov["layernorm_equal_rows"] > 0, cov


@pytest.mark.cosim
@pytest.mark.parametrize("changes", CONFIGS, ids=["default", "lanes3"])
def test_cosim_sfu_random(changes):
    res = _run(changes, FAST_VECTORS, seed=len(changes) + 11)
    _check(res, FAST_VECTORS)


@pytest.mark.cosim
def test_cosim_sfu_scoreboard_catches_wrong_golden():
    """The bench is not vacuous: a golden model with one GELU fraction bit off fails it."""
    import dataclasses

    from aimcflow.cosim import runner
    from aimcflow.cosim.benches import sfu as bench

    b, rtl, gp = _build(CONFIGS[1])
    wrong = dataclasses.replace(gp, gelu_frac=gp.gelu_frac + 1)
    with pytest.raises(runner.CosimFailure) as err:
        b.run(
            bench.MODULE,
            bench.bench_params(rtl, wrong, vectors=300, reset_mid=False),
            testcase="random_jobs",
            waves_on_failure=False,
        )
    shutil.rmtree(err.value.run_dir)


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("changes", CONFIGS, ids=["default", "lanes3"])
def test_cosim_sfu_soak(changes):
    res = _run(changes, SOAK_VECTORS, seed=len(changes) + 101)
    _check(res, SOAK_VECTORS)
