"""``aimcflow generate`` and ``aimcflow lint`` on the real blocks, and their refusals."""

from __future__ import annotations

import hashlib
import json

import pytest
from aimcflow.flows.lint import lint_verilog
from aimcflow.models.config import load_config
from flow_helpers import cli, write_config


@pytest.fixture(scope="module")
def small_cfg(tmp_path_factory):
    # small memories keep the Verilog short; parameters otherwise the baseline's
    cfg = load_config("baseline-ftj").replace(**{"tile.rows": 64, "tile.cols": 32, "nmpu.lanes": 2})
    return cfg, write_config(cfg, tmp_path_factory.mktemp("cfg") / "small.toml")


def test_generate_is_byte_identical_and_complete(small_cfg, tmp_path, capsys):
    cfg, path = small_cfg
    assert load_config(path) == cfg  # the TOML round trip is faithful
    assert cli("generate", "--config", path, "--out", tmp_path / "a") == 0
    assert cli("generate", "--config", path, "--out", tmp_path / "b") == 0
    # the whole package, subdirectories included, is byte-identical across runs
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*"))
    assert files == sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*"))
    for name in files:
        if (tmp_path / "a" / name).is_file():
            a, b = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
            assert a == b, name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["config"]["digest"] == cfg.digest()
    assert set(manifest["blocks"]) == {"nmpu", "mgmt", "periphery_top", "residual", "pool"}
    assert manifest["blocks"]["nmpu"]["params"]["lanes"] == 2
    assert manifest["blocks"]["mgmt"]["params"]["max_rows"] == 64
    assert {"verilator", "amaranth", "cocotb"} <= set(manifest["tools"])
    listed = (tmp_path / "a" / "files.f").read_text().split()
    assert listed and all((tmp_path / "a" / f).is_file() for f in listed)

    for b in manifest["blocks"].values():
        text = (tmp_path / "a" / b["file"]).read_bytes()
        assert hashlib.sha256(text).hexdigest() == b["sha256"]
        assert f"module {b['module']}(" in text.decode()


def test_generate_refuses_unbuildable_config_and_existing_out(small_cfg, tmp_path, capsys):
    cfg, _ = small_cfg
    data = cfg.model_dump(mode="json")
    bad = tmp_path / "bad.toml"
    write_config(cfg, bad)
    # acc_bits below adc.bits + gain_bits: the RTL cannot build it
    text = bad.read_text().replace(f"acc_bits = {data['nmpu']['acc_bits']}", "acc_bits = 20")
    bad.write_text(text)
    assert cli("generate", "--config", bad, "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert "acc_bits = 20" in err and ">= adc.bits + nmpu.gain_bits" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()
    out = tmp_path / "y"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    assert cli("generate", "--config", small_cfg[1], "--out", out) == 2
    assert (out / "manifest.json").read_text() == "{}"  # nothing overwritten
    assert "--force" in capsys.readouterr().err


def test_lint_generated_blocks_clean(small_cfg, capsys):
    assert cli("lint", "--config", small_cfg[1]) == 0
    out = capsys.readouterr().out
    assert "lint: 0 warning(s) in 5 block(s) with -Wall" in out


def test_lint_still_finds_real_problems():
    """The waivers are narrow: a truncating assignment and an unused input are reported."""

    # written in the generator's own style (non-ANSI ports, declarations one per line)
    text = (
        "module bad(clk, a, unused_in, q);\n"
        "  input clk;\n  wire clk;\n  input [7:0] a;\n  wire [7:0] a;\n"
        "  input [7:0] unused_in;\n  wire [7:0] unused_in;\n"
        "  output [3:0] q;\n  reg [3:0] q;\n"
        "  always @(posedge clk) q <= a;\nendmodule\n"
    )
    r = lint_verilog(text, "bad")
    joined = "\n".join(r.warnings)
    assert "WIDTHTRUNC" in joined
    assert "unused_in" in joined


def test_generate_and_lint_spg_by_name(tmp_path, capsys):
    """The pulse generator is generated and linted when named (one lane per row and
    column of the tile: a small tile keeps it quick)."""
    cfg = load_config("baseline-ftj").replace(**{"tile.rows": 6, "tile.cols": 4})
    path = write_config(cfg, tmp_path / "spg.toml")
    assert cli("generate", "--config", path, "--blocks", "spg", "--out", tmp_path / "g") == 0
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert set(manifest["blocks"]) == {"spg"}
    p = manifest["blocks"]["spg"]["params"]
    assert (p["rows"], p["cols"], p["prob_bits"]) == (6, 4, cfg.spg.prob_bits)
    assert "module aimcflow_spg(" in (tmp_path / "g" / "aimcflow_spg.v").read_text()
    capsys.readouterr()
    assert cli("lint", "--config", path, "--blocks", "spg") == 0
    assert "lint: 0 warning(s) in 1 block(s) with -Wall" in capsys.readouterr().out


def test_unknown_block_is_refused(small_cfg, tmp_path, capsys):
    assert (
        cli("generate", "--config", small_cfg[1], "--blocks", "nmpu,alu", "--out", tmp_path / "z")
        == 2
    )
    err = capsys.readouterr().err
    assert "unknown block(s) alu" in err and "spg" in err and "Traceback" not in err
    assert not (tmp_path / "z").exists()


def test_lint_secure_inference_blocks_clean(capsys):
    """The issue-6 macros (plain and share-masked MAC, Ascon decryptor) pass -Wall with the
    same reviewed waivers as the periphery."""
    assert cli("lint", "--blocks", "plain_mac,secure_mac,ascon_decrypt") == 0
    assert "lint: 0 warning(s) in 3 block(s) with -Wall" in capsys.readouterr().out
