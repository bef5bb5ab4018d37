"""Device models against the formulas they implement, through the tile's programming path.

Tolerances come from sample size: a sample mean of n draws with std s is within 4 s/sqrt(n)
of the true mean (fails by chance with probability 6e-5), a sample std within
4 s/sqrt(2n) of the true std (its standard error for near-normal data).
"""

import numpy as np
import pytest
from aimcflow.models.analog.devices import DEVICES, PCMDevice
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.config import load_config
from scipy import stats

N_ROWS, N_COLS = 400, 250  # 10^5 devices per polarity


def _pcm_cfg(**kw):
    base = {
        "noise.programming": False,
        "noise.drift": False,
        "noise.read": False,
        "noise.out_noise": 0.0,
        "noise.drift_compensation": "none",
        "tile.rows": N_ROWS,
        "tile.cols": N_COLS,
    }
    base.update(kw)
    return load_config("pcm").replace(**base)


def _mean_ok(sample, mu):
    return abs(sample.mean() - mu) <= 4 * sample.std() / np.sqrt(sample.size)


def _std_ok(sample, sigma):
    return abs(sample.std() - sigma) <= 4 * sigma / np.sqrt(2 * sample.size)


def test_pcm_drift_exponent_statistics():
    """nu = |mu + sigma z| with mu, sigma from aihwkit's log fits; at g = 0.5 g_max and g = 0."""
    cfg = _pcm_cfg(**{"noise.drift": True})
    # the last column holds 1.0 so global scaling maps 0.5 to 0.5 g_max
    tile = AnalogTile(np.hstack([np.full((N_ROWS, N_COLS - 1), 0.5), np.ones((N_ROWS, 1))]), cfg)
    tile.program()
    nu_half = tile.nu[0][:, :-1].ravel()
    # g = 0.5: mu = max(-0.0155 ln 0.5 + 0.0244, 0.049) = 0.049 (clipped),
    #          sigma = max(-0.0125 ln 0.5 - 0.0059, 0.008) = 0.008 (clipped); mu/sigma = 6
    assert _mean_ok(nu_half, 0.049)
    assert _std_ok(nu_half, 0.008)
    # g = 0 (the G- devices): ln clipped at 1e-7 -> mu = 0.1, sigma = 0.045 (both clipped);
    # nu is a folded normal |N(0.1, 0.045^2)|
    nu_zero = tile.nu[1].ravel()
    folded = stats.foldnorm(0.1 / 0.045, scale=0.045)
    assert _mean_ok(nu_zero, folded.mean())
    assert _std_ok(nu_zero, folded.std())


@pytest.mark.parametrize("level", [0.1, 0.4, 0.7, 1.0])
def test_pcm_programming_noise_sigma_per_conductance(level):
    """sigma_prog = (0.26348 + 1.9650 g - 1.1731 g^2) uS for g = g_T / g_max, g_max = 25 uS."""
    cfg = _pcm_cfg(**{"noise.programming": True})
    w = np.full((N_ROWS, N_COLS), level)
    w[0, :] = 1.0  # column max 1 so the level maps to level * g_max exactly
    tile = AnalogTile(w, cfg, tile=int(level * 10))
    tile.program()
    dg = (tile.g_prog[0] - tile.g_target[0])[1:, :].ravel()
    sigma = (0.26348 + 1.9650 * level - 1.1731 * level**2) * 1e-6
    assert _mean_ok(dg, 0.0)
    assert _std_ok(dg, sigma)


def test_pcm_read_noise_and_drift_at_one_day():
    """g(t) = g_prog ((t+20)/20)^-nu (1 + Q_s sqrt(ln((t+20+t_r)/(2 t_r))) z)."""
    t = 86400.0
    cfg = _pcm_cfg(**{"noise.read": True})
    w = np.full((N_ROWS, N_COLS), 0.6)
    tile = AnalogTile(w, cfg)
    tile.program()
    tile.drift(t)
    rel = (tile.g_now[0] / tile.g_prog[0] - 1.0).ravel()
    q_s = min(0.0088 / 1.0**0.65, 0.2)  # g_prog = g_max after column scaling: g = 1
    sigma = q_s * np.sqrt(np.log((t + 20 + 250e-9) / (2 * 250e-9)))
    assert _mean_ok(rel, 0.0)
    assert _std_ok(rel, sigma)
    # drift only: E[ln(g/g_prog)] = -E[nu] ln((t + t0)/t0), nu ~ N(0.049, 0.008) at g = 1
    cfg = _pcm_cfg(**{"noise.drift": True})
    tile = AnalogTile(w, cfg)
    tile.program()
    tile.drift(t)
    log_ratio = np.log(tile.g_now[0] / tile.g_prog[0]).ravel()
    assert _mean_ok(log_ratio, -0.049 * np.log((t + 20) / 20))


