"""``aimcflow vmm``: the VMM-error experiment of the FTJ thesis §4.2.1.

Gaussian weights scaled to max|W| = 1, inputs uniform on [-1, 1], relative error
||y - y_ideal|| / ||y_ideal|| over the batch at each drift time, mean and std over
repeats (fresh programming each).  Prints a table, writes ``results.json`` (SPEC.md keys
``config, rows, cols, vectors, repeats, vmm_error``) and ``scatter.png`` (analog vs ideal
outputs, the thesis' Fig. 4.3) into ``--out``.
"""

from __future__ import annotations

import argparse
import time

from aimcflow.flows.args import (
    add_config_arg,
    add_drift_list_arg,
    add_out_arg,
    add_repeats_arg,
    fmt_duration,
    positive_int,
)
from aimcflow.flows.io import prepare_out_dir, shown, write_atomic_with, write_json_atomic
from aimcflow.models.errors import UserInputError

DEFAULT_DRIFT = "1,1h,1d,1y"
MAX_DIM = 8192
MAX_ELEMENTS = 2**26  # vectors x max(rows, cols): keeps one run within a few GB


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vmm",
        help="VMM error of an analog tile over drift time (FTJ thesis §4.2.1)",
        description="The VMM-error experiment of the FTJ thesis §4.2.1: relative error of an "
        "analog tile's matrix-vector products over drift time; prints a table, writes "
        "results.json and scatter.png.",
    )
    add_config_arg(p)
    p.add_argument(
        "--rows",
        type=positive_int,
        default=512,
        metavar="N",
        help=f"matrix rows = inputs, tiled over tile.rows-row tiles (default 512, at most "
        f"{MAX_DIM})",
    )
    p.add_argument(
        "--cols",
        type=positive_int,
        default=512,
        metavar="N",
        help=f"matrix columns = outputs, tiled over tile.cols-column tiles (default 512, "
        f"at most {MAX_DIM})",
    )
    p.add_argument(
        "--vectors",
        type=positive_int,
        default=1000,
        metavar="N",
        help="input vectors per measurement (default 1000; vectors x max(rows, cols) "
        f"at most {MAX_ELEMENTS})",
    )
    add_drift_list_arg(p, DEFAULT_DRIFT)
    add_repeats_arg(p, 5, "drift time")
    add_out_arg(p, "vmm")
    p.set_defaults(func=run)


def drift_key(t_s: float) -> str:
    """A drift time as the string of its value in seconds: 3600.0 -> "3600", 0.5 -> "0.5"."""
    return str(int(t_s)) if float(t_s).is_integer() else repr(float(t_s))


def _scatter_png(path, scatter: dict, errors_mean, title: str) -> None:
    # lazy: matplotlib (kept out of ``aimcflow --help``)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib (kept out of ``aimcflow --help``)
    import matplotlib.pyplot as plt

    times = list(scatter)
    fig, axes = plt.subplots(1, len(times), figsize=(3.2 * len(times), 3.2), squeeze=False)
    for ax, t, err in zip(axes[0], times, errors_mean, strict=True):
        ideal, analog = scatter[t]
        ax.scatter(ideal, analog, s=1, alpha=0.3, rasterized=True)
        lim = float(max(abs(ideal).max(), abs(analog).max()))
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.set_title(f"t = {fmt_duration(t)}, mean VMM error {err:.3f}", fontsize=9)
        ax.set_xlabel("ideal output")
        ax.set_ylabel("analog output")
    fig.suptitle(
        title + "\nVMM error = ||y - y_ideal||₂ / ||y_ideal||₂ over the batch", fontsize=10
    )
    fig.tight_layout()

    write_atomic_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    # lazy: numba, pydantic, rich (kept out of ``aimcflow --help``)
    from aimcflow.models.analog import converters
    from aimcflow.models.analog.vmm_experiment import run_vmm
    from aimcflow.models.config import load_config
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    for name in ("rows", "cols"):
        v = getattr(args, name)
        if v > MAX_DIM:
            raise UserInputError(f"--{name} {v} is too large; allowed: 1..{MAX_DIM}")
    if args.vectors * max(args.rows, args.cols) > MAX_ELEMENTS:
        raise UserInputError(
            f"--vectors {args.vectors} x {max(args.rows, args.cols)} is too large; allowed: "
            f"vectors x max(rows, cols) <= {MAX_ELEMENTS}"
        )
    drift_s = list(dict.fromkeys(args.drift))  # keep order, drop repeats
    out = prepare_out_dir(args.out, "vmm", args.force)

    console = Console(stderr=False)
    with Progress(
        TextColumn("vmm {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(cfg.name, total=args.repeats * len(drift_s))
        res = run_vmm(
            cfg,
            args.rows,
            args.cols,
            args.vectors,
            drift_s,
            args.repeats,
            progress=lambda done, total: bar.update(task, completed=done),
        )

    table = Table(
        title=f"VMM error: {cfg.name}",
        caption=f"{args.rows}x{args.cols}, {args.vectors} vectors, {args.repeats} repeats",
    )
    table.add_column("drift", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for t, m, s in zip(drift_s, res.mean, res.std, strict=True):
        table.add_row(fmt_duration(t), f"{m:.4f}", f"{s:.4f}")
    console.print(table)

    _scatter_png(
        out / "scatter.png",
        res.scatter,
        res.mean,
        f"{cfg.name}: analog vs ideal VMM outputs (repeat 0)",
    )
    a = cfg.adc
    results = {
        "config": cfg.name,
        "config_digest": cfg.digest(),
        "rows": args.rows,
        "cols": args.cols,
        "vectors": args.vectors,
        "repeats": args.repeats,
        "vmm_error": {
            drift_key(t): {"mean": float(m), "std": float(s)}
            for t, m, s in zip(drift_s, res.mean, res.std, strict=True)
        },
        "adc": {
            "kind": a.kind,
            "bits": a.bits,
            "latency_cycles_per_tile_mvm": converters.adc_latency_cycles(
                a.kind, a.bits, min(args.cols, cfg.tile.cols), a.share
            ),
            "energy_per_conversion_j": converters.adc_energy_per_conversion_j(a.kind, a.bits),
        },
        "wall_s": time.perf_counter() - t0,
    }
    write_json_atomic(out / "results.json", results)
    console.print(f"wrote {shown(out) / 'results.json'} and {shown(out) / 'scatter.png'}")
    return 0
