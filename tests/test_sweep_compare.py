"""``aimcflow sweep --grid NAME`` over several ``--model`` and ``--config``: one run, a
combined CSV / JSON / Markdown table / plot whose statistics are the single-network
sweep's (``flows/sweep_stats.py``), a verdict computed from them, and bad input refused
before any work."""

import contextlib
import csv
import io
import json
import math
import re

import pytest
from aimcflow.flows.sweep import _get
from aimcflow.flows.sweep_grid import DRIFT_KEY, GRIDS
from aimcflow.flows.sweep_stats import ci_half_width, summarize
from aimcflow.models.config import load_config
from flow_helpers import cli

IMAGES = 12
REPEATS = 2
MODELS = ("digits-cnn", "digits-vit")
CONFIGS = ("baseline-ftj", "pcm")
COMPARED = ("drift", "output noise", "weight noise")


def _settings(cfg_name: str) -> dict[str, list]:
    """Per factor of thesis-3.3, its settings around the preset (the grid's values and the
    preset's own, read at the default 1 h): what a table must list, from the grid and the
    preset alone."""
    cfg = load_config(cfg_name)
    out = {}
    for f in GRIDS["thesis-3.3"]:
        base = 3600.0 if f.key == DRIFT_KEY else _get(cfg, f.key)
        out[f.name] = sorted({*f.values, base})
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One invocation: 2 networks x 2 presets x the thesis-3.3 grid x 2 seeds."""
    d = tmp_path_factory.mktemp("compare")
    argv = ["sweep", "--grid", "thesis-3.3", "--model", ",".join(MODELS),
            "--config", CONFIGS[0], "--config", CONFIGS[1], "--images", IMAGES,
            "--repeats", REPEATS, "--levels", "analog-float", "--workers", 2,
            "--out", d / "o"]  # fmt: skip
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(*argv) == 0
    out = d / "o"
    return {
        "dir": out,
        "printed": buf.getvalue(),
        "json": json.loads((out / "results.json").read_text()),
        "csv": list(csv.DictReader((out / "compare.csv").open())),
        "md": (out / "compare.md").read_text(),
    }


def test_every_network_config_point_has_n_seeds_and_the_sweep_ci(compared):
    r = compared["json"]
    assert r["mode"] == "compare" and r["grid"] == "thesis-3.3"
    assert {m["name"]: m["kind"] for m in r["models"]} == {
        "digits-cnn": "CNN",
        "digits-vit": "transformer",
    }
    runs = {(x["model"], x["config"]): x["points"] for x in r["runs"]}
    assert set(runs) == {(m, c) for m in MODELS for c in CONFIGS}
    for (_, cname), points in runs.items():
        # every grid point once: the baseline and every setting that differs from it
        want = 1 + sum(len(v) - 1 for v in _settings(cname).values())
        assert len(points) == want
        for p in points:
            lv = p["levels"]["analog_float"]
            assert len(lv["a_stars"]) == REPEATS
            s = summarize(lv["a_stars"])  # the statistics module of the one-network sweep
            assert lv["a_star_stats"]["n"] == REPEATS == s.n
            assert lv["a_star_ci95"] == list(s.ci95)
            assert lv["a_star"] == s.mean


def test_csv_rows_cover_the_grid_and_carry_the_sweep_statistics(compared):
    r, rows = compared["json"], compared["csv"]
    float_acc = {m["name"]: m["float_accuracy"] for m in r["models"]}
    runs = {(x["model"], x["config"]): x["points"] for x in r["runs"]}
    want = {
        (m, c, f, float(v))
        for m in MODELS
        for c in CONFIGS
        for f, vals in _settings(c).items()
        for v in vals
    }
    got = {(x["model"], x["config"], x["factor"], float(x["value"])) for x in rows}
    assert got == want and len(rows) == len(want)
    for x in rows:
        points = runs[(x["model"], x["config"])]
        key, v = x["key"], float(x["value"])
        match = [p for p in points if p["params"].get(key) == v]
        (p,) = match or [p for p in points if p["factor"] == "baseline"]
        assert (x["baseline"] == "1") == (p["factor"] == "baseline")
        s = summarize(p["levels"]["analog_float"]["a_stars"])
        assert int(x["n"]) == s.n == REPEATS
        assert float(x["a_star"]) == s.mean
        assert float(x["a_star_ci95_half"]) == ci_half_width(s.ci95)
        assert (float(x["a_star_ci95_low"]), float(x["a_star_ci95_high"])) == s.ci95
        assert float(x["float_accuracy"]) == float_acc[x["model"]]
        assert x["level"] == "analog_float"


def test_markdown_has_a_table_per_config_with_a_row_per_setting(compared):
    md = compared["md"]
    assert md in compared["printed"].replace("\r", "")  # printed as written
    for c in CONFIGS:
        head = f"### {c}, analog-float: A*"
        assert md.count(head) == 1
        table = md.split(head, 1)[1].split("###", 1)[0]
        lines = [ln for ln in table.splitlines() if ln.startswith("|")]
        assert lines[0] == "| setting | digits-cnn (CNN) | digits-vit (transformer) |"
        body = lines[2:-1]
        assert len(body) == sum(len(v) for v in _settings(c).values())
        for ln in body:
            cells = [x.strip() for x in ln.strip("|").split("|")]
            assert len(cells) == 3
            assert all(re.fullmatch(r"-?\d+\.\d{3} ± \d+\.\d{3}", x) for x in cells[1:]), ln
        assert lines[-1].startswith("| float accuracy |")
        # the comparison factors come first, drift at 1 s .. 1 y among them
        labels = [ln.split("|")[1].strip() for ln in body]
        assert labels[:4] == ["drift 1 s", "drift 1 h (baseline)", "drift 1 d", "drift 1 y"]
        assert "output noise 40 %" in labels and "weight noise 40 %" in labels


def test_verdict_follows_the_intervals(compared):
    """Each verdict line's counts, recomputed from the CSV's intervals."""
    rows, verdict = compared["csv"], compared["json"]["verdict"]
    assert {(v["config"], v["factor"]) for v in verdict} == {
        (c, f) for c in CONFIGS for f in COMPARED
    }
    for v in verdict:
        assert (v["transformer"], v["cnn"]) == ("digits-vit", "digits-cnn")
        mine = [x for x in rows if x["config"] == v["config"] and x["factor"] == v["factor"]]
        vit = {x["value"]: x for x in mine if x["model"] == "digits-vit"}
        cnn = {x["value"]: x for x in mine if x["model"] == "digits-cnn"}
        higher = [
            k for k in vit if float(vit[k]["a_star_ci95_low"]) > float(cnn[k]["a_star_ci95_high"])
        ]
        lower = [k for k in vit if float(vit[k]["a_star_ci95_high"]) < float(cnn[k]["a_star_ci95_low"])]  # fmt: skip
        assert len(v["higher"]) == len(higher) and len(v["lower"]) == len(lower)
        assert len(v["higher"]) + len(v["lower"]) + len(v["overlap"]) == len(vit)
        assert f"higher beyond the 95 % CIs at {len(higher)} of {len(vit)} settings" in v["text"]
        assert v["text"] in compared["printed"]
    # the summary counts each grid point once: the baseline sits in every factor's panel
    points = sum(
        1 + sum(len(v) - 1 for f, v in _settings(c).items() if f in COMPARED) for c in CONFIGS
    )
    (summary,) = compared["json"]["verdict_summary"]
    assert summary.startswith(f"digits-vit vs digits-cnn, {points} grid points over 6 ")
    assert summary in compared["printed"]
    png = (compared["dir"] / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_compared_run_equals_the_one_network_sweep(compared, tmp_path, monkeypatch):
    """The digits-cnn x pcm part of the comparison is what the single-network sweep
    gives: same tasks, same seeds, same numbers."""
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--grid", "thesis-3.3", "--model", "digits-cnn", "--config", "pcm",
            "--images", IMAGES, "--repeats", REPEATS, "--levels", "analog-float",
            "--workers", 1, "--out", "one"]  # fmt: skip
    assert cli(*argv) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    (run,) = [x for x in compared["json"]["runs"] if x["model"] == "digits-cnn" and x["config"] == "pcm"]  # fmt: skip
    assert run["points"] == one["points"]
    assert not math.isnan(one["float_accuracy"])


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--model", "digits-cnn,resnet"], "unknown model 'resnet'; allowed: digits-mlp"),
        (["--model", "digits-cnn", "--config", "pcm,nope"], "config 'nope' not found"),
        (["--model", "digits-cnn,digits-vit,digits-cnn"], "--model digits-cnn: given twice"),
        (["--model", "digits-cnn", "--config", "pcm", "--config", "pcm"], "given already"),
        (["--model", "digits-cnn,"], "empty name in the list"),
        (
            [
                "--model",
                "digits-mlp,digits-cnn,digits-resnet,digits-vit,resnet20",
                "--config",
                "baseline-ftj,pcm,ideal,stress",
            ],
            "5 --model x 4 --config = 20 combinations; allowed: at most 16",
        ),  # fmt: skip
        (
            ["--model", "digits-cnn,digits-vit", "--config", "baseline-ftj,pcm", "--repeats", "20"],
            "2 networks x 52 grid points (26 baseline-ftj + 26 pcm) x --repeats 20 = 2080 "
            "evaluations; allowed: at most 2000",
        ),
    ],
)
def test_bad_lists_exit_2_before_any_work(extra, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--grid", "thesis-3.3", "--out", "o", *extra]
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.partial-*"))


@pytest.mark.parametrize(
    "how, words",
    [
        (["--set", "adc.bits=4,6"], "--set runs one network under one config"),
        (["--per-layer", "adc.bits=4,6"], "--per-layer runs one network under one config"),
        ([], "several --model or --config are compared on a named grid; give --grid"),
    ],
)
def test_several_networks_need_a_grid(how, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--model", "digits-mlp", "--model", "digits-cnn", "--out", "o", *how]
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def _cell(mean: float, half: float | None) -> dict:
    ci = None if half is None else [mean - half, mean + half]
    return {"n": 5, "a_star": mean, "a_star_ci95": ci, "a_star_ci95_half": half,
            "accuracy": 0.5, "accuracy_ci95_half": half}  # fmt: skip


def test_verdict_rule_on_known_intervals():
    """Intervals chosen by hand: wholly above, wholly below, overlapping, no CI."""
    from aimcflow.flows.sweep_compare import TRANSFORMER, Run, verdict, verdict_summary

    cfg = load_config("pcm")
    runs = [Run("t", TRANSFORMER, cfg, 0.9, 0.9, []), Run("c", "CNN", cfg, 0.9, 0.9, [])]
    cells = {  # w_noise: (transformer cell, CNN cell)
        0.0: (_cell(0.97, 0.02), _cell(0.99, 0.01)),  # [0.95, 0.99] vs [0.98, 1.00]: overlap
        0.1: (_cell(0.80, 0.02), _cell(0.70, 0.05)),  # [0.78, 0.82] above [0.65, 0.75]
        0.2: (_cell(0.30, 0.02), _cell(0.50, 0.10)),  # [0.28, 0.32] below [0.40, 0.60]
        0.3: (_cell(0.20, None), _cell(0.10, 0.01)),  # one repeat: no interval
    }
    rows = [
        {"config": "pcm", "level": "analog_float", "factor": "weight noise",
         "key": "noise.w_noise", "value": v, "baseline": v == 0.0,
         "models": {"t": tc, "c": cc}}
        for v, (tc, cc) in cells.items()
    ]  # fmt: skip
    (v,) = [x for x in verdict("thesis-3.3", rows, runs) if x["factor"] == "weight noise"]
    assert (v["higher"], v["lower"], v["overlap"], v["no_CI"]) == ([0.1], [0.2], [0.0], [0.3])
    assert v["text"] == (
        "pcm, analog-float, weight noise: t (transformer) vs c (CNN): A* higher beyond the "
        "95 % CIs at 1 of 4 settings (10 %), lower at 1 (20 %), intervals overlap at 1, "
        "no CI (1 repeat) at 1."
    )
    (s,) = verdict_summary([v])
    assert "4 grid points over 1 config x factor panels" in s
    assert "higher beyond the 95 % CIs at 1, lower at 1, intervals overlap at 1" in s
