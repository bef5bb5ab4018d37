"""``aimcflow sweep``: accuracy over a grid of periphery choices, on a Dask cluster.

``--set KEY=V1,V2,...`` (repeatable) names a dotted config key and its values; the sweep is
the cross product.  Every point runs the analog-float and/or analog-golden level of
``aimcflow run`` (see :mod:`aimcflow.flows.sweep`) on a ``dask.distributed.LocalCluster``
(``--workers`` processes, one thread each) or on the scheduler given by ``--scheduler``.

Outputs in ``--out`` (default ``out/sweep/``): ``results.json`` (``config``, ``model``,
``set`` {key: [values]}, ``points`` [{params, levels{analog_float, analog_golden:
{accuracy, a_star, ...}}}], ``wall_s``, ``workers``, plus ``float_accuracy``,
``chance_error``, ``images``, ``drift_s``, ``repeats``) and ``sweep.png`` (accuracy vs the
first swept key, one line per value of the others).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket
import time

from aimcflow.flows.args import (
    add_config_arg,
    add_images_arg,
    add_out_arg,
    add_repeats_arg,
    bounded_int,
    duration_list,
    fmt_duration,
)
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.errors import UserInputError

DEFAULT_DRIFT = "1h"
DEFAULT_REPEATS = 1
DEFAULT_WORKERS = 2
SCHEDULER_TIMEOUT_S = 10
MAX_WORKERS = max(4, 4 * (os.cpu_count() or 1))  # processes; more only thrash the cores


def scheduler_address(text: str) -> str:
    """``--scheduler``: ``tcp://host:port`` (or ``tls://``, or plain ``host:port``)."""
    m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})", text.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a scheduler address; give tcp://host:port, e.g. tcp://127.0.0.1:8786"
        )
    return text.strip()


def _probe_scheduler(address: str) -> None:
    """Fail fast (one line, no Dask traceback) when nothing listens at ``address``."""
    hostport = address.split("://", 1)[-1]
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as exc:
        raise UserInputError(
            f"--scheduler {address}: cannot connect ({exc.strerror or type(exc).__name__}); "
            "give the address of a running Dask scheduler, e.g. tcp://host:8786"
        ) from None


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
        "point of a grid of config values (--set KEY=V1,V2,..., cross product) on a Dask "
        "LocalCluster or a remote scheduler; print the table, write results.json and "
        "sweep.png.",
    )
    add_config_arg(p)
    p.add_argument(
        "--model",
        default="digits-mlp",
        metavar="MODEL",
        help="digits-mlp, digits-cnn, or a torch.save'd model file (default digits-mlp)",
    )
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
    add_repeats_arg(p, DEFAULT_REPEATS, "point (analog-float)")
    p.add_argument(
        "--levels",
        type=level_list,
        default=["analog-float", "analog-golden"],
        metavar="L[,L...]",
        help="levels per point: analog-float, analog-golden (default both)",
    )
    p.add_argument(
        "--scheduler",
        type=scheduler_address,
        default=None,
        metavar="ADDR",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default: start a LocalCluster)",
    )
    p.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        default=None,
        metavar="N",
        help=f"LocalCluster worker processes, one thread each: 1..{MAX_WORKERS} (4 per "
        f"core; default {DEFAULT_WORKERS}); not with --scheduler",
    )
    add_out_arg(p, "sweep")
    p.set_defaults(func=run)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _connect(args, stack):
    """A Dask client on a fresh LocalCluster or the given scheduler; closed by ``stack``."""

    # lazy: dask (kept out of ``aimcflow --help``)
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        try:
            return stack.enter_context(
                Client(args.scheduler, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserInputError(
                f"--scheduler {args.scheduler}: cannot connect ({type(exc).__name__}: {exc}); "
                "give the address of a running Dask scheduler, e.g. tcp://host:8786"
            ) from None
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=args.workers or DEFAULT_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler's health/metrics HTTP server still starts; on a free local port,
            # not on 8787, so parallel sweeps (or pytest-xdist workers) do not collide
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        )
    )
    return stack.enter_context(Client(cluster, set_as_default=False))


