"""Per-layer periphery: ``[[layer]]`` entries reach the tiles, the compiler, the golden
models, level 4 and ``generate``; the compiler picks ``nmpu.out_shift`` when the config
leaves it out; ``sweep --per-layer`` degrades one layer at a time."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from aimcflow.cosim.network import format_mismatch, rtl_groups, run_level4
from aimcflow.flows.sweep_layers import heatmap_rows, layer_points
from aimcflow.models.config import load_config, validate_config
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import LayerTrace, forward_golden
from aimcflow.models.nn.workloads import pretrained
from flow_helpers import cli


def with_layers(base: str, entries: list[dict], **sections):
    cfg = load_config(base)
    if sections:
        cfg = cfg.replace(**sections)
    data = cfg.model_dump()
    data["layer"] = entries
    return validate_config(data, source="test")


@functools.cache
def _data():
    return load_digits_dataset()


@functools.cache
def _program(arch: str, entries: str, **sections):
    d = _data()
    net = convert(pretrained(arch, d), with_layers("baseline-ftj", json.loads(entries), **sections))
    net.drift(3600.0)
    return compile_network(net, d.x_train[:512], t_s=3600.0)


def test_entry_applies_to_its_layer_only():
    cfg = with_layers(
        "baseline-ftj",
        [
            {"name": "4", "adc": {"bits": 5}, "noise": {"w_noise": 0.2}},
            {"index": 0, "dac": {"bits": 6}},
        ],
    )
    a, b, c = (cfg.for_layer(n, i) for n, i in (("1", 0), ("x", 1), ("4", 2)))
    assert (a.dac.bits, a.adc.bits, a.noise.w_noise) == (6, 8, 0.035)
    assert (b.dac.bits, b.adc.bits) == (8, 8) and b == cfg.for_layer("y", 1)
    assert (c.dac.bits, c.adc.bits, c.noise.w_noise) == (8, 5, 0.2)
    assert a.layer == () and a.digest() != b.digest()
    # converted: each layer's tiles hold its own config, noise keys unchanged
    net = convert(pretrained("digits-mlp", _data()), cfg.replace(layer=()), program=False)
    names = [(x.name, x.index) for x in net.layers]
    cfg2 = with_layers("baseline-ftj", [{"name": names[2][0], "adc": {"bits": 5}}])
    net.build(cfg2)
    bits = [x.matrix.tiles[0][0].cfg.adc.bits for x in net.layers]
    assert bits == [8, 8, 5]


def test_entries_must_name_one_existing_layer_each():
    d = _data()
    model = pretrained("digits-mlp", d)
    with pytest.raises(UserInputError, match=r"entry 0 \(name = 'fc9'\) names no analog layer"):
        convert(model, with_layers("baseline-ftj", [{"name": "fc9", "adc": {"bits": 6}}]))
    with pytest.raises(UserInputError, match="both set layer index 0"):
        convert(
            model,
            with_layers("baseline-ftj", [{"index": 0}, {"name": "0", "adc": {"bits": 6}}]),
        )


def test_compiler_picks_out_shift_for_narrow_adcs():
    """The fixed out_shift 28 made the compiler refuse a 4-bit ADC on the CNN (multiplier
    overflow); left out, it picks the largest shift whose multipliers fit, per parameter set."""
    fixed = with_layers("baseline-ftj", [], **{"adc.bits": 4, "nmpu.out_shift": 28})
    d = _data()
    net = convert(pretrained("digits-cnn", d), fixed)
    with pytest.raises(UserInputError, match="does not fit signed nmpu.mult_bits=16"):
        compile_network(net, d.x_train[:512])
    prog = _program("digits-cnn", json.dumps([{"index": 1, "adc": {"bits": 4}}]))
    mult_max = (1 << 15) - 1
    shifts = [lp.out_shift for lp in prog.layers]
    for lp in prog.layers:
        assert np.abs(lp.mult).max() <= mult_max
    # layers 0 and 2 share a parameter set, hence one shift; at shift + 1 one of them overflows
    assert shifts[0] == shifts[2] and shifts[1] != shifts[0]
    biggest = max(
        np.abs(prog.layers[i].mult).max() / 2.0 ** prog.layers[i].shrink_k for i in (0, 2)
    )
    assert biggest * 2 > mult_max  # the shift is the largest that fits
    # the golden models run each layer with its own ADC width and shift
    assert prog.layer_cfg(1).adc.bits == 4 and prog.layer_cfg(0).adc.bits == 8
    assert prog.layer_cfg(1).nmpu.out_shift == shifts[1]
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    forward_golden(prog, d.x_test[:8], traces=traces)
    a1 = np.concatenate(traces[1].a)
    assert a1.min() >= -8 and a1.max() <= 7  # 4-bit codes
    assert np.abs(np.concatenate(traces[0].a)).max() > 7  # layer 0 still 8 bits


def test_level4_runs_one_build_per_parameter_set():
    """Level 4 on a program with two periphery configurations equals level 3."""
    prog = _program("digits-mlp", json.dumps([{"index": 2, "adc": {"bits": 6}}]))
    groups = rtl_groups(prog)
    assert [g.layers for g in groups] == [(0, 1), (2,)]
    assert groups[1].nmpu.adc_bits == 6 and groups[0].nmpu.adc_bits == 8
    x = _data().x_test[:20]
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    logits3 = forward_golden(prog, x, traces=traces)
    r = run_level4(prog, x)
    assert r.mismatches == 0, "\n".join(map(format_mismatch, r.errors))
    assert r.activations_compared == sum(int(np.size(y)) for tr in traces for y in tr.y)
    np.testing.assert_array_equal(r.logits, logits3)
    assert r.extra["configurations"] == 2 and all(lay["rtl"] for lay in r.layers)


def test_per_layer_points_degrade_one_layer_and_keep_the_rest_ideal():
    cfg = load_config("baseline-ftj")
    layers = [("a", 0), ("b", 1)]
    pts = layer_points(cfg, "noise.w_noise", (0.1, 0.3), layers, 3600.0)
    assert len(pts) == 1 + 2 * 2
    ref = pts[0][2]
    assert ref.noise.w_noise == 0.0 and ref.layer == ()
    for _, params, pcfg, _ in pts[1:]:
        idx = dict(layers)[params["layer"]]
        for name, i in layers:
            want = params["noise.w_noise"] if i == idx else 0.0
            assert pcfg.for_layer(name, i).noise.w_noise == want
    adc = layer_points(cfg, "adc.bits", (5,), layers, 3600.0)
    assert adc[0][2].adc.bits == 8 and adc[1][2].for_layer("a", 0).adc.bits == 5
    # heatmap: drops paired by repeat
    fake = [
        {
            "params": p,
            "levels": {"lv": {"accuracy": float(np.mean(acc)), "ci95": None, "accuracies": acc}},
        }
        for (_, p, _, _), acc in zip(
            pts, [[0.9, 0.8], [0.9, 0.7], [0.8, 0.8], [0.5, 0.4], [0.9, 0.8]], strict=True
        )
    ]
    m = heatmap_rows(fake, "noise.w_noise", "lv")
    assert m["layers"] == ["a", "b"] and m["settings"] == [0.1, 0.3]
    assert m["accuracy"][1][0] == pytest.approx(0.45)
    assert m["drop"][0][0]["mean"] == pytest.approx(0.05)  # (0.0 + 0.1) / 2
    assert m["drop"][1][1]["mean"] == pytest.approx(0.0)


def test_sweep_per_layer_cli_writes_heatmap(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the tables to the terminal width
    argv = ["sweep", "--per-layer", "adc.bits=4", "--images", 30, "--repeats", 2,
            "--levels", "analog-float", "--workers", 1, "--out", "p"]  # fmt: skip
    assert cli(*argv) == 0
    printed = capsys.readouterr().out
    assert "adc.bits=4" in printed  # the heatmap table's column
    r = json.loads((tmp_path / "p" / "results.json").read_text())
    m = r["per_layer"]["analog_float"]
    assert m["layers"] == ["0", "2", "4"] and m["settings"] == [4]
    assert [p["params"]["layer"] for p in r["points"]] == ["-", "0", "2", "4"]
    assert all(len(p["levels"]["analog_float"]["accuracies"]) == 2 for p in r["points"])
    assert (tmp_path / "p" / "heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_emits_one_configuration_per_layer_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(
        'name = "pl"\n[[layer]]\nindex = 0\nadc.bits = 6\n'
        "[[layer]]\nindex = 2\nadc.bits = 6\n[[layer]]\nindex = 1\nnmpu.out_shift = 9\n"
    )
    assert cli("generate", "--config", "c.toml", "--blocks", "nmpu", "--out", "g") == 0
    man = json.loads((tmp_path / "g" / "manifest.json").read_text())
    sets = man["layer_configurations"]
    assert [s["layers"] for s in sets] == [["index = 0", "index = 2"], ["index = 1"]]
    mods = {man["blocks"]["nmpu"]["module"]} | {s["blocks"]["nmpu"]["module"] for s in sets}
    assert len(mods) == 3
    assert sets[0]["blocks"]["nmpu"]["params"]["adc_bits"] == 6
    assert sets[1]["blocks"]["nmpu"]["params"]["out_shift"] == 9
    files = (tmp_path / "g" / "files.f").read_text().split()
    for m in mods:
        assert f"{m}.v" in files
        assert f"module {m}(" in (tmp_path / "g" / f"{m}.v").read_text()


def test_generate_with_model_emits_the_compiled_parameter_sets(tmp_path, capsys, monkeypatch):
    """With --model, the sets are those level 4 builds: the compiler's out_shift included."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('name = "m"\n[[layer]]\nindex = 2\nadc.bits = 6\n')
    argv = ["generate", "--config", "c.toml", "--model", "digits-mlp", "--blocks", "nmpu"]
    assert cli(*argv, "--out", "g") == 0
    sets = json.loads((tmp_path / "g" / "manifest.json").read_text())["layer_configurations"]
    prog = _program("digits-mlp", json.dumps([{"index": 2, "adc": {"bits": 6}}]))
    want = [
        (g.layers, g.nmpu.adc_bits, g.nmpu.out_shift) for g in rtl_groups(prog)
    ]  # level 4's configurations
    got = [
        (tuple(int(s.split("index ")[1].rstrip(")")) for s in c["layers"]), c["adc.bits"],
         c["blocks"]["nmpu"]["params"]["out_shift"])
        for c in sets
    ]  # fmt: skip
    assert got == want
