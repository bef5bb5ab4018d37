"""Statistics, CSV, plots and the thesis-3.3 grid of ``aimcflow sweep``."""

import csv
import io
import json
import math

import numpy as np
import pytest
from aimcflow.flows.report_sweep import plot_grid, plot_sweep
from aimcflow.flows.sweep import SweepAxis, aggregate
from aimcflow.flows.sweep_grid import GRIDS, factor_settings, grid_points, rank
from aimcflow.flows.sweep_stats import STATISTICS, csv_text, summarize, t_quantile
from aimcflow.models.config import load_config
from matplotlib.container import ErrorbarContainer
from scipy import stats


def test_t_quantile_matches_the_printed_t_table():
    # two-sided 95 % critical values of Student's t as printed in statistics tables
    for dof, printed in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)):
        assert t_quantile(dof + 1) == pytest.approx(printed, abs=5e-4)


def test_ci_is_student_t_over_the_repeats():
    v = [0.90, 0.95, 0.85, 0.92, 0.88]
    s = summarize(v)
    mean = sum(v) / 5
    sd = math.sqrt(sum((a - mean) ** 2 for a in v) / 4)
    assert s.n == 5 and s.mean == pytest.approx(mean, abs=1e-15)
    assert s.std == pytest.approx(sd, rel=1e-12)
    lo, hi = stats.t.interval(0.95, 4, loc=mean, scale=sd / math.sqrt(5))
    assert s.ci95 == pytest.approx((lo, hi), rel=1e-12)
    # by hand, from the table's t(0.975, 4) = 2.7764: half width 2.7764 * sd / sqrt(5).
    # The printed 4 decimals are within 5e-5 of the true quantile: rel 5e-5 / 2.7764 < 2e-5
    lo, hi = s.ci95
    assert (hi - lo) / 2 == pytest.approx(2.7764 * sd / math.sqrt(5), rel=2e-5)


def test_one_repeat_has_no_interval_and_none_is_dropped():
    s = summarize([0.5])
    assert (s.n, s.mean, s.std, s.ci95) == (1, 0.5, 0.0, None)
    assert summarize([None, float("nan")]) is None
    assert summarize([0.2, None, 0.4]).n == 2


def _repeat(acc, a_star):
    return {"analog_float": {"accuracy": acc, "a_star": a_star}}


def _point(params, accs, factor=None, drift_s=3600.0):
    levels = aggregate([_repeat(a, 1.0 - (1.0 - a) * 2) for a in accs])
    return {"factor": factor, "params": params, "drift_s": drift_s, "levels": levels}


def test_aggregate_reports_mean_std_ci_of_accuracy_and_a_star():
    p = _point({}, [0.9, 0.8, 0.85])
    lv = p["levels"]["analog_float"]
    acc = summarize([0.9, 0.8, 0.85])
    a_star = summarize([0.8, 0.6, 0.7])
    assert lv["accuracy"] == acc.mean and lv["ci95"] == list(acc.ci95)
    assert lv["a_star"] == pytest.approx(a_star.mean)
    assert lv["a_star_ci95"] == pytest.approx(list(a_star.ci95))
    assert lv["accuracies"] == [0.9, 0.8, 0.85]


def test_csv_has_one_row_per_point_level_statistic():
    points = [_point({"adc.bits": b, "noise.out_noise": o}, [0.9, 0.7, 0.8])
              for b in (4, 8) for o in (0.02, 0.1)]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(csv_text(points, ["adc.bits", "noise.out_noise"]))))
    assert list(rows[0]) == ["point", "factor", "adc.bits", "noise.out_noise", "drift_s",
                             "level", "statistic", "accuracy", "a_star"]  # fmt: skip
    assert len(rows) == 4 * 1 * len(STATISTICS)
    assert [r["statistic"] for r in rows[:5]] == ["mean", "std", "ci95_low", "ci95_high", "n"]
    s = summarize([0.9, 0.7, 0.8])
    assert float(rows[2]["accuracy"]) == pytest.approx(s.ci95[0], rel=1e-12)
    assert float(rows[3]["accuracy"]) == pytest.approx(s.ci95[1], rel=1e-12)
    assert rows[4]["accuracy"] == "3" and rows[5]["adc.bits"] == "4"
    assert rows[-1]["adc.bits"] == "8" and rows[-1]["noise.out_noise"] == "0.1"


