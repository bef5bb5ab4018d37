"""Residual-add and pooling RTL under Verilator against their golden models (cocotb benches
cosim/benches/residual.py and pool.py), and ``aimcflow vectors residual|pool``.

``make test``: 20 000 random vectors per unit (residual: vectors of N elements; pool:
output positions of all channels) over lanes 1/4/8 and out_bits 4/8, with random
backpressure, one mid-stream reset and a full-rate cycle count each.  ``make soak``:
1 000 000 per unit.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from aimcflow.models.config import load_config
from flow_helpers import cli, write_config

# (lanes, out_bits): every lanes value of the synthesis table and both activation widths
COVER = [(1, 4), (4, 8), (8, 8)]
FAST_VECTORS = 20_000 // len(COVER) + 1
SOAK = [(1, 4), (1, 8), (4, 4), (4, 8), (8, 4), (8, 8)]
SOAK_VECTORS = 1_000_000 // len(SOAK) + 1


def _cfg(lanes: int, out_bits: int):
    return load_config("baseline-ftj").replace(**{"nmpu.lanes": lanes, "nmpu.out_bits": out_bits})


def _run(block: str, lanes: int, out_bits: int, vectors: int, *, golden_change=None, **kw):
    import dataclasses

    from aimcflow.cosim import postops
    from aimcflow.cosim.benches import pool, residual
    from aimcflow.models.periphery.pool import PoolParams
    from aimcflow.models.periphery.residual import ResidualParams

    cfg = _cfg(lanes, out_bits)
    if block == "residual":
        gp, bench = ResidualParams.from_config(cfg), residual
        rtl = postops.residual_rtl_params(gp)
    else:
        gp, bench = PoolParams.from_config(cfg), pool
        rtl = postops.pool_rtl_params(gp)
    b = bench.build(rtl)
    if golden_change:
        gp = dataclasses.replace(gp, **golden_change)
    r = b.run(
        bench.MODULE,
        bench.bench_params(rtl, gp, vectors=vectors, **kw),
        testcase="random_jobs",
        waves_on_failure=golden_change is None,
    )
    return r.result


def _report(block: str, lanes: int, out_bits: int, res: dict) -> None:
    """One line per bench (shown with ``pytest -s``): what was compared and measured."""
    print(
        f"\n{block} lanes={lanes} out_bits={out_bits}: {res['vectors']} vectors, "
        f"{res['mismatches']} mismatches, {res['rtl_cycles']} RTL cycles in "
        f"{res['wall_s']:.1f} s; full rate {res['cycles']} cycles for {res['measure_beats']} "
        f"beats (ideal {res['ideal_cycles']}, efficiency {res['efficiency']:.3f}); "
        f"rails {res['low_rail']}/{res['high_rail']}"
    )


def _check(res: dict, vectors: int) -> None:
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= vectors
    assert "reset_after_beats" in res  # the mid-stream reset happened and was checked
    # the docstring's handshake, every cycle under random output stalls
    assert res["handshake_violations"] == 0 and res["handshake_checked"] > res["vectors"]
    assert res["low_rail"] > 0 and res["high_rail"] > 0  # both output rails were exercised
    # II = 1 without bubbles at full rate: >= 0.95 of beats + LATENCY
    assert res["efficiency"] >= 0.95, res


@pytest.mark.cosim
@pytest.mark.parametrize("block", ["residual", "pool"])
@pytest.mark.parametrize("lanes,out_bits", COVER)
def test_cosim_random(block, lanes, out_bits):
    res = _run(block, lanes, out_bits, FAST_VECTORS, seed=lanes * 10 + out_bits, measure=True)
    _report(block, lanes, out_bits, res)
    _check(res, FAST_VECTORS)
    if block == "residual":
        assert res["ties"] > 0  # rounding ties (x.5 before the shift) occurred
    else:
        assert res["padded_jobs"] > 0


@pytest.mark.cosim
@pytest.mark.parametrize("block,change", [("residual", {"out_bits": 7}), ("pool", {"bits": 7})])
def test_cosim_scoreboard_catches_wrong_golden(block, change):
    """The benches are not vacuous: a golden model with a wrong width must fail them."""
    from aimcflow.cosim import runner

    with pytest.raises(runner.CosimFailure) as err:
        _run(block, 4, 8, 3000, golden_change=change, reset_mid=False)
    shutil.rmtree(err.value.run_dir)  # the deliberate failure's kept run directory


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("block", ["residual", "pool"])
@pytest.mark.parametrize("lanes,out_bits", SOAK)
def test_cosim_soak(block, lanes, out_bits):
    res = _run(block, lanes, out_bits, SOAK_VECTORS, seed=7 + lanes + out_bits, measure=True)
    _report(block, lanes, out_bits, res)
    _check(res, SOAK_VECTORS)


# ----------------------------------------------------------------- aimcflow vectors
def _inputs(block: str, rng) -> dict:
    if block == "residual":
        return {
            "a": rng.integers(0, 256, (40, 19)),
            "b": rng.integers(0, 256, (40, 19)),
            "mult_a": np.int64(21000),
            "mult_b": np.int64(-7000),
            "shift": np.int64(14),
        }
    return {
        "x": rng.integers(0, 256, (3, 11, 7, 6)),
        "kind": np.int64(1),
        "window": np.array([3, 3]),
        "stride": np.array([2, 2]),
        "padding": np.array([1, 1]),
        "mult": np.int64(29127),  # avg_coeffs(9): 2**18 / 9 rounded
        "shift": np.int64(18),
    }


@pytest.mark.cosim
@pytest.mark.parametrize("block", ["residual", "pool"])
def test_vectors_verilator_equals_golden(block, tmp_path):
    cfg = write_config(_cfg(4, 8), tmp_path / "cfg.toml")
    np.savez(tmp_path / "in.npz", **_inputs(block, np.random.default_rng(2)))
    for sim in ("golden", "verilator"):
        args = ["vectors", block, "--config", cfg, "--in", tmp_path / "in.npz"]
        assert cli(*args, "--out", tmp_path / f"{sim}.npz", "--sim", sim) == 0
    with np.load(tmp_path / "golden.npz") as g, np.load(tmp_path / "verilator.npz") as r:
        assert np.array_equal(g["y"], r["y"])
        assert g["y"].any()  # not a trivially zero output


@pytest.mark.parametrize(
    "block,change,message",
    [
        ("residual", {"a": np.full((2, 3), 256)}, "outside unsigned"),
        ("residual", {"b": np.zeros((2, 4), np.int64)}, "b has shape"),
        ("residual", {"shift": np.int64(99)}, "shift = 99"),
        ("pool", {"kind": np.int64(2)}, "kind = 2"),
        ("pool", {"padding": np.array([2, 2])}, "padding"),
        ("pool", {"window": np.array([2, 2, 2])}, "window says P = 3"),
        ("pool", {"mult": np.int64(1 << 20)}, "mult"),
    ],
)
def test_vectors_bad_input_exit_2(block, change, message, tmp_path, capsys):
    cfg = write_config(_cfg(4, 8), tmp_path / "cfg.toml")
    inputs = _inputs(block, np.random.default_rng(3))
    if block == "residual":
        inputs["a"], inputs["b"] = inputs["a"][:2, :3], inputs["b"][:2, :3]
    inputs.update(change)
    np.savez(tmp_path / "in.npz", **inputs)
    out = tmp_path / "out.npz"
    args = ["vectors", block, "--config", cfg, "--in", tmp_path / "in.npz", "--out", out]
    assert cli(*args, "--sim", "golden") == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.cosim
def test_cosim_both_units_on_one_toplevel():
    """The level-4 pattern: residual adds and poolings alternate on ``postops_top``, each
    unit driven through its port prefix, every output checked against its golden model."""
    from aimcflow.cosim import postops
    from aimcflow.cosim.benches import postops as bench
    from aimcflow.cosim.postops_top import PostOpsTopParams
    from aimcflow.models.periphery.pool import PoolParams
    from aimcflow.models.periphery.residual import ResidualParams

    cfg = _cfg(4, 8)
    res_gp, pool_gp = ResidualParams.from_config(cfg), PoolParams.from_config(cfg)
    params = PostOpsTopParams(postops.residual_rtl_params(res_gp), postops.pool_rtl_params(pool_gp))
    r = bench.build(params).run(
        bench.MODULE,
        bench.bench_params(params, res_gp, pool_gp, vectors=3000),
        testcase="alternating_ops",
    )
    res = r.result
    assert res["mismatches"] == 0, res["errors"]
    assert res["vectors"] >= 3000
    assert res["ops"]["residual"] >= 5 and res["ops"]["pool"] >= 5
