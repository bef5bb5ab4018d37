"""NMPU golden model against hand-worked examples of SPEC.md's formulas.

Expected values are worked out by hand in each test (comments show the arithmetic),
never taken from the implementation.
"""

import numpy as np
import pytest
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.nmpu import (
    NmpuParams,
    activation,
    nmpu,
    rtl_clamp_bounds,
    saturate_output,
)


def small(**kw) -> NmpuParams:
    base = dict(
        lanes=2,
        adc_bits=4,
        gain_bits=6,
        gain_frac=4,
        acc_bits=12,
        mult_bits=6,
        out_shift=3,
        out_bits=4,
        out_signed=True,
        e_min=-1,
        e_max=2,
        activation="none",
    )
    base.update(kw)
    return NmpuParams(**base)


def one(a, e, gain, offset, mult, bias, p):
    """Single column, single vector, T = len(a)."""
    T = len(a)
    return int(
        nmpu(
            np.array(a).reshape(1, T, 1),
            np.array(e).reshape(1, T),
            np.array(gain).reshape(T, 1),
            np.array(offset).reshape(T, 1),
            np.array([mult]),
            np.array([bias]),
            p,
        )[0, 0]
    )


def test_single_tile_affine_and_rounding():
    p = small()
    # p0 = 5*3 + 2 = 17; s0 = 17 << (0 - -1) = 34; acc = 34
    # z = rshr(34*4, 3) + 1 = floor((136 + 4)/8) + 1 = 17 + 1 = 18 -> sat 4 bits = 7
    assert one([3], [0], [5], [2], 4, 1, p) == 7
    # mult 1: rshr(34, 3) = floor(38/8) = 4; + (-1) = 3
    assert one([3], [0], [5], [2], 1, -1, p) == 3


def test_round_half_up_on_negative_tie():
    p = small()
    # a=-1, gain=2, offset=0, e=e_min: acc = -2; rshr(-2*2, 3) = floor((-4+4)/8) = 0
    assert one([-1], [-1], [2], [0], 2, 0, p) == 0
    # acc*mult = -12: floor((-12+4)/8) = -1
    assert one([-3], [-1], [2], [0], 2, 0, p) == -1


def test_exponent_shift_is_exact_and_accumulates_in_order():
    p = small(out_shift=0, out_bits=12)
    # t0: 1*1+0 = 1 << (2+1) = 8 ; t1: 1*(-3)+0 = -3 << 0 = -3 ; acc = 5, z = 5
    assert one([1, -3], [2, -1], [1, 1], [0, 0], 1, 0, p) == 5


def test_accumulator_saturates_after_each_addition():
    # acc_bits = 10: range [-512, 511].  gain*a = 31*7 = 217, e - e_min = 2 -> 868 -> 511
    # then t1: 511 + (-1 * 1 << 0) = 510.  Without per-step saturation it would be 867.
    p = small(acc_bits=10, out_shift=0, out_bits=12)
    assert one([7, -1], [1, -1], [31, 1], [0, 0], 1, 0, p) == 510
    # order matters: the negative tile first gives -1 then 867 -> sat 511
    assert one([-1, 7], [-1, 1], [1, 31], [0, 0], 1, 0, p) == 511


def test_unit_product_shifted_past_the_accumulator_saturates():
    """acc_bits = 10 ([-512, 511]), e - e_min up to 21: a product of magnitude 1 shifted by
    21 is +-2**21, so acc + s must hit the rail whatever acc held (SPEC: the shift is exact).
    A shift cut short at 2**9 would leave 5 - 512 = -507 and -5 + 512 = 507."""
    p = small(acc_bits=10, out_shift=0, out_bits=12, e_max=20, activation="none")
    assert one([5, -1], [-1, 20], [1, 1], [0, 0], 1, 0, p) == -512
    assert one([-5, 1], [-1, 20], [1, 1], [0, 0], 1, 0, p) == 511