def run(args: argparse.Namespace) -> int:
    # lazy: pydantic, torch, rich, tqdm (kept out of ``aimcflow --help``)
    from aimcflow.flows.sweep import build_axes, grid, plot_sweep, run_points
    from aimcflow.models.config import load_config
    from aimcflow.models.nn.convert import check_input_width, convert
    from aimcflow.models.nn.data import load_dataset
    from aimcflow.models.nn.evaluate import chance_error
    from aimcflow.models.nn.workloads import accuracy_float, get_model
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    t0 = time.perf_counter()
    console = Console()
    # --- validate every input before any output exists or any worker starts
    if args.scheduler is not None and args.workers is not None:
        raise UserInputError(
            "--workers sizes the LocalCluster; with --scheduler the "
            "remote cluster's workers are used: give one of them"
        )
    if args.scheduler is not None:
        _probe_scheduler(args.scheduler)
    cfg = load_config(args.config)
    axes = build_axes(cfg, args.sets)
    points = grid(cfg, axes)
    data = load_dataset(None)
    n = data.test_images(args.images)
    name, model = get_model(args.model, data)
    check_input_width(model, data.n_features, data.n_classes)
    for _, point_cfg in points:  # unsupported layers fail here, not on a worker
        convert(model, point_cfg, program=False)
    out = prepare_out_dir(args.out, "sweep", args.force)

    x, y = data.x_test[:n], data.y_test[:n]
    acc_float = accuracy_float(model, x, y)
    err_chance = chance_error(model, x, y)
    with contextlib.ExitStack() as stack:
        with console.status("starting the Dask cluster"):
            client = _connect(args, stack)
        workers = len(client.scheduler_info()["workers"])
        with tqdm(total=len(points), desc="sweep points", unit="point") as bar:
            results = run_points(
                client,
                points,
                model,
                data,
                n,
                args.drift,
                args.repeats,
                args.levels,
                1.0 - acc_float,
                err_chance,
                on_done=lambda i: bar.update(1),
            )
    wall = time.perf_counter() - t0

    level_keys = [lv.replace("-", "_") for lv in args.levels]
    t = Table(
        title=f"{name} on {data.name} ({n} test images), config {cfg.name}, drift "
        f"{fmt_duration(args.drift)}, float accuracy {100 * acc_float:.2f} %"
    )
    for a in axes:
        t.add_column(a.key)
    for lv in level_keys:
        t.add_column(f"{lv.replace('_', '-')} accuracy", justify="right")
        t.add_column("A*", justify="right")
    for p in results:
        row = [_fmt(p["params"][a.key]) for a in axes]
        for lv in level_keys:
            r = p["levels"][lv]
            if r["accuracy"] is None:
                row += ["not run", ""]
            else:
                a_star = "-" if r["a_star"] is None else f"{r['a_star']:.3f}"
                row += [f"{100 * r['accuracy']:.2f} %", a_star]
        t.add_row(*row)
    console.print(t)
    for p in results:
        for lv in level_keys:
            if p["levels"][lv]["accuracy"] is None:
                console.print(
                    f"[yellow]{p['params']}: {lv} not run: {p['levels'][lv]['reason']}[/yellow]",
                    highlight=False,
                )

    results_json = {
        "config": cfg.name,
        "config_digest": cfg.digest(),
        "model": name,
        "data": data.name,
        "images": n,
        "drift_s": args.drift,
        "repeats": args.repeats,
        "float_accuracy": acc_float,
        "chance_error": err_chance,
        "set": {a.key: list(a.values) for a in axes},
        "points": results,
        "wall_s": wall,
        "workers": workers,
        "scheduler": args.scheduler or "LocalCluster",
    }
    plot_sweep(
        out / "sweep.png",
        axes,
        results,
        f"{name}, config {cfg.name}, {n} images, drift {fmt_duration(args.drift)}",
    )
    write_json_atomic(out / "results.json", results_json)
    console.print(
        f"{len(points)} points on {workers} worker{'s' if workers > 1 else ''}; "
        f"wall {wall:.1f} s; results in {shown(out) / 'results.json'}, plot "
        f"{shown(out) / 'sweep.png'}"
    )
    return 0
