"""Hardware-aware training (models/training/hwa.py, ``aimcflow fit --hwa``) and
``aimcflow drift-report``.

The HWA forward must compute what the analog tile computes (the golden model of the
analog-float level) and inject the device's programming noise and the configured output
noise with the documented statistics.  Statistical tolerances are 5 standard errors of
the estimate for the sample size used (a false failure has probability < 1e-6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from aimcflow.flows.commands import fit as fit_cmd
from aimcflow.models.analog import fused
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import load_config
from aimcflow.models.training import hwa
from flow_helpers import cli
from scipy import stats


def _quiet(cfg, **noise):
    """cfg with every noise off (then ``noise`` fields set) and no IR drop."""
    n = dict(out_noise=0.0, w_noise=0.0, programming=False, drift=False, read=False)
    n.update(noise)
    return cfg.replace(
        noise=cfg.noise.model_copy(update=n), tile=cfg.tile.model_copy(update={"ir_drop": 0.0})
    )


def _section(cfg, name, **kw):
    return cfg.replace(**{name: getattr(cfg, name).model_copy(update=kw)})


@pytest.mark.parametrize("preset", ["baseline-ftj", "pcm"])
def test_forward_without_noise_equals_the_tile(preset):
    """Noise off: the HWA forward gives the tile's outputs bit for bit (same NM, DAC, ADC,
    bound management, rescale), except where the two float32 products (torch's and
    numpy's summation order, relative error ~1e-6) fall on either side of an ADC rounding
    boundary: then the code differs by one (expected on ~1e-5 of the outputs here)."""
    cfg = _quiet(load_config(preset))
    r = np.random.default_rng(1)
    w = r.normal(size=(100, 30)) * 0.3 + 0.4  # mostly positive: some outputs saturate
    x = np.concatenate([r.normal(size=(1500, 100)) * 3, r.random((1500, 100))]).astype(np.float32)
    x[:5] = 0.0  # all-zero rows give 0
    tile = AnalogTile(w, cfg)
    ref, passes = tile.forward_float_stats(x, np.arange(len(x)))
    assert passes.max() > 1  # bound management redid some rows
    got = hwa.tile_forward(torch.from_numpy(x), torch.from_numpy(w), hwa.HwaSpec(cfg), None)
    # one output step of row i, column j in layer units: out_lsb * row scale * w_scale
    scale = np.abs(x).max(axis=1) * 2.0 ** (passes - 1).clip(min=0)
    step = tile.output_lsb * scale[:, None] * tile.w_scale[None, :]
    diff = np.abs(got.detach().numpy() - ref)
    assert np.all(diff[5:] < 1.01 * step[5:])
    assert np.mean(diff > 0) < 1e-3
    assert np.all(got.detach().numpy()[:5] == 0.0)


def test_tiled_matrix_forward_equals_tiled_tile():
    """A matrix larger than a tile: row tiles summed, column tiles side by side."""
    cfg = _section(_quiet(load_config("baseline-ftj")), "tile", rows=64, cols=16)
    r = np.random.default_rng(2)
    w = r.normal(size=(150, 40)) * 0.2
    x = r.random((500, 150)).astype(np.float32)
    tm = TiledMatrix(w, cfg)
    ref = tm.forward_float(x, np.arange(len(x)))
    got = hwa.matrix_forward(torch.from_numpy(x), torch.from_numpy(w), hwa.HwaSpec(cfg), None)
    diff = np.abs(got.detach().numpy() - ref)
    assert np.mean(diff > 1e-9 * np.abs(ref).max()) < 1e-3  # see the test above


def test_dac_is_the_fused_dac_bit_for_bit():
    """Ties (exact half steps) round up, values beyond the bound clip, as fused.dac."""
    cfg = load_config("baseline-ftj")
    step = np.float32(1.0 / 127)
    r = np.random.default_rng(3)
    x = np.concatenate(
        [
            r.uniform(-1.5, 1.5, (200, 64)).astype(np.float32),
            ((np.arange(-70, 70).astype(np.float32) + 0.5) * step)[None, :64].repeat(4, 0),
        ]
    )
    pre = r.uniform(0.5, 2.0, len(x)).astype(np.float32)
    xq = np.empty_like(x)
    codes = np.empty(x.shape, np.int8)
    fused.dac(x, np.arange(len(x)), pre, step, np.float32(1.0), np.float32(127), xq, codes,
              np.empty(x.shape, np.int8))  # fmt: skip
    got = hwa.dac(torch.from_numpy(x), torch.from_numpy(pre), hwa.HwaSpec(cfg)).numpy()
    assert np.array_equal(got, xq)
    assert got.max() == 1.0 and got.min() == -1.0


def _fused_adc(y: np.ndarray, bits: int, bound: float):
    """The tile's ADC (fused.pass_tail with IR drop, noise and mismatch off, unit scales):
    (codes (R, m) float64, sat (R,) bool)."""
    r_n, m = y.shape
    lsb = np.float32(bound / ((1 << (bits - 1)) - 1))
    out = np.zeros((r_n, m))
    z32 = np.zeros((r_n, m), np.float32)
    sat = fused.pass_tail(
        y, z32, z32, np.ones(m), np.ones(m), False, np.float32(1), np.float32(0), False,
        np.uint64(0), np.uint64(0), np.arange(r_n, dtype=np.int64), np.zeros(r_n, np.float32),
        np.ones(m, np.float32), np.zeros(m, np.float32), np.float32(1.0) / lsb,
        np.float32((1 << (bits - 1)) - 1), np.ones(r_n, np.float32), out,
        np.arange(r_n, dtype=np.int64), np.ones(m, np.float32),
    )  # fmt: skip
    return out, sat


def test_adc_codes_clip_and_saturation_are_the_tiles():
    """Codes floor(y / LSB + 1/2) (ties up), clipped to +-(2**(bits-1) - 1), a row
    saturated when a code lay beyond: bit for bit the tile's ADC."""
    cfg = _section(load_config("baseline-ftj"), "adc", bits=6, bound=4.0)
    lsb = np.float32(4.0 / 31)
    k = np.arange(-40, 40, dtype=np.float32)
    y = np.stack([(k + np.float32(0.5)) * lsb, (k + np.float32(0.25)) * lsb, k * lsb * 0.7])
    r = np.random.default_rng(5)
    y = np.concatenate([y, r.uniform(-4.5, 4.5, (50, 80)).astype(np.float32)])
    y[-1] = np.clip(y[-1], -3.9, 3.9)  # a row without saturation
    codes, sat = hwa.adc(torch.from_numpy(y), hwa.HwaSpec(cfg))
    want, want_sat = _fused_adc(y, 6, 4.0)
    assert np.array_equal(codes.numpy().astype(np.float64), want)
    assert np.array_equal(sat.numpy(), want_sat)
    assert want_sat[0] and not want_sat[-1] and np.abs(want).max() == 31


@pytest.mark.parametrize(("preset", "noise_scale"), [("baseline-ftj", 1.0), ("pcm", 2.0)])
def test_weight_noise_std_is_the_device_programming_noise(preset, noise_scale):
    """W_eff - W_norm = (n+ - n-) with n+ ~ N(0, s(g+)) on the programmed device and n- the
    other device of the pair, programmed at 0 and clipped at 0 (a rectified normal):
    mean -s0/sqrt(2 pi), variance s(g+)**2 + s0**2 (1/2 - 1/(2 pi)); s from the device's
    programming_sigma (S) / g_max times the noise scale."""
    cfg = _quiet(load_config(preset), programming=True)
    spec = hwa.HwaSpec(cfg, noise_scale=noise_scale)
    dev = spec.device
    w = torch.full((200, 200), 0.5, dtype=torch.float64)
    w_eff = hwa.programmed_weights(w, spec, hwa.generator(7))
    d = (w_eff - w).numpy().ravel()
    s1 = (
        noise_scale
        * dev.programming_sigma(np.array([0.5 * dev.g_max_siemens]))[0]
        / dev.g_max_siemens
    )
    s0 = noise_scale * dev.programming_sigma(np.array([0.0]))[0] / dev.g_max_siemens
    mean = -s0 / math.sqrt(2 * math.pi)
    std = math.sqrt(s1**2 + s0**2 * (0.5 - 1 / (2 * math.pi)))
    n = d.size
    assert abs(d.mean() - mean) < 5 * std / math.sqrt(n)
    # SE of a sample std ~ std / sqrt(2 n) (near-normal data; the rectified part is small)
    assert abs(d.std() - std) < 5 * std / math.sqrt(2 * n)
    again = hwa.programmed_weights(w, spec, hwa.generator(7))
    assert torch.equal(again, w_eff)  # seeded: reproducible
    g = hwa.generator(7)
    first, second = hwa.programmed_weights(w, spec, g), hwa.programmed_weights(w, spec, g)
    assert not torch.equal(first, second)  # a fresh draw per forward (mini-batch)


def test_output_noise_std_is_out_noise_and_w_noise_times_input_norm():
    """Output noise of std sqrt(out_noise**2 + (w_noise ||x_dac||)**2) in normalized output
    units (fine converters, no saturation: what is left is the noise)."""
    cfg = _quiet(load_config("baseline-ftj"), out_noise=0.1, w_noise=0.05)
    cfg = _section(_section(cfg, "adc", bits=24, bound=1000.0), "dac", bits=24)
    spec = hwa.HwaSpec(cfg)
    r = np.random.default_rng(4)
    w = torch.from_numpy(r.normal(size=(50, 40)) * 0.3)
    x = torch.from_numpy(r.random((2000, 50)).astype(np.float32))
    clean = hwa.tile_forward(x, w, spec, None).detach()
    noisy = hwa.tile_forward(x, w, spec, hwa.generator(1)).detach()
    ws = w.abs().amax(dim=0)
    s = x.abs().amax(dim=1)
    xn = (x / s[:, None]).double()
    sigma = torch.sqrt(0.1**2 + (0.05 * torch.linalg.vector_norm(xn, dim=1)) ** 2)
    z = ((noisy - clean) / (s[:, None] * ws[None, :]) / sigma[:, None]).numpy().ravel()
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 5 / math.sqrt(2 * n)


def test_wrapped_layers_match_torch_layers_on_a_fine_tile():
    """Linear and Conv2d (stride, padding, 1x1) through im2col: with a 24-bit DAC/ADC and no
    noise the HWA forward of digits-resnet in training mode is the torch forward."""
    from aimcflow.models.nn.archs import build

    cfg = _section(_section(load_config("ideal"), "adc", bits=24, bound=1000.0), "dac", bits=24)
    torch.manual_seed(0)
    model = build("digits-resnet").eval()
    x = torch.rand(6, 64)
    with torch.no_grad():
        ref = model(x)
        swaps = hwa.wrap(model, hwa.HwaSpec(cfg), hwa.generator(0))
        assert len(swaps) == 7  # stem, 2 + 2 block convs, the 1x1 projection, the linear
        for m in model.modules():  # training forward of the HWA layers, eval-mode BN
            if isinstance(m, (hwa.HwaConv2d, hwa.HwaLinear)):
                m.train()
        got = model(x)
        hwa.unwrap(swaps)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert all(not isinstance(m, (hwa.HwaConv2d, hwa.HwaLinear)) for m in model.modules())


def test_weight_clip_at_sigma():
    lin = torch.nn.Linear(100, 50)
    with torch.no_grad():
        lin.weight[0, 0] = 10.0
    std = float(lin.weight.std())
    hwa.clip_weights(lin, 2.5)
    assert float(lin.weight.abs().max()) == pytest.approx(2.5 * std, rel=1e-6)


def test_parser_bounds_are_the_module_bounds():
    assert fit_cmd.MAX_NOISE_SCALE == hwa.MAX_NOISE_SCALE
    assert fit_cmd.MAX_CLIP_SIGMA == hwa.MAX_CLIP_SIGMA
    assert fit_cmd.DEFAULT_CLIP_SIGMA == hwa.DEFAULT_CLIP_SIGMA


def test_fit_hwa_writes_a_loadable_model(tmp_path, monkeypatch):
    from aimcflow.models.nn.data import load_digits_dataset
    from aimcflow.models.nn.workloads import load_user_model

    monkeypatch.chdir(tmp_path)
    assert cli("fit", "--model", "digits-cnn", "--epochs", "1", "--out", "f") == 0
    assert cli(
        "fit", "--model", "digits-cnn", "--epochs", "1", "--hwa", "pcm", "--hwa-epochs", "1",
        "--hwa-noise-scale", "3", "--out", "h",
    ) == 0  # fmt: skip
    res = json.loads((tmp_path / "h" / "results.json").read_text())
    assert res["hwa"]["config"] == "pcm" and res["hwa"]["epochs"] == 1
    assert res["hwa"]["noise_scale"] == 3.0 and res["hwa"]["clip_sigma"] == 2.5
    assert len(res["train_loss"]) == 2
    data = load_digits_dataset()
    m_h = load_user_model(tmp_path / "h" / "model.pt2", data)
    m_f = load_user_model(tmp_path / "f" / "model.pt2", data)
    x = torch.from_numpy(data.x_test[:8])
    with torch.no_grad():
        assert m_h(x).shape == (8, 10)
        assert not torch.allclose(m_h(x), m_f(x))  # the HWA epoch changed the weights
    # the float phase is the same training: the first epoch's loss is identical
    assert res["train_loss"][0] == json.loads((tmp_path / "f" / "results.json").read_text())[
        "train_loss"][0]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--hwa", "no-such-config"], "config 'no-such-config' not found"),
        (["--hwa-epochs", "3"], "only with --hwa"),
        (["--hwa", "pcm", "--hwa-noise-scale", "1000"], "0..100"),
        (["--hwa", "pcm", "--hwa-clip", "-1"], "0..100"),
    ],
)
def test_fit_hwa_bad_input_exits_2_without_output(tmp_path, monkeypatch, capsys, extra, says):
    monkeypatch.chdir(tmp_path)
    rc = cli("fit", "--model", "digits-mlp", "--epochs", "1", "--out", "o", *extra)
    assert rc == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _fake_run(path, accs_by_t, float_acc=0.95, chance=0.9):
    path.mkdir()
    table = [{"drift_s": t, "accuracies": a} for t, a in accs_by_t.items()]
    (path / "results.json").write_text(
        json.dumps(
            {
                "model": "m",
                "config": "c",
                "images": 10,
                "levels": {"float": {"accuracy": float_acc}},
                "chance_error": chance,
                "drift_table": table,
            }
        )
    )


