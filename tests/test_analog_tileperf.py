"""Speed paths of the analog tile must not change what it computes.

* bound management's first pass screens rows with an int8 product and skips the full
  pass for rows that saturate whatever it would add (``AnalogTile._screen``): outputs and
  pass counts must equal, bit for bit, those of the tile with the screen off;
* the IR-drop products as int8 products (``AnalogTile._ir_int8_setup``) stay within
  their stated error bound of the float64 formula, and the tile uses them only when that
  bound lies below float32's own rounding bound of the product;
* the compiled kernels (``models/analog/fused.py``) compute the formulas they replace:
  IR drop bit for bit against ``irdrop._apply``, the keyed normals against a float64
  evaluation of the same Box-Muller formula, the DAC and ADC against their definitions.
"""

import numpy as np
import pytest
from aimcflow.models import rng
from aimcflow.models.analog import fused, irdrop
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.config import load_config


def _all_on(**change):
    cfg = load_config("baseline-ftj").replace(
        **{
            "adc.kind": "sar",
            "adc.share": 8,
            "adc.gain_mismatch_sigma": 0.01,
            "adc.offset_mismatch_sigma_lsb": 0.5,
            "noise.read": True,
            "tile.rows": 256,
            "tile.cols": 128,
        }
    )
    return cfg.replace(**change) if change else cfg


def _inputs(r, n, rows):
    """Dense rows (saturate at full scale) and sparse rows (mostly do not), so both the
    skipped and the fully computed branch of the first pass are taken."""
    x = r.uniform(-1, 1, (n, rows))
    sparse = r.random(n) < 0.5
    x[sparse] *= r.random((int(sparse.sum()), rows)) < 0.15
    return x


@pytest.mark.parametrize(
    "change",
    [{}, {"mgmt.max_bm_factor": 1}, {"tile.ir_drop_g_ratio": 2e6}, {"tile.ir_drop": 0.0}],
)
def test_first_pass_screen_is_bit_exact(change):
    """Default FTJ tile (int8 IR drop), a last pass that must not skip (BM factor 1),
    a lossier wire (IR drop of ~4 LSB: float32 products, wider margin), no IR drop (and
    an odd column count: the noise row's cosine half is one longer than its sine half)."""
    cfg = _all_on(**change)
    r = np.random.default_rng(11)
    w = r.standard_normal((256, 128))
    if "tile.ir_drop" in change:
        w = w[:, :127]
    x = _inputs(r, 400, 256)
    img = r.permutation(5000)[:400]
    fast, full = AnalogTile(w, cfg, layer=2, tile=1), AnalogTile(w, cfg, layer=2, tile=1)
    for t in (fast, full):
        t.program()
        t.drift(3600.0)
    full._presat_ok = False
    assert fast._presat_ok and fast._ir_on == ("tile.ir_drop" not in change)
    assert (fast._ir_int8 is None) == ("tile.ir_drop_g_ratio" in change or not fast._ir_on)
    y_fast, p_fast = fast.forward_float_stats(x, img)
    y_full, p_full = full.forward_float_stats(x, img)
    assert np.array_equal(p_fast, p_full)
    assert np.array_equal(y_fast, y_full)
    # the screen really ran and both branches were taken in the first pass
    if change.get("mgmt.max_bm_factor") != 1:
        assert 0.0 < fast._presat_hits[0] < 1.0
    assert p_full.min() == 1 and p_full.max() >= 2


def test_screen_comes_back_after_inputs_that_never_saturate():
    """One-hot inputs (as the drift-compensation read) never saturate, so the screen
    pauses; data that saturates gets it back within 16 calls (speed only: the results
    are the same either way, test above)."""
    r = np.random.default_rng(18)
    tile = AnalogTile(r.standard_normal((256, 128)), _all_on())
    tile.forward_float(np.eye(256)[:40], np.arange(40))
    assert tile._presat_hits[0] == 0.0
    x = r.uniform(-1, 1, (50, 256))
    for _ in range(16):
        tile.forward_float(x, np.arange(50))
    assert tile._presat_hits[0] >= 0.05  # ran again, and stays on


def test_screen_off_for_exact_ir_drop():
    cfg = _all_on(**{"tile.ir_drop_mode": "exact", "tile.rows": 16, "tile.cols": 8})
    tile = AnalogTile(np.ones((16, 8)), cfg)
    assert tile._ir_on and not tile._presat_ok


