"""The chip compiler and level 3 ("analog-golden"): calibration, quantized coefficients,
the artifact, and accuracy against levels 1 and 2."""

import numpy as np
import pytest
import torch
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import load_config
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.compiler import ChipProgram, calibrate_tile, compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import (
    LayerTrace,
    accuracy_golden,
    forward_golden,
    golden_periphery,
    quantize_input,
)
from aimcflow.models.nn.workloads import accuracy_float, pretrained
from aimcflow.models.periphery.fixedpoint import signed_range
from torch import nn


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def _program(digits, arch, cfg, t_s=3600.0):
    net = convert(pretrained(arch, digits), cfg)
    net.drift(t_s)
    return net, compile_network(net, digits.x_train[:512], t_s=t_s)


def test_calibration_recovers_adc_mismatch():
    # Only ADC gain/offset mismatch is on, so the codes are round(ideal * g + o) and the fit
    # must find (g, o) per column up to the ADC's rounding: uniform noise of std 1/sqrt(12).
    cfg = load_config("ideal").replace(
        **{
            "adc.bits": 8,
            "dac.bits": 8,
            "adc.bound": 10.0,
            "adc.gain_mismatch_sigma": 0.05,
            "adc.offset_mismatch_sigma_lsb": 2.0,
        }
    )
    w = np.random.default_rng(3).standard_normal((64, 32))
    tile = TiledMatrix(w, cfg, layer=0).tiles[0][0]
    tile.program()
    alpha, beta = calibrate_tile(tile, cfg)
    assert np.std(tile.adc_gain) > 0.02 and np.std(tile.adc_offset_lsb) > 1  # mismatch is real
    # standard errors of a least-squares line through >= 400 points whose ideal values spread
    # with std >= 5 codes: se(alpha) <= 0.29 / (5 * 20) = 0.003, se(beta) <= 0.29 / 20 = 0.015;
    # the bound is 5 standard errors
    np.testing.assert_allclose(alpha, tile.adc_gain, atol=5 * 0.003)
    np.testing.assert_allclose(beta, tile.adc_offset_lsb, atol=5 * 0.015)


def test_level3_close_to_float_on_a_fine_periphery(digits):
    # 12-bit converters, no noise: what is left is the periphery's own quantization
    cfg = load_config("ideal").replace(**{"adc.bits": 12, "dac.bits": 12, "adc.bound": 20.0})
    model = pretrained("digits-mlp", digits)
    _, prog = _program(digits, "digits-mlp", cfg)
    acc_f = accuracy_float(model, digits.x_test, digits.y_test)
    acc_3 = accuracy_golden(prog, digits.x_test, digits.y_test)
    print(f"fine periphery: float {acc_f:.4f}, analog-golden {acc_3:.4f}")
    assert abs(acc_3 - acc_f) <= 0.01  # 0.01 = 3.6 of 360 images


@pytest.mark.parametrize("arch", ["digits-mlp", "digits-cnn"])
def test_level3_within_1_percent_of_level2_baseline_ftj(digits, arch):
    net, prog = _program(digits, arch, load_config("baseline-ftj"))
    acc_2 = net.accuracy(digits.x_test, digits.y_test)
    acc_3 = accuracy_golden(prog, digits.x_test, digits.y_test)
    print(
        f"{arch} baseline-ftj 1 h, same tiles: analog-float {acc_2:.4f}, analog-golden {acc_3:.4f}"
    )
    assert abs(acc_3 - acc_2) <= 0.01  # level 3 within 1 point of level 2 on the same tiles


def test_coefficients_fit_their_formats_and_artifact_roundtrips(digits, tmp_path):
    cfg = load_config("baseline-ftj")
    _, prog = _program(digits, "digits-cnn", cfg)
    n = cfg.nmpu
    for lp in prog.layers:
        lo, hi = signed_range(n.gain_bits)
        assert lo <= lp.gain.min() and lp.gain.max() <= hi
        lo, hi = signed_range(n.mult_bits)
        assert lo <= lp.mult.min() and lp.mult.max() <= hi and np.any(lp.mult != 0)
        assert lp.gain.dtype == lp.offset.dtype == lp.mult.dtype == lp.bias.dtype == np.int64
    assert [lp.out_signed for lp in prog.layers] == [False, False, True]  # ReLU, ReLU, logits
    npz, js = prog.save(tmp_path / "chip")
    meta, arrays = ChipProgram.load_arrays(tmp_path / "chip")
    assert meta["config_digest"] == cfg.digest() and meta["t_s"] == 3600.0
    for lp, st in zip(prog.layers, prog.stages, strict=True):
        for name in ("gain", "offset", "mult", "bias"):
            np.testing.assert_array_equal(arrays[f"L{lp.index}.{name}"], getattr(lp, name))
        tile = st.layer.matrix.tiles[0][0]
        np.testing.assert_array_equal(arrays[f"L{lp.index}.T0.0.g_siemens"], tile.g_now)
        assert meta["layers"][lp.index]["out_scale"] == lp.out_scale


def test_level3_does_not_depend_on_batching(digits):
    _, prog = _program(digits, "digits-cnn", load_config("pcm"))
    x, ids = digits.x_test[:24], np.arange(300, 324)
    a = forward_golden(prog, x, ids, batch_size=512)
    assert np.array_equal(a, forward_golden(prog, x, ids, batch_size=5))
    perm = np.random.default_rng(0).permutation(24)
    assert np.array_equal(a[perm], forward_golden(prog, x[perm], ids[perm], batch_size=1))


