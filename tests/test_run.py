"""``aimcflow run``: exit codes, messages and outputs."""

import json

import pytest
import torch
from flow_helpers import cli
from torch import nn


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "resnet"], "unknown model 'resnet'; allowed: digits-mlp, digits-cnn"),
        (["--arch", "digits-cnn"], "give --arch only with a state-dict file"),
        (["--data-scale", "2"], "apply to --data"),
        (["--images", "361"], "the test split has only 360 images"),
        (["--images", "0"], "give an integer >= 1"),
        (["--drift", "soon"], "is not a time"),
        (["--config", "nope.toml"], "config 'nope.toml' not found"),
        (["--data", "missing.npz"], "no such file"),
    ],
)
def test_bad_input_exits_2_without_output(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("run", "--config", "ideal", "--out", "o", *argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unsupported_model_file_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1)).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(2, 64),)), "soft.pt2")
    assert cli("run", "--config", "ideal", "--model", "soft.pt2", "--out", "o") == 2
    err = capsys.readouterr().err
    assert "graph node 'softmax' (op aten.softmax.int)" in err and "supported ops" in err
    narrow = nn.Sequential(nn.Linear(32, 10)).eval()
    torch.export.save(torch.export.export(narrow, (torch.zeros(2, 32),)), "narrow.pt2")
    assert cli("run", "--config", "ideal", "--model", "narrow.pt2", "--out", "o") == 2
    assert "takes images of shape (32,), the data has (64,)" in capsys.readouterr().err
    five = nn.Sequential(nn.Linear(64, 5)).eval()
    torch.export.save(torch.export.export(five, (torch.zeros(2, 64),)), "five.pt2")
    assert cli("run", "--config", "ideal", "--model", "five.pt2", "--out", "o") == 2
    assert "the data has 10 classes, so (2, 10) is needed" in capsys.readouterr().err
    torch.save(nn.Sequential(nn.Linear(64, 10)), "whole.pt")
    assert cli("run", "--config", "ideal", "--model", "whole.pt", "--out", "o") == 2
    assert "a whole pickled module is one" in capsys.readouterr().err
    (tmp_path / "text.pt").write_text("hello")
    assert cli("run", "--config", "ideal", "--model", "text.pt", "--out", "o") == 2
    assert "not a torch model file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_existing_results_not_overwritten(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "results.json").write_text('{"mine": 1}')
    assert cli("run", "--config", "ideal", "--out", "o", "--images", "5") == 2
    assert "--force" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "results.json").read_text()) == {"mine": 1}


def test_run_writes_spec_keys(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "run",
        "--config",
        "ideal",
        "--images",
        "50",
        "--repeats",
        "2",
        "--drift",
        "1s,1h",
        "--out",
        "o",
    ]
    assert cli(*argv) == 0
    printed = capsys.readouterr().out
    assert "analog-float" in printed and "1 h" in printed
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    for key in (
        "config",
        "model",
        "images",
        "drift_s",
        "levels",
        "activations_compared",
        "mismatches",
        "rtl_cycles",
        "ideal_cycles",
        "wall_s",
        "verilator_build_s",
    ):
        assert key in r, key
    assert set(r["levels"]) == {"float", "analog_float", "analog_golden", "analog_rtl"}
    assert r["config"] == "ideal" and r["model"] == "digits-mlp" and r["images"] == 50
    assert r["drift_s"] == 3600.0  # the 1 h reference when listed
    assert [row["drift_s"] for row in r["drift_table"]] == [1.0, 3600.0]
    row = r["drift_table"][1]
    assert r["levels"]["analog_float"]["accuracy"] == pytest.approx(sum(row["accuracies"]) / 2)
    assert r["levels"]["analog_rtl"] == {"accuracy": None}
    assert cli(*argv) == 2  # results exist now: refused without --force
    assert cli(*argv, "--force") == 0


def test_run_level3_writes_chip_program(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("run", "--images", "40", "--repeats", "1", "--drift", "1h", "--out", "o") == 0
    assert "analog-golden" in capsys.readouterr().out
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    g = r["levels"]["analog_golden"]
    assert 0 <= g["accuracy"] <= 1 and g["drift_s"] == 3600.0
    assert [lay["name"] for lay in g["layers"]] == ["0", "2", "4"]  # the MLP's Linear layers
    for lay in g["layers"]:
        assert sum(lay["bm_iterations_hist"]) == 40  # one management run per image and tile
    assert (tmp_path / "o" / "chip_program.npz").is_file()
    assert (tmp_path / "o" / "chip_program.json").is_file()
    report = (tmp_path / "o" / "report.html").read_text()
    assert report.count("<img") == 4  # levels, drift, VMM scatter, management
