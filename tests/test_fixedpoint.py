"""SPEC.md integer helpers against their definitions, exhaustively on small ranges."""

import numpy as np
import pytest
from aimcflow.models.periphery.fixedpoint import rshr, sat, satu, scale


@pytest.mark.parametrize("s", range(0, 8))
def test_rshr_is_round_half_up(s):
    v = np.arange(-1000, 1001)
    expected = v if s == 0 else np.floor((v + 2 ** (s - 1)) / 2**s).astype(np.int64)
    assert np.array_equal(rshr(v, s), expected)


def test_rshr_rejects_negative_shift():
    with pytest.raises(ValueError):
        rshr(5, -1)


@pytest.mark.parametrize("e", range(-4, 8))
def test_scale_is_multiply_by_pow2(e):
    v = np.arange(-300, 301)
    expected = v * 2 ** (-e) if e <= 0 else np.floor((v + 2 ** (e - 1)) / 2**e)
    assert np.array_equal(scale(v, e), expected.astype(np.int64))


def test_scale_elementwise_exponents():
    v = np.array([5, 5, -5, 7])
    e = np.array([0, -2, 1, 2])
    assert scale(v, e).tolist() == [5, 20, -2, 2]


def test_sat_and_satu_bounds():
    v = np.arange(-600, 600)
    assert sat(v, 8).min() == -128 and sat(v, 8).max() == 127
    assert np.array_equal(sat(v, 8)[(v >= -128) & (v <= 127)], v[(v >= -128) & (v <= 127)])
    assert satu(v, 4).min() == 0 and satu(v, 4).max() == 15
