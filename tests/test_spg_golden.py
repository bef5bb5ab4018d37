"""Golden model of the stochastic pulse generator against SPEC.md, re-derived here with
exact rational arithmetic (not with the model's own helpers)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery import spg

P = spg.SpgParams()


def q_reference(v: int, gain: int, p: spg.SpgParams) -> int:
    """SPEC: q = min(2**P, |v|/2**(vb-1) * gain/2**gf * 2**P), rounded half up."""
    exact = Fraction(abs(v) * gain * 2**p.prob_bits, 2 ** (p.value_bits - 1 + p.gain_frac))
    return min(2**p.prob_bits, math.floor(exact + Fraction(1, 2)))


@pytest.mark.parametrize(
    "p", [P, spg.SpgParams(value_bits=6, gain_bits=12, gain_frac=10, prob_bits=8, max_bl=15)]
)
def test_translator_matches_exact_rational(p):
    rng = np.random.default_rng(3)
    lo, hi = -(1 << (p.value_bits - 1)), (1 << (p.value_bits - 1))
    v = np.concatenate([[lo, hi - 1, 0, 1, -1], rng.integers(lo, hi, 3000)])
    g = np.concatenate([[p.gain_max, p.gain_max, 0, 1, 1], rng.integers(0, p.gain_max + 1, 3000)])
    got = spg.translate(v, g, p)
    want = np.array([q_reference(int(a), int(b), p) for a, b in zip(v, g, strict=True)])
    np.testing.assert_array_equal(got, want)


def test_signs_zero_is_positive():
    np.testing.assert_array_equal(spg.sign_of([-3, 0, 5, -128]), [-1, 1, 1, -1])


def test_probability_one_and_zero():
    """q = 2**P pulses in every slot, q = 0 never (v = 0 or gain = 0)."""
    x = np.array([[127, 0, -128]])
    out = spg.generate(x, np.array([[5]]), [1 << P.gain_frac << 2], [0], 40, seed=9)
    assert out.row_pulses[0, :, 0].all() and out.row_pulses[0, :, 2].all()  # gain 4: q saturates
    assert not out.row_pulses[0, :, 1].any()
    assert not out.col_pulses.any()


def test_stochastic_slots_compare_lane_random_numbers():
    """Slot t of lane k pulses iff low P bits of T**t(seed_k) < q_k."""
    rng = np.random.default_rng(5)
    x, d = rng.integers(-128, 128, (3, 4)), rng.integers(-128, 128, (3, 2))
    gx, gd = rng.integers(0, 700, 3), rng.integers(0, 700, 3)
    bl = 6
    out = spg.generate(x, d, gx, gd, bl, seed=77)
    states = [int(s) for s in spg.lane_seeds(77, 6)]
    q = np.concatenate([spg.translate(x, gx[:, None], P), spg.translate(d, gd[:, None], P)], 1)
    pulses = np.concatenate([out.row_pulses, out.col_pulses], axis=2)
    for v in range(3):
        for t in range(bl):
            for k in range(6):
                assert pulses[v, t, k] == int((states[k] & 0xFFFF) < q[v, k])
            states = [spg._step_int(s) for s in states]


def test_deterministic_count_and_even_spread():
    """round(bl*q/2**P) pulses (half up); after t slots exactly floor(t*n/bl) have fired."""
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (50, 7))
    gx = rng.integers(0, 600, 50)
    for bl in (1, 7, 31, 255):
        out = spg.generate(
            x, np.zeros((50, 1), int), gx, np.zeros(50, int), bl, seed=3, deterministic=True
        )
        q = spg.translate(x, gx[:, None], P)
        n = np.floor(q * bl / 2**P.prob_bits + 0.5).astype(
            np.int64
        )  # exact in float64: q*bl < 2**53
        counts = out.row_pulses.sum(axis=1)
        np.testing.assert_array_equal(counts, n)
        cum = np.cumsum(out.row_pulses, axis=1)  # (V, bl, R)
        t = np.arange(1, bl + 1)[None, :, None]
        np.testing.assert_array_equal(cum, (t * n[:, None, :]) // bl)


def test_state_carries_over_between_calls():
    rng = np.random.default_rng(2)
    x, d = rng.integers(-128, 128, (8, 5)), rng.integers(-128, 128, (8, 3))
    g = rng.integers(0, 600, 8)
    whole = spg.generate(x, d, g, g, 9, seed=11)
    gen = spg.PulseGenerator(5, 3, 11)
    parts = [
        gen.generate(x[i : i + 2], d[i : i + 2], g[i : i + 2], g[i : i + 2], 9)
        for i in (0, 2, 4, 6)
    ]
    np.testing.assert_array_equal(whole.row_pulses, np.concatenate([o.row_pulses for o in parts]))
    np.testing.assert_array_equal(whole.col_pulses, np.concatenate([o.col_pulses for o in parts]))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"bl": 0}, "bl = 0 is out of range"),
        ({"bl": 256}, "bl = 256 is out of range; allowed: 1 .. 255"),
        ({"gain_x": [1 << 16]}, "gain_x = 65536 overflows"),
        ({"gain_d": [-1]}, "gain_d = -1 overflows"),
        ({"x": [[128]]}, "x holds 128, outside"),
        ({"seed": 1 << 32}, "seed 4294967296 is out of range"),
    ],
)
def test_bad_input_is_user_error(kw, match):
    args = {"x": [[1]], "d": [[1]], "gain_x": [256], "gain_d": [256], "bl": 4, "seed": 1}
    args.update(kw)
    with pytest.raises(UserInputError, match=match):
        spg.generate(**args)
