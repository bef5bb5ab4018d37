"""``aimcflow synth --liberty osu018``: a mapped and timed block, and the plain ``synth``
saying that memories are excluded."""

from __future__ import annotations

import json

import pytest
from aimcflow.models.config import load_config
from flow_helpers import cli, write_config


@pytest.mark.osu018
def test_synth_liberty_times_and_sizes_mgmt(tmp_path, capsys):
    cfg = load_config("baseline-ftj").replace(**{"nmpu.lanes": 1, "tile.rows": 16})
    conf = write_config(cfg, tmp_path / "c.toml")
    out = tmp_path / "s"
    args = ["synth", "--config", conf, "--blocks", "mgmt", "--liberty", "osu018"]
    assert cli(*args, "--out", out) == 0
    text = capsys.readouterr().out
    assert "critical path" in text and "memories as flip-flops" in text
    row = json.loads((out / "results.json").read_text())["blocks"]["mgmt"]["1"]
    period = row["period_ns"]
    assert row["fmax_mhz"] == pytest.approx(1000 / (period - row["worst_slack_ns"]))
    # the input buffer as flops costs area on top of the logic
    assert row["area_with_flop_memories_um2"] > row["area_logic_um2"] > 0
    assert row["startpoint"] and row["endpoint"] and row["max_fanout"] >= 1


@pytest.mark.osu018
def test_synth_liberty_with_macro_memories(tmp_path, capsys):
    """--memories macro: the SRAM macros are black-box cells (their bits listed, no area),
    the logic around them is mapped and timed."""
    cfg = load_config("baseline-ftj").replace(**{"nmpu.lanes": 1, "tile.rows": 16})
    conf = write_config(cfg, tmp_path / "c.toml")
    out = tmp_path / "s"
    args = ["synth", "--config", conf, "--blocks", "mgmt", "--liberty", "osu018"]
    assert cli(*args, "--memories", "macro", "--out", out) == 0
    assert "memories as SRAM macros" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    row = res["blocks"]["mgmt"]["1"]
    assert res["memories"] == row["memories"] == "macro"
    assert row["macros"] >= 1 and row["memory_bits"] > 0 and row["area_logic_um2"] > 0
    assert "area_with_flop_memories_um2" not in row
    assert row["fmax_mhz"] == pytest.approx(1000 / (row["period_ns"] - row["worst_slack_ns"]))


def test_synth_liberty_refuses_unknown_library(tmp_path, capsys):
    assert cli("synth", "--liberty", "tsmc7", "--out", tmp_path / "s") == 2
    err = capsys.readouterr().err
    assert "osu018" in err and "Traceback" not in err
