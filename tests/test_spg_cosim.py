"""The Verilated SPG (cocotb bench ``cosim/benches/spg.py``) against the golden model, bit
for bit, and statistical checks on the RTL's own pulse trains."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.cosim.benches import spg as bench
from aimcflow.models.periphery import spg as golden
from scipy import stats

pytestmark = pytest.mark.cosim

ROWS, COLS = (
    33,
    10,
)  # digits MLP last layer (32 hidden + bias row): one build for tests and training
PARAMS = bench.rtl_params(ROWS, COLS, golden.SpgParams())


@pytest.fixture(scope="module")
def build():
    return bench.build_spg(PARAMS)


def _segment(rng, seed: int, updates: int, bl: int) -> dict:
    x = rng.integers(-128, 128, (updates, ROWS))
    d = rng.integers(-128, 128, (updates, COLS))
    x[0, :2] = [-128, 127]
    return {
        "seed": seed,
        "x": x,
        "d": d,
        # gains 0..3.0 in 8.8: probabilities over the whole range, some saturating
        "gain_x": rng.integers(0, 3 * 256, updates),
        "gain_d": rng.integers(0, 3 * 256, updates),
        "bl": bl,
        "deterministic": rng.random(updates) < 0.2,
    }


@pytest.mark.parametrize("scale", [1, pytest.param(10, marks=pytest.mark.slow, id="soak")])
def test_bit_exact_random_inputs_and_seeds(build, scale):
    """>= 20 000 updates over 9 seeds (0 and 2**32-1 included), BL from 1 to 255, stochastic
    and deterministic updates mixed, random valid gaps and ready backpressure; ``make soak``
    (the slow case) runs ten times as many."""
    rng = np.random.default_rng(2024)
    plan = [(0, 1), (1, 2), (0xFFFFFFFF, 1), (7, 3), (12345, 2), (99, 1), (5, 4), (3, 2)]
    segs = [_segment(rng, s, 2500 * scale, bl) for s, bl in plan]
    segs.append(_segment(rng, 424242, 20, 255))
    gmax = (1 << PARAMS.gain_bits) - 1
    segs[1]["gain_x"][:5] = gmax  # the largest gain the translator takes
    outs, res = bench.simulate(PARAMS, segs, check=True, p_valid=0.8, p_ready=0.7, build=build)
    assert res.result["mismatches"] == 0
    # seed/update/slot handshakes of the module docstring, every cycle under random stalls
    assert not any(res.result["handshake_violations"].values()), res.result["handshake_violations"]
    assert res.result["handshake_checked"] > res.result["updates"]
    updates = sum(len(s["x"]) for s in segs)
    assert res.result["updates"] == updates >= 20_000
    for s, o in zip(segs, outs, strict=True):  # and once more outside the bench
        g = bench.golden_segment(PARAMS, s)
        np.testing.assert_array_equal(o.row_pulses, g.row_pulses)
        np.testing.assert_array_equal(o.col_pulses, g.col_pulses)
        np.testing.assert_array_equal(o.row_sign, g.row_sign)
        np.testing.assert_array_equal(o.col_sign, g.col_sign)


def test_statistics_of_rtl_pulse_trains(build):
    """One seed, fixed inputs, 400 updates of BL 255 = 102 000 slots per lane."""
    U, BL = 400, 255
    x = np.linspace(-127, 127, ROWS).round().astype(np.int64)
    d = np.array([0, 3, -16, 40, -64, 90, -100, 120, -127, 127])
    x[5] = 0
    seg = {
        "seed": 0xC0FFEE,
        "x": np.tile(x, (U, 1)),
        "d": np.tile(d, (U, 1)),
        "gain_x": np.full(U, 256),
        "gain_d": np.full(U, 256 + 128),
        "bl": BL,
        "deterministic": np.zeros(U, bool),
    }
    (out,), _ = bench.simulate(PARAMS, [seg], build=build)
    g = bench.golden_segment(PARAMS, seg)
    np.testing.assert_array_equal(out.row_pulses, g.row_pulses)

    n = U * BL
    pulses = np.concatenate([out.row_pulses, out.col_pulses], axis=2).reshape(n, -1).astype(float)
    q = np.concatenate(
        [
            golden.translate(x, 256, golden.SpgParams()),
            golden.translate(d, 256 + 128, golden.SpgParams()),
        ]
    )
    p = q / 2**16
    lanes = pulses.shape[1]

    # 1. rate per lane: exact binomial CI (Clopper-Pearson), Bonferroni over the lanes at a
    #    family-wise level of 1e-4; p = 0 and p = 1 lanes must be exactly silent/always on.
    alpha = 1e-4 / lanes
    k = pulses.sum(axis=0)
    for lane in range(lanes):
        if p[lane] in (0.0, 1.0):
            assert k[lane] == p[lane] * n
            continue
        ci = stats.binomtest(int(k[lane]), n, p[lane]).proportion_ci(1 - alpha, "exact")
        assert ci.low <= p[lane] <= ci.high, f"lane {lane}: rate {k[lane] / n} vs p {p[lane]}"

    # 2. correlation between lanes: under independence rho ~ N(0, 1/n).  Every pair must be
    #    within 4.5/sqrt(n) (Bonferroni over the pairs: P(any) < 861 * 6.8e-6 = 0.6 %), and
    #    the number beyond 3/sqrt(n) must fit Binomial(pairs, 0.0027) at its 99.99 % quantile.
    live = (p > 0) & (p < 1)
    rho = np.corrcoef(pulses[:, live], rowvar=False)
    iu = np.triu_indices(int(live.sum()), 1)
    r = np.abs(rho[iu])
    assert r.max() <= 4.5 / np.sqrt(n), f"max |rho| {r.max():.4g}"
    beyond = int((r > 3 / np.sqrt(n)).sum())
    assert beyond <= stats.binom.ppf(0.9999, r.size, 2 * stats.norm.sf(3))

    # 3. coincidences per update: mean of sum_t a_i(t) b_j(t) = BL p_i p_j, per update the
    #    variance is BL p_i p_j (1 - p_i p_j); tolerance 4.5 sigma of the mean of U updates.
    counts = np.einsum(
        "utr,utc->urc", out.row_pulses.astype(np.int64), out.col_pulses.astype(np.int64)
    )
    pij = np.outer(p[:ROWS], p[ROWS:])
    mean = counts.mean(axis=0)
    sigma = np.sqrt(BL * pij * (1 - pij) / U)
    exact = (pij == 0) | (pij == 1)
    np.testing.assert_array_equal(mean[exact], (BL * pij)[exact])
    z = np.abs(mean - BL * pij)[~exact] / sigma[~exact]
    assert z.max() <= 4.5, f"coincidence mean off by {z.max():.2f} sigma"