def test_sweep_plot_has_ci_error_bars_and_axis_at_most_100(tmp_path):
    axes = [SweepAxis("adc.bits", (5, 8)), SweepAxis("noise.out_noise", (0.02, 0.1))]
    accs = {(5, 0.02): [1.0, 0.98, 0.99], (8, 0.02): [1.0, 1.0, 0.99],
            (5, 0.1): [0.95, 0.9, 0.97], (8, 0.1): [0.96, 0.94, 0.99]}  # fmt: skip
    points = [_point({"adc.bits": b, "noise.out_noise": o}, a) for (b, o), a in accs.items()]
    fig = plot_sweep(tmp_path / "s.png", axes, points, "t")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # one line per out_noise value, each with error bars
    # the bar of (adc.bits=5, out_noise=0.1) spans its 95 % CI in percent
    s = summarize(accs[(5, 0.1)])
    seg = bars[1].lines[2][0].get_segments()[0]
    assert seg[:, 1] == pytest.approx([100 * s.ci95[0], 100 * s.ci95[1]])
    assert ax.get_ylim()[1] == 100.0 and ax.get_ylim()[0] >= 0.0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_thesis_grid_is_one_factor_at_a_time():
    cfg = load_config("baseline-ftj")
    points = grid_points(cfg, "thesis-3.3", 3600.0)
    # baseline + 4 DAC + 4 ADC + 5 out_noise + 5 w_noise (baseline 0.04 / 0.035 are not on
    # the grid) + 4 IR drop (baseline 1) + 3 drift (baseline 1 h)
    assert len(points) == 1 + 4 + 4 + 5 + 5 + 4 + 3
    base = cfg.model_dump()
    for _factor, params, pcfg, t_s in points[1:]:
        (key,) = params  # exactly one non-ideality changed
        diff = {
            f"{sec}.{k}"
            for sec, fields in pcfg.model_dump().items()
            if isinstance(fields, dict)
            for k, v in fields.items()
            if base[sec][k] != v
        }
        if key == "drift_s":
            assert diff == set() and t_s == params[key] != 3600.0
        else:
            assert diff == {key} and t_s == 3600.0
    keys = {k for f in GRIDS["thesis-3.3"] for k in [f.key]}
    assert keys == {"dac.bits", "adc.bits", "noise.out_noise", "noise.w_noise",
                    "tile.ir_drop", "drift_s"}  # fmt: skip


def test_ranking_pairs_repeats_and_orders_by_drop(tmp_path):
    cfg = load_config("baseline-ftj")
    pts = grid_points(cfg, "thesis-3.3", 3600.0)
    base = [0.90, 0.92, 0.88]
    # weight noise costs most at 0.4, ADC at 4 bits; everything else costs nothing
    cost = {("weight noise", 0.4): [0.5, 0.6, 0.4], ("ADC precision", 4): [0.80, 0.85, 0.80]}
    results = [
        _point(p, cost.get((f, next(iter(p.values()), None)), base), f, t) for f, p, _, t in pts
    ]
    ranking = rank("thesis-3.3", cfg, results, "analog_float")
    assert [r["factor"] for r in ranking[:2]] == ["weight noise", "ADC precision"]
    top = ranking[0]
    assert top["worst_setting"] == 0.4
    d = summarize([0.4, 0.32, 0.48])  # paired: baseline repeat r - worst repeat r
    assert top["accuracy_drop"]["mean"] == pytest.approx(d.mean)
    assert top["accuracy_drop"]["ci95"] == pytest.approx(list(d.ci95))
    assert ranking[-1]["accuracy_drop"]["mean"] == 0.0
    fig = plot_grid(tmp_path / "g.png", factor_settings("thesis-3.3", cfg, results), "t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6
    for ax in visible:
        assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
        assert ax.get_ylim()[1] == 100.0
    json.dumps(ranking)  # results.json holds it
    assert np.isfinite(top["accuracy_drop"]["std"])
