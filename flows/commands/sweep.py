"""``aimcflow sweep``: accuracy over a grid of periphery choices, on a Dask cluster.

``--set KEY=V1,V2,...`` (repeatable) names a dotted config key and its values; the sweep is
the cross product.  ``--grid thesis-3.3`` instead runs the FTJ thesis' sensitivity analysis
(one non-ideality at a time around ``--config``; :mod:`aimcflow.flows.sweep_grid`) and ranks
the non-idealities by the accuracy they cost.  ``--per-layer KEY=V1,V2,...`` degrades one
analog layer at a time (the others ideal; :mod:`aimcflow.flows.sweep_layers`) and draws a
heatmap of accuracy by layer and setting (``heatmap.png``).  Every point runs the
analog-float and/or analog-golden level of ``aimcflow run`` ``--repeats N`` times, seeds ``seed..seed+N-1``
(:mod:`aimcflow.flows.sweep`), each point x repeat one task on a
``dask.distributed.LocalCluster`` (``--workers`` processes, one thread each) or on the
scheduler given by ``--scheduler``.  Every point reports the mean, the sample std and a
95 % Student-t confidence interval over its repeats of the accuracy and of A* (FTJ thesis
eq. 3.8; :mod:`aimcflow.flows.sweep_stats`).

Several ``--model`` and/or ``--config`` (comma-separated or repeated) with ``--grid``
compare networks: every network x config runs the grid in one Dask session and the
networks' A* are set side by side with a transformer-vs-CNN verdict
(:mod:`aimcflow.flows.commands.sweep_many`, :mod:`aimcflow.flows.sweep_compare`).

Size bounds, checked before any work: ``1 <= --repeats <= 100``, at most 2000 points and
points x repeats <= 2000.

Outputs in ``--out`` (default ``out/sweep/``): ``results.json`` (``config``, ``model``,
``grid``, ``set`` {key: [values]}, ``points`` [{factor, params, drift_s, levels
{analog_float, analog_golden: {accuracy (mean), std, ci95, a_star, a_star_std,
a_star_ci95, accuracies, a_stars, ...}}}], ``ranking`` {level: [{factor, key,
worst_setting, baseline_accuracy, worst_accuracy, accuracy_drop {n, mean, std, ci95}}]}
(grids only), ``wall_s``, ``workers``, plus ``float_accuracy``, ``chance_error``,
``images``, ``drift_s``, ``repeats``), ``sweep.csv`` (one row per point x level x
statistic; columns in :mod:`aimcflow.flows.sweep_stats`) and ``sweep.png`` (accuracy with
95 % CI error bars: vs the first swept key, one line per value of the others; for a grid,
one panel per factor).
"""

from __future__ import annotations

import argparse
import contextlib
import time

from aimcflow.flows.args import (
    add_config_arg,
    add_data_args,
    add_images_arg,
    add_model_args,
    add_out_arg,
    bounded_int,
    duration_list,
    fmt_duration,
)
from aimcflow.flows.cluster import DEFAULT_WORKERS, add_cluster_args, check_cluster_args, connect
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.errors import UserInputError

DEFAULT_DRIFT = "1h"
DEFAULT_REPEATS = 1
MAX_REPEATS = 100  # --repeats upper bound (a sweep runs every point N times)
MAX_EVALUATIONS = 2000  # points x repeats upper bound, checked before any work starts
# networks x configs one sweep compares: each network is loaded here and sent to every
# worker; the points x repeats bound applies to the sum over all of them as well
MAX_COMBINATIONS = 16


def one_time(text: str) -> float:
    """``--drift T``: a sweep compares periphery choices at one drift time (argparse type)."""
    times = duration_list(text)
    if len(times) != 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a sweep runs at one drift time; give one "
            "(aimcflow run --drift T,T,... gives a drift table)"
        )
    return times[0]


