"""The integer ADC of ``models/analog/converters.py`` (SPEC.md: codes ``sat(round(I / LSB),
bits)``, ``sat_any`` = some code of the row at the most negative or most positive code).

The flag feeds the golden and the RTL paths alike (bound management retries on it), so a
co-simulation cannot notice a wrong flag: these unit tests are its only check.  Every
expectation below is written from the SPEC rule, not from the code's output."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.models.analog.converters import adc_codes, lsb, round_half_up


@pytest.mark.parametrize("bits", [4, 8, 9])
@pytest.mark.parametrize("cols", [1, 2, 7])
@pytest.mark.parametrize("rail", ["negative", "positive"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_sat_any_sees_each_rail_in_the_first_and_last_column(bits, cols, rail, where):
    """One row per case: every column mid-range except one at a rail, reached exactly
    (value = rail code x LSB) and from beyond the rail; a third row stays one code inside."""
    step = lsb(bits, 1.0)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    code = lo if rail == "negative" else hi
    col = 0 if where == "first" else cols - 1
    y = np.full((4, cols), 0.3 * step)  # code 0 everywhere
    y[0, col] = code * step  # exactly the rail code
    y[1, col] = code * step * 5  # far beyond: clipped to the rail
    y[2, col] = (code + (1 if rail == "negative" else -1)) * step  # one code inside
    c, sat = adc_codes(y, bits, step)
    assert c[0, col] == code and c[1, col] == code and c[2, col] == code - np.sign(code)
    assert sat.tolist() == [True, True, False, False]


def test_sat_any_is_per_row_over_a_batch():
    bits, step = 6, lsb(6, 2.0)
    y = np.zeros((3, 5, 4))
    y[0, 2, 3] = 1e3  # positive rail, last column of row (0, 2)
    y[2, 4, 0] = -1e3  # negative rail, first column of row (2, 4)
    c, sat = adc_codes(y, bits, step)
    want = np.zeros((3, 5), dtype=bool)
    want[0, 2] = want[2, 4] = True
    assert sat.shape == (3, 5) and np.array_equal(sat, want)
    assert c[0, 2, 3] == 31 and c[2, 4, 0] == -32


def test_codes_use_the_full_twos_complement_range_and_round_half_up():
    """8 bits: codes -128 .. 127; ties go up (floor(v + 1/2)), also for negative values."""
    step = 0.5
    y = np.array([[-200.0, -64.0, -1.25, -0.25, 0.25, 1.25, 63.5, 200.0]])
    c, sat = adc_codes(y, 8, step)
    # y / step = -400, -128, -2.5, -0.5, 0.5, 2.5, 127, 400
    assert c.tolist() == [[-128, -128, -2, 0, 1, 3, 127, 127]]
    assert sat.tolist() == [True]
    assert round_half_up(np.array([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist() == [-2, 0, 1, 2, 3]