def test_drift_report_mean_and_student_t_interval(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = [0.9, 0.92, 0.88, 0.91, 0.93]
    _fake_run(tmp_path / "r1", {1.0: a, 3600.0: [0.8] * 5})
    _fake_run(tmp_path / "r2", {1.0: [0.5, 0.6]})
    assert cli("drift-report", "r1", "r2", "--label", "A", "--label", "B", "--out", "o") == 0
    rep = json.loads((tmp_path / "o" / "drift_report.json").read_text())
    d = rep["runs"][0]["drift"][0]
    half = stats.t.ppf(0.975, 4) * np.std(a, ddof=1) / math.sqrt(5)
    assert d["accuracy"]["mean"] == pytest.approx(np.mean(a))
    assert d["accuracy"]["ci95"] == pytest.approx([np.mean(a) - half, np.mean(a) + half])
    # A* = 1 - (err - err_float) / (err_chance - err_float), err_float 0.05, chance 0.9
    star = [1 - ((1 - v) - 0.05) / (0.9 - 0.05) for v in a]
    assert d["a_star"]["mean"] == pytest.approx(np.mean(star))
    assert rep["runs"][1]["label"] == "B"
    csv_rows = (tmp_path / "o" / "drift_report.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 3
    assert (tmp_path / "o" / "drift_report.png").stat().st_size > 1000


@pytest.mark.parametrize("case", ["missing", "no_table", "labels"])
def test_drift_report_bad_input_exits_2(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path / "r1", {1.0: [0.9, 0.8]})
    if case == "missing":
        argv = ["r1", "nowhere"]
        says = "nowhere: no results.json"
    elif case == "no_table":
        (tmp_path / "r2").mkdir()
        (tmp_path / "r2" / "results.json").write_text('{"drift_table": []}')
        argv = ["r1", "r2"]
        says = "no analog-float drift table"
    else:
        argv = ["r1", "--label", "a", "--label", "b"]
        says = "2 --label for 1 run"
    assert cli("drift-report", *argv, "--out", "o") == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_drift_report_groups_runs_with_one_label(tmp_path, monkeypatch):
    """Runs with the same label: statistics over the runs' means (training seeds), A* of
    each run against its own float accuracy."""
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path / "s0", {1.0: [0.9, 0.8], 3600.0: [0.9, 0.9]}, float_acc=0.95)
    _fake_run(tmp_path / "s1", {1.0: [0.7, 0.7], 3600.0: [0.8, 0.6]}, float_acc=0.9)
    _fake_run(tmp_path / "s2", {2.0: [0.7, 0.7]})
    assert cli("drift-report", "s0", "s1", "--label", "g", "--label", "g", "--out", "o") == 0
    (g,) = json.loads((tmp_path / "o" / "drift_report.json").read_text())["runs"]
    assert g["runs"] == 2
    d = g["drift"][0]
    assert d["accuracy"]["mean"] == pytest.approx(0.775)
    half = stats.t.ppf(0.975, 1) * np.std([0.85, 0.7], ddof=1) / math.sqrt(2)
    assert d["accuracy"]["ci95"] == pytest.approx([0.775 - half, 0.775 + half])
    star0 = 1 - ((1 - 0.85) - 0.05) / (0.9 - 0.05)
    star1 = 1 - ((1 - 0.7) - 0.1) / (0.9 - 0.1)
    assert d["a_star"]["mean"] == pytest.approx((star0 + star1) / 2)
    rc = cli("drift-report", "s0", "s2", "--label", "g", "--label", "g", "--out", "o2", "--force")
    assert rc == 2 and not (tmp_path / "o2").exists()
