"""The keyed counter-based normal generator: distribution, independence, invariance."""

import math

import numpy as np
import pytest
from aimcflow.models import rng
from scipy import stats


def test_keyed_normal_is_standard_normal():
    """10^6 draws: mean within 4/sqrt(n), std within 4/sqrt(2n), KS test p > 1e-4; the
    Box-Muller tail is cut at sqrt(2 ln 2^24) = 5.77."""
    z = rng.keyed_normal(1, "out", (0, 0, 0), np.arange(2000), 500, dtype=np.float64).ravel()
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.std() - 1) < 4 / math.sqrt(2 * n)
    assert stats.kstest(z[:200_000], "norm").pvalue > 1e-4
    assert np.abs(z).max() <= math.sqrt(2 * math.log(2**24)) + 1e-6
    # fourth moment of a normal is 3; std error of the sample kurtosis ~ sqrt(24/n)
    assert abs(stats.kurtosis(z, fisher=False) - 3) < 4 * math.sqrt(24 / n)


def test_rows_and_keys_are_independent():
    """Correlation between neighbouring rows, neighbouring elements, and two keys: each
    within 4/sqrt(n) of 0."""
    z = rng.keyed_normal(1, "out", (0, 0, 0), np.arange(1000), 1000, dtype=np.float64)
    n = z[:-1].size
    assert abs(np.mean(z[:-1] * z[1:])) < 4 / math.sqrt(n)
    assert abs(np.mean(z[:, :-1] * z[:, 1:])) < 4 / math.sqrt(n)
    other = rng.keyed_normal(1, "out", (0, 0, 1), np.arange(1000), 1000, dtype=np.float64)
    assert abs(np.mean(z * other)) < 4 / math.sqrt(z.size)
    seed2 = rng.keyed_normal(2, "out", (0, 0, 0), np.arange(1000), 1000, dtype=np.float64)
    assert abs(np.mean(z * seed2)) < 4 / math.sqrt(z.size)


def test_row_depends_only_on_its_id():
    ids = np.array([5, 900, 17, 123456789])
    full = rng.keyed_normal(3, "read", (1, 2), ids, 37)
    for i, r in enumerate(ids):
        assert np.array_equal(rng.keyed_normal(3, "read", (1, 2), np.array([r]), 37)[0], full[i])


def test_unknown_purpose_is_rejected():
    with pytest.raises(KeyError):
        rng.keyed_normal(0, "nope", (0,), np.arange(2), 2)
