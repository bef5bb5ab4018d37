"""Pulsed device-update models: step laws against their closed forms, bounds, asymmetry,
symmetry point, device-to-device and cycle-to-cycle statistics, presets."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.models.analog.devices import DEVICES
from aimcflow.models.analog.pulsed.devices import (
    PRESET_NAMES,
    PulsedArray,
    PulsedDevice,
    get_pulsed_device,
)
from aimcflow.models.errors import UserInputError


def _array(dev: PulsedDevice, shape=(4, 5), seed=1) -> PulsedArray:
    return PulsedArray(dev, *shape, seed=seed, layer=0)


def test_constant_step_counts_and_asymmetry():
    dev = PulsedDevice("t", "constant", dw_min=0.01, w_bound=1.0, up_down=0.2)
    a = _array(dev)
    counts = np.arange(20).reshape(4, 5)
    up = counts % 2 == 0
    a.apply_pulses(counts, up, 0)
    want = np.where(up, counts * 0.01 * 1.2, -counts * 0.01 * 0.8)
    np.testing.assert_allclose(a.w, want, rtol=0, atol=1e-12)


def test_soft_bounds_closed_form():
    """n up pulses from w0: w_n = w_max - (w_max - w0)(1 - dw/w_max)^n; down mirrored."""
    dev = PulsedDevice("t", "soft_bounds", dw_min=0.05, w_bound=0.8)
    a = _array(dev, (2, 6))
    w0 = np.array([[-0.5, 0.0, 0.3, 0.7, -0.79, 0.1]] * 2)
    a.set_weights(w0)
    n = np.array([[1, 2, 5, 10, 30, 0]] * 2)
    up = np.array([[True] * 6, [False] * 6])
    a.apply_pulses(n, up, 0)
    r = 1 - 0.05 / 0.8
    np.testing.assert_allclose(a.w[0], 0.8 - (0.8 - w0[0]) * r ** n[0], atol=1e-12)
    np.testing.assert_allclose(a.w[1], -0.8 + (w0[1] + 0.8) * r ** n[1], atol=1e-12)


def test_exp_step_matches_sequential_pulses_and_bounds():
    dev = PulsedDevice("t", "exp_step", dw_min=0.2, w_bound=1.0, up_down=0.5, gamma=2.0)
    a = _array(dev, (1, 4))
    a.set_weights(np.array([[0.0, 0.5, -0.5, 0.9]]))
    n = np.array([[3, 2, 4, 6]])
    up = np.array([[True, False, True, True]])
    want = a.w.copy()[0]
    for j in range(4):
        for _ in range(n[0, j]):
            step = 0.3 * np.exp(-2 * want[j]) if up[0, j] else -0.1 * np.exp(2 * want[j])
            want[j] = np.clip(want[j] + step, -1, 1)
    a.apply_pulses(n, up, 0)
    np.testing.assert_allclose(a.w[0], want, atol=1e-12)
    assert a.w.max() <= 1.0


def test_hard_bounds_constant_step():
    dev = PulsedDevice("t", "constant", dw_min=0.3, w_bound=1.0)
    a = _array(dev, (1, 2))
    a.apply_pulses(np.array([[10, 10]]), np.array([[True, False]]), 0)
    np.testing.assert_array_equal(a.w, [[1.0, -1.0]])


@pytest.mark.parametrize("law,gamma", [("soft_bounds", 0.0), ("exp_step", 2.0)])
def test_symmetry_point_balances_up_and_down(law, gamma):
    dev = PulsedDevice(
        "t",
        law,
        dw_min=0.1,
        w_bound=1.0,
        up_down=0.3,
        dw_min_dtod=0.3,
        w_bound_dtod=0.1,
        gamma=gamma,
    )
    a = _array(dev, (3, 3))
    sp = a.symmetry_point()
    par = (a.dw_up.ravel(), a.dw_down.ravel(), a.w_max.ravel(), a.w_min.ravel())
    up = a._steps(sp.ravel(), np.ones(9, bool), *par)
    down = a._steps(sp.ravel(), np.zeros(9, bool), *par)
    np.testing.assert_allclose(up, -down, rtol=1e-9)
    assert np.all(sp > 0)  # up steps are larger: the balance lies above zero


def test_device_to_device_spread():
    """Per-device step factors have relative std dw_min_dtod: with 40 000 devices the sample
    std's standard error is sigma/sqrt(2N) = 0.1 %; 5 sigma of that is the tolerance."""
    dev = PulsedDevice("t", "constant", dw_min=0.01, w_bound=1.0, dw_min_dtod=0.1)
    a = _array(dev, (200, 200))
    f = a.dw_up / 0.01
    n = f.size
    assert abs(f.mean() - 1) <= 5 * 0.1 / np.sqrt(n)
    assert abs(f.std() - 0.1) <= 5 * 0.1 / np.sqrt(2 * n)
    np.testing.assert_array_equal(a.dw_up, a.dw_down)  # symmetric device: same factor


@pytest.mark.parametrize("law", ["constant", "soft_bounds"])
def test_cycle_to_cycle_sum_statistics(law):
    """n pulses with c2c sigma s: change ~ N(n dw, n (s dw)^2) (soft bounds: bounds far
    away, w_bound 1e6, so the step is dw to 1e-8).  Over 40 000 devices the mean and std
    agree within 5 standard errors."""
    dev = PulsedDevice("t", law, dw_min=0.001, w_bound=1e6, dw_min_ctoc=0.5)
    a = _array(dev, (200, 200))
    n = 9
    a.apply_pulses(np.full((200, 200), n), np.ones((200, 200), bool), 3)
    N = a.w.size
    mean, sd = n * 0.001, np.sqrt(n) * 0.5 * 0.001
    assert abs(a.w.mean() - mean) <= 5 * sd / np.sqrt(N)
    assert abs(a.w.std() - sd) <= 5 * sd / np.sqrt(2 * N)


def test_noise_is_keyed_not_order_dependent():
    dev = get_pulsed_device("ftj-constrained")
    counts = np.random.default_rng(0).integers(0, 4, (6, 7))
    up = counts % 2 == 0
    a, b = _array(dev, (6, 7)), _array(dev, (6, 7))
    a.apply_pulses(counts, up, 11)
    b.apply_pulses(np.zeros((6, 7), int), up, 10)  # a different update in between
    b.apply_pulses(counts, up, 11)
    np.testing.assert_array_equal(a.w, b.w)


def test_presets_take_their_numbers_from_the_device_presets():
    for name in PRESET_NAMES:
        dev = get_pulsed_device(name)
        if name == "ideal":
            assert dev.dw_min_ctoc == dev.dw_min_dtod == 0 and dev.law == "constant"
            continue
        ref = DEVICES[name]
        assert dev.dw_min == ref.dw_min and dev.up_down == ref.up_down_asymmetry
        assert dev.dw_min_dtod == ref.dw_min_dtod and dev.dw_min_ctoc == ref.dw_min_ctoc
        assert dev.n_states == ref.n_states
        assert (dev.law == "constant") == ref.linear
    assert (
        get_pulsed_device("ftj-constrained").dw_min * 50 == get_pulsed_device("ftj-balanced").dw_min
    )


def test_unknown_preset():
    with pytest.raises(UserInputError, match="unknown device preset 'pcm'; allowed: ftj-extreme"):
        get_pulsed_device("pcm")
