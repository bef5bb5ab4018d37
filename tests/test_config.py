"""Config loading: presets validate, bad configs give one message and exit status 2."""

import subprocess
import sys

import pytest
from aimcflow.models.analog.converters import lsb
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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aimcflow.flows.cli",
            "vmm",
            "--config",
            str(f),
            "--rows",
            "8",
            "--cols",
            "8",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "adc.bits" in proc.stderr and "33" in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_unknown_command_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", "no-such-command"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_doctor_reports_every_tool():
    proc = subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", "doctor"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for tool in ("python", "torch", "numpy", "amaranth", "yosys", "cocotb", "verilator"):
        assert tool in proc.stdout
    assert "5.048" in proc.stdout


def test_baseline_ftj_is_thesis_table_3_1():
    cfg = load_config("baseline-ftj")
    assert (cfg.dac.bits, cfg.adc.bits) == (8, 8)
    assert (cfg.noise.out_noise, cfg.adc.bound, cfg.dac.bound) == (0.04, 10.0, 1.0)
    assert cfg.noise.w_noise == 0.035 and cfg.device.preset.startswith("ftj")
    assert cfg.tile.ir_drop == 1.0 and cfg.tile.ir_drop_g_ratio == 285714285.714
    assert cfg.noise.drift and cfg.noise.drift_compensation == "global"
    assert cfg.tile.weight_scaling == "column"


def test_pcm_is_aihwkit_default_inference_config():
    """inp_res 1/126 over +-1 and out_res 1/510 over +-12 are the 7- and 9-bit code steps."""

    cfg = load_config("pcm")
    assert lsb(cfg.dac.bits, cfg.dac.bound) == pytest.approx(2 * 1.0 / 126)
    assert lsb(cfg.adc.bits, cfg.adc.bound) == pytest.approx(2 * 12.0 / 510)
    assert cfg.noise.out_noise == 0.06 and cfg.device.preset == "pcm"
    assert (cfg.mgmt.float_noise, cfg.mgmt.float_bound) == ("abs_max", "iterative")
    assert (cfg.tile.rows, cfg.tile.cols) == (512, 512) and cfg.tile.weight_scaling == "global"
    assert cfg.noise.drift_compensation == "global"


def test_ideal_has_every_non_ideality_off():
    cfg = load_config("ideal")
    n = cfg.noise
    assert not (n.programming or n.drift or n.read) and n.out_noise == n.w_noise == 0
    assert cfg.tile.ir_drop == 0 and cfg.device.preset == "ideal"
    assert cfg.adc.gain_mismatch_sigma == cfg.adc.offset_mismatch_sigma_lsb == 0


@pytest.mark.parametrize(
    "toml, words",
    [
        ("[device]\npreset = 'flash'\n", ["device.preset", "flash", "pcm"]),
        ("[adc]\nkind = 'flash'\n", ["adc.kind", "flash", "sar"]),
        ("[noise]\nout_noise = -1\n", ["noise.out_noise", "-1", ">= 0"]),
        ("[tile]\nir_drop_g_ratio = 0\n", ["tile.ir_drop_g_ratio", "> 0"]),
    ],
)
def test_bad_analog_config(tmp_path, toml, words):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(UserInputError) as exc:
        load_config(f)
    for w in words:
        assert w in str(exc.value)