def test_ftj_drift_exponent_polynomial():
    """nu(w) = 0.0122|w|^3 - 0.0241 w^2 + 0.0112|w| + 0.001 (thesis eq. 3.5), by hand."""
    cfg = load_config("baseline-ftj").replace(**{"noise.programming": False})
    w = np.array([[1.0, -1.0], [0.5, -0.5], [0.0, 0.25]])
    tile = AnalogTile(w, cfg)
    tile.program()
    # hand values: w=1: 0.0122-0.0241+0.0112+0.001 = 0.0003; w=0.5: 0.001525-0.006025+0.0056
    # +0.001 = 0.0021; w=0.25: 0.000190625-0.00150625+0.0028+0.001 = 0.002484375; w=0: 0.001
    assert tile.nu[0][0, 0] == pytest.approx(0.0003, abs=1e-12)
    assert tile.nu[1][0, 1] == pytest.approx(0.0003, abs=1e-12)
    assert tile.nu[0][1, 0] == pytest.approx(0.0021, abs=1e-12)
    assert tile.nu[0][2, 1] == pytest.approx(0.002484375, abs=1e-12)
    assert tile.nu[0][2, 0] == pytest.approx(0.001, abs=1e-12)


def test_ftj_presets_hold_thesis_numbers():
    for name in ("ftj-extreme", "ftj-balanced", "ftj-constrained"):
        assert DEVICES[name].g_max_siemens == 14e-9
    assert DEVICES["ftj-balanced"].dw_min == 0.1
    assert DEVICES["ftj-constrained"].dw_min == pytest.approx(0.1 / 50)
    assert DEVICES["ftj-constrained"].linear and not DEVICES["ftj-balanced"].linear
    assert DEVICES["ftj-extreme"].dw_min > DEVICES["ftj-balanced"].dw_min
    for dev in DEVICES.values():
        assert dev.source


def test_reram_programming_noise_is_state_independent():
    dev = DEVICES["reram"]
    g = np.array([0.0, 0.3, 1.0]) * dev.g_max_siemens
    s = dev.programming_sigma(g)
    assert np.all(s == s[0]) and s[0] > 0


def test_pcm_sigma_scales_with_g_max():
    """aihwkit scales the uS polynomial by g_max / 25 uS."""
    a = PCMDevice().programming_sigma(np.array([12.5e-6]))
    b = PCMDevice(g_max_siemens=50e-6).programming_sigma(np.array([25e-6]))
    assert b[0] == pytest.approx(2 * a[0])


@pytest.mark.parametrize("preset", sorted(DEVICES))
def test_every_preset_runs_through_a_tile(preset):
    """Program, drift one day, read: finite outputs close to x @ W (each preset's noise is
    a few % of g_max at most, the error of a 64-row dot product stays well below 100 %)."""
    cfg = load_config("baseline-ftj").replace(**{"device.preset": preset, "noise.read": True})
    r = np.random.default_rng(9)
    w = r.standard_normal((64, 16))
    x = r.uniform(-1, 1, (32, 64))
    tile = AnalogTile(w, cfg)
    tile.program()
    tile.drift(86400.0)
    y = tile.forward_float(x, np.arange(32))
    assert np.all(np.isfinite(y))
    assert np.linalg.norm(y - x @ w) < 0.5 * np.linalg.norm(x @ w)


def test_reram_tile_programming_sigma_is_two_percent_everywhere():
    """sigma_prog = 0.02 g_max at targets 0.3 and 0.9 g_max (10^5 devices, 4 sigma/sqrt(2n))."""
    cfg = _pcm_cfg(**{"noise.programming": True, "device.preset": "reram"})
    for level in (0.3, 0.9):
        w = np.full((N_ROWS, N_COLS), level)
        w[0, :] = 1.0
        tile = AnalogTile(w, cfg)
        tile.program()
        dg = ((tile.g_prog[0] - tile.g_target[0]) / tile.g_max)[1:].ravel()
        assert _std_ok(dg, 0.02)