def level_list(text: str) -> list[str]:
    """Comma-separated sweep levels (argparse type)."""
    # lazy: numpy, pydantic (flows.sweep) (kept out of ``aimcflow --help``)
    from aimcflow.flows.sweep import SWEEP_LEVELS

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in SWEEP_LEVELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown level {bad[0] if bad else text!r}; allowed: {', '.join(SWEEP_LEVELS)}"
        )
    return list(dict.fromkeys(names))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="network accuracy over a grid of periphery choices (Dask)",
        description="Run a network at the analog-float and analog-golden levels for every "
        "point of a grid of config values (--set KEY=V1,V2,..., cross product, or a named "
        "--grid) --repeats times on a Dask LocalCluster or a remote scheduler; print mean, std "
        "and 95 % confidence interval (Student t) of accuracy and A*, write results.json, "
        "sweep.csv and sweep.png.  With several --model and/or --config and a --grid, "
        "every network runs the grid around every config in one Dask session and the "
        "networks' A* are compared setting by setting (compare.md, compare.csv, "
        f"compare.png and a verdict; at most {MAX_COMBINATIONS} networks x configs).",
    )
    add_config_arg(p, several=True)
    add_model_args(p, several=True)
    add_data_args(p)
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a dotted config key and its values, e.g. adc.bits=4,6,8 or "
        "mgmt.noise=off,absmax_pow2; repeat for more keys (the sweep is the cross product, "
        "at most 2000 points)",
    )
    add_images_arg(p)
    p.add_argument(
        "--drift",
        type=one_time,
        default=one_time(DEFAULT_DRIFT),
        metavar="T",
        help="one time after programming: seconds or 1h, 1d, 1y (default "
        f"{DEFAULT_DRIFT}); unlike run and vmm, one time only: every point is run at it",
    )
    p.add_argument(
        "--repeats",
        type=bounded_int(1, MAX_REPEATS),
        default=DEFAULT_REPEATS,
        metavar="N",
        help=f"programmings per point at every level, seeds seed..seed+N-1 (fresh "
        f"programming, read and output noise each); reported as mean, std and a 95 %% "
        f"confidence interval (Student t over the N repeats). 1 <= N <= {MAX_REPEATS}, and "
        f"points x N <= {MAX_EVALUATIONS} (default {DEFAULT_REPEATS})",
    )
    p.add_argument(
        "--grid",
        default=None,
        metavar="NAME",
        help="a named grid instead of --set: thesis-3.3 (the FTJ thesis' sensitivity "
        "analysis, Table 3.3: DAC and ADC 4-8 bits, output and weight noise 0-40 %%, IR-drop "
        "scale, drift 1 s..1 y, one factor at a time around --config at --drift); the "
        "report ranks the non-idealities by the accuracy they cost",
    )
    p.add_argument(
        "--per-layer",
        default=None,
        metavar="KEY=V1,V2,...",
        help="per-layer sensitivity instead of --set/--grid: each analog layer in turn gets "
        "KEY at each value while the others stay ideal (noise 0; converter widths at the "
        "config's); KEY: adc.bits, dac.bits, noise.out_noise, noise.w_noise. Writes a "
        "heatmap of accuracy by layer and setting (heatmap.png)",
    )
    p.add_argument(
        "--levels",
        type=level_list,
        default=["analog-float", "analog-golden"],
        metavar="L[,L...]",
        help="levels per point: analog-float, analog-golden (default both)",
    )
    add_cluster_args(p, f"default {DEFAULT_WORKERS}")
    add_out_arg(p, "sweep")
    p.set_defaults(func=run)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _connect(args, stack):
    """A Dask client for the sweep (:func:`aimcflow.flows.cluster.connect`)."""
    return connect(args, stack)


def _setting(key: str, v) -> str:
    """A grid setting for people: read times (``drift_s``) as 1 s, 1 h, 1 d, 1 y."""
    return fmt_duration(v) if key == "drift_s" else _fmt(v)


def _pm(mean: float, ci, scale: float, digits: int) -> str:
    """``mean ± half`` (the Student-t interval is symmetric about the mean)."""
    from aimcflow.flows.sweep_stats import ci_half_width  # lazy: numpy (not in --help)

    half = ci_half_width(ci)
    if half is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


def _pct(r: dict) -> str:
    return _pm(r["accuracy"], r["ci95"], 100.0, 2) + " %"


def _a_star(r: dict) -> str:
    return "-" if r["a_star"] is None else _pm(r["a_star"], r["a_star_ci95"], 1.0, 3)


def _points_table(title, keys, results, level_keys, grid_name):
    from rich.table import Table  # lazy: rich

    t = Table(title=title, caption="mean ± 95 % CI half-width (Student t over the repeats)")
    if grid_name:
        t.add_column("factor")
        t.add_column("setting")
    else:
        for k in keys:
            t.add_column(k)
    for lv in level_keys:
        t.add_column(f"{lv.replace('_', '-')} accuracy", justify="right")
        t.add_column("A*", justify="right")
    for p in results:
        if grid_name:
            # the factor names the key (results.json and sweep.csv have it); "-": baseline
            row = [p["factor"], ", ".join(_setting(k, v) for k, v in p["params"].items()) or "-"]
        else:
            row = [_fmt(p["params"][k]) for k in keys]
        for lv in level_keys:
            r = p["levels"][lv]
            row += ["not run", ""] if r["accuracy"] is None else [_pct(r), _a_star(r)]
        t.add_row(*row)
    return t


