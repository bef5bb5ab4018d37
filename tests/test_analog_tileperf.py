"""Speed paths of the analog tile must not change what it computes.

* bound management's first pass skips the IR-drop correction for rows that saturate
  whatever it adds (``AnalogTile._surely_saturated``): outputs and pass counts must equal,
  bit for bit, those of the tile with the shortcut off;
* the IR-drop products in bfloat16 (``irdrop.approx_bf16``) stay within their stated
  error bound of the float64 formula, and the tile uses them only when that bound lies
  below float32's own rounding bound of the product.
"""

import numpy as np
import pytest
from aimcflow.models.analog import irdrop
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


@pytest.mark.parametrize("change", [{}, {"mgmt.max_bm_factor": 1}, {"tile.ir_drop_g_ratio": 2e7}])
def test_first_pass_shortcut_is_bit_exact(change):
    """Default FTJ tile (bfloat16 IR drop), a last pass that must not skip (BM factor 1),
    and a lossier wire (IR drop of a few LSB: float32 products, wider margin)."""
    cfg = _all_on(**change)
    r = np.random.default_rng(11)
    w = r.standard_normal((256, 128))
    x = _inputs(r, 400, 256)
    img = r.permutation(5000)[:400]
    fast, full = AnalogTile(w, cfg, layer=2, tile=1), AnalogTile(w, cfg, layer=2, tile=1)
    for t in (fast, full):
        t.program()
        t.drift(3600.0)
    full._presat_ok = False
    assert fast._presat_ok and fast._ir_on
    y_fast, p_fast = fast.forward_float_stats(x, img)
    y_full, p_full = full.forward_float_stats(x, img)
    assert np.array_equal(p_fast, p_full)
    assert np.array_equal(y_fast, y_full)
    # the shortcut really ran and both branches were taken in the first pass
    assert 0.0 < fast._presat_hits[0] < 1.0
    assert p_full.min() == 1 and p_full.max() >= 2


def test_shortcut_off_for_exact_ir_drop():
    cfg = _all_on(**{"tile.ir_drop_mode": "exact", "tile.rows": 16, "tile.cols": 8})
    tile = AnalogTile(np.ones((16, 8)), cfg)
    assert tile._ir_on and not tile._presat_ok


def test_bf16_ir_drop_within_stated_bound():
    """|approx_bf16 - approx (float64)| <= BF16_REL_ERROR * scale * c(a) * sum|x prof||w|
    per element (the bound derived in irdrop.approx_bf16), plus float32 rounding of the
    final subtraction (2 ulp of |y|).  g_ratio 1e4 makes the correction large (a ~ 1) so
    the bound is not met by leaving the correction out."""
    r = np.random.default_rng(12)
    n, m, scale, g = 256, 64, 1.0, 1e4
    w = r.standard_normal((n, m)) / 3
    x = np.round(r.uniform(-1, 1, (200, n)) * 127) / 127
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    prof = irdrop.profile(n)
    y32 = x32 @ w32
    ref = irdrop.approx(x @ w, x, w, scale, g)
    import torch

    got = irdrop.approx_bf16(
        y32,
        x32,
        torch.from_numpy(w32).to(torch.bfloat16),
        torch.from_numpy(np.abs(w32)).to(torch.bfloat16),
        prof.astype(np.float32),
        scale,
        g,
    )
    a = n / g * (np.abs(x) @ np.abs(w))
    worst = scale * a * (0.5 + a * (-0.2 + 0.05 * a)) * (np.abs(x * prof) @ np.abs(w))
    bound = (
        irdrop.BF16_REL_ERROR * worst
        + 2 * np.finfo(np.float32).eps * np.abs(ref)
        + np.abs(y32 - x @ w)
    )  # y32's own float32 rounding enters both sides
    err = np.abs(got - ref)
    assert np.all(err <= bound)
    corr = np.abs(ref - x @ w)
    assert np.mean(corr > bound) > 0.5  # leaving the correction out would break the bound


def test_tile_uses_bf16_only_below_float32_bound():
    w = np.random.default_rng(13).standard_normal((256, 128))
    ftj = AnalogTile(w, _all_on())
    assert ftj._ir_on and ftj._ir_bf16 is not None
    # a lossy wire: the worst-case correction is ~tens of LSB, bfloat16 would not do
    lossy = AnalogTile(w, _all_on(**{"tile.ir_drop_g_ratio": 1e3}))
    assert lossy._ir_on and lossy._ir_bf16 is None
