"""Level 4 of digits-vit with every integer op outside the tiles in the loop: attention,
layernorm and GELU on the special-function unit (``rtl/sfu.py``), the positional-embedding
add on the residual unit, the token mean on the pooling unit, all in ``network_top`` beside
``periphery_top``; each unit output equal to its golden model's on the same inputs, the
RTL's outputs fed forward, the logits equal to level 3's; a corrupted SFU register is
caught.

Budget: one Verilator build of ``network_top`` with the three units (~100 s CPU cold,
shared by the three tests: the compiler's own ``out_shift``, as ``aimcflow run`` uses) and
three co-simulations of ~10 s fixed cost; 3 images cost ~3 s of simulation (most of it
the tiles' conversions), with and without random stalls."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from aimcflow.cosim.benches.network_probes import CORRUPTED_OP
from aimcflow.cosim.network import format_mismatch, run_level4
from aimcflow.flows import cli
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import LayerTrace, forward_golden
from aimcflow.models.nn.workloads import imported, pretrained
from level3_ops import op_values

N_IMAGES = 3
TRANSFORMER_KINDS = {"attention", "layernorm", "gelu", "add_const", "token_mean"}


@functools.cache
def _vit():
    d = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    net = convert(imported(pretrained("digits-vit", d), d), cfg)
    net.drift(3600.0)
    return d, compile_network(net, d.x_train[:512], t_s=3600.0)


@pytest.mark.cosim
def test_vit_level4_runs_every_op_in_rtl_with_and_without_stalls():
    d, prog = _vit()
    x, images = d.x_test[:N_IMAGES], np.arange(N_IMAGES)
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    logits3 = forward_golden(prog, x, images, traces=traces)
    r = run_level4(prog, x, images, then_stalls=0.25)
    assert r.mismatches == 0, "\n".join(map(format_mismatch, r.errors))
    np.testing.assert_array_equal(r.logits, logits3)
    want = op_values(prog, x)
    ran = {o["name"]: o for o in r.extra["ops_rtl"]}
    # every transformer step and residual add ran on its unit, every unit output compared
    assert {o["kind"] for o in ran.values()} == TRANSFORMER_KINDS | {"add"}
    assert {k: (o["jobs"], o["activations"]) for k, o in ran.items()} == want
    # attention: per image and head a q k^T and a p v matmul, one softmax over all rows
    att = next(s for s in prog.steps if s.kind == "attention")
    heads = 2
    assert ran[att.name]["jobs"] == 2 * N_IMAGES * heads + 1
    assert r.activations_compared == sum(int(np.size(y)) for tr in traces for y in tr.y) + sum(
        o["activations"] for o in ran.values()
    )
    assert r.rtl_cycles == sum(lay["rtl_cycles"] for lay in r.layers) + sum(
        o["rtl_cycles"] for o in ran.values()
    )
    for o in ran.values():  # ideal = load beats + input beats, the RTL takes more
        assert 0 < o["ideal_cycles"] < o["rtl_cycles"], o
    # the same images with a quarter of the cycles stalled, the units' outputs too
    s = r.stalled
    assert s is not None and s.mismatches == 0, "\n".join(map(format_mismatch, s.errors))
    np.testing.assert_array_equal(s.logits, logits3)
    sran = {o["name"]: o for o in s.extra["ops_rtl"]}
    assert {k: o["activations"] for k, o in sran.items()} == {
        k: o["activations"] for k, o in ran.items()
    }
    for k, o in ran.items():  # backpressure on every unit's output costs cycles
        assert sran[k]["rtl_cycles"] > o["rtl_cycles"], k
        assert sran[k]["ideal_cycles"] == o["ideal_cycles"], k


@pytest.mark.cosim
def test_vit_level4_catches_a_corrupted_sfu_register():
    """The SFU's SHIFT register one lower than the program's for the first attention's jobs
    (the golden reference keeps the program's): its first matmul mismatches and the run
    stops there."""
    d, prog = _vit()
    att = next(s for s in prog.steps if s.kind == "attention")
    r = run_level4(
        prog,
        d.x_test[:2],
        bench=CORRUPTED_OP,
        bench_params={"corrupt_op": ["attention", att.index]},
    )
    assert r.mismatches > 0 and r.logits is None
    assert r.errors and all(e["op"] == att.name and e["job"] == "matmul" for e in r.errors)
    assert all(e["image"] == 0 and e["expected"] != e["actual"] for e in r.errors)
    assert att.name in format_mismatch(r.errors[0]) and "matmul job" in format_mismatch(r.errors[0])
    ran = {o["name"]: o for o in r.extra["ops_rtl"]}
    assert ran[att.name]["jobs"] == 1  # stopped at the first mismatching job
    later = [s.name for s in prog.steps if s.kind in TRANSFORMER_KINDS][2:]  # after it
    assert att.name == later[0] and not set(later[1:]) & set(ran)


@pytest.mark.cosim
def test_run_reports_the_transformer_units_in_the_loop(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--model", "digits-vit", "--images", "2", "--repeats", "1"]
    argv += ["--drift", "1h", "--levels", "analog-rtl", "--out", "o"]
    assert cli.main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    rtl = res["levels"]["analog_rtl"]
    assert res["mismatches"] == 0 and rtl["stalled"]["mismatches"] == 0
    unit = {"attention": "sfu", "layernorm": "sfu", "gelu": "sfu", "add_const": "residual"}
    unit |= {"add": "residual", "token_mean": "pool", "stage": "periphery_top"}
    for o in rtl["ops"]:
        if o["kind"] != "reshape":
            f = unit[o["kind"]] if o["kind"] == "stage" else f"rtl/{unit[o['kind']]}.py"
            assert o["ran"].startswith(f"RTL ({f}"), o
    assert rtl["ops_not_in_rtl"] == []
    assert rtl["sfu"]["in_the_loop"] is True and rtl["sfu"]["activations"] > 0
    kinds = rtl["ops_by_kind"]
    assert set(kinds) == TRANSFORMER_KINDS | {"add"}
    assert all(k["activations"] > 0 and k["rtl_cycles"] > 0 for k in kinds.values())
    assert "in the loop on their units" in out and "attention on rtl/sfu.py" in out
    assert "token_mean on rtl/pool.py" in out and "add_const on rtl/residual.py" in out
    assert "not every op ran in RTL" not in out
