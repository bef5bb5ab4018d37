"""``aimcflow vmm``: results file, plot, exit codes, and the experiment's numbers."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from aimcflow.flows.commands.vmm import drift_key
from aimcflow.models.analog.vmm_experiment import problem, run_vmm
from aimcflow.models.config import load_config


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", "vmm", *args], capture_output=True, text=True
    )


def test_vmm_cli_writes_results_and_plot(tmp_path):
    out = tmp_path / "o"
    proc = _cli(
        "--config",
        "ideal",
        "--rows",
        "40",
        "--cols",
        "24",
        "--vectors",
        "60",
        "--repeats",
        "2",
        "--drift",
        "1,1h",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    for key in ("config", "rows", "cols", "vectors", "repeats", "vmm_error"):
        assert key in res
    assert res["config"] == "ideal" and res["rows"] == 40 and res["repeats"] == 2
    assert list(res["vmm_error"]) == ["1", "3600"]
    # ideal tile, 16-bit converters: the error is quantization only, < 1e-3
    for v in res["vmm_error"].values():
        assert 0 <= v["mean"] < 1e-3 and v["std"] >= 0
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert "1 h" in proc.stdout  # the table shows times as people read them
    # a second run into the same directory needs --force
    again = _cli(
        "--config",
        "ideal",
        "--rows",
        "8",
        "--cols",
        "8",
        "--vectors",
        "4",
        "--repeats",
        "1",
        "--out",
        str(out),
    )
    assert again.returncode == 2 and "--force" in again.stderr
    assert json.loads((out / "results.json").read_text())["rows"] == 40


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rows", "0"], ["--rows", ">= 1"]),
        (["--rows", "9000"], ["--rows", "9000", "1..8192"]),
        (["--drift", "soon"], ["--drift", "soon"]),
        (["--config", "nope"], ["nope", "not found"]),
    ],
)
def test_vmm_cli_bad_arguments_exit_2(tmp_path, args, words):
    proc = _cli(*args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_drift_keys_are_seconds():
    assert drift_key(3600.0) == "3600" and drift_key(31536000.0) == "31536000"
    assert drift_key(0.5) == "0.5"


def test_vmm_output_noise_only_matches_formula():
    """Only output noise on (sigma 0.06 at bound 12, 9-bit ADC, 7-bit DAC, global
    scaling): error^2 = E[(s r)^2 (sigma^2 + LSB^2/12)] * cols / E||y||^2 per vector plus
    the DAC term, with s = max|x| the noise-management scale (r = 1: no saturation).  The
    DAC rounds each input to 1/63 of s: variance (s/63)^2/12 per input times
    sum_j w_ij^2.  We compare the measured error with this prediction within 5 %: the
    measured value is a ratio of sums over 200 x 64 outputs (relative std ~1/sqrt(12800)
    = 0.9 %, 5 % is > 4 std)."""
    cfg = load_config("pcm").replace(
        **{
            "noise.programming": False,
            "noise.drift": False,
            "noise.read": False,
            "noise.drift_compensation": "none",
            "device.preset": "ideal",
        }
    )
    rows, cols, vectors = 128, 64, 200
    res = run_vmm(cfg, rows, cols, vectors, [1.0], repeats=1)
    w, x = problem(cfg, rows, cols, vectors)
    s = np.abs(x).max(axis=1)
    y = x @ w
    lsb = 12 / 255
    noise = (s**2).sum() * cols * (0.06**2 + lsb**2 / 12)
    dac = ((s / 63) ** 2 / 12).sum() * (w**2).sum()
    expected = math.sqrt((noise + dac) / (y**2).sum())
    assert res.errors[0, 0] == pytest.approx(expected, rel=0.05)


def test_vmm_pcm_error_grows_with_drift_and_repeats_differ():
    cfg = load_config("pcm")
    res = run_vmm(cfg, 64, 32, 100, [1.0, 365 * 86400.0], repeats=2)
    assert res.errors.shape == (2, 2)
    assert np.all(res.errors[:, 1] > res.errors[:, 0])
    assert res.errors[0, 0] != res.errors[1, 0]  # fresh programming noise per repeat


def _rectified_moments(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of max(0, N(mu, sigma^2)) (the clipped programmed conductance)."""
    from scipy.stats import norm

    a = mu / sigma
    m1 = mu * norm.cdf(a) + sigma * norm.pdf(a)
    m2 = (mu**2 + sigma**2) * norm.cdf(a) + mu * sigma * norm.pdf(a)
    return m1, m2 - m1**2


def test_vmm_pcm_programming_noise_matches_formula():
    """aihwkit's PCM programming noise seen through the VMM experiment.

    Global scaling maps max|W| = 1 to g_max = 25 uS; W+ = max(W, 0) and W- = max(-W, 0)
    are programmed as max(0, g_T + sigma(g_T) z) with sigma from the uS polynomial.  With
    m, v the mean and variance of (G+ - G-)/g_max - W per device (rectified-normal moments),
    E||e||^2 = sum_vectors sum_i [(sum_j x_j m_ij)^2 + sum_j x_j^2 v_ij]; the DAC and ADC
    rounding terms of the output-noise test add.  One programming of 128 x 64 devices: the
    realized error^2 fluctuates by ~sqrt(2/8192) = 1.6 % around its expectation, so the
    error by 0.8 %; we allow 5 % (> 4 std)."""
    cfg = load_config("pcm").replace(
        **{
            "noise.drift": False,
            "noise.read": False,
            "noise.out_noise": 0.0,
            "noise.drift_compensation": "none",
        }
    )
    rows, cols, vectors = 128, 64, 400
    res = run_vmm(cfg, rows, cols, vectors, [1.0], repeats=1)
    w, x = problem(cfg, rows, cols, vectors)

    def sigma_rel(g):  # programming sigma in units of g_max, g = g_T / g_max
        return (0.26348 + 1.9650 * g - 1.1731 * g**2) / 25.0

    wp, wn = np.maximum(w, 0), np.maximum(-w, 0)
    mp, vp = _rectified_moments(wp, sigma_rel(wp))
    mn, vn = _rectified_moments(wn, sigma_rel(wn))
    m = (mp - wp) - (mn - wn)
    v = vp + vn
    y = x @ w
    s = np.abs(x).max(axis=1)
    prog = ((x @ m) ** 2).sum() + ((x**2) @ v).sum()
    lsb = 12 / 255
    quant = (s**2).sum() * cols * lsb**2 / 12 + ((s / 63) ** 2 / 12).sum() * (w**2).sum()
    expected = math.sqrt((prog + quant) / (y**2).sum())
    assert res.errors[0, 0] == pytest.approx(expected, rel=0.05)