def test_output_saturation_signed_and_unsigned():
    # acc = -8*(-32)= 256 -> hmm: a most negative (-8), gain most negative (-32): 256 << 0
    p = small(out_shift=0, out_bits=4)
    assert one([-8], [-1], [-32], [0], 1, 0, p) == 7  # 256 saturates to 2**3-1
    assert one([-8], [-1], [-32], [0], -1, 0, p) == -8  # -256 -> -2**3
    pu = small(out_shift=0, out_bits=4, out_signed=False)
    assert one([-8], [-1], [-32], [0], 1, 0, pu) == 15  # 256 -> 2**4-1
    assert one([-8], [-1], [-32], [0], -1, 0, pu) == 0


@pytest.mark.parametrize(
    "kind,z,expected",
    [
        ("none", -5, -5),
        ("none", 6, 6),
        ("relu", -5, 0),
        ("relu", 6, 6),
        # leaky k=2: rshr(-5, 2) = floor((-5 + 2)/4) = -1; rshr(-6, 2) = floor(-4/4) = -1;
        # rshr(-7, 2) = floor(-5/4) = -2
        ("leaky", -5, -1),
        ("leaky", -6, -1),
        ("leaky", -7, -2),
        ("leaky", 6, 6),
        # clamp(-2, 3)
        ("clamp", -5, -2),
        ("clamp", 6, 3),
        ("clamp", 1, 1),
    ],
)
def test_activations(kind, z, expected):
    p = small(activation=kind, leaky_k=2, clamp_lo=-2, clamp_hi=3, out_shift=0, out_bits=6)
    # a=z, gain=1, e=e_min, mult=1, bias=0 gives z exactly (offset 0)
    assert one([z], [-1], [1], [0], 1, 0, p) == expected


def test_vectorized_matches_per_column():
    p = small(out_shift=2, out_bits=6, activation="leaky", leaky_k=1)
    rng = np.random.default_rng(1)
    V, T, C = 5, 3, 7
    a = rng.integers(-8, 8, (V, T, C))
    e = rng.integers(-1, 3, (V, T))
    gain = rng.integers(-32, 32, (T, C))
    off = rng.integers(-100, 100, (T, C))
    mult = rng.integers(-32, 32, C)
    bias = rng.integers(-20, 20, C)
    y = nmpu(a, e, gain, off, mult, bias, p)
    for v in range(V):
        for c in range(C):
            assert y[v, c] == one(a[v, :, c], e[v], gain[:, c], off[:, c], mult[c], bias[c], p)


def test_from_config_maps_spec_names():
    cfg = AcceleratorConfig().replace(**{"nmpu.activation": "leaky", "adc.bits": 6})
    p = NmpuParams.from_config(cfg)
    assert (p.adc_bits, p.activation, p.out_signed, p.offset_bits) == (6, "leaky", True, 22)


@pytest.mark.parametrize(
    "field,bad,msg",
    [
        ("a", 8, "a: value 8 outside"),
        ("e", 3, "e: value 3 outside"),
        ("gain", -33, "gain: value -33"),
        ("mult", 32, "mult: value 32"),
    ],
)
def test_value_out_of_width_is_user_error(field, bad, msg):
    p = small()
    args = dict(
        a=np.zeros((1, 1, 1), int),
        e=np.zeros((1, 1), int),
        gain=np.zeros((1, 1), int),
        offset=np.zeros((1, 1), int),
        mult=np.zeros(1, int),
        bias=np.zeros(1, int),
    )
    args[field] = np.full_like(args[field], bad)
    with pytest.raises(UserInputError, match=msg):
        nmpu(params=p, **args)


def test_bad_shapes_and_dtypes():
    p = small()
    with pytest.raises(UserInputError, match="shape"):
        nmpu(
            np.zeros((1, 2, 3), int),
            np.zeros((1, 3), int),
            np.zeros((2, 3), int),
            np.zeros((2, 3), int),
            np.zeros(3, int),
            np.zeros(3, int),
            p,
        )
    with pytest.raises(UserInputError, match="dtype"):
        nmpu(
            np.zeros((1, 1, 1)),
            np.zeros((1, 1), int),
            np.zeros((1, 1), int),
            np.zeros((1, 1), int),
            np.zeros(1, int),
            np.zeros(1, int),
            p,
        )


def test_acc_too_small_is_user_error():
    with pytest.raises(UserInputError, match="acc_bits"):
        small(acc_bits=9)  # adc 4 + gain 6 = 10 needed


