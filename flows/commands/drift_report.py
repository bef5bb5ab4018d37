"""``aimcflow drift-report``: accuracy and A* against drift time of several ``aimcflow run``
results side by side, with 95 % confidence intervals, e.g. a model with and without
hardware-aware training (``aimcflow fit --hwa``) under one config.

``aimcflow drift-report RUN_DIR [RUN_DIR ...] [--label TEXT ...] [--out DIR]`` reads each
``RUN_DIR/results.json`` written by ``aimcflow run`` (its ``drift_table``: the
analog-float accuracy of every repeat at every drift time, ``levels.float.accuracy`` and
``chance_error``) and writes to ``--out`` (default ``out/drift-report/``):

* ``drift_report.png``: accuracy (%) and A* (FTJ thesis eq. 3.8) against the time after
  programming (log axis), one line per run, error bars the 95 % Student-t interval over
  its repeats (:mod:`aimcflow.flows.sweep_stats`); the accuracy axis never runs above 100 %;
* ``drift_report.csv``: one row per run (or group) x drift time: ``label``, ``model``,
  ``config``, ``images``, ``runs``, ``drift_s``, then mean, std, ci95_low, ci95_high of
  accuracy (fraction) and of A*;
* ``drift_report.json``: the same, with every repeat's values.

A run's label defaults to ``MODEL @ CONFIG`` (its results.json's ``model`` and ``config``);
``--label`` gives one label per run, in order.  Runs with the same label form one group
(e.g. models trained with different ``fit --seed``): the group's statistics are over its
runs' means (each the mean over that run's repeats, A* against that run's own float
accuracy), so its interval covers the training randomness as well as the programming
noise; ``runs`` says how many.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

from aimcflow.flows.args import add_out_arg, fmt_duration
from aimcflow.flows.io import (
    prepare_out_dir,
    shown,
    write_atomic_with,
    write_json_atomic,
    write_text_atomic,
)
from aimcflow.models.errors import UserInputError

MAX_RUNS = 32


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift-report",
        help="accuracy and A* against drift time of several `run` results, with 95 %% CIs",
        description="Plot and tabulate the analog-float accuracy and A* against drift time "
        "of several `aimcflow run` output directories (e.g. a model with and without "
        "hardware-aware training), mean and 95 % Student-t interval over each run's repeats.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help=f"`aimcflow run` output directories (1..{MAX_RUNS})",
    )
    p.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=None,
        metavar="TEXT",
        help="a label per run, in order (default: MODEL @ CONFIG from its results.json); "
        "runs with the same label are one group, statistics over their means; give the "
        "run directories first, then the labels",
    )
    add_out_arg(p, "drift-report")
    p.set_defaults(func=run)


def _load(d: str) -> dict:
    """A run's results.json, checked for what the report reads."""
    path = Path(d) / "results.json"
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(
            f"{d}: no results.json; give output directories of `aimcflow run`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(
            f"{path}: not a readable results.json ({type(exc).__name__})"
        ) from None
    try:
        table = res["drift_table"]
        ok = (
            isinstance(table, list)
            and table
            and all(
                isinstance(r["drift_s"], (int, float))
                and r["accuracies"]
                and all(isinstance(a, (int, float)) for a in r["accuracies"])
                for r in table
            )
            and isinstance(res["levels"]["float"]["accuracy"], (int, float))
            and isinstance(res["chance_error"], (int, float))
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise UserInputError(
            f"{path}: has no analog-float drift table (drift_table with accuracies, "
            "levels.float.accuracy, chance_error); run `aimcflow run` with the analog-float level"
        )
    return res


def summarize_run(res: dict, label: str) -> dict:
    """Per drift time: mean, std and 95 % CI of accuracy and A* over the run's repeats."""
    # lazy: numpy/scipy (kept out of ``aimcflow --help``)
    from aimcflow.flows.sweep_stats import summarize
    from aimcflow.models.nn.evaluate import normalized_accuracy

    err_float = 1.0 - float(res["levels"]["float"]["accuracy"])
    rows = []
    for r in res["drift_table"]:
        accs = [float(a) for a in r["accuracies"]]
        stars = [
            float(v)
            for v in normalized_accuracy([1.0 - a for a in accs], err_float, res["chance_error"])
        ]
        acc, star = summarize(accs), summarize(stars)
        rows.append(
            {
                "drift_s": float(r["drift_s"]),
                "accuracy": acc.as_dict(),
                "a_star": None if star is None else star.as_dict(),
                "accuracies": accs,
                "a_stars": stars,
            }
        )
    return {
        "label": label,
        "model": res.get("model"),
        "config": res.get("config"),
        "images": res.get("images"),
        "runs": 1,
        "repeats": len(res["drift_table"][0]["accuracies"]),
        "float_accuracy": res["levels"]["float"]["accuracy"],
        "chance_error": res["chance_error"],
        "drift": rows,
    }


def group_runs(runs: list[dict]) -> list[dict]:
    """Runs with the same label as one entry, statistics over the runs' means."""
    from aimcflow.flows.sweep_stats import summarize  # lazy: scipy

    by_label: dict[str, list[dict]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    out = []
    for label, group in by_label.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        times = [d["drift_s"] for d in group[0]["drift"]]
        if any([d["drift_s"] for d in r["drift"]] != times for r in group):
            raise UserInputError(
                f"--label {label}: its runs were read at different drift times; a group's "
                "runs must share them"
            )
        rows = []
        for j, t in enumerate(times):
            accs = [r["drift"][j]["accuracy"]["mean"] for r in group]
            stars = [
                r["drift"][j]["a_star"]["mean"]
                for r in group
                if r["drift"][j]["a_star"] is not None
            ]
            star = summarize(stars)
            rows.append(
                {
                    "drift_s": t,
                    "accuracy": summarize(accs).as_dict(),
                    "a_star": None if star is None else star.as_dict(),
                    "accuracies": accs,
                    "a_stars": stars,
                }
            )
        first = group[0]
        out.append(
            {
                **{k: first[k] for k in ("label", "model", "config", "images")},
                "runs": len(group),
                "repeats": [r["repeats"] for r in group],
                "float_accuracy": [r["float_accuracy"] for r in group],
                "chance_error": [r["chance_error"] for r in group],
                "drift": rows,
            }
        )
    return out


def _csv(runs: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stats = ("mean", "std", "ci95_low", "ci95_high")
    w.writerow(
        ["label", "model", "config", "images", "runs", "drift_s"]
        + [f"accuracy_{s}" for s in stats]
        + [f"a_star_{s}" for s in stats]
    )

    def vals(s):
        if s is None:
            return ["", "", "", ""]
        ci = s["ci95"] or ["", ""]
        return [s["mean"], s["std"], ci[0], ci[1]]

    for r in runs:
        for d in r["drift"]:
            w.writerow(
                [r["label"], r["model"], r["config"], r["images"], r["runs"], d["drift_s"]]
                + vals(d["accuracy"])
                + vals(d["a_star"])
            )
    return buf.getvalue()


def _bars(s: dict | None, scale: float) -> tuple[float, float, float]:
    if s is None:
        return math.nan, 0.0, 0.0
    m = scale * s["mean"]
    if s["ci95"] is None:
        return m, 0.0, 0.0
    return m, m - scale * s["ci95"][0], scale * s["ci95"][1] - m


def _plot(path: Path, runs: list[dict]) -> None:
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    fig = Figure(figsize=(11, 4.2))
    ax_a, ax_s = fig.subplots(1, 2)
    lows = []
    for k, r in enumerate(runs):
        t = [d["drift_s"] for d in r["drift"]]
        # a small horizontal offset per run keeps overlapping error bars readable
        tt = [v * (1.0 + 0.12 * (k - (len(runs) - 1) / 2)) for v in t]
        for ax, key, scale in ((ax_a, "accuracy", 100.0), (ax_s, "a_star", 1.0)):
            m, lo, hi = zip(*(_bars(d[key], scale) for d in r["drift"]), strict=True)
            ax.errorbar(tt, m, yerr=[lo, hi], marker="o", capsize=3, label=r["label"])
            if key == "accuracy":
                lows += [a - b for a, b in zip(m, lo, strict=True) if math.isfinite(a)]
    ticks = sorted({d["drift_s"] for r in runs for d in r["drift"]})
    for ax in (ax_a, ax_s):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [fmt_duration(v) for v in ticks])
        ax.minorticks_off()
        ax.set_xlabel("time after programming")
        ax.grid(True, alpha=0.3)
    bottom = max(0.0, math.floor(min(lows)) - 1.0) if lows else 0.0
    ax_a.set_ylim(bottom, 100.0)
    ax_a.set_ylabel("analog-float accuracy (%), mean and 95 % CI")
    ax_s.set_ylabel("A* (eq. 3.8), mean and 95 % CI")
    ax_s.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")


def _pm(s: dict | None, scale: float, digits: int) -> str:
    if s is None:
        return "-"
    if s["ci95"] is None:
        return f"{scale * s['mean']:.{digits}f}"
    half = scale * (s["ci95"][1] - s["ci95"][0]) / 2
    return f"{scale * s['mean']:.{digits}f} ± {half:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    if len(args.runs) > MAX_RUNS:
        raise UserInputError(f"{len(args.runs)} run directories given; allowed: 1..{MAX_RUNS}")
    if args.labels is not None and len(args.labels) != len(args.runs):
        raise UserInputError(
            f"{len(args.labels)} --label for {len(args.runs)} run directories; give one per run"
        )
    results = [_load(d) for d in args.runs]
    labels = args.labels or [f"{r.get('model')} @ {r.get('config')}" for r in results]
    runs = group_runs([summarize_run(r, lab) for r, lab in zip(results, labels, strict=True)])
    out = prepare_out_dir(args.out, "drift-report", args.force)
    print(f"{'run':<40} {'drift':>6} {'accuracy % (95 % CI)':>22} {'A* (95 % CI)':>18}  n (runs)")
    for r in runs:
        for d in r["drift"]:
            print(
                f"{r['label']:<40} {fmt_duration(d['drift_s']):>6} "
                f"{_pm(d['accuracy'], 100.0, 2):>22} {_pm(d['a_star'], 1.0, 3):>18}  "
                f"{d['accuracy']['n']} ({r['runs']})"
            )
    _plot(out / "drift_report.png", runs)
    write_text_atomic(out / "drift_report.csv", _csv(runs))
    write_json_atomic(out / "drift_report.json", {"runs": runs})
    print(
        f"wrote {shown(out) / 'drift_report.png'}, {shown(out) / 'drift_report.csv'} and "
        f"{shown(out) / 'drift_report.json'}"
    )
    return 0
