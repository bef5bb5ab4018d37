"""``aimcflow synth``: Yosys area numbers per block and lane count, results.json as SPEC.md."""

from __future__ import annotations

import json

from aimcflow.models.config import load_config
from flow_helpers import cli, write_config


def test_synth_mgmt_lanes_results(tmp_path, capsys):
    cfg = load_config("baseline-ftj").replace(**{"tile.rows": 16, "tile.cols": 16})
    conf = write_config(cfg, tmp_path / "cfg.toml")
    out = tmp_path / "synth"
    assert cli("synth", "--config", conf, "--lanes", "1,2", "--blocks", "mgmt", "--out", out) == 0
    res = json.loads((out / "results.json").read_text())
    per = res["blocks"]["mgmt"]["lanes"]
    assert set(per) == {"1", "2"}
    for r in per.values():
        assert r["cells"] > 0 and r["transistors"] > 0
        assert r["memories"] == 1 and r["memory_bits"] > 0  # the x buffer stays a macro
    # a second lane adds an |x|, a max stage and a DAC scaler: strictly more logic
    assert per["2"]["transistors"] > per["1"]["transistors"]
    # SPEC.md: blocks -> {name: {cells, transistors}} (here: the first requested lane count,
    # since the config's own lanes (8) was not requested)
    assert res["blocks"]["mgmt"]["cells"] == per["1"]["cells"]
    table = capsys.readouterr().out
    assert "mgmt" in table and "transistors" in table
    # results.json exists now: a second run into the same --out needs --force
    assert cli("synth", "--config", conf, "--lanes", "1", "--blocks", "mgmt", "--out", out) == 2


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    assert cli("synth", "--lanes", "0,4") == 2  # argparse's own error
    assert cli("synth", "--blocks", "alu", "--out", tmp_path / "s") == 2
    assert "unknown block" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
