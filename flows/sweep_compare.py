"""A named grid swept over several networks and configs at once: the combined view.

``aimcflow sweep --grid NAME --model A,B,... --config C,D,...`` runs grid ``NAME`` around
every config for every network in one Dask session (:func:`aimcflow.flows.sweep.run_groups`)
and then compares the networks' A* (FTJ thesis eq. 3.8) setting by setting.  Every
statistic here is the one the single-network sweep computes
(:mod:`aimcflow.flows.sweep_stats`: mean and 95 % Student-t interval over the repeats);
this module only arranges those numbers side by side and judges them.

Verdict rule.  At one setting, network T's A* is *higher beyond the CIs* than network C's
when T's 95 % interval lies wholly above C's (T's lower end > C's upper end), *lower
beyond the CIs* when it lies wholly below, and otherwise the intervals *overlap* (no
interval, N = 1: *no CI*).  Non-overlapping 95 % intervals are a conservative test for a
difference of means.  The verdict compares every transformer among the networks with
every convolutional one (plain and residual), for each config, level and comparison
factor of the grid (:data:`aimcflow.flows.sweep_grid.COMPARISON_FACTORS`), and counts the
settings of each outcome.  A network's kind is read off its imported graph
(:func:`network_kind`), not its name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from aimcflow.flows.args import fmt_duration
from aimcflow.flows.sweep_grid import COMPARISON_FACTORS, DRIFT_KEY, factor_settings
from aimcflow.flows.sweep_stats import ci_half_width
from aimcflow.models.config import AcceleratorConfig

TRANSFORMER = "transformer"
CNN = "CNN"
RESNET = "residual CNN"
MLP = "MLP"

CSV_COLUMNS = (
    "model",
    "kind",
    "config",
    "level",
    "factor",
    "key",
    "value",
    "baseline",
    "n",
    "a_star",
    "a_star_ci95_half",
    "a_star_ci95_low",
    "a_star_ci95_high",
    "accuracy",
    "accuracy_ci95_half",
    "float_accuracy",
)
"""``compare.csv``: one row per network x config x level x factor x setting.  ``value``
is the setting (fractions for the noise keys, seconds for ``drift_s``); ``baseline`` is
1 where the setting is the config's own (the shared baseline point); ``n`` counts the
repeats (seeds) with a defined A*; ``a_star*`` and ``accuracy*`` are the mean and the 95 %
Student-t interval (half-width, ends) over them; ``float_accuracy`` is the network's
float test accuracy on the same images.  Empty cells: not run, or no interval (N = 1)."""


def network_kind(imp) -> str:
    """``transformer`` (an attention op), ``residual CNN`` (a convolution and a residual
    add), ``CNN`` (a convolution) or ``MLP``, from an imported graph's ops."""
    # lazy: the op classes import numpy and torch helpers (kept out of ``--help``)
    from aimcflow.models.nn.analog_ops import AnalogLayer
    from aimcflow.models.nn.graphops import Add
    from aimcflow.models.nn.seqops import Attention

    ops = imp.ops
    if any(isinstance(o, Attention) for o in ops):
        return TRANSFORMER
    conv = any(isinstance(o, AnalogLayer) and o.conv is not None for o in ops)
    if conv and any(isinstance(o, Add) for o in ops):
        return RESNET
    return CNN if conv else MLP


@dataclass(frozen=True)
class Run:
    """One network under one config: its sweep points (as
    :func:`aimcflow.flows.sweep.run_groups` returns them) and its float reference."""

    model: str
    kind: str
    config: AcceleratorConfig
    float_accuracy: float
    chance_error: float
    points: list[dict]


def setting_label(key: str, v) -> str:
    """A setting for people: noise as a percentage, read times as 1 s .. 1 y."""
    if key == DRIFT_KEY:
        return fmt_duration(v)
    if key.startswith("noise."):
        return f"{100.0 * v:g} %"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _cell(r: dict) -> dict:
    """A* and accuracy statistics of one point at one level (None fields: not run)."""
    if r.get("accuracy") is None:
        return {"n": 0, "a_star": None, "a_star_ci95": None, "a_star_ci95_half": None,
                "accuracy": None, "accuracy_ci95_half": None, "reason": r.get("reason")}  # fmt: skip
    stats = r.get("a_star_stats")
    return {
        "n": 0 if stats is None else stats["n"],
        "a_star": r["a_star"],
        "a_star_ci95": r["a_star_ci95"],
        "a_star_ci95_half": ci_half_width(r["a_star_ci95"]),
        "accuracy": r["accuracy"],
        "accuracy_ci95_half": ci_half_width(r["ci95"]),
    }


