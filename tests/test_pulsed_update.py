"""The parallel stochastic update: coincidence counts, signs, aihwkit update management, and
the expected weight change lr * x_i * delta_j through the golden SPG."""

from __future__ import annotations

import math

import numpy as np
from aimcflow.models.analog.pulsed.devices import PulsedArray, PulsedDevice
from aimcflow.models.analog.pulsed.update import apply_update, coincidences, directions
from aimcflow.models.periphery.spg import PulseGenerator, SpgParams, translate
from aimcflow.models.training.management import UpdateSettings, manage, spg_request


def test_coincidences_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (31, 7))
    b = rng.integers(0, 2, (31, 5))
    want = np.array(
        [[sum(a[t, i] & b[t, j] for t in range(31)) for j in range(5)] for i in range(7)]
    )
    np.testing.assert_array_equal(coincidences(a, b), want)


def test_directions_follow_sign_product():
    np.testing.assert_array_equal(
        directions([1, -1], [1, -1, 1]), [[True, False, True], [False, True, False]]
    )


def test_update_management_formulas():
    lr, dw = 0.1, 0.002
    s = UpdateSettings(desired_bl=31)
    bl, ax, ad = manage(0.5, 0.02, lr, dw, s)
    assert bl == math.ceil(0.1 * 0.5 * 0.02 / 0.002) == 1
    a = math.sqrt(lr / (dw * bl))
    assert math.isclose(ax, a * math.sqrt(0.02 / 0.5)) and math.isclose(
        ad, a * math.sqrt(0.5 / 0.02)
    )
    bl, _, _ = manage(1.0, 1.0, lr, dw, s)
    assert bl == 31  # capped at the desired BL
    bl, ax, ad = manage(
        1.0, 1.0, lr, dw, UpdateSettings(31, update_management=False, update_bl_management=False)
    )
    assert bl == 31 and ax == ad == math.sqrt(lr / (dw * 31))


def test_request_codes_and_gains():
    p = SpgParams()
    x = np.array([0.5, -0.25, 0.0, 0.125])
    d = np.array([0.01, -0.02])
    req = spg_request(x, d, 0.1, 0.002, UpdateSettings(31), p)
    np.testing.assert_array_equal(req.x, [127, -64, 0, 32])  # round(x / max|x| * 127)
    np.testing.assert_array_equal(req.d, [64, -127])
    # probability of the largest element is A_x * max|x| (up to the 8.8 gain rounding)
    bl, ax, ad = manage(0.5, 0.02, 0.1, 0.002, UpdateSettings(31))
    assert req.bl == bl
    qx = translate(req.x[0], req.gain_x, p) / 2**16
    assert abs(qx - ax * 0.5) <= 128 / 127 * 2**-8 * 0.5 + 2**-16
    assert spg_request(np.zeros(3), d, 0.1, 0.002, UpdateSettings(31), p) is None


def test_expected_change_is_lr_x_delta():
    """Mean change of an ideal linear device over U independent updates equals
    lr x_i d_j.  Per update the change is dw * Binomial(BL, p_i q_j) (x, d fixed), so the
    mean's sigma is dw sqrt(BL pq(1-pq) / U); tolerance 5 sigma (Bonferroni over 24 cells
    gives a family false-alarm below 1e-5).  Separately, the expectation given the
    codes equals lr x d up to the rounding of codes and gains (first-order bound)."""
    p = SpgParams()
    lr, dw = 0.05, 0.001
    dev = PulsedDevice("t", "constant", dw_min=dw, w_bound=100.0)
    x = np.array([1.0, -0.5, 0.3, 0.8, -0.1, 0.6])
    d = np.array([0.4, -0.2, 0.05, -0.4])
    req = spg_request(x, d, lr, dw, UpdateSettings(31), p)
    U = 3000
    arr = PulsedArray(dev, 6, 4, seed=0, layer=0)
    gen = PulseGenerator(6, 4, seed=17, params=p)
    out = gen.generate(
        np.tile(req.x, (U, 1)),
        np.tile(req.d, (U, 1)),
        np.full(U, req.gain_x),
        np.full(U, req.gain_d),
        req.bl,
    )
    for u in range(U):
        apply_update(arr, out.row_pulses[u], out.col_pulses[u], out.row_sign[u], out.col_sign[u], u)
    mean = arr.w / U
    pq = (translate(req.x, req.gain_x, p)[:, None] * translate(req.d, req.gain_d, p)[None]) / 2**32
    expect = dw * req.bl * pq * np.sign(np.outer(x, d))  # exact expectation given the codes
    sigma = dw * np.sqrt(req.bl * pq * (1 - pq) / U)
    assert np.all(np.abs(mean - expect) <= 5 * sigma)
    # and the codes/gains realise lr x d up to their rounding: value codes are off by at
    # most half an LSB of 127, gain codes by half an LSB of 2**-8 (relative to the gain)
    want = lr * np.outer(x, d)
    rel = (
        (0.5 / 127) / np.abs(x)[:, None]
        + (0.5 / 127) / (np.abs(d)[None] / 0.4)
        + 2**-9 / (req.gain_x / 256)
        + 2**-9 / (req.gain_d / 256)
    )
    assert np.all(np.abs(expect - want) <= np.abs(want) * 1.01 * rel)