def test_screen_product_within_its_bound():
    """The screen's int8 product differs from the float32 product the full pass computes
    by at most step * sum|c| * col_err (the bound ``AnalogTile._screen`` uses), and that
    bound is not vacuous: a tenth of it is exceeded somewhere."""
    import torch

    r = np.random.default_rng(14)
    tile = AnalogTile(r.standard_normal((256, 128)), _all_on())
    codes = r.integers(-127, 128, (300, 256)).astype(np.int8)
    step = np.float32(tile.input_lsb)
    xq = codes.astype(np.float32) * step
    y32 = xq @ tile._w32
    acc = torch._int_mm(torch.from_numpy(codes), tile._q8_t).numpy()
    approx = acc * (float(step) * tile._q8_scale)
    col_err = tile._q8_err + (256 + 2) * 2 * 2.0**-24 * tile._q8_maxabs
    bound = np.abs(codes.astype(np.int64)).sum(axis=1)[:, None] * float(step) * col_err
    err = np.abs(approx - y32)
    assert np.all(err <= bound)
    assert np.any(err > 0.1 * bound)


def _ir_int8_correction(tile, x):
    """The int8 path's corrected output for DAC-grid inputs x (R, rows) float64, via the
    kernel the tile uses, and the float64 reference correction."""
    import torch

    step = np.float32(tile.input_lsb)
    codes = np.rint(x / float(step)).astype(np.int8)
    xq = codes.astype(np.float32) * step
    qa, qp, fa, fp = tile._ir_int8_ops
    a = torch._int_mm(torch.from_numpy(np.abs(codes)), qa).numpy()
    p = torch._int_mm(torch.from_numpy(codes), qp).numpy()
    y32 = xq @ tile._w32
    got = fused.ir_drop_rows(
        y32, a, p, fa, fp, np.float32(tile.rows / tile.g_ratio), np.float32(tile.cfg.tile.ir_drop)
    )
    xq64 = xq.astype(np.float64)
    w64 = tile._w32.astype(np.float64)
    ref = irdrop.approx(xq64 @ w64, xq64, w64, tile.cfg.tile.ir_drop, tile.g_ratio)
    return got, ref, y32, xq64 @ w64


def test_int8_ir_drop_within_stated_bound():
    """|int8 path - approx (float64)| <= _ir_int8_err per column (the bound derived in
    AnalogTile._ir_int8_setup) plus float32 rounding of the product itself (|y32 - y|)
    and of the final subtraction (2 ulp of |y|).  g_ratio 1e4 makes the correction large
    (a ~ 1.7); rows x = sign(W[:, k]) reach column k's worst case, where leaving the
    correction out exceeds the bound, so the check is not met vacuously."""
    r = np.random.default_rng(12)
    cfg = _all_on(**{"tile.ir_drop_g_ratio": 1e4, "device.preset": "ideal"})
    tile = AnalogTile(r.standard_normal((256, 128)), cfg)
    assert tile._ir_on and tile._ir_int8 is None  # far above float32's bound: not used
    assert np.all(np.isfinite(tile._ir_int8_err))
    worst = np.where(tile._w32[:, :40].T >= 0, 1.0, -1.0)
    x = np.concatenate([worst, np.round(r.uniform(-1, 1, (160, 256)) * 127) / 127])
    got, ref, y32, y = _ir_int8_correction(tile, x)
    bound = tile._ir_int8_err + np.abs(y32 - y) + 2 * np.finfo(np.float32).eps * np.abs(ref)
    err = np.abs(got - ref)
    assert np.all(err <= bound)
    # a worst-case bound (every rounding error of one sign); observed ~1/17 of it
    assert np.any(err > 0.02 * bound)
    k = np.arange(40)
    assert np.all(np.abs(ref - y)[k, k] > bound[k, k])


def test_tile_uses_int8_only_below_float32_bound():
    w = np.random.default_rng(13).standard_normal((256, 128))
    ftj = AnalogTile(w, _all_on())
    assert ftj._ir_on and ftj._ir_int8 is not None
    colsum = np.abs(ftj.w_eff).sum(axis=0)
    assert np.all(ftj._ir_int8_err <= 256 * 2.0**-24 * colsum * ftj.cfg.dac.bound)
    # a lossy wire: the worst-case correction is ~tens of LSB, int8 would not do
    lossy = AnalogTile(w, _all_on(**{"tile.ir_drop_g_ratio": 1e3}))
    assert lossy._ir_on and lossy._ir_int8 is None


def test_ir_kernel_is_irdrop_apply_bit_for_bit():
    """float32 products (the tile's fallback): the kernel's correction equals
    irdrop._apply's float32 evaluation exactly."""
    r = np.random.default_rng(15)
    n, g = 256, 3e4
    y = r.standard_normal((50, 64)).astype(np.float32)
    a = np.abs(r.standard_normal((50, 64)).astype(np.float32)) * 40
    p = r.standard_normal((50, 64)).astype(np.float32)
    ones = np.ones(64)
    got = fused.ir_drop_rows(y, a, p, ones, ones, np.float32(n / g), np.float32(0.7))
    ref = irdrop._apply(y, a.copy(), p.copy(), n, 0.7, g)
    assert np.array_equal(got, ref)
    assert not np.array_equal(got, y)


def test_splitmix_finalizer_known_answer():
    """SplitMix64 with state 0: the first output is mix(GOLDEN) = 0xE220A8397B1DCDAF
    (Vigna's reference splitmix64.c)."""
    assert int(fused._mix(np.uint64(0x9E3779B97F4A7C15))) == 0xE220A8397B1DCDAF


