"""Management-controller golden model against hand-worked examples of SPEC.md."""

import numpy as np
import pytest
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.mgmt import (
    MgmtParams,
    adc_sat_any,
    choose_exponent,
    dac_codes,
    ideal_linear_tile,
    manage,
)

P = MgmtParams(
    dac_bits=8,
    adc_bits=6,
    e_min=-4,
    e_max=3,
    noise="absmax_pow2",
    bound_max_iter=2,
    x_bits=10,
    x_signed=True,
)


@pytest.mark.parametrize(
    "row,e",
    [
        ([0, 0, 0], 0),  # M == 0 -> e = 0
        ([1, -2, 0], -4),  # 2 << 4 = 32 <= 127 at e_min
        ([7, 0, 0], -4),  # 7 << 4 = 112 <= 127
        ([8, 0, 0], -3),  # 8 << 4 = 128 > 127; 8 << 3 = 64
        ([0, -127, 5], 0),  # 127 fits at e = 0; 127 << 1 = 254 does not
        ([128, 0, 0], 1),  # rshr(128, 1) = 64
        ([254, 0, 0], 1),  # rshr(254, 1) = floor(255/2) = 127
        ([255, 0, 0], 2),  # rshr(255, 1) = 128 > 127; rshr(255, 2) = floor(257/4) = 64
        ([-511, 0, 0], 3),  # rshr(511, 2) = 128 > 127; rshr(511, 3) = 64
    ],
)
def test_absmax_pow2_exponent(row, e):
    assert choose_exponent(np.array([row]), P).tolist() == [e]


def test_no_exponent_fits_gives_e_max():
    p = MgmtParams(dac_bits=4, adc_bits=6, e_min=-1, e_max=1, x_bits=10)
    # rshr(100, 1) = 50 > 7 -> none fits in [-1, 1]
    assert choose_exponent(np.array([[100]]), p).tolist() == [1]


def test_noise_off_is_zero():
    p = MgmtParams(noise="off", x_bits=10)
    assert choose_exponent(np.array([[500, 1], [0, 0]]), p).tolist() == [0, 0]


def test_dac_codes_scale_and_saturate():
    x = np.array([[3, -3, 100], [5, -5, 255]])
    e = np.array([-4, 2])
    # row 0: 3<<4 = 48, -48, 100<<4 = 1600 -> 127
    # row 1: rshr(5,2) = floor(7/4) = 1; rshr(-5,2) = floor(-3/4) = -1; rshr(255,2) = 64
    assert dac_codes(x, e, P).tolist() == [[48, -48, 127], [1, -1, 64]]


def test_adc_sat_any_detects_both_rails():
    a = np.array([[0, 31], [-32, 0], [30, -31]])
    assert adc_sat_any(a, 6).tolist() == [True, True, False]


def test_bound_management_retries_until_unsaturated():
    # tile: a = sat(rshr(d * 1, 0), 6) for a single weight 1 -> saturates if |d| >= 31
    tile = ideal_linear_tile(np.array([[1]]), 0, 6)
    x = np.array([[100], [20], [0]])
    a, e, it, s = manage(x, tile, P)
    # v0: e0 = 0 (100 <= 127); d = 100 -> a = 31 sat; e = 1: d = rshr(100,1) = 50 -> sat;
    #     e = 2: d = rshr(100,2) = 25 -> a = 25, no sat.  iter = 2.
    # v1: e0 = -2 (20 << 2 = 80; 20 << 3 = 160 > 127); d = 80 -> sat; e = -1 (iter 1):
    #     d = 40 -> sat; e = 0 (iter 2): d = 20 -> a = 20, no sat.
    # v2: zero vector: e = 0, a = 0
    assert a.tolist() == [[25], [20], [0]]
    assert e.tolist() == [2, 0, 0]
    assert it.tolist() == [2, 2, 0]
    assert s.tolist() == [False, False, False]
    # x = 200 (e0 = 1, d = 100): d 100 -> 50 -> 25 takes two retries as well; x = 400
    # (e0 = 2, d = 100 -> 50 at e = 3 = e_max, iter 1) stops at e_max still saturated.
    a, e, it, s = manage(np.array([[400]]), tile, P)
    assert (a.tolist(), e.tolist(), it.tolist(), s.tolist()) == ([[31]], [3], [1], [True])


def test_bound_management_stops_at_e_max_and_reasks_only_active():
    calls = []
    inner = ideal_linear_tile(np.array([[1]]), 0, 6)

    def tile(d, iteration, active):
        calls.append((active.tolist(), iteration.tolist()))
        return inner(d, iteration, active)

    p = MgmtParams(dac_bits=8, adc_bits=6, e_min=-4, e_max=1, bound_max_iter=5, x_bits=10)
    a, e, it, s = manage(np.array([[511], [1]]), tile, p)
    # v0: e0 = e_max = 1 (none fits), d = 127 -> sat, e == e_max: no retry.
    # v1: e0 = -4, d = 16, no sat.
    assert e.tolist() == [1, -4] and it.tolist() == [0, 0] and s.tolist() == [True, False]
    assert calls == [([True, True], [0, 0])]


def test_bound_max_iter_zero_disables_retries():
    p = MgmtParams(dac_bits=8, adc_bits=6, e_min=-4, e_max=3, bound_max_iter=0, x_bits=10)
    a, e, it, s = manage(np.array([[100]]), ideal_linear_tile(np.array([[1]]), 0, 6), p)
    assert (a.tolist(), e.tolist(), it.tolist(), s.tolist()) == ([[31]], [0], [0], [True])


def test_unsigned_input_range_checked():
    p = MgmtParams(x_bits=4, x_signed=False)
    assert choose_exponent(np.array([[15]]), p).tolist() == [-3]  # 15 << 3 = 120
    with pytest.raises(UserInputError, match="x: value -1 outside"):
        choose_exponent(np.array([[-1]]), p)


def test_from_config_takes_input_format_from_nmpu_output():
    cfg = AcceleratorConfig().replace(**{"nmpu.activation": "relu", "nmpu.out_bits": 6})
    p = MgmtParams.from_config(cfg)
    assert (p.x_bits, p.x_signed, p.dac_bits, p.noise) == (6, False, 8, "absmax_pow2")
    assert MgmtParams.from_config(cfg, x_bits=9, x_signed=True).x_range == (-256, 255)


def test_bad_params_are_user_errors():
    with pytest.raises(UserInputError, match="must contain 0"):
        MgmtParams(e_min=1, e_max=3)
    with pytest.raises(UserInputError, match="noise"):
        MgmtParams(noise="maybe")
    with pytest.raises(UserInputError, match="shift"):
        ideal_linear_tile(np.array([[1]]), -1, 6)


def test_dac_codes_equal_the_spec_formula_on_python_ints():
    """Exhaustive over x in a 10-bit range and every e in [-12, 4] at dac_bits = 5: the
    int64-safe implementation equals sat(scale(x, e)) evaluated with Python's unbounded
    ints straight from SPEC.md's definitions."""
    p = MgmtParams(dac_bits=5, adc_bits=6, e_min=-12, e_max=4, x_bits=10)
    xs = list(range(-512, 512))

    def spec(x: int, e: int) -> int:
        v = x << -e if e <= 0 else (x + (1 << (e - 1))) >> e
        return max(-16, min(15, v))

    for e in range(-12, 5):
        got = dac_codes(np.array([xs]), np.array([e]), p)[0].tolist()
        assert got == [spec(x, e) for x in xs], e