def _ranking_table(level: str, ranking: list[dict]):
    from rich.table import Table  # lazy: rich

    t = Table(
        title=f"{level.replace('_', '-')}: non-idealities ranked by the accuracy their worst "
        "setting costs (baseline - worst, paired by seed, mean ± 95 % CI)"
    )
    for c in ("rank", "factor", "worst setting", "accuracy there", "accuracy drop"):
        t.add_column(c, justify="right" if c != "factor" else "left")
    for i, r in enumerate(ranking, 1):
        d = r["accuracy_drop"]
        drop = "-" if d is None else _pm(d["mean"], d["ci95"], 100.0, 2) + " pp"
        worst = f"{r['key']}={_setting(r['key'], r['worst_setting'])}"
        if r["not_run"]:
            worst += f" ({', '.join(_setting(r['key'], v) for v in r['not_run'])} not run)"
        t.add_row(str(i), r["factor"], worst, f"{100 * r['worst_accuracy']:.2f} %", drop)
    return t


def _heatmap_table(level: str, m: dict):
    from rich.table import Table  # lazy: rich

    ref = m["reference_accuracy"]
    ref_txt = "not run" if ref is None else _pm(ref, m["reference_ci95"], 100.0, 2) + " %"
    t = Table(
        title=f"{level.replace('_', '-')}: accuracy with one layer at {m['key']} (reference, "
        f"no layer degraded: {ref_txt})",
        caption="mean %, and the drop against the reference (paired by seed, ± 95 % CI, pp)",
    )
    t.add_column("layer")
    for v in m["settings"]:
        t.add_column(f"{m['key']}={_fmt(v)}", justify="right")
    for name, accs, drops in zip(m["layers"], m["accuracy"], m["drop"], strict=True):
        cells = []
        for a, d in zip(accs, drops, strict=True):
            if a is None:
                cells.append("not run")
            elif d is None:
                cells.append(f"{100 * a:.2f}")
            else:
                cells.append(
                    f"{100 * a:.2f} ({_pm(-d['mean'], d['ci95'] and [-d['ci95'][1], -d['ci95'][0]], 100.0, 2)})"
                )
        t.add_row(name, *cells)
    return t