def comparison(grid: str, runs: Sequence[Run], levels: Sequence[str]) -> list[dict]:
    """Every config x level x factor x setting of ``grid`` with every network's cell:
    ``{config, level, factor, key, value, baseline, models: {model: cell}}``: the grid's
    comparison factors first, then its other factors in grid order; settings ascending
    (the config's own setting is the baseline point)."""
    out = []
    configs = list(dict.fromkeys(r.config.name for r in runs))
    for cname in configs:
        mine = [r for r in runs if r.config.name == cname]
        per_model = {r.model: factor_settings(grid, r.config, r.points) for r in mine}
        first = per_model[mine[0].model]
        # the factors the networks are compared under first, then the rest in grid order
        shown = COMPARISON_FACTORS.get(grid, ())
        order = sorted(
            range(len(first)),
            key=lambda i: (first[i][0].name not in shown, shown.index(first[i][0].name)
                           if first[i][0].name in shown else i),
        )  # fmt: skip
        for level in levels:
            for fi in order:
                factor, settings = first[fi]
                for si, (v, p) in enumerate(settings):
                    cells = {}
                    for r in mine:
                        _, theirs = per_model[r.model][fi]
                        cells[r.model] = _cell(theirs[si][1]["levels"][level])
                    out.append(
                        {
                            "config": cname,
                            "level": level,
                            "factor": factor.name,
                            "key": factor.key,
                            "value": v,
                            "baseline": p["factor"] == "baseline",
                            "models": cells,
                        }
                    )
    return out


def _num(v) -> object:
    return "" if v is None else v


def csv_text(rows: Sequence[dict], runs: Sequence[Run]) -> str:
    """``compare.csv`` (:data:`CSV_COLUMNS`) of :func:`comparison` ``rows``."""
    info = {r.model: r for r in runs}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in rows:
        for model, c in row["models"].items():
            ci = c["a_star_ci95"] or (None, None)
            w.writerow(
                [model, info[model].kind, row["config"], row["level"], row["factor"],
                 row["key"], row["value"], int(row["baseline"]), c["n"], _num(c["a_star"]),
                 _num(c["a_star_ci95_half"]), _num(ci[0]), _num(ci[1]), _num(c["accuracy"]),
                 _num(c["accuracy_ci95_half"]), info[model].float_accuracy]
            )  # fmt: skip
    return buf.getvalue()


def _pm(c: dict) -> str:
    if c["accuracy"] is None:
        return "not run"
    if c["a_star"] is None:
        return "-"  # A* undefined: the float network is no better than chance
    if c["a_star_ci95_half"] is None:
        return f"{c['a_star']:.3f}"
    return f"{c['a_star']:.3f} ± {c['a_star_ci95_half']:.3f}"


def markdown(rows: Sequence[dict], runs: Sequence[Run], repeats: int, images: int) -> str:
    """One Markdown table per config x level: a row per grid setting, a column per
    network, cells ``A* mean ± 95 % CI half-width``; a last row of float accuracies."""
    models = list(dict.fromkeys(r.model for r in runs))
    info = {r.model: r for r in runs}
    parts = []
    for cname, level in dict.fromkeys((r["config"], r["level"]) for r in rows):
        mine = [r for r in rows if r["config"] == cname and r["level"] == level]
        lines = [
            f"### {cname}, {level.replace('_', '-')}: A* (mean ± 95 % CI half-width, "
            f"{repeats} seeds per point, {images} test images)",
            "",
            "| setting | " + " | ".join(f"{m} ({info[m].kind})" for m in models) + " |",
            "|---|" + "---:|" * len(models),
        ]
        for r in mine:
            label = f"{r['factor']} {setting_label(r['key'], r['value'])}"
            if r["baseline"]:
                label += " (baseline)"
            lines.append(f"| {label} | " + " | ".join(_pm(r["models"][m]) for m in models) + " |")
        lines.append(
            "| float accuracy | "
            + " | ".join(f"{100 * info[m].float_accuracy:.2f} %" for m in models)
            + " |"
        )
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _outcome(t: dict, c: dict) -> str:
    """``higher``, ``lower``, ``overlap`` or ``no CI`` (module docstring)."""
    if t["a_star_ci95"] is None or c["a_star_ci95"] is None:
        return "no CI"
    if t["a_star_ci95"][0] > c["a_star_ci95"][1]:
        return "higher"
    if t["a_star_ci95"][1] < c["a_star_ci95"][0]:
        return "lower"
    return "overlap"


