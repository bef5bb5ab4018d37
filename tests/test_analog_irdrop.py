"""IR drop: the exact nodal solve against hand formulas, and aihwkit's approximation
bounded by it.

First-order analysis (sense amplifier at row 0, wire conductance g per segment, device k
at position s = k/n): the column node voltage is v_k = (1/g) sum_{s<=k} I_through(s).  For
a uniform load this is (a/2)(1 - (1 - s)^2) with a = n I/g, aihwkit's profile.  The exact
drop of a column is sum_k G_k v_k, while aihwkit subtracts c(a) sum_k G_k x_k (1-(1-s_k)^2):
the two agree when every input is equal, and for independent inputs the approximation's
drop is E[x] / max(x) times the exact one.  The tests check both statements, with the
random-load fluctuation CV / sqrt(n) (CV: coefficient of variation of one device's
current) setting the tolerance.
"""

import math

import numpy as np
import pytest
from aimcflow.models.analog import irdrop
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.config import load_config


def test_exact_single_device_and_two_device_line_by_hand():
    g = 7.0
    # one device G between the driven row (x) and node 0; node 0 -> amplifier via g
    x = np.array([[0.8]])
    i = irdrop.exact(x, np.array([[0.5]]), np.zeros((1, 1)), g)
    assert i[0, 0] == pytest.approx(0.8 * 0.5 * g / (0.5 + g), rel=1e-12)
    # two devices on one line: eliminate node 1 by hand (KCL), solve node 0
    g0, g1, x0, x1 = 0.3, 0.9, 0.7, -0.4
    v0 = (g0 * x0 + g * g1 * x1 / (g1 + g)) / (g0 + 2 * g - g * g / (g1 + g))
    i = irdrop.exact(np.array([[x0, x1]]), np.array([[g0], [g1]]), np.zeros((2, 1)), g)
    assert i[0, 0] == pytest.approx(g * v0, rel=1e-12)
    # the G- line is subtracted
    i = irdrop.exact(np.array([[x0, x1]]), np.zeros((2, 1)), np.array([[g0], [g1]]), g)
    assert i[0, 0] == pytest.approx(-g * v0, rel=1e-12)


def test_exact_converges_to_ideal_and_2d_reduces_to_1d():
    r = np.random.default_rng(0)
    w = r.standard_normal((48, 20))
    gp, gn = np.maximum(w, 0), np.maximum(-w, 0)
    x = r.uniform(-1, 1, (5, 48))
    ideal = x @ w
    # wires 1e12 x stiffer than a device: relative error ~ n^2 / 1e12
    assert np.allclose(irdrop.exact(x, gp, gn, 1e12), ideal, rtol=0, atol=1e-8)
    one_d = irdrop.exact(x, gp, gn, 1e3)
    stiff_rows = irdrop.exact(x, gp, gn, 1e3, row_g_ratio=1e12)
    assert np.allclose(stiff_rows, one_d, rtol=0, atol=1e-8)
    soft_rows = irdrop.exact(x, gp, gn, 1e3, row_g_ratio=1e2)
    assert np.linalg.norm(soft_rows) < np.linalg.norm(one_d) < np.linalg.norm(ideal)


def _positive_problem(n, m, seed):
    r = np.random.default_rng(seed)
    w = np.abs(r.standard_normal((n, m)))
    return w / w.max(), r


@pytest.mark.parametrize("g_ratio", [1e5, 1e4])
def test_approx_matches_exact_for_equal_inputs(g_ratio):
    """x = 1 on every row: aihwkit's approximation is the first-order exact drop; the
    per-column error is the load fluctuation, <= 4 CV(G) / sqrt(n) of the drop."""
    n, m = 256, 64
    w, _ = _positive_problem(n, m, 1)
    x = np.ones((1, n))
    ideal = x @ w
    exact = irdrop.exact(x, w, np.zeros_like(w), g_ratio)
    approx = irdrop.approx(ideal, x, w, 1.0, g_ratio)
    drop = ideal - exact
    cv = w.std() / w.mean()
    assert np.all(drop > 0)
    assert np.max(np.abs(approx - exact) / drop) < 4 * cv / math.sqrt(n)


def test_approx_underestimates_drop_by_mean_input():
    """Inputs uniform on [0, 1]: approximation / exact drop = E[x] = 1/2 to first order,
    within 4 CV(G x) / sqrt(n) (CV(Gx)^2 = E[G^2] E[x^2] / (E[G] E[x])^2 - 1)."""
    n, m = 256, 64
    w, r = _positive_problem(n, m, 2)
    x = r.uniform(0, 1, (8, n))
    ideal = x @ w
    exact = irdrop.exact(x, w, np.zeros_like(w), 1e4)
    approx = irdrop.approx(ideal, x, w, 1.0, 1e4)
    ratio = (ideal - approx).sum() / (ideal - exact).sum()
    cv = math.sqrt((w**2).mean() * (1 / 3) / (w.mean() * 0.5) ** 2 - 1)
    assert abs(ratio - 0.5) < 4 * 0.5 * cv / math.sqrt(n)


def test_tile_exact_mode_uses_the_nodal_solve():
    cfg = load_config("ideal").replace(
        **{
            "tile.ir_drop": 1.0,
            "tile.ir_drop_mode": "exact",
            "tile.ir_drop_g_ratio": 1e4,
            "tile.rows": 64,
            "tile.cols": 16,
            "adc.bits": 24,
            "dac.bits": 24,
        }
    )
    r = np.random.default_rng(3)
    w = r.standard_normal((64, 16))
    tile = AnalogTile(w, cfg)
    d = r.integers(-(2**23) + 1, 2**23, (4, 64))
    codes, _ = tile.forward_codes(d, np.arange(4))
    x = d * tile.input_lsb
    gp, gn = np.maximum(tile.w_norm, 0), np.maximum(-tile.w_norm, 0)
    expected = np.floor(irdrop.exact(x, gp, gn, 1e4) / tile.output_lsb + 0.5)
    assert np.array_equal(codes, expected)
    assert not np.array_equal(codes, np.floor(x @ tile.w_norm / tile.output_lsb + 0.5))
