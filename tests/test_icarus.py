"""Icarus Verilog, the second simulator: every block bench runs on an Icarus build with a
few thousand vectors, checked against the golden model by the bench's own scoreboard, and
reports exactly what the Verilator build of the same Verilog reports for the same seed
(cycle counts, corner counters, output files bit for bit).

The configurations are those of the Verilator tests (tests/test_cosim_*.py), so the
Verilator builds come from the shared cache.  Needs ``iverilog``: where it is missing the
tests are deselected and the run says so (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aimcflow.cosim import runner
from aimcflow.cosim.blocks import BLOCKS, generate_block
from aimcflow.cosim.rtlparams import mgmt_params, nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams
from flow_helpers import cli, write_config

pytestmark = [pytest.mark.cosim, pytest.mark.icarus]

VECTORS = 3_000


def _untimed(res: dict) -> dict:
    """A bench result without its wall-clock fields."""
    return {k: v for k, v in res.items() if not (k.endswith("_s") or "wall" in k)}


def _both(verilog: str, top: str, name: str, module: str, params: dict, testcase: str):
    out = {}
    for sim in ("verilator", "icarus"):
        b = runner.build(verilog, top, name=name, sim=sim)
        out[sim] = b.run(module, params, testcase=testcase).result
    return out["verilator"], out["icarus"]


def test_nmpu_icarus_equals_verilator():
    from aimcflow.cosim.benches import nmpu as bench

    cfg = load_config("baseline-ftj").replace(
        **{"nmpu.lanes": 4, "adc.bits": 10, "nmpu.out_bits": 8}
    )
    gen = generate_block(cfg, "nmpu")
    params = bench.bench_params(
        nmpu_params(cfg), NmpuParams.from_config(cfg), vectors=VECTORS, seed=41
    )
    ver, ica = _both(gen.verilog, gen.module, "nmpu-l4", bench.MODULE, params, "random_jobs")
    assert ica["mismatches"] == 0, ica["errors"]
    assert ica["vectors"] >= VECTORS and "reset_after_beats" in ica
    assert _untimed(ica) == _untimed(ver)


def test_mgmt_icarus_equals_verilator():
    from aimcflow.cosim.benches import mgmt as bench

    cfg = load_config("baseline-ftj").replace(
        **{"nmpu.lanes": 8, "adc.bits": 10, "nmpu.out_bits": 4, "nmpu.activation": "leaky"}
    )
    gen = generate_block(cfg, "mgmt")
    params = bench.bench_params(
        mgmt_params(cfg), MgmtParams.from_config(cfg), vectors=VECTORS, seed=42
    )
    ver, ica = _both(gen.verilog, gen.module, "mgmt-l8", bench.MODULE, params, "random_segments")
    assert ica["mismatches"] == 0, ica["errors"]
    assert ica["vectors"] >= VECTORS and sum(ica["iter_histogram"][2:]) > 0
    assert _untimed(ica) == _untimed(ver)


def test_periphery_top_icarus_equals_verilator():
    from aimcflow.cosim.benches import periphery_top as bench

    cfg = load_config("baseline-ftj").replace(
        **{"nmpu.lanes": 4, "adc.bits": 8, "nmpu.out_bits": 4}
    )
    gen = generate_block(cfg, "periphery_top")
    params = bench.bench_params(
        nmpu_params(cfg),
        mgmt_params(cfg),
        NmpuParams.from_config(cfg),
        MgmtParams.from_config(cfg),
        vectors=VECTORS,
        seed=43,
    )
    ver, ica = _both(gen.verilog, gen.module, "top-l4", bench.MODULE, params, "random_jobs")
    assert ica["mismatches"] == 0, ica["errors"]
    assert ica["vectors"] >= VECTORS and ica["segments"] >= VECTORS
    assert _untimed(ica) == _untimed(ver)


def test_spg_icarus_equals_verilator():
    from aimcflow.cosim.benches import spg as bench
    from aimcflow.models.periphery import spg as golden

    params = bench.rtl_params(33, 10, golden.SpgParams())  # tests/test_spg_cosim.py's build
    rng = np.random.default_rng(7)
    segs = []
    for seed, bl in ((0, 1), (0xFFFFFFFF, 3), (12345, 2)):
        n = VECTORS // 3
        segs.append(
            {
                "seed": seed,
                "x": rng.integers(-128, 128, (n, 33)),
                "d": rng.integers(-128, 128, (n, 10)),
                "gain_x": rng.integers(0, 3 * 256, n),
                "gain_d": rng.integers(0, 3 * 256, n),
                "bl": bl,
                "deterministic": rng.random(n) < 0.2,
            }
        )
    res = {}
    for sim in ("verilator", "icarus"):
        outs, r = bench.simulate(
            params, segs, check=True, p_valid=0.8, p_ready=0.7, build=bench.build_spg(params, sim)
        )
        assert r.result["mismatches"] == 0
        res[sim] = (outs, _untimed(r.result))
    assert res["icarus"][1] == res["verilator"][1]
    for a, b in zip(res["icarus"][0], res["verilator"][0], strict=True):
        np.testing.assert_array_equal(a.row_pulses, b.row_pulses)
        np.testing.assert_array_equal(a.col_pulses, b.col_pulses)


def test_ascon_icarus_equals_verilator():
    from aimcflow.rtl.ascon import AsconDecrypt, AsconParams

    kat = Path(__file__).parent / "data" / "ascon-aead128" / "LWC_AEAD_KAT_128_128.txt"
    res = {}
    for sim in ("verilator", "icarus"):
        b = runner.build_component(
            AsconDecrypt(AsconParams(max_blocks=2)), "ascon_decrypt", sim=sim
        )
        res[sim] = _untimed(
            b.run(
                "aimcflow.cosim.benches.ascon_decrypt",
                {"kat": str(kat), "seed": 3, "p_valid": 0.8, "tamper_every": 5},
            ).result
        )
    assert res["icarus"]["mismatches"] == 0 and res["icarus"]["messages"] == 1089 + 1089 // 5
    assert res["icarus"] == res["verilator"]


@pytest.mark.parametrize(
    "design",
    [
        "plain_mac",
        # the 16-lane secure MAC's Icarus build and run take tens of minutes on 2 cores: soak
        pytest.param("secure_mac", marks=pytest.mark.slow),
    ],
)
def test_mac_icarus_equals_verilator(design):
    blk = BLOCKS[design]
    p = blk.params(None, n=16)  # tests/test_secure_mac.py's 16-lane builds
    res = {}
    for sim in ("verilator", "icarus"):
        b = runner.build_component(blk.component(p), design, sim=sim)
        res[sim] = _untimed(
            b.run(
                "aimcflow.cosim.benches.mac", {"design": design, "n": 16, "ops": 2000, "seed": 11}
            ).result
        )
    assert res["icarus"]["ops"] == 2000 and res["icarus"]["mismatches"] == 0
    assert res["icarus"] == res["verilator"]


@pytest.mark.parametrize("block", ["nmpu", "mgmt"])
def test_vectors_icarus_bit_identical(block, tmp_path):
    """``aimcflow vectors --sim icarus`` writes the same file as --sim verilator and golden."""
    from test_flow_vectors import _mgmt_cfg, _mgmt_inputs, _nmpu_cfg, _nmpu_inputs

    rng = np.random.default_rng(9)
    conf = write_config(_nmpu_cfg() if block == "nmpu" else _mgmt_cfg(), tmp_path / "c.toml")
    np.savez(tmp_path / "in.npz", **(_nmpu_inputs(rng) if block == "nmpu" else _mgmt_inputs(rng)))
    got = {}
    for sim in ("golden", "verilator", "icarus"):
        out = tmp_path / f"{sim}.npz"
        args = ["vectors", block, "--config", conf, "--in", tmp_path / "in.npz"]
        assert cli(*args, "--out", out, "--sim", sim) == 0
        with np.load(out) as f:
            got[sim] = {k: f[k] for k in f.files}
    for sim in ("verilator", "icarus"):
        assert sorted(got[sim]) == sorted(got["golden"])
        for k, v in got["golden"].items():
            np.testing.assert_array_equal(got[sim][k], v, err_msg=f"{sim} {k}")


def test_level4_icarus_equals_verilator():
    """Level 4 (the whole digits MLP through ``network_top``'s ring bench) on Icarus: every
    activation checked against level 3, and the same logits, RTL and converter cycle counts
    and per-layer statistics as the Verilator run of the same program and image."""
    from aimcflow.cosim.network import build_for, format_mismatch, run_level4
    from aimcflow.models.nn.data import load_digits_dataset
    from test_level4 import _program

    d = load_digits_dataset()
    prog = _program("digits-mlp", "baseline-ftj")  # test_level4's program: cached Verilator build
    x, images = d.x_test[:1], np.arange(1)
    res = {
        sim: run_level4(prog, x, images, build=build_for(prog, sim))
        for sim in ("verilator", "icarus")
    }
    ica, ver = res["icarus"], res["verilator"]
    assert ica.mismatches == 0, "\n".join(map(format_mismatch, ica.errors))
    assert ica.activations_compared == ver.activations_compared > 0
    np.testing.assert_array_equal(ica.logits, ver.logits)
    assert ica.rtl_cycles == ver.rtl_cycles > ica.conv_cycles == ver.conv_cycles > 0
    assert ica.ideal_cycles == ver.ideal_cycles
    assert ica.layers == ver.layers
