"""``aimcflow sweep --grid NAME`` over several ``--model`` and/or ``--config``: one Dask
session for the whole cross product, then the networks compared setting by setting.

Not a command of its own (``aimcflow sweep`` calls :func:`run_many`); the combined view,
its CSV, tables and verdict are in :mod:`aimcflow.flows.sweep_compare`, the plot in
:mod:`aimcflow.flows.report_sweep`.

Bounds, checked before any work: at most ``MAX_COMBINATIONS`` networks x configs, no
network or config named twice, and networks x grid points x repeats <=
``MAX_EVALUATIONS`` (the single-network sweep's bound, over the whole run).

Outputs in ``--out``: ``results.json`` (``mode`` ``compare``, ``grid``, ``models`` [{name,
kind, float_accuracy, chance_error}], ``configs`` [{name, digest}], ``runs`` [{model,
config, points}] with the points as the single-network sweep writes them,
``comparison`` (the rows of :func:`aimcflow.flows.sweep_compare.comparison`),
``verdict``, ``wall_s``, ``workers``), ``compare.csv``
(:data:`aimcflow.flows.sweep_compare.CSV_COLUMNS`), ``compare.md`` (a table per config x
level) and ``compare.png`` (per config x level a row of panels, one per comparison factor).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from aimcflow.flows.args import fmt_duration
from aimcflow.flows.cluster import connect
from aimcflow.flows.commands.sweep import MAX_COMBINATIONS, MAX_EVALUATIONS
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic, write_text_atomic
from aimcflow.models.errors import UserInputError


def _check_lists(args: argparse.Namespace, models: list[str], configs: list) -> list:
    """Every name checked and every config loaded before anything runs; the loaded
    configs.  Raises UserInputError for a repeat, an unknown name or too many."""
    from aimcflow.models.config import load_config  # lazy: pydantic
    from aimcflow.models.nn.workloads import check_model_spec  # lazy: torch

    if args.sets or args.per_layer:
        raise UserInputError(
            f"--{'set' if args.sets else 'per-layer'} runs one network under one config; "
            "several --model or --config are compared on a named grid: give --grid NAME"
        )
    if args.grid is None:
        raise UserInputError(
            "several --model or --config are compared on a named grid; give --grid "
            "thesis-3.3 (one --model and one --config take --set and --per-layer too)"
        )
    n = len(models) * len(configs)
    if n > MAX_COMBINATIONS:
        raise UserInputError(
            f"{len(models)} --model x {len(configs)} --config = {n} combinations; allowed: "
            f"at most {MAX_COMBINATIONS} (fewer networks or configs)"
        )
    seen: dict[str, str] = {}
    for spec in models:
        name = check_model_spec(spec)
        same = str(Path(name).resolve()) if Path(name).is_file() else name
        if same in seen:
            raise UserInputError(
                f"--model {spec}: given twice ({seen[same]!r} names it already); "
                "give each network once"
            )
        seen[same] = spec
    cfgs = []
    for spec in configs:
        cfg = load_config(spec)
        if cfg.name in (c.name for c in cfgs):
            raise UserInputError(
                f"--config {spec or 'baseline-ftj'}: a config named {cfg.name!r} is given "
                "already; give each config once (the tables tell configs apart by name)"
            )
        cfgs.append(cfg)
    return cfgs


def run_many(
    args: argparse.Namespace,
    models: list[str],
    configs: list,
    gname: str | None,
    console,
    t0: float,
) -> int:
    """Run grid ``gname`` for every network x config in one Dask session and write the
    comparison (module docstring).  Every check runs before any output or worker exists."""
    # lazy: torch, numpy, matplotlib, tqdm (kept out of ``aimcflow --help``)
    from aimcflow.flows.args import load_data
    from aimcflow.flows.report_sweep import plot_compare
    from aimcflow.flows.sweep import SweepGroup, run_groups
    from aimcflow.flows.sweep_compare import (
        Run,
        comparison,
        csv_text,
        markdown,
        network_kind,
        plot_panels,
        verdict,
        verdict_summary,
    )
    from aimcflow.flows.sweep_grid import grid_points
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.evaluate import chance_error
    from aimcflow.models.nn.workloads import accuracy_float, get_model, imported
    from tqdm import tqdm

    cfgs = _check_lists(args, models, configs)
    points = {c.name: grid_points(c, gname, args.drift) for c in cfgs}
    total = len(models) * sum(len(p) for p in points.values()) * args.repeats
    if total > MAX_EVALUATIONS:
        raise UserInputError(
            f"{len(models)} networks x {sum(len(p) for p in points.values())} grid points "
            f"({' + '.join(f'{len(p)} {c}' for c, p in points.items())}) x --repeats "
            f"{args.repeats} = {total} evaluations; allowed: at most {MAX_EVALUATIONS} "
            "(fewer networks, configs or repeats)"
        )
    data = load_data(args)
    n = data.test_images(args.images)
    x, y = data.x_test[:n], data.y_test[:n]
    nets = []  # (name, imported graph, kind, float accuracy, chance error)
    for spec in models:
        name, model = get_model(spec, data, args.arch)
        imp = imported(model, data)  # imported once; workers receive the graph, not torch code
        for c in cfgs:
            for _, _, point_cfg, _ in points[c.name]:  # unsupported layers fail here
                convert(imp, point_cfg, program=False)
        nets.append((name, imp, network_kind(imp), accuracy_float(model, x, y),
                     chance_error(model, x, y)))  # fmt: skip
    out = prepare_out_dir(args.out, "sweep", args.force)

    combos = [(net, c) for net in nets for c in cfgs]
    groups = [SweepGroup(net[1], points[c.name], 1.0 - net[3], net[4]) for net, c in combos]
    with contextlib.ExitStack() as stack:
        with console.status("starting the Dask cluster"):
            client = connect(args, stack)
        workers = len(client.scheduler_info()["workers"])
        with tqdm(total=total, desc="sweep network x point x repeat", unit="task") as bar:
            results = run_groups(
                client, groups, data, n, args.repeats, args.levels, on_done=lambda: bar.update(1)
            )
    wall = time.perf_counter() - t0

    runs = [
        Run(net[0], net[2], c, net[3], net[4], res)
        for (net, c), res in zip(combos, results, strict=True)
    ]
    level_keys = [lv.replace("-", "_") for lv in args.levels]
    rows = comparison(gname, runs, level_keys)
    md = markdown(rows, runs, args.repeats, n)
    lines = verdict(gname, rows, runs)
    summary = verdict_summary(lines)
    console.print(md, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "Transformer vs CNN (A* beyond the 95 % CIs: the two intervals do not overlap)",
        markup=False,
    )
    if not lines:
        kinds = ", ".join(f"{net[0]} ({net[2]})" for net in nets)
        console.print(
            f"no verdict: it needs a transformer and a CNN among {kinds}",
            markup=False,
            soft_wrap=True,
        )
    for v in lines:
        console.print(v["text"], markup=False, highlight=False, soft_wrap=True)
    for s in summary:
        console.print(s, markup=False, highlight=False, soft_wrap=True)

    title = (
        f"{gname}: {', '.join(net[0] for net in nets)} on {data.name} ({n} test images), "
        f"{args.repeats} seeds per point, baseline drift {fmt_duration(args.drift)}"
    )
    plot_compare(out / "compare.png", plot_panels(gname, rows), title)
    write_text_atomic(out / "compare.csv", csv_text(rows, runs))
    write_text_atomic(out / "compare.md", md)
    write_json_atomic(
        out / "results.json",
        {
            "mode": "compare",
            "grid": gname,
            "data": data.name,
            "images": n,
            "drift_s": args.drift,
            "repeats": args.repeats,
            "levels": level_keys,
            "confidence": "95 % Student-t interval over the repeats",
            "models": [
                {"name": net[0], "kind": net[2], "float_accuracy": net[3], "chance_error": net[4]}
                for net in nets
            ],  # fmt: skip
            "configs": [{"name": c.name, "digest": c.digest()} for c in cfgs],
            "runs": [{"model": r.model, "config": r.config.name, "points": r.points} for r in runs],
            "comparison": rows,
            "verdict": lines,
            "verdict_summary": summary,
            "wall_s": wall,
            "workers": workers,
            "scheduler": args.scheduler or "LocalCluster",
        },
    )
    console.print(
        f"{len(nets)} networks x {len(cfgs)} configs, {total} tasks on {workers} worker"
        f"{'s' if workers > 1 else ''}; wall {wall:.1f} s; results in "
        f"{shown(out) / 'results.json'}, {shown(out) / 'compare.csv'}, "
        f"{shown(out) / 'compare.md'}, plot {shown(out) / 'compare.png'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0