def run(args: argparse.Namespace) -> int:
    # lazy: pydantic, torch, rich, tqdm (kept out of ``aimcflow --help``)
    from aimcflow.flows.args import load_data
    from aimcflow.flows.report_sweep import plot_grid, plot_sweep
    from aimcflow.flows.sweep import build_axes, grid, run_points
    from aimcflow.flows.sweep_grid import factor_settings, grid_name, grid_points, rank
    from aimcflow.flows.sweep_layers import (
        LAYER_PARAM,
        heatmap_rows,
        layer_points,
        parse_per_layer,
        plot_heatmap,
    )
    from aimcflow.flows.sweep_stats import write_csv
    from aimcflow.models.config import load_config
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.evaluate import chance_error
    from aimcflow.models.nn.workloads import accuracy_float, get_model, imported
    from rich.console import Console
    from tqdm import tqdm

    t0 = time.perf_counter()
    console = Console()
    # --- validate every input before any output exists or any worker starts
    check_cluster_args(args)
    gname = None if args.grid is None else grid_name(args.grid)
    given = [
        o
        for o, v in (("--grid", gname), ("--set", args.sets), ("--per-layer", args.per_layer))
        if v
    ]
    if len(given) > 1:
        raise UserInputError(f"{' and '.join(given)}: give one of them")
    models, configs = args.model or ["digits-mlp"], args.config or [None]
    if len(models) > 1 or len(configs) > 1:
        from aimcflow.flows.commands.sweep_many import run_many  # lazy: as above

        return run_many(args, models, configs, gname, console, t0)
    args.model = models[0]
    cfg = load_config(configs[0])
    per_layer = None
    if args.per_layer is not None:
        per_layer = parse_per_layer(cfg, args.per_layer)
        axes, points = [], []  # the points need the network's layers (below)
        keys = [LAYER_PARAM, per_layer[0]]
    elif gname is None:
        axes = build_axes(cfg, args.sets)
        points = grid(cfg, axes, args.drift)
        keys = [a.key for a in axes]
    else:
        axes = []
        points = grid_points(cfg, gname, args.drift)
        keys = list(dict.fromkeys(k for _, p, _, _ in points for k in p if k != "drift_s"))
    if per_layer is not None:
        points = []  # sized below, once the model's layers are known
    if len(points) * args.repeats > MAX_EVALUATIONS:
        raise UserInputError(
            f"{len(points)} points x --repeats {args.repeats} = {len(points) * args.repeats} "
            f"evaluations; allowed: at most {MAX_EVALUATIONS} (fewer values or fewer repeats)"
        )
    data = load_data(args)
    n = data.test_images(args.images)
    name, model = get_model(args.model, data, args.arch)
    imp = imported(model, data)  # imported once; workers receive the graph, not torch code
    if per_layer is not None:
        net_layers = [(a.name, a.index) for a in convert(imp, cfg, program=False).layers]
        points = layer_points(cfg, *per_layer, net_layers, args.drift)
        if len(points) * args.repeats > MAX_EVALUATIONS:
            raise UserInputError(
                f"{len(points)} points x --repeats {args.repeats} = "
                f"{len(points) * args.repeats} evaluations; allowed: at most {MAX_EVALUATIONS}"
            )
    for _, _, point_cfg, _ in points:  # unsupported layers fail here, not on a worker
        convert(imp, point_cfg, program=False)
    out = prepare_out_dir(args.out, "sweep", args.force)

    x, y = data.x_test[:n], data.y_test[:n]
    acc_float = accuracy_float(model, x, y)
    err_chance = chance_error(model, x, y)
    with contextlib.ExitStack() as stack:
        with console.status("starting the Dask cluster"):
            client = _connect(args, stack)
        workers = len(client.scheduler_info()["workers"])
        total = len(points) * args.repeats
        with tqdm(total=total, desc="sweep point x repeat", unit="task") as bar:
            results = run_points(
                client, points, imp, data, n, args.repeats, args.levels,
                1.0 - acc_float, err_chance, on_done=lambda: bar.update(1),
            )  # fmt: skip
    wall = time.perf_counter() - t0

    level_keys = [lv.replace("-", "_") for lv in args.levels]
    title = (
        f"{name} on {data.name} ({n} test images), config {cfg.name}, drift "
        f"{fmt_duration(args.drift)}, {args.repeats} repeat{'s' if args.repeats > 1 else ''},"
        f" float accuracy {100 * acc_float:.2f} %"
    )
    console.print(_points_table(title, keys, results, level_keys, gname))
    for p in results:
        for lv in level_keys:
            if p["levels"][lv]["accuracy"] is None:
                console.print(
                    f"[yellow]{p['params']}: {lv} not run: {p['levels'][lv]['reason']}[/yellow]",
                    highlight=False,
                )
    ranking = {}
    if gname is not None:
        ranking = {lv: rank(gname, cfg, results, lv) for lv in level_keys}
        for lv in level_keys:
            console.print(_ranking_table(lv, ranking[lv]))
    heatmaps = {}
    if per_layer is not None:
        heatmaps = {lv: heatmap_rows(results, per_layer[0], lv) for lv in level_keys}
        for lv in level_keys:
            console.print(_heatmap_table(lv, heatmaps[lv]))

    results_json = {
        "config": cfg.name,
        "config_digest": cfg.digest(),
        "model": name,
        "data": data.name,
        "images": n,
        "drift_s": args.drift,
        "repeats": args.repeats,
        "confidence": "95 % Student-t interval over the repeats",
        "float_accuracy": acc_float,
        "chance_error": err_chance,
        "grid": gname,
        "set": {a.key: list(a.values) for a in axes},
        "points": results,
        "ranking": ranking,
        "per_layer": heatmaps,
        "wall_s": wall,
        "workers": workers,
        "scheduler": args.scheduler or "LocalCluster",
    }
    plot_title = f"{name}, config {cfg.name}, {n} images, {args.repeats} repeats"
    plot_name = "sweep.png"
    if per_layer is not None:
        plot_name = "heatmap.png"
        plot_heatmap(
            out / plot_name,
            heatmaps,
            f"{plot_title}: one layer at {per_layer[0]}, the others ideal "
            f"(cell: accuracy %, change vs reference ± 95 % CI, pp)",
        )
    elif gname is None:
        plot_sweep(
            out / "sweep.png", axes, results, f"{plot_title}, drift {fmt_duration(args.drift)}"
        )
    else:
        factors = factor_settings(gname, cfg, results)
        plot_grid(out / "sweep.png", factors, f"{gname}: {plot_title}")
    write_csv(out / "sweep.csv", results, keys)
    write_json_atomic(out / "results.json", results_json)
    console.print(
        f"{len(points)} points x {args.repeats} repeats on {workers} worker"
        f"{'s' if workers > 1 else ''}; wall {wall:.1f} s; results in "
        f"{shown(out) / 'results.json'}, {shown(out) / 'sweep.csv'}, plot {shown(out) / plot_name}"
    )
    return 0
