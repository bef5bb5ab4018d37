"""The crossbar tile: ADC codes, bound management, drift compensation, batch invariance."""

import math

import numpy as np
import pytest
from aimcflow.models.analog import converters
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import load_config
from aimcflow.models.errors import UserInputError

NOISE_OFF = {
    "noise.programming": False,
    "noise.drift": False,
    "noise.read": False,
    "noise.out_noise": 0.0,
    "noise.w_noise": 0.0,
    "noise.drift_compensation": "none",
    "tile.ir_drop": 0.0,
    "device.preset": "ideal",
}


def test_noise_free_adc_codes_are_clip_round_exactly():
    """codes = clip(round_half_up(I / LSB)) with exact dyadic numbers.

    DAC bound 127 at 8 bits makes the input LSB exactly 1; ADC bound 508 at 8 bits makes
    the output LSB exactly 4; weights k/8 with a +-1 in every column keep W_norm = W.  Then
    I / LSB = sum_j d_j k_j / 32 exactly and the expected code is integer arithmetic:
    floor((sum d k + 16) / 32), saturated to [-128, 127].  Ties (x.5) occur and must round up.
    """
    cfg = load_config("baseline-ftj").replace(
        **NOISE_OFF,
        **{
            "dac.bits": 8,
            "dac.bound": 127.0,
            "adc.bits": 8,
            "adc.bound": 508.0,
            "tile.rows": 64,
            "tile.cols": 32,
        },
    )
    r = np.random.default_rng(5)
    k = r.integers(-8, 9, (64, 32))
    k[0, :] = 8 * np.where(r.random(32) < 0.5, -1, 1)
    tile = AnalogTile(k / 8.0, cfg)
    assert tile.input_lsb == 1.0 and tile.output_lsb == 4.0
    assert np.all(tile.w_norm == k / 8.0)
    d = r.integers(-40, 41, (300, 64))
    d[:5] = 127 * np.sign(k[:, :1].T + 0.5)  # vectors that saturate column 0
    codes, sat = tile.forward_codes(d, np.arange(300))
    acc = d @ k
    expected = np.clip((acc + 16) // 32, -128, 127)
    assert np.array_equal(codes, expected)
    assert np.array_equal(sat, np.any((expected == -128) | (expected == 127), axis=1))
    assert np.any((acc % 32) == 16), "the data must contain exact ties"
    assert sat.any() and not sat.all()


def _expected_passes(k_ones: int, cfg) -> int:
    """aihwkit's iterative bound management, by its rules, for an input of k ones on
    a column of unit weights: reduction r = 1, 2, 4, ...; DAC round-half-up of 1/r to
    the step; saturated iff round(y / out_lsb) > cmax; stop when not saturated or after
    the pass whose r exceeds max_bm_factor or max_bm_res / dac_step."""
    dac_step = cfg.dac.bound / (2 ** (cfg.dac.bits - 1) - 1)
    out_lsb = cfg.adc.bound / (2 ** (cfg.adc.bits - 1) - 1)
    cmax = 2 ** (cfg.adc.bits - 1) - 1
    r, passes = 1, 0
    while True:
        passes += 1
        xq = math.floor((1.0 / r) / dac_step + 0.5) * dac_step
        y = k_ones * xq
        saturated = math.floor(y / out_lsb + 0.5) > cmax
        if not saturated or r > cfg.mgmt.max_bm_factor or r > cfg.mgmt.max_bm_res / dac_step:
            return passes
        r *= 2


@pytest.mark.parametrize("max_bm_factor, max_bm_res", [(1000, 0.25), (4, 1000.0)])
def test_bound_management_iteration_counts(max_bm_factor, max_bm_res):
    """pcm converters (7-bit DAC, 9-bit ADC, bound 12): inputs of k ones then zeros."""
    cfg = load_config("pcm").replace(
        **NOISE_OFF, **{"mgmt.max_bm_factor": max_bm_factor, "mgmt.max_bm_res": max_bm_res}
    )
    rows = 512
    ks = np.array([1, 10, 12, 13, 20, 24, 25, 40, 100, 200, 300, 512])
    x = (np.arange(rows)[None, :] < ks[:, None]).astype(np.float64) * 0.37  # NM rescales
    tile = AnalogTile(np.ones((rows, 1)), cfg)
    _, passes = tile.forward_float_stats(x, np.arange(len(ks)))
    expected = [_expected_passes(int(k), cfg) for k in ks]
    assert list(passes) == expected
    assert max(expected) > 3 and min(expected) == 1  # the cases exercise the limits


def test_bound_management_output_is_rescaled():
    cfg = load_config("pcm").replace(**NOISE_OFF)
    tile = AnalogTile(np.ones((64, 1)), cfg)
    x = np.ones((1, 64)) * 0.5
    y, passes = tile.forward_float_stats(x, np.array([0]))
    # r = 8 after three halvings (64 -> 32 -> 16 -> 8 <= 12): x/r = 1/8 -> DAC 8/63;
    # the ADC rounds 64 * 8/63 to its 12/255 step; the result is scaled back by 0.5 * 8
    lsb = 12 / 255
    assert passes[0] == 4
    adc = math.floor(64 * (8 / 63) / lsb + 0.5) * lsb
    assert y[0, 0] == pytest.approx(adc * 0.5 * 8, rel=1e-6)  # float32 path: 1e-6


def test_drift_compensation_restores_mean_output():
    """PCM, 1 year after programming: the mean output falls by ~((t+20)/20)^-0.05; global
    compensation (eq. 3.6/3.7: rescale by the calibration read-out ratio) restores it to
    the freshly programmed value within 1 %.  Non-negative weights and inputs, so the
    mean output is the calibration quantity (the summed conductance) seen through x."""
    cfg = load_config("pcm").replace(
        **{
            "noise.out_noise": 0.0,
            "noise.programming": True,
            "noise.drift": True,
            "noise.read": True,
            "tile.rows": 256,
            "tile.cols": 256,
        }
    )
    r = np.random.default_rng(2)
    w = np.abs(r.standard_normal((256, 256)))
    x = r.uniform(0, 1, (256, 256))
    img = np.arange(256)
    on = AnalogTile(w, cfg)
    off = AnalogTile(w, cfg.replace(**{"noise.drift_compensation": "none"}))
    for t in (on, off):
        t.program()
    ref = on.forward_float(x, img).mean()
    for t in (on, off):
        t.drift(365 * 86400.0)
    drifted = off.forward_float(x, img).mean()
    compensated = on.forward_float(x, img).mean()
    assert drifted < 0.75 * ref  # drift is real
    assert abs(compensated / ref - 1) < 0.01


def test_noise_is_batch_and_order_invariant():
    """Every noise source on; forward_codes and forward_float give identical results for
    an image whatever batch it is in and in which order."""
    cfg = load_config("baseline-ftj").replace(
        **{
            "adc.gain_mismatch_sigma": 0.02,
            "adc.offset_mismatch_sigma_lsb": 0.5,
            "noise.read": True,
            "device.preset": "pcm",
        }
    )
    r = np.random.default_rng(3)
    tile = AnalogTile(r.standard_normal((300, 90)), cfg, layer=1, tile=2)
    tile.program()
    tile.drift(3600.0)
    n = 50
    img = r.permutation(10_000)[:n]
    x = r.uniform(-1, 1, (n, 300))
    d = r.integers(-127, 128, (n, 300))
    its = r.integers(0, 3, n)
    y = tile.forward_float(x, img)
    a, s = tile.forward_codes(d, img, its)
    perm = r.permutation(n)
    for size in (1, 7, n):
        y2 = np.empty_like(y)
        a2 = np.empty_like(a)
        for i in range(0, n, size):
            sel = perm[i : i + size]
            y2[sel] = tile.forward_float(x[sel], img[sel])
            a2[sel] = tile.forward_codes(d[sel], img[sel], its[sel])[0]
        assert np.array_equal(y2, y)
        assert np.array_equal(a2, a)
    # and the noise is really there: another iteration id changes the codes
    assert not np.array_equal(tile.forward_codes(d, img, its + 1)[0], a)


def test_output_noise_sigma_matches_config():
    """Codes minus the noise-free codes: std out_noise / LSB (+ rounding 1/12 LSB^2).

    n = 200 x 128 samples; tolerance 4 sigma / sqrt(2n) on the std."""
    base = load_config("baseline-ftj").replace(**NOISE_OFF)
    noisy = base.replace(**{"noise.out_noise": 0.5})
    r = np.random.default_rng(4)
    w = r.standard_normal((64, 128))
    d = r.integers(-127, 128, (200, 64))
    y0 = (d * AnalogTile(w, base).input_lsb) @ AnalogTile(w, base).w_norm
    codes, _ = AnalogTile(w, noisy).forward_codes(d, np.arange(200))
    lsb = converters.lsb(8, 10.0)
    err = (codes * lsb - y0).ravel()
    sigma = math.sqrt(0.5**2 + lsb**2 / 12)
    assert abs(err.std() - sigma) < 4 * sigma / math.sqrt(2 * err.size)
    assert abs(err.mean()) < 4 * sigma / math.sqrt(err.size)


def test_w_noise_scales_with_input_norm():
    """Additive-constant weight noise: output std = w_noise * ||x||_2 per vector."""
    cfg = load_config("baseline-ftj").replace(
        **{**NOISE_OFF, "noise.w_noise": 0.1, "adc.bits": 16, "adc.bound": 50.0}
    )
    w = np.zeros((100, 400))
    w[0] = 1.0
    tile = AnalogTile(w, cfg)
    x = np.zeros((2, 100))
    x[0, 1:] = 1.0  # ||x|| = sqrt(99) after DAC (code 127 -> 1.0)
    x[1, 1:5] = 1.0  # ||x|| = 2
    y, _ = tile.forward_float_stats(x, np.arange(2))
    for row, norm in ((0, math.sqrt(99)), (1, 2.0)):
        s = y[row].std()
        sigma = 0.1 * norm
        assert abs(s - sigma) < 4 * sigma / math.sqrt(2 * 400)


def test_adc_variants_latency_and_energy():
    assert converters.adc_latency_cycles("ramp", 8, 512) == 256
    assert converters.adc_latency_cycles("sar", 8, 512, share=8) == 64
    assert converters.adc_latency_cycles("ideal", 8, 512) == 1
    # 25 fJ/conv-step (thesis Table 2.1 median) x 2^8 steps = 6.4 pJ
    assert converters.adc_energy_per_conversion_j("sar", 8) == pytest.approx(6.4e-12)
    cfg = load_config("baseline-ftj").replace(**{"adc.kind": "sar", "adc.share": 4})
    tile = AnalogTile(np.ones((4, 16)), cfg)
    assert tile.adc_latency_cycles == 8 * 4
    assert tile.adc_energy_per_mvm_j == pytest.approx(16 * 6.4e-12)


def test_adc_mismatch_is_per_column_gain_and_offset():
    """Column c reads (1 + g_c) y + o_c LSB; fixed per (seed, layer, tile)."""
    cfg = load_config("baseline-ftj").replace(
        **NOISE_OFF,
        **{
            "adc.gain_mismatch_sigma": 0.05,
            "adc.offset_mismatch_sigma_lsb": 2.0,
            "adc.bits": 16,
            "adc.bound": 10.0,
        },
    )
    w = np.eye(32)
    d = np.diag(np.full(32, 10000))
    cfg = cfg.replace(**{"dac.bits": 16})
    tile = AnalogTile(w, cfg)
    codes, _ = tile.forward_codes(d, np.arange(32))
    lsb = tile.output_lsb
    y = 10000 * tile.input_lsb
    expected = np.floor(tile.adc_gain * y / lsb + tile.adc_offset_lsb + 0.5)  # gain = 1 + g_c
    # the code is a rounding of (1+g) y / lsb + o: exact up to float rounding of the product
    assert np.array_equal(np.diag(codes), expected)
    assert abs(np.std(tile.adc_gain) - 0.05) < 4 * 0.05 / math.sqrt(2 * 32)  # sample std, n=32
    assert np.array_equal(AnalogTile(w, cfg).adc_gain, tile.adc_gain)
    assert not np.array_equal(AnalogTile(w, cfg, tile=1).adc_gain, tile.adc_gain)


def test_weight_scaling_global_and_column():
    w = np.array([[1.0, 0.5], [-2.0, 0.25]])
    col = AnalogTile(w, load_config("baseline-ftj"))
    glob = AnalogTile(w, load_config("pcm"))
    assert np.allclose(col.w_scale, [2.0, 0.5]) and np.allclose(col.w_norm, [[0.5, 1], [-1, 0.5]])
    assert np.allclose(glob.w_scale, [2.0, 2.0]) and np.allclose(glob.w_norm * 2.0, w)
    clipped = AnalogTile(w, load_config("pcm").replace(**{"tile.w_clip": 0.5}))
    assert np.allclose(clipped.w_norm, [[1.0, 0.5], [-1.0, 0.25]])
    assert np.all(col.g_target >= 0) and np.all(col.g_target[0] * col.g_target[1] == 0)


def test_ideal_tile_is_float_matmul():
    cfg = load_config("ideal")
    r = np.random.default_rng(6)
    w = r.standard_normal((100, 40))
    x = r.uniform(-3, 3, (64, 100))
    y = AnalogTile(w, cfg).forward_float(x, np.arange(64))
    # 16-bit converters: each of 100 inputs carries <= 1/2 DAC step (1/32767 of max|x|) and
    # the output <= 1/2 ADC step (20/32767 of the NM scale); bound those errors
    bound = (100 * 0.5 / 32767 + 0.5 * 20 / 32767) * np.abs(x).max() * np.abs(w).max()
    assert np.max(np.abs(y - x @ w)) < bound


def test_tiled_matrix_splits_and_sums():
    cfg = load_config("ideal").replace(**{"tile.rows": 64, "tile.cols": 48})
    r = np.random.default_rng(7)
    w = r.standard_normal((150, 100))
    m = TiledMatrix(w, cfg, layer=3)
    assert len(m.tiles) == 3 and len(m.tiles[0]) == 3
    assert [s.stop - s.start for s in m.row_slices] == [64, 64, 22]
    assert len({t.tile for t in m.all_tiles()}) == 9
    x = r.uniform(-1, 1, (20, 150))
    m.program()
    m.drift(10.0)
    y = m.forward_float(x, np.arange(20))
    assert np.max(np.abs(y - x @ w)) < 3 * (64 * 0.5 / 32767 + 0.5 * 20 / 32767) * np.abs(w).max()


def test_bad_inputs_are_user_errors():
    cfg = load_config("pcm").replace(**{"tile.rows": 8, "tile.cols": 8})
    with pytest.raises(UserInputError, match="does not fit"):
        AnalogTile(np.ones((9, 2)), cfg)
    with pytest.raises(UserInputError, match="NaN"):
        AnalogTile(np.full((2, 2), np.nan), cfg)
    tile = AnalogTile(np.ones((4, 2)), cfg)
    with pytest.raises(UserInputError, match="range"):
        tile.forward_codes(np.full((1, 4), 64), np.array([0]))  # 7-bit DAC: max 63
    with pytest.raises(UserInputError, match="shape"):
        tile.forward_float(np.ones((2, 5)), np.arange(2))


def test_net_drift_mapping_collapses_the_pair_as_aihwkit():
    """``noise.drift_mapping = "net"``: drift and read noise act on the pair's NET
    programmed weight on one device (aihwkit's converter round trip).  A pair programmed to
    g+ = g- (net weight 0) then carries no conductance and reads exactly 0, while with
    "devices" both devices of that pair drift and read on their own and the weight is
    noisy.  Programming noise off keeps the pairs exactly where they were set."""
    cfg = load_config("pcm").replace(
        **{"noise.programming": False, "tile.rows": 8, "tile.cols": 8, "noise.out_noise": 0.0}
    )
    w = np.zeros((8, 8))
    w[0, 0] = 1.0  # one nonzero weight sets the scale
    tiles = {}
    for mapping in ("net", "devices"):
        t = AnalogTile(w, cfg.replace(**{"noise.drift_mapping": mapping}))
        t.program()
        # both devices of every zero-weight pair at half of g_max: net weight 0
        t.g_prog = t.g_prog.copy()
        t.g_prog[:, 1:, :] = 0.5 * t.g_max
        t.drift(3600.0)
        tiles[mapping] = t
    assert np.all(tiles["net"].w_eff[1:, :] == 0.0)
    # each device: 0.5 Q_s(0.5) sqrt(ln((t + t0) / 2 t_read)) = 0.033, the pair sqrt(2) more
    assert np.std(tiles["devices"].w_eff[1:, :]) > 0.02
    # the lone nonzero weight: the same drift law either way (the net pair IS that device)
    assert tiles["net"].w_eff[0, 0] == pytest.approx(tiles["devices"].w_eff[0, 0], rel=1e-12)


def test_forward_compensation_readout_is_the_tiles_own_forward():
    """``noise.compensation_readout = "forward"`` reads mean |y| of eye(rows) through the
    tile's forward pass with the reserved calibration ids; without output noise and with a
    fine ADC it equals the ideal readout, mean |W_eff|, within half an ADC step."""
    cfg = load_config("pcm").replace(
        **{"tile.rows": 64, "tile.cols": 32, "noise.compensation_readout": "forward"}
    )
    w = np.random.default_rng(5).standard_normal((64, 32))
    t = AnalogTile(w, cfg)
    t.program()
    t.drift(86400.0)
    read = 1 + 86400 * 1000
    ids = AnalogTile.CALIBRATION_IDS + np.arange(64) + 64 * read
    alpha = t.drift_alpha
    t.drift_alpha = 1.0
    manual = np.mean(np.abs(t.forward_float(np.eye(64), ids) / t.w_scale))
    t.drift_alpha = alpha
    assert alpha == t._baseline / manual
    quiet = AnalogTile(w, cfg.replace(**{"noise.out_noise": 0.0, "adc.bits": 24}))
    quiet.program()
    assert abs(quiet._readout(0) - np.mean(np.abs(quiet.w_eff))) <= 0.5 * quiet.output_lsb