def test_keyed_normal_is_box_muller_of_keyed_bits():
    """The kernel's normals equal the Box-Muller formula of models/rng.py evaluated with
    numpy's float64 log, cos and sin (each rounded to float32 once, as the kernel does)
    on the same keyed words: 10^5 values, at most 1 float32 ulp apart (the kernels'
    float64 error, < 1e-15, can flip a float32 rounding only at a near-tie)."""
    rows = np.arange(400) * 7 + 3
    z = rng.keyed_normal(5, "out", (1, 2, 3), rows, 501)
    bits = rng.keyed_bits(5, "out", (1, 2, 3), rows, 251)
    u1 = ((bits >> np.uint64(40)) + np.uint64(1)).astype(np.float32) * np.float32(2.0**-24)
    u2 = (bits & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(2.0**-24)
    lg = np.log(u1.astype(np.float64)).astype(np.float32)
    r = np.sqrt(lg * np.float32(-2.0))
    phi = (u2 * np.float32(2.0 * np.pi)).astype(np.float64)
    ref = np.concatenate(
        [r * np.cos(phi).astype(np.float32), r * np.sin(phi).astype(np.float32)], axis=1
    )[:, :501]
    ulp = np.spacing(np.abs(ref))
    assert np.all(np.abs(z - ref) <= ulp)
    # and add_keyed_normal adds exactly sigma-scaled copies of the same generator
    y = np.zeros((400, 501), np.float32)
    rng.add_keyed_normal(y, np.float32(1.0), 5, "out", (1, 2, 3), rows)
    assert np.array_equal(y, z)


def test_dac_kernel_is_the_quantizer():
    """fused.dac: xq = clip(floor(x f + 1/2) step, +-bound) in float32 with f =
    f32(prescale / step); codes are those integers (clipped), |codes| and their row sums."""
    r = np.random.default_rng(16)
    x = r.uniform(-1.3, 1.3, (40, 33))
    rows = np.array([3, 0, 39, 7])
    pre = np.array([1.0, 0.5, 2.0, 1.7], np.float32)
    step, bound, cmax = np.float32(1 / 127), np.float32(1.0), np.float32(127)
    xq = np.empty((4, 33), np.float32)
    codes = np.empty((4, 33), np.int8)
    ab = np.empty((4, 33), np.int8)
    l1 = fused.dac(x, rows, pre, step, bound, cmax, xq, codes, ab)
    f = (pre / step)[:, None]
    q = np.floor(x[rows].astype(np.float32) * f + np.float32(0.5))
    assert np.array_equal(xq, np.clip(q * step, -bound, bound))
    assert np.array_equal(codes, np.clip(q, -127, 127).astype(np.int8))
    assert np.array_equal(ab, np.abs(codes)) and np.array_equal(l1, np.abs(q).clip(0, 127).sum(1))
    assert np.abs(q).max() > 127  # clipping is exercised


def test_adc_tail_is_round_half_up_and_clip():
    """pass_tail without IR drop and noise: codes floor(((y g) + off) / LSB + 1/2) in
    float32, saturation iff a code lies beyond +-cmax, output code * rowscale * colf."""
    r = np.random.default_rng(17)
    y = (r.standard_normal((30, 20)) * 30).astype(np.float32)
    y[10:20] *= 6  # these rows saturate, the others hardly
    gain = (1 + 0.01 * r.standard_normal(20)).astype(np.float32)
    off = (0.3 * r.standard_normal(20)).astype(np.float32)
    colf = r.uniform(0.5, 2, 20).astype(np.float32)
    rowscale = r.uniform(0.5, 2, 30).astype(np.float32)
    y[0, :2], gain[:2], off[:2] = (2.5, -2.5), 1, 0  # exact ties: half up, to 3 and -2
    out = np.zeros((35, 20))
    rows = np.arange(30) + 5
    ones = np.ones(20)
    k = np.uint64(0)
    sat = fused.pass_tail(
        y, y, y, ones, ones, False, np.float32(0), np.float32(0), False, k, k,
        rows, np.zeros(30, np.float32), gain, off, np.float32(1.0), np.float32(127.0),
        rowscale, out, rows, colf,
    )  # fmt: skip
    v = y * gain + off
    codes = np.floor(v + np.float32(0.5))
    assert np.array_equal(sat, (np.abs(codes) > 127).any(axis=1)) and sat.any() and not sat.all()
    expect = np.clip(codes, -127, 127) * rowscale[:, None]
    assert np.array_equal(out[5:], expect.astype(np.float64) * colf.astype(np.float64))
    assert np.all(out[:5] == 0)
    assert out[5, 0] == np.float32(3 * rowscale[0]) * np.float64(colf[0])
    assert out[5, 1] == np.float32(-2 * rowscale[0]) * np.float64(colf[1])
