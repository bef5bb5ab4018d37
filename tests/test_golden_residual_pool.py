"""Golden models of the residual add and pooling against docs/SPEC.md evaluated directly.

The reference here is the SPEC's formulas written element by element in Python integers
(and ``fractions.Fraction`` for exact rounding), independent of the vectorized models;
window semantics are also checked against torch's own pooling.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.pool import (
    PoolCoeffs,
    PoolParams,
    adaptive_avg_1x1,
    avg_coeffs,
    pool,
)
from aimcflow.models.periphery.residual import (
    ResidualCoeffs,
    ResidualParams,
    input_range,
    residual_add,
    residual_coeffs,
)


def round_half_up(q: Fraction) -> int:
    return int((q + Fraction(1, 2)).__floor__())


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def ref_activation(s: int, p) -> int:
    if p.activation == "none":
        return s
    if p.activation == "relu":
        return max(s, 0)
    if p.activation == "leaky":
        return s if s >= 0 else round_half_up(Fraction(s, 2**p.leaky_k))
    return clamp(s, p.clamp_lo, p.clamp_hi)


def ref_out(v: int, bits: int, signed: bool) -> int:
    if signed:
        return clamp(v, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return clamp(v, 0, 2**bits - 1)


def ref_residual(a: int, b: int, p: ResidualParams, c: ResidualCoeffs) -> int:
    z = round_half_up(Fraction(a * c.mult_a + b * c.mult_b, 2**c.shift))
    s = clamp(z, -(2**p.out_bits), 2**p.out_bits - 1)
    return ref_out(ref_activation(s, p), p.out_bits, p.out_signed)


@pytest.mark.parametrize("act", ["none", "relu", "leaky", "clamp"])
@pytest.mark.parametrize("signs", [(False, False, False), (True, False, True), (True, True, False)])
def test_residual_matches_formula(act, signs):
    rng = np.random.default_rng(hash((act, signs)) % 2**32)
    a_s, b_s, o_s = signs
    p = ResidualParams(
        in_bits=6,
        a_signed=a_s,
        b_signed=b_s,
        mult_bits=8,
        out_bits=5,
        out_signed=o_s,
        activation=act,
        leaky_k=2,
        clamp_lo=-7,
        clamp_hi=9,
    )
    for _ in range(6):
        c = ResidualCoeffs(
            int(rng.integers(-128, 128)), int(rng.integers(-128, 128)), int(rng.integers(0, 12))
        )
        a = rng.integers(*input_range(6, a_s), size=200, endpoint=True)
        b = rng.integers(*input_range(6, b_s), size=200, endpoint=True)
        y = residual_add(a, b, p, c)
        exp = [ref_residual(int(x), int(z), p, c) for x, z in zip(a, b, strict=True)]
        assert y.tolist() == exp


def test_residual_rails_and_ties():
    p = ResidualParams(
        in_bits=8, a_signed=True, b_signed=True, out_bits=8, out_signed=True, activation="none"
    )
    # both rails: the largest and smallest sums saturate to the signed output range
    c = ResidualCoeffs(mult_a=32767, mult_b=32767, shift=0)
    assert residual_add([127, -128], [127, -128], p, c).tolist() == [127, -128]
    # ties round half up: 3/2 -> 2, -3/2 -> -1, -1/2 -> 0, 1/2 -> 1
    c = ResidualCoeffs(mult_a=1, mult_b=0, shift=1)
    assert residual_add([3, -3, -1, 1], [0, 0, 0, 0], p, c).tolist() == [2, -1, 0, 1]
    # unsigned relu output: negative sums rail at 0, big ones at 255
    pu = ResidualParams(in_bits=8, out_bits=8, out_signed=False, activation="relu")
    c = ResidualCoeffs(mult_a=2, mult_b=-3, shift=0)
    assert residual_add([255, 0], [0, 255], pu, c).tolist() == [255, 0]
    # leaky acts on the value saturated to out_bits + 1 (SPEC): -2**out_bits, not z
    pl = ResidualParams(
        in_bits=8, a_signed=True, out_bits=8, out_signed=True, activation="leaky", leaky_k=1
    )
    c = ResidualCoeffs(mult_a=100, mult_b=0, shift=0)
    assert residual_add([-128], [0], pl, c).tolist() == [-128]  # leaky(-256) = -128


def test_residual_coeffs_calibration():
    p = ResidualParams(mult_bits=16)
    c = residual_coeffs(0.5, 0.25, 1.0, p)
    assert c.mult_a * 2 == c.mult_b * 4 == 2**c.shift  # exact for power-of-two ratios
    assert c.mult_a <= 2**15 - 1 and c.mult_a * 2 > 2**15 - 1  # the largest shift that fits
    c = residual_coeffs(0.3, 0.07, 0.11, p)
    for r, m in ((0.3 / 0.11, c.mult_a), (0.07 / 0.11, c.mult_b)):
        assert abs(m / 2**c.shift - r) <= 2.0 ** -(c.shift + 1)
    with pytest.raises(UserInputError, match="exceed"):
        residual_coeffs(1e6, 1.0, 1.0, p)
    with pytest.raises(UserInputError, match="scale_y"):
        residual_coeffs(1.0, 1.0, 0.0, p)


def test_residual_bad_input():
    p = ResidualParams(in_bits=4, a_signed=False)
    c = ResidualCoeffs(1, 1, 0)
    with pytest.raises(UserInputError, match="a: value 16 outside unsigned"):
        residual_add([16], [0], p, c)
    with pytest.raises(UserInputError, match="shape"):
        residual_add([1, 2], [1], p, c)
    with pytest.raises(UserInputError, match="mult_a"):
        residual_add([1], [1], p, ResidualCoeffs(2**15, 0, 0))
    with pytest.raises(UserInputError, match="shift"):
        residual_add([1], [1], p, ResidualCoeffs(1, 0, p.shift_max + 1))


# ------------------------------------------------------------------------------ pooling
def ref_pool(x, kind, window, stride, padding, p: PoolParams, c: PoolCoeffs | None):
    V, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = window, stride, padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((V, C, Ho, Wo), np.int64)
    for v, ch, i, j in itertools.product(range(V), range(C), range(Ho), range(Wo)):
        vals = [
            int(x[v, ch, r, q])
            for r in range(i * sh - ph, i * sh - ph + kh)
            for q in range(j * sw - pw, j * sw - pw + kw)
            if 0 <= r < H and 0 <= q < W
        ]
        if kind == "max":
            y[v, ch, i, j] = max(vals)
        else:
            z = round_half_up(Fraction(sum(vals) * c.mult, 2**c.shift))
            y[v, ch, i, j] = ref_out(z, p.bits, p.signed)
    return y


CASES = [  # window, stride, padding, H, W
    ((2, 2), (2, 2), (0, 0), 6, 6),
    ((3, 3), (2, 2), (1, 1), 7, 5),
    ((3, 2), (1, 2), (1, 0), 5, 6),
    ((1, 1), (2, 2), (0, 0), 5, 5),
    ((5, 5), (1, 1), (0, 0), 5, 5),
]


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_pool_matches_formula(case, signed):
    window, stride, padding, H, W = case
    p = PoolParams(bits=6, signed=signed, mult_bits=10, max_window=32)
    rng = np.random.default_rng(H * 10 + W + signed)
    x = rng.integers(*input_range(6, signed), size=(2, 3, H, W), endpoint=True)
    got = pool(x, "max", window, stride, p, padding=padding)
    assert np.array_equal(got, ref_pool(x, "max", window, stride, padding, p, None))
    for c in (avg_coeffs(window[0] * window[1], p), PoolCoeffs(-300, 9), PoolCoeffs(511, 2)):
        got = pool(x, "avg", window, stride, p, c, padding=padding)
        assert np.array_equal(got, ref_pool(x, "avg", window, stride, padding, p, c))


def test_pool_windows_match_torch():
    """Window/stride/padding as torch: max exactly, and avg for a power-of-two divisor
    (exact in float) rounded half up."""
    import torch
    import torch.nn.functional as F

    p = PoolParams(bits=8, signed=True)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(2, 4, 9, 8))
    t = torch.from_numpy(x.astype(np.float64))
    for k, s, pad in (((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)), ((2, 4), (1, 3), (1, 2))):
        exp = F.max_pool2d(t, k, s, pad).numpy()
        assert np.array_equal(pool(x, "max", k, s, p, padding=pad), exp)
        avg = F.avg_pool2d(t, k, s, pad).numpy()  # count_include_pad=True
        got = pool(x, "avg", k, s, p, avg_coeffs(k[0] * k[1], p), padding=pad)
        assert np.array_equal(got, np.floor(avg + 0.5).astype(np.int64))
    got = adaptive_avg_1x1(x[:, :, :8, :8], p)
    exp = np.floor(F.adaptive_avg_pool2d(t[:, :, :8, :8], 1).numpy() + 0.5)
    assert np.array_equal(got, exp.astype(np.int64))


def test_avg_coeffs():
    p = PoolParams(bits=8, mult_bits=16, max_window=1024)
    for k in range(11):  # powers of two are exact: mult 1, shift p
        assert avg_coeffs(2**k, p) == PoolCoeffs(1, k)
    for d in (3, 5, 6, 7, 9, 25, 49, 1000):
        c = avg_coeffs(d, p)
        assert c.mult <= 2**15 - 1 < round(2 ** (c.shift + 1) / d)  # largest shift that fits
        assert c.mult == round_half_up(Fraction(2**c.shift, d))
        # over every sum of d unsigned 8-bit values: the final rounding costs 1/2 LSB and
        # the multiplier |mult / 2**shift - 1/d| <= 2**-(shift + 1) at most sum <= 255 d
        # times that (255 d 2**-(shift + 1) <= 255 / (2**15 - 1/2) ~ 0.008 LSB, as
        # 2**(shift + 1) / d rounds above 2**15 - 1 at the largest shift)
        sums = np.arange(0, 255 * d + 1)
        approx = (sums * c.mult + (1 << (c.shift - 1))) >> c.shift
        assert np.max(np.abs(approx - sums / d)) <= 0.5 + 255 * d * 2.0 ** -(c.shift + 1)
    with pytest.raises(UserInputError, match="divisor"):
        avg_coeffs(0, p)
    with pytest.raises(UserInputError, match="divisor"):
        avg_coeffs(1025, p)


def test_pool_rails_and_ties():
    p = PoolParams(bits=8, signed=True, mult_bits=16)
    x = np.array([-128, -128, 127, 127]).reshape(1, 1, 2, 2)
    # gain 2 saturates both rails (a rescaling average the compiler may fold in)
    y = pool(
        np.concatenate([x[:, :, :1], x[:, :, 1:]], axis=1),
        "avg",
        (1, 2),
        (1, 2),
        p,
        PoolCoeffs(1, 0),
    )
    assert y.ravel().tolist() == [-128, 127]
    # ties: sums -2, -6, 2, 6 over 4 -> -0.5 -> 0, -1.5 -> -1, 0.5 -> 1, 1.5 -> 2
    x = np.array([[-1, -1, 0, 0], [-2, -2, -1, -1], [1, 1, 0, 0], [2, 2, 1, 1]]).reshape(1, 4, 2, 2)
    assert pool(x, "avg", 2, 2, p, avg_coeffs(4, p)).ravel().tolist() == [0, -1, 1, 2]
    pu = PoolParams(bits=8, signed=False)
    x = np.array([255, 255, 255, 255]).reshape(1, 1, 2, 2)
    assert pool(x, "avg", 2, 2, pu, PoolCoeffs(3, 1)).ravel().tolist() == [255]
    assert pool(x, "avg", 2, 2, pu, PoolCoeffs(-3, 1)).ravel().tolist() == [0]
    # max with padding: a window of all-negative values ignores the padding
    xs = np.full((1, 1, 3, 3), -100)
    assert pool(xs, "max", 3, 1, p, padding=1).max() == -100


def test_pool_bad_input():
    p = PoolParams(bits=8, signed=False, max_window=16)
    x = np.zeros((1, 1, 4, 4), np.int64)
    with pytest.raises(UserInputError, match="kind"):
        pool(x, "min", 2, 2, p)
    with pytest.raises(UserInputError, match="padding"):
        pool(x, "max", 2, 2, p, padding=2)
    with pytest.raises(UserInputError, match="does not fit"):
        pool(x, "max", (1, 5), 1, p, padding=0)
    with pytest.raises(UserInputError, match="max_window"):
        pool(np.zeros((1, 1, 5, 5), np.int64), "max", 5, 1, p)
    with pytest.raises(UserInputError, match="coefficients"):
        pool(x, "avg", 2, 2, p)
    with pytest.raises(UserInputError, match="outside unsigned"):
        pool(x - 1, "max", 2, 2, p)
    with pytest.raises(UserInputError, match=r"\(V, C, H, W\)"):
        pool(x[0], "max", 2, 2, p)
