"""Config loading: presets validate, bad configs give one message and exit status 2."""

import subprocess
import sys

import pytest

from aimcflow.models.config import PRESETS, load_config
from aimcflow.models.errors import UserInputError


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert len(cfg.digest()) == 16


@pytest.mark.parametrize(
    "toml, words",
    [
        ("[adc]\nbits = 0\n", ["adc.bits", "0", ">= 2"]),
        ("[adc]\nbits = 33\n", ["adc.bits", "33", "<= 32"]),
        ("[tile]\nrows = -1\n", ["tile.rows", "-1", ">= 1"]),
        ("[tile]\nbogus = 1\n", ["unknown key", "tile.bogus"]),
        ("[mgmt]\nnoise = 'sometimes'\n", ["mgmt.noise", "sometimes", "absmax_pow2"]),
        ("[nmpu]\nlanes = 'eight'\n", ["nmpu.lanes", "eight"]),
        ("tile = [\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_key_value_and_range(tmp_path, toml, words):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(UserInputError) as exc:
        load_config(f)
    for w in words:
        assert w in str(exc.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_bad_config_exit_2_without_traceback(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[adc]\nbits = 33\n")
    proc = subprocess.run([sys.executable, "-m", "aimcflow.flows.cli", "vmm", "--config", str(f),
                           "--rows", "8", "--cols", "8", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "adc.bits" in proc.stderr and "33" in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_unknown_command_exit_2():
    proc = subprocess.run([sys.executable, "-m", "aimcflow.flows.cli", "no-such-command"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_doctor_reports_every_tool():
    proc = subprocess.run([sys.executable, "-m", "aimcflow.flows.cli", "doctor"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for tool in ("python", "torch", "numpy", "amaranth", "yosys", "cocotb", "verilator"):
        assert tool in proc.stdout
    assert "5.048" in proc.stdout