def test_input_quantization():
    q = quantize_input(np.array([[0.0, 0.5, 1.0, 2.0, -1.0]]), 1 / 255, 8, signed=False)
    np.testing.assert_array_equal(q, [[0, 128, 255, 255, 0]])  # half up, then saturate


@pytest.mark.parametrize(
    "layers, words",
    [
        ([nn.ReLU(), nn.Linear(64, 10)], "activation only directly after"),
        ([nn.Linear(64, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 10)], "BatchNorm"),
        ([nn.Linear(64, 16), nn.LeakyReLU(0.1), nn.Linear(16, 10)], "slope 0.1"),
    ],
)
def test_uncompilable_models(digits, layers, words):
    torch.manual_seed(0)
    net = convert(nn.Sequential(*layers).eval(), load_config("baseline-ftj"))
    with pytest.raises(UserInputError, match=words):
        compile_network(net, digits.x_train[:64])


@pytest.mark.parametrize("arch", ["digits-mlp", "digits-cnn"])
def test_level3_first_layer_matches_float_within_derived_bound(digits, arch):
    # Noise-free 12-bit converters and a wide output shift: every level-3 output of the first
    # layer must equal the float layer (on the same quantized input) / out_scale up to the
    # periphery's own roundings, bounded term by term in output LSB:
    #   0.5 (rshr of acc*mult) + 0.5 (bias rounding)
    #   + 0.5 ADC LSB, which is worth |gain| * 2**(e - e_min) * |mult| / 2**out_shift output LSB
    #   + |y| * (0.5 / |gain| + 0.5 / |mult| + 1e-3): gain and multiplier rounding, relative,
    #     and the affine fit's slope error (ADC rounding noise over 768 calibration vectors
    #     spread over thousands of codes: < 1e-4, 1e-3 leaves margin).
    cfg = load_config("ideal").replace(
        **{"adc.bits": 12, "dac.bits": 12, "adc.bound": 20.0, "nmpu.out_shift": 28}
    )
    _, prog = _program(digits, arch, cfg, t_s=1.0)
    lp, st = prog.layers[0], prog.stages[0]
    traces = [LayerTrace(p.name) for p in prog.layers]
    forward_golden(prog, digits.x_test, traces=traces)
    xq = quantize_input(digits.x_test, lp.in_scale, lp.in_bits, lp.in_signed) * lp.in_scale
    ref = st.float_forward(xq) / lp.out_scale  # (N, C) or (N, C, H, W)
    y = traces[0].y[0]
    e = traces[0].e[0][:, 0, 0]  # one row tile, one column tile: (vectors,)
    if ref.ndim == 4:  # conv: vectors are (image, position); bring channels last to match
        ref = ref.transpose(0, 2, 3, 1).reshape(-1, ref.shape[1])
        y = y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
    gain = np.abs(lp.gain[0]).astype(float)
    mult = np.maximum(np.abs(lp.mult), 1).astype(float)  # 0 only for dead columns, below
    adc_lsb = gain[None] * 2.0 ** (e[:, None] - cfg.mgmt.e_min) * mult[None] / 2.0**28
    bound = 1.0 + 0.5 * adc_lsb + np.abs(ref) * (0.5 / gain + 0.5 / mult + 1e-3)[None]
    # a column whose multiplier rounds to 0 (a dead unit: weights ~1e-9 after weight decay)
    # outputs exactly its bias through the activation; the others are bounded
    dead = lp.mult == 0
    np.testing.assert_array_equal(
        y[:, dead], np.broadcast_to(np.maximum(lp.bias[dead], 0), y[:, dead].shape)
    )
    y, ref, bound = y[:, ~dead], ref[:, ~dead], bound[:, ~dead]
    inside = ref < 255  # saturated outputs are clipped by design
    err = np.abs(y - ref)
    print(f"{arch}: max error {err[inside].max():.2f} LSB, max bound {bound[inside].max():.2f}")
    assert np.all(err[inside] <= bound[inside])
    assert np.all(y[~inside] == 255)


def test_multi_tile_layers_and_the_periphery_seam(digits):
    # small tiles split every layer into row tiles (partial sums accumulated in the NMPU) and
    # column tiles; the periphery callable sees one job per column tile per batch
    cfg = load_config("baseline-ftj").replace(**{"tile.rows": 32, "tile.cols": 24})
    net, prog = _program(digits, "digits-mlp", cfg)
    grid = [
        (len(st.layer.matrix.row_slices), len(st.layer.matrix.col_slices)) for st in prog.stages
    ]
    assert grid == [(2, 6), (4, 3), (2, 1)]  # 64x128, 128x64, 64x10 on 32x24 tiles
    jobs = []

    def spy(job):
        jobs.append((job.layer, job.column_tile, len(job.x_segments)))
        return golden_periphery(job)

    acc_3 = accuracy_golden(prog, digits.x_test, digits.y_test, periphery=spy)
    assert sorted(set(jobs)) == [(i, k, t) for i, (t, c) in enumerate(grid) for k in range(c)]
    assert acc_3 == accuracy_golden(prog, digits.x_test, digits.y_test)  # the seam is transparent
    acc_2 = net.accuracy(digits.x_test, digits.y_test)
    print(f"32x24 tiles, baseline-ftj 1 h: analog-float {acc_2:.4f}, analog-golden {acc_3:.4f}")
    assert abs(acc_3 - acc_2) <= 0.01