@pytest.mark.parametrize("signed_out", [True, False])
@pytest.mark.parametrize("lo,hi", [(-100, 100), (-3, 200), (20, 90), (-50, -40), (2, 9)])
def test_rtl_clamp_bounds_give_identical_outputs(signed_out, lo, hi):
    """The RTL holds clamp bounds saturated to the output range; saturation is monotone so
    sat(clamp(z, lo, hi)) == sat(clamp(z, sat(lo), sat(hi))) for every z (exhaustive)."""
    p = small(activation="clamp", clamp_lo=lo, clamp_hi=hi, out_bits=5, out_signed=signed_out)
    rlo, rhi = rtl_clamp_bounds(p)
    assert -(1 << 5) <= rlo <= rhi <= (1 << 5) - 1  # fits the signed out_bits+1 register
    z = np.arange(-300, 301)
    q = small(activation="clamp", clamp_lo=rlo, clamp_hi=rhi, out_bits=5, out_signed=signed_out)
    assert np.array_equal(
        saturate_output(activation(z, p), p), saturate_output(activation(z, q), q)
    )


def _spec_nmpu_python(a, e, gain, offset, mult, bias, p: NmpuParams) -> list[list[int]]:
    """SPEC.md's NMPU written out with Python's unbounded ints, one column at a time."""

    def rshr_(v: int, s: int) -> int:
        return v if s == 0 else (v + (1 << (s - 1))) >> s

    def sat_(v: int, lo: int, hi: int) -> int:
        return max(lo, min(hi, v))

    acc_lo, acc_hi = -(1 << (p.acc_bits - 1)), (1 << (p.acc_bits - 1)) - 1
    if p.out_signed:
        out_lo, out_hi = -(1 << (p.out_bits - 1)), (1 << (p.out_bits - 1)) - 1
    else:
        out_lo, out_hi = 0, (1 << p.out_bits) - 1
    y = []
    for v in range(len(a)):
        row = []
        for c in range(len(mult)):
            acc = 0
            for t in range(len(gain)):
                s = (int(gain[t][c]) * int(a[v][t][c]) + int(offset[t][c])) << (
                    int(e[v][t]) - p.e_min
                )
                acc = sat_(acc + s, acc_lo, acc_hi)
            z = rshr_(acc * int(mult[c]), p.out_shift) + int(bias[c])
            act = {
                "none": z,
                "relu": max(z, 0),
                "leaky": z if z >= 0 else rshr_(z, p.leaky_k),
                "clamp": sat_(z, p.clamp_lo, p.clamp_hi),
            }[p.activation]
            row.append(sat_(act, out_lo, out_hi))
        y.append(row)
    return y


@pytest.mark.parametrize("kind", ["none", "relu", "leaky", "clamp"])
def test_matches_spec_with_unbounded_ints_and_huge_exponent_shifts(kind):
    """Exponent range -3 .. 40: shifts up to 43 bits, far past acc_bits + 1 = 17 where the
    int64 implementation caps the shift; results must equal the unbounded-int SPEC."""
    p = NmpuParams(
        lanes=4,
        adc_bits=5,
        gain_bits=8,
        gain_frac=6,
        acc_bits=16,
        mult_bits=8,
        out_shift=9,
        out_bits=6,
        out_signed=kind != "relu",
        e_min=-3,
        e_max=40,
        activation=kind,
        leaky_k=2,
        clamp_lo=-7,
        clamp_hi=20,
    )
    rng = np.random.default_rng(42)
    V, T, C = 40, 3, 6
    # mostly small exponents so not everything saturates, a quarter of them huge
    e = np.where(
        rng.random((V, T)) < 0.25, rng.integers(-3, 41, (V, T)), rng.integers(-3, 2, (V, T))
    )
    args = dict(
        a=rng.integers(-16, 16, (V, T, C)),
        e=e,
        gain=rng.integers(-128, 128, (T, C)),
        offset=rng.integers(-2000, 2000, (T, C)),
        mult=rng.integers(-128, 128, C),
        bias=rng.integers(-40, 40, C),
    )
    got = nmpu(params=p, **args).tolist()
    assert got == _spec_nmpu_python(p=p, **args)