def verdict(grid: str, rows: Sequence[dict], runs: Sequence[Run]) -> list[dict]:
    """Every transformer against every (residual) CNN, per config, level and comparison
    factor: the settings where its A* is higher / lower beyond the 95 % CIs, overlapping,
    or without a CI, and a sentence saying so.  Empty when the networks lack either kind."""
    kinds = {r.model: r.kind for r in runs}
    ts = [m for m, k in kinds.items() if k == TRANSFORMER]
    cs = [m for m, k in kinds.items() if k in (CNN, RESNET)]
    out = []
    factors = COMPARISON_FACTORS.get(grid, ())
    for cname, level in dict.fromkeys((r["config"], r["level"]) for r in rows):
        for fname in factors:
            mine = [
                r for r in rows
                if r["config"] == cname and r["level"] == level and r["factor"] == fname
            ]  # fmt: skip
            for t in ts:
                for c in cs:
                    got: dict[str, list] = {"higher": [], "lower": [], "overlap": [], "no CI": []}
                    base = next((r["value"] for r in mine if r["baseline"]), None)
                    for r in mine:
                        tc, cc = r["models"][t], r["models"][c]
                        if tc["a_star"] is None or cc["a_star"] is None:
                            continue  # not run, or A* undefined: nothing to compare
                        got[_outcome(tc, cc)].append(r["value"])
                    out.append(
                        {
                            "config": cname, "level": level, "factor": fname,
                            "transformer": t, "cnn": c, "cnn_kind": kinds[c],
                            "baseline_value": base,
                            **{k.replace(" ", "_"): v for k, v in got.items()},
                            "text": _sentence(cname, level, fname, t, c, kinds[c], mine, got),
                        }
                    )  # fmt: skip
    return out


def _sentence(cname, level, fname, t, c, ckind, rows, got) -> str:
    key = rows[0]["key"] if rows else ""
    n = sum(len(v) for v in got.values())

    def at(vals: list) -> str:
        return f" ({', '.join(setting_label(key, v) for v in vals)})" if vals else ""

    s = (
        f"{cname}, {level.replace('_', '-')}, {fname}: {t} (transformer) vs {c} ({ckind}): "
        f"A* higher beyond the 95 % CIs at {len(got['higher'])} of {n} settings"
        f"{at(got['higher'])}, lower at {len(got['lower'])}{at(got['lower'])}, "
        f"intervals overlap at {len(got['overlap'])}"
    )
    if got["no CI"]:
        s += f", no CI (1 repeat) at {len(got['no CI'])}"
    return s + "."


def verdict_summary(lines: Sequence[dict]) -> list[str]:
    """Per transformer x CNN pair, the outcomes over every config, level and factor,
    each grid point counted once (the baseline point sits in every factor's panel)."""
    out = []
    for t, c in dict.fromkeys((v["transformer"], v["cnn"]) for v in lines):
        mine = [v for v in lines if v["transformer"] == t and v["cnn"] == c]
        points: dict[tuple, str] = {}
        for v in mine:
            for outcome in ("higher", "lower", "overlap", "no_CI"):
                for x in v[outcome]:
                    where = "baseline" if x == v["baseline_value"] else (v["factor"], x)
                    points[(v["config"], v["level"], where)] = outcome
        count = {k: sum(o == k for o in points.values()) for k in ("higher", "lower", "overlap")}
        out.append(
            f"{t} vs {c}, {len(points)} grid points over {len(mine)} config x factor panels: "
            f"A* higher beyond the 95 % CIs at {count['higher']}, lower at {count['lower']}, "
            f"intervals overlap at {count['overlap']}."
        )
    return out


def plot_panels(grid: str, rows: Sequence[dict]) -> list[tuple[str, list]]:
    """The data of ``compare.png``: per config x level a row titled ``config, level``,
    per comparison factor a panel ``(factor, key, setting labels, baseline index,
    {model: (means, CI half-widths)})`` (NaN mean: not run; 0 half-width: no CI)."""
    out = []
    for cname, level in dict.fromkeys((r["config"], r["level"]) for r in rows):
        panels = []
        for fname in COMPARISON_FACTORS.get(grid, ()):
            mine = [
                r for r in rows
                if r["config"] == cname and r["level"] == level and r["factor"] == fname
            ]  # fmt: skip
            if not mine:
                continue
            lines = {}
            for m in mine[0]["models"]:
                cells = [r["models"][m] for r in mine]
                means = [float("nan") if c["a_star"] is None else c["a_star"] for c in cells]
                halfs = [c["a_star_ci95_half"] or 0.0 for c in cells]
                lines[m] = (means, halfs)
            base = next((i for i, r in enumerate(mine) if r["baseline"]), None)
            labels = [setting_label(r["key"], r["value"]) for r in mine]
            panels.append((fname, mine[0]["key"], labels, base, lines))
        out.append((f"{cname}, {level.replace('_', '-')}", panels))
    return out
