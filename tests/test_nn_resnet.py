"""Residual networks at levels 1-3: the compiler calibrates both branches of every add and
the pooling, level 3 runs them on the residual/pool golden models; resnet20 goes from a
CIFAR-format directory made here to a chip through fit and run."""

import json
import pickle

import numpy as np
import pytest
from aimcflow.flows import cli
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden, input_codes, layer_forward
from aimcflow.models.nn.schedule import add_params, placement, walk
from aimcflow.models.nn.workloads import imported, pretrained
from aimcflow.models.periphery.pool import PoolParams, avg_coeffs
from aimcflow.models.periphery.residual import ResidualCoeffs, residual_add


@pytest.fixture(scope="module")
def resnet_prog():
    digits = load_digits_dataset()
    model = pretrained("digits-resnet", digits)
    net = convert(imported(model, digits), load_config("baseline-ftj"))
    return digits, net, compile_network(net, digits.x_train[:256])


def test_schedule_of_digits_resnet(resnet_prog):
    _, _, prog = resnet_prog
    kinds = [s.kind for s in prog.steps]
    assert kinds.count("stage") == 7 and kinds.count("add") == 2 and kinds.count("pool") == 2
    assert [p.kind for p in prog.pools] == ["max", "avg"]
    # every add absorbed its ReLU; the stem and first convs absorbed BN + ReLU
    assert all(a.activation == "relu" and not a.out_signed for a in prog.adds)
    where = {o["kind"]: o["ran"] for o in placement(prog, "RTL")}
    assert where["stage"] == "RTL" and where["add"].startswith("golden model (Python")


def test_add_coefficients_take_both_branch_scales(resnet_prog):
    """Each add's branch scales are the producing steps' output scales, and its
    multipliers are those ratios to the output scale in fixed point."""
    _, _, prog = resnet_prog
    scale_of = {0: prog.layers[0].in_scale}
    for s in prog.steps:
        if s.kind == "stage":
            scale_of[s.out] = prog.layers[s.index].out_scale
        elif s.kind == "add":
            scale_of[s.out] = prog.adds[s.index].out_scale
        else:
            scale_of[s.out] = scale_of[s.src[0]]
    for s in (s for s in prog.steps if s.kind == "add"):
        ap = prog.adds[s.index]
        assert (ap.scale_a, ap.scale_b) == (scale_of[s.src[0]], scale_of[s.src[1]])
        for scale, mult in ((ap.scale_a, ap.mult_a), (ap.scale_b, ap.mult_b)):
            # round(ratio * 2**shift): within half an LSB of the multiplier
            assert abs(mult - scale / ap.out_scale * 2**ap.shift) <= 0.5
        assert max(ap.mult_a, ap.mult_b) >= 2**14  # the largest shift that fits 16 bits


def test_avg_pool_coefficients_are_the_window_reciprocal(resnet_prog):
    _, _, prog = resnet_prog
    avg = next(p for p in prog.pools if p.kind == "avg")
    c = avg_coeffs(
        avg.kernel[0] * avg.kernel[1], PoolParams.from_config(prog.cfg, signed=avg.signed)
    )
    assert (avg.mult, avg.shift) == (c.mult, c.shift) and avg.kernel == (4, 4)


def test_add_output_represents_the_float_sum(resnet_prog):
    """On test images: the add's integer output times its scale equals ReLU(a + b) of
    what its integer inputs represent, to half an output LSB plus the multipliers'
    rounding (unless saturated at the top code)."""
    digits, _, prog = resnet_prog
    h0 = input_codes(prog, digits.x_test[:16])
    seen = {}
    gen = walk(prog, h0)
    values = {0: h0}
    try:
        i, h = next(gen)
        while True:
            y = layer_forward(prog, i, h, np.arange(16))
            step = next(s for s in prog.steps if s.kind == "stage" and s.index == i)
            values[step.out] = y
            i, h = gen.send(y)
    except StopIteration:
        pass
    # recompute the adds from the recorded stage outputs (pool/reshape are not inputs here)
    for s in (s for s in prog.steps if s.kind == "add"):
        if not all(v in values for v in s.src):
            continue
        ap = prog.adds[s.index]
        a, b = values[s.src[0]] * ap.scale_a, values[s.src[1]] * ap.scale_b
        want = np.maximum(a + b, 0.0) / ap.out_scale
        got = residual_add(
            values[s.src[0]],
            values[s.src[1]],
            add_params(prog.cfg, ap),
            ResidualCoeffs(ap.mult_a, ap.mult_b, ap.shift),
        )
        top = (1 << prog.cfg.nmpu.out_bits) - 1
        ok = got < top
        err = np.abs(got - want)[ok]
        bound = 0.5 + (np.abs(values[s.src[0]]) + np.abs(values[s.src[1]]))[ok] * 2.0 ** -(
            ap.shift + 1
        )
        assert np.all(err <= bound + 1e-9)
        seen[s.name] = ok.mean()
    # at least one add had both branches as stage outputs, each with unsaturated outputs
    assert seen and min(seen.values()) > 0, seen


def test_level3_follows_level2_on_digits_resnet(resnet_prog):
    digits, net, prog = resnet_prog
    acc2 = net.accuracy(digits.x_test, digits.y_test)
    acc3 = float(np.mean(forward_golden(prog, digits.x_test).argmax(1) == digits.y_test))
    print(f"digits-resnet level 2 {acc2:.4f}, level 3 {acc3:.4f}")
    # the fixed-point periphery gap, measured over 5 seeds, is a fraction of a percent;
    # 2 % of the 360 test images (7 images) flags a broken add/pool calibration
    assert abs(acc2 - acc3) <= 0.02 and acc3 >= 0.95


def _cifar_dir(d, n_train=16, n_test=8):
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", n_train // 5 + 1) for i in range(1, 6)] + [
        ("test_batch", n_test)
    ]:
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        x[np.arange(n), y % 3, :, :] //= 4  # a learnable hint: the label dims one channel
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": x.reshape(n, -1), b"labels": [int(v) for v in y]}, fh, protocol=2)


def test_resnet20_from_cifar_dir_through_fit_and_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar").mkdir()
    _cifar_dir(tmp_path / "cifar")
    assert (
        cli.main(["fit", "--model", "resnet20", "--data", "cifar", "--epochs", "1", "--out", "fit"])
        == 0
    )
    fit = json.loads((tmp_path / "fit" / "results.json").read_text())
    assert fit["input_shape"] == [3, 32, 32] and 0 <= fit["test_accuracy"] <= 1
    argv = [
        "run",
        "--model",
        "fit/model.pt2",
        "--data",
        "cifar",
        "--levels",
        "float,analog-float,analog-golden",
        "--repeats",
        "1",
        "--drift",
        "1h",
        "--images",
        "2",
        "--out",
        "run",
        "--config",
        "baseline-ftj",
    ]
    assert cli.main(argv) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    meta = json.loads((tmp_path / "run" / "chip_program.json").read_text())
    assert len(meta["layers"]) == 22 and len(meta["adds"]) == 9 and len(meta["pools"]) == 1
    assert res["levels"]["analog_golden"]["accuracy"] is not None
