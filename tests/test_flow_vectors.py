"""``aimcflow vectors nmpu|mgmt``: RTL (Verilator) equals the golden model on a file, and
every kind of bad input is refused with exit status 2 and no OUT file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from aimcflow.models.config import load_config
from flow_helpers import cli, write_config


def _nmpu_cfg():
    # the configuration of tests/test_cosim_nmpu.py's (4, 10, 8) build: shares its cache
    return load_config("baseline-ftj").replace(
        **{"nmpu.lanes": 4, "adc.bits": 10, "nmpu.out_bits": 8}
    )


def _mgmt_cfg():
    # tests/test_cosim_mgmt.py's (8, 10, 4) build
    return load_config("baseline-ftj").replace(
        **{"nmpu.lanes": 8, "adc.bits": 10, "nmpu.out_bits": 4, "nmpu.activation": "leaky"}
    )


def _nmpu_inputs(rng, V=40, T=3, C=10):
    return {
        "a": rng.integers(-512, 511, size=(V, T, C), endpoint=True),
        "e": rng.integers(-4, 7, size=(V, T), endpoint=True),
        "gain": rng.integers(-(1 << 15), (1 << 15) - 1, size=(T, C), endpoint=True),
        "offset": rng.integers(-(1 << 20), 1 << 20, size=(T, C)),
        "mult": rng.integers(-(1 << 10), 1 << 10, size=C),
        "bias": rng.integers(-100, 100, size=C),
    }


def _mgmt_inputs(rng, V=30, R=19, C=13):
    return {
        "x": rng.integers(-8, 7, size=(V, R), endpoint=True),
        "w": rng.integers(-64, 64, size=(R, C)),
        "shift": np.int64(5),
    }


@pytest.mark.cosim
@pytest.mark.parametrize("block", ["nmpu", "mgmt"])
def test_vectors_verilator_equals_golden(block, tmp_path, capsys):
    rng = np.random.default_rng(5)
    cfg = _nmpu_cfg() if block == "nmpu" else _mgmt_cfg()
    conf = write_config(cfg, tmp_path / "cfg.toml")
    inputs = _nmpu_inputs(rng) if block == "nmpu" else _mgmt_inputs(rng)
    np.savez(tmp_path / "in.npz", **inputs)
    assert (
        cli(
            "vectors",
            block,
            "--config",
            conf,
            "--in",
            tmp_path / "in.npz",
            "--out",
            tmp_path / "golden.npz",
            "--sim",
            "golden",
        )
        == 0
    )
    assert (
        cli(
            "vectors",
            block,
            "--config",
            conf,
            "--in",
            tmp_path / "in.npz",
            "--out",
            tmp_path / "rtl.npz",
        )
        == 0
    )
    with np.load(tmp_path / "golden.npz") as g, np.load(tmp_path / "rtl.npz") as r:
        assert sorted(g.files) == sorted(r.files)
        expected = {"nmpu": ["y"], "mgmt": ["a", "e", "iter", "sat_any"]}[block]
        assert sorted(g.files) == sorted(expected)
        for k in g.files:
            assert g[k].dtype == np.int64 and r[k].dtype == np.int64
            np.testing.assert_array_equal(r[k], g[k], err_msg=k)
        if block == "mgmt":
            assert g["iter"].max() > 0  # the file exercises bound management


def _bad_cases(rng):
    good = _nmpu_inputs(rng, V=4, T=2, C=5)
    cases = {}
    missing = dict(good)
    del missing["mult"]
    cases["missing"] = (missing, "missing field mult")
    cases["dtype"] = ({**good, "a": good["a"].astype(np.int32)}, "dtype int32")
    cases["float"] = ({**good, "bias": good["bias"].astype(float)}, "dtype float64")
    cases["shape"] = ({**good, "gain": good["gain"][:, :4]}, "field gain has shape (2, 4)")
    cases["ndim"] = ({**good, "e": good["e"][:, :, None]}, "field e has shape")
    a = good["a"].copy()
    a[1, 1, 2] = 512  # adc.bits = 10: 511 is the largest code
    cases["range"] = ({**good, "a": a}, "a: value 512 outside")
    e = good["e"].copy()
    e[0, 0] = 8  # e_max = 7
    cases["e_range"] = ({**good, "e": e}, "e: value 8 outside")
    return cases


@pytest.mark.parametrize("case", ["missing", "dtype", "float", "shape", "ndim", "range", "e_range"])
def test_vectors_bad_input_exit_2_no_output(case, tmp_path, capsys):
    arrays, words = _bad_cases(np.random.default_rng(1))[case]
    conf = write_config(_nmpu_cfg(), tmp_path / "cfg.toml")
    np.savez(tmp_path / "in.npz", **arrays)
    out = tmp_path / "out.npz"
    # --sim verilator: validation must happen before any build or simulation
    assert cli("vectors", "nmpu", "--config", conf, "--in", tmp_path / "in.npz", "--out", out) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.npz*"))


def test_vectors_refusals(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "in.npz", **_mgmt_inputs(rng))
    conf = write_config(_mgmt_cfg(), tmp_path / "cfg.toml")
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep")
    base = ["vectors", "mgmt", "--config", conf, "--in", tmp_path / "in.npz"]
    assert cli(*base, "--out", out, "--sim", "golden") == 2  # exists, no --force
    assert out.read_bytes() == b"keep"
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog: one message, exit 2, no file
    assert cli(*base, "--out", tmp_path / "o2.npz", "--sim", "icarus") == 2
    err = capsys.readouterr().err
    assert "iverilog" in err and "Traceback" not in err
    assert not (tmp_path / "o2.npz").exists()
    monkeypatch.undo()
    x = _mgmt_inputs(rng)
    x["x"][0, 0] = 8  # out_bits 4, leaky (signed): 7 is the largest input
    np.savez(tmp_path / "bad.npz", **x)
    assert (
        cli(
            "vectors",
            "mgmt",
            "--config",
            conf,
            "--in",
            tmp_path / "bad.npz",
            "--out",
            tmp_path / "o3.npz",
            "--sim",
            "golden",
        )
        == 2
    )
    assert "x: value 8 outside" in capsys.readouterr().err
    assert cli(*base, "--out", out, "--sim", "golden", "--force") == 0
    with np.load(out) as f:
        assert f["a"].shape == (30, 13)


def test_vectors_cli_process_exit_status(tmp_path):
    """The installed entry point itself: one line on stderr, status 2, no traceback."""
    (tmp_path / "in.npz").write_bytes(b"not an npz")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "aimcflow.flows.cli",
            "vectors",
            "nmpu",
            "--in",
            str(tmp_path / "in.npz"),
            "--out",
            str(tmp_path / "o.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert "not an .npz archive" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.npz").exists()
