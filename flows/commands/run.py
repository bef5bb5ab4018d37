"""``aimcflow run``: a network at the four levels float, analog-float, analog-golden and
analog-rtl.

Default (what ``make demo`` runs): the digits MLP on the whole digits test split under
``baseline-ftj``; the analog-float level for 10 programmings read 1 s, 1 h, 1 d and 1 y
after programming (the drift table, mean ± std and A* of the FTJ thesis eq. 3.8); then
the first programming (seed of the config) at the reference drift is compiled into a chip
program (``chip_program.npz/.json``) and run at the analog-golden level (level 3).

``results.json`` (SPEC.md keys): ``drift_s`` is the reference drift time, 1 h when
``--drift`` lists it (the thesis's A*^1h), else the first time given.
``levels.float.accuracy`` is the torch model's; ``levels.analog_float.accuracy`` the mean
over repeats at ``drift_s``; ``levels.analog_golden.accuracy`` the level-3 accuracy of the
seed-``cfg.seed`` programming at ``drift_s`` (next to ``analog_float_same_tiles``, level 2
on those very tiles).  A level that was not run is ``{"accuracy": null}`` (with a
``reason`` when the config or model cannot be compiled for the integer periphery).
``drift_table`` holds every drift time; ``report.html`` the plots.  For a transformer,
``--sfu float`` runs analog-golden's attention, layernorm and GELU in float (same chip
program, same formats; refused with analog-rtl, which must equal the integer SFU) and
``levels.analog_golden.sfu`` says which SFU ran;
at analog-rtl the transformer's steps run on their units in the loop (``rtl/sfu.py`` for
attention, layernorm and GELU, ``rtl/residual.py`` for the positional-embedding add,
``rtl/pool.py`` for the token mean: every unit output compared with its golden model and
fed forward); ``levels.analog_rtl.sfu`` sums the SFU's jobs, values compared and cycles
(``in_the_loop``: true once it ran a job).

Models (``--model``, ``--arch``) and data (``--data`` and its normalization flags): see
:mod:`aimcflow.models.nn.workloads` and :mod:`aimcflow.models.nn.datasets`.

Level 4 (analog-rtl, :mod:`aimcflow.cosim.network`) runs the same chip program with the
Verilated ``periphery_top`` in the loop and compares every activation of every layer with
level 3; ``levels.analog_rtl`` then holds its accuracy and cycle counts, and the top-level
``activations_compared``, ``mismatches``, ``rtl_cycles``, ``ideal_cycles`` and
``verilator_build_s`` (this run's build step: a cold build or the cache lookup) are filled.
Level 4 runs twice on the same images: once with every stream always ready (the cycle
counts above, ``cycle_efficiency``) and once with seeded random stalls (a quarter of the
cycles, ``flows.levels.STALLS``, hold off the NMPU's output and both directions of the tile
interface: ``levels.analog_rtl.stalled`` with its own cycle counts and efficiency), so the
network also exercises backpressure.  Both runs compare every activation with level 3 and
check stream promises (the NMPU's handshake, ``last`` flags, the tile answers' ``sat_any``).
A mismatch prints layer, tile, image, column, expected and actual values and the wave
file, and the command exits with status 1 (results.json is still written).  Level 3 also
checks SPEC properties of its own results without the golden models (ADC codes and
``sat_any``, retry and exponent bounds, the NMPU outputs against its formula in float
within the derived 1/2 LSB: :mod:`aimcflow.models.nn.invariants`) and the config's
``[verify] goals``; ``levels.analog_golden.invariant_violations`` lists any breach, which
also exits with status 1.
``levels.analog_rtl.ops`` lists every integer op (analog layer, residual add, pooling,
transformer step, reshape) and where it ran: analog layers on ``periphery_top``, residual
adds, poolings and transformer steps on their units (``rtl/residual.py``, ``rtl/pool.py``,
``rtl/sfu.py``; unit jobs, values compared, RTL and ideal cycles per op in ``ops_rtl``,
summed per kind in ``ops_by_kind``, which the console prints); ``ops_not_in_rtl`` any
that ran on their golden models (Python) instead, which the console also says.  ``--levels`` picks levels; ``--no-rtl`` drops analog-rtl.  analog-rtl needs the chip
program of analog-golden, so it runs that level too.

``--workers N`` (a Dask LocalCluster of N worker processes, 1 <= N <= 4 per core) or
``--scheduler ADDR`` (a running Dask scheduler's workers) split the images of levels 2-4
into one contiguous shard per worker (whole level-4 batches of at most 64 images, so at
most ``ceil(images / 64)`` shards; :mod:`aimcflow.flows.shards`).  The merged results are
those of a run in one process, bit for bit (accuracies, logits, every compared activation,
RTL cycles with and without stalls).  Each worker reuses the Verilated build of its
machine (built once per machine under a lock).  A worker that dies is an error (exit
status 2, nothing written), never a shorter result; the workers, and every simulator they
start, end with aimcflow.  ``workers`` and ``scheduler`` in ``results.json`` say where it
ran.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from aimcflow.flows.args import (
    add_config_arg,
    add_data_args,
    add_drift_list_arg,
    add_images_arg,
    add_model_args,
    add_out_arg,
    add_repeats_arg,
    fmt_duration,
)
from aimcflow.flows.cluster import add_cluster_args, check_cluster_args, connect, n_workers
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.errors import UserInputError

DEFAULT_DRIFT = "1s,1h,1d,1y"
DEFAULT_REPEATS = 10
LEVELS = ("float", "analog-float", "analog-golden", "analog-rtl")


def level_list(text: str) -> list[str]:
    """Comma-separated level names (argparse type)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in LEVELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown level {bad[0] if bad else text!r}; allowed: {', '.join(LEVELS)}"
        )
    return names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a network at the four levels, up to the RTL in the loop",
        description="Run a network at the float, analog-float (over drift time), "
        "analog-golden and analog-rtl (Verilated periphery in the loop, compared with "
        "analog-golden on every activation) levels; print the table, write results.json, the chip "
        "program and report.html.",
    )
    add_config_arg(p)
    add_model_args(p)
    add_data_args(p)
    add_images_arg(p)
    add_drift_list_arg(p, DEFAULT_DRIFT)
    add_repeats_arg(p, DEFAULT_REPEATS, "drift time")
    p.add_argument(
        "--levels",
        type=level_list,
        default=None,
        metavar="L[,L...]",
        help=f"levels to run (default all: {','.join(LEVELS)}); float always runs",
    )
    p.add_argument(
        "--no-rtl",
        action="store_true",
        help="leave out analog-rtl (no Verilator build or co-simulation)",
    )
    p.add_argument(
        "--sim",
        default="verilator",
        choices=("verilator", "icarus"),
        help="RTL simulator of analog-rtl: verilator (default) or icarus (Icarus Verilog: "
        "the same bench and the same results, bit for bit; slower, and its first build of "
        "network_top takes minutes)",
    )
    add_cluster_args(p, "default: no Dask, everything in this process")
    p.add_argument(
        "--sfu",
        default="int",
        choices=("int", "float"),
        help="special-function unit of analog-golden (transformers): int (default, the "
        "bit-exact SFU golden model) or float (attention, layernorm and GELU in float on the "
        "same integer inputs and output formats: measures what the integer SFU costs; "
        "without analog-rtl, which runs the integer SFU RTL)",
    )
    add_out_arg(p, "run")
    p.set_defaults(func=run)


_fmt_time = fmt_duration


def run(args: argparse.Namespace) -> int:
    # lazy: numpy, torch, amaranth, matplotlib, pydantic, rich (kept out of ``aimcflow --help``)
    import numpy as np
    from aimcflow.cosim.icarus import icarus_version
    from aimcflow.cosim.network import format_mismatch
    from aimcflow.flows import shards as shard_runs
    from aimcflow.flows.args import load_data
    from aimcflow.flows.levels import THROUGHPUT_KEYS, analog_golden_level, level4
    from aimcflow.flows.report import write_report
    from aimcflow.flows.shards import Shards
    from aimcflow.models.config import load_config
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.evaluate import (
        chance_error,
        drift_results,
        drift_sweep,
        normalized_accuracy,
        vmm_pairs,
    )
    from aimcflow.models.nn.seq_steps import check_fits as check_sfu_fits
    from aimcflow.models.nn.workloads import accuracy_float, get_model, imported
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    t0 = time.perf_counter()
    console = Console()
    # --- validate every input before any output exists
    if args.no_rtl and args.levels is not None and "analog-rtl" in args.levels:
        raise UserInputError(
            "--levels names analog-rtl and --no-rtl leaves it out; give one of them"
        )
    check_cluster_args(args)
    cfg = load_config(args.config)
    data = load_data(args)
    n = data.test_images(args.images)
    name, model = get_model(args.model, data, args.arch)
    imp = imported(model, data)  # what Dask workers receive: the graph, not torch code
    net = convert(imp, cfg, program=False)
    check_sfu_fits(net, data.input_shape, cfg)  # attention/layernorm shapes the SFU holds
    drifts = list(args.drift)
    levels = set(args.levels or LEVELS) - ({"analog-rtl"} if args.no_rtl else set())
    if args.sfu == "float" and "analog-rtl" in levels:
        raise UserInputError(
            "--sfu float with analog-rtl: analog-rtl runs the integer SFU RTL and must equal "
            "analog-golden with the integer SFU; add --no-rtl (or leave analog-rtl out of "
            "--levels) to measure the float SFU"
        )
    if "analog-rtl" in levels:
        levels.add("analog-golden")  # level 4 runs level 3's chip program and checks it
        if args.sim == "icarus":
            icarus_version()  # no iverilog: one message and exit 2 before any output
    out = prepare_out_dir(args.out, "run", args.force)

    x, y = data.x_test[:n], data.y_test[:n]
    images = np.arange(n, dtype=np.int64)  # global ids in the test split: the noise keys
    acc_float = accuracy_float(model, x, y)
    err_chance = chance_error(model, x, y)
    with contextlib.ExitStack() as stack:  # the Dask cluster, if any, ends with level 4
        shards = None
        if args.workers is not None or args.scheduler is not None:
            with console.status("starting the Dask cluster"):
                client = connect(args, stack, fail_fast=True)
            shards = Shards.plan(n, client, n_workers(client))
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            n_steps = args.repeats * len(drifts) if "analog-float" in levels else 0
            task = progress.add_task("analog-float", total=n_steps)

            def step(r: int, t: float) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"analog-float repeat {r + 1}/{args.repeats} @ {_fmt_time(t)}",
                )

            if not n_steps:
                table = []
            elif shards is not None:  # per-shard counts, added up (exact)
                counts = shard_runs.level2(shards, imp, cfg, x, y, images, drifts, args.repeats)
                table = drift_results(counts, n, drifts, 1.0 - acc_float, err_chance)
                progress.update(task, completed=n_steps, description="analog-float (Dask)")
            else:
                table = drift_sweep(
                    net, x, y, drifts, args.repeats, 1.0 - acc_float, err_chance,
                    images=images, cfg=cfg, on_step=step,
                )  # fmt: skip

        ref_t = 3600.0 if 3600.0 in drifts else drifts[0]
        ref = table[drifts.index(ref_t)] if table else None
        prog = logits3 = None
        if "analog-golden" in levels:
            golden, prog, logits3 = analog_golden_level(
                net, cfg, data, x, y, images, ref_t, out, console, shards, sfu=args.sfu
            )
        else:
            golden = {"accuracy": None, "reason": "not requested (--levels)"}
        if "analog-rtl" in levels and prog is not None:
            rtl = level4(prog, x, y, images, logits3, console, sim=args.sim, shards=shards)
        else:
            why = "not requested" if "analog-rtl" not in levels else "analog-golden did not run"
            rtl = {"accuracy": None, "reason": why}
    wall = time.perf_counter() - t0

    repeats = (
        f", {args.repeats} repeat{'s' if args.repeats > 1 else ''}"
        if "analog-float" in levels
        else ""
    )
    t = Table(title=f"{name} on {data.name} ({n} test images), config {cfg.name}{repeats}")
    t.add_column("level")
    t.add_column("drift", justify="right")
    t.add_column("accuracy (mean ± std)", justify="right")
    t.add_column("A* (mean ± std)", justify="right")
    t.add_row("float", "-", f"{100 * acc_float:.2f} %", "1")
    if not table:
        t.add_row("analog-float", "-", "not run", "")
    for r in table:
        t.add_row(
            "analog-float",
            _fmt_time(r.t_s),
            f"{100 * r.mean:.2f} ± {100 * r.std:.2f} %",
            f"{r.a_star_mean:.3f} ± {r.a_star_std:.3f}",
        )
    if golden["accuracy"] is not None:
        t.add_row(
            "analog-float",
            f"{_fmt_time(ref_t)} (seed {cfg.seed})",
            f"{100 * golden['analog_float_same_tiles']:.2f} %",
            "",
        )
        t.add_row(
            "analog-golden",
            f"{_fmt_time(ref_t)} (seed {cfg.seed})",
            f"{100 * golden['accuracy']:.2f} %",
            f"{normalized_accuracy(1 - golden['accuracy'], 1 - acc_float, err_chance):.3f}",
        )
    if rtl["accuracy"] is not None:
        t.add_row(
            "analog-rtl",
            f"{_fmt_time(ref_t)} (seed {cfg.seed})",
            f"{100 * rtl['accuracy']:.2f} %",
            f"{normalized_accuracy(1 - rtl['accuracy'], 1 - acc_float, err_chance):.3f}",
        )
    console.print(t)
    if rtl.get("activations_compared") is not None:
        eff = rtl["cycle_efficiency"]
        console.print(
            f"analog-rtl vs analog-golden: {rtl['activations_compared']} activations compared, "
            f"[{'red' if rtl['mismatches'] else 'green'}]{rtl['mismatches']} mismatches"
            f"[/]; RTL cycles {rtl['rtl_cycles']}, ideal {rtl['ideal_cycles']}, cycle "
            f"efficiency {'-' if eff is None else f'{eff:.3f}'}; cosim {rtl['sim_wall_s']:.1f} s; "
            f"{rtl['simulator']} build {rtl['verilator_build_s']:.1f} s"
            f"{' (cached)' if rtl['verilator_build_cached'] else ' (cold)'}"
        )
        console.print(
            f"analog-rtl cycles: {rtl['conv_cycles']} converting (ADC busy), "
            f"{rtl['periphery_cycles']} in the digital periphery -> bound by the "
            f"{rtl['bound_by']}; {rtl['inferences_per_s']:.4g} inferences/s at "
            f"{rtl['clock_period_ns']:g} ns ({rtl['rtl_cycles']} cycles for {rtl['images']} images)"
        )
        st = rtl.get("stalled")
        units_o = " and the op units' outputs"
        if st is not None:
            console.print(
                f"with {st['stall_fraction']:.0%} random stalls on o, dac and adc"
                f"{units_o if rtl.get('ops_by_kind') else ''}: "
                f"{st['mismatches']} mismatches; RTL cycles {st['rtl_cycles']}, ideal "
                f"{st['ideal_cycles']}, cycle efficiency {st['cycle_efficiency']:.3f} "
                f"(without stalls {'-' if eff is None else f'{eff:.3f}'})"
            )
        kinds = rtl.get("ops_by_kind") or {}
        if kinds:
            console.print(
                "analog-rtl ops between layers, in the loop on their units (of the RTL "
                "cycles above): "
                + "; ".join(
                    f"{k} on {v['unit']}: steps {v['steps']}, unit jobs {v['jobs']}, "
                    f"{v['activations']} values compared, RTL cycles {v['rtl_cycles']} "
                    f"(ideal {v['ideal_cycles']})"
                    for k, v in kinds.items()
                ),
                highlight=False,
            )
    elif "analog-rtl" in levels:
        console.print(f"[yellow]analog-rtl not run: {rtl['reason']}[/yellow]")
    if rtl.get("ops_not_in_rtl"):
        console.print(
            "[yellow]analog-rtl: not every op ran in RTL: "
            + ", ".join(
                f"{o['op']} ({o['kind']}) on its {o['ran']}"
                for o in rtl["ops"]
                if o["op"] in rtl["ops_not_in_rtl"]
            )
            + "; the analog layers ran on the Verilated periphery_top[/yellow]",
            highlight=False,
        )
    elif rtl.get("ops") and rtl.get("activations_compared") is not None:
        console.print(
            "analog-rtl: every integer op ran in RTL, compared with level 3: "
            + ", ".join(
                f"{o['op']} on {o['ran'].removeprefix('RTL (').split(' ')[0]}"
                for o in rtl["ops"]
                if o["kind"] != "reshape"
            ),
            highlight=False,
        )
    if golden["accuracy"] is None:
        console.print(f"[yellow]analog-golden not run: {golden['reason']}[/yellow]")
    else:
        console.print(
            "analog-golden per layer: "
            + "; ".join(
                f"{lay['name']}: ADC saturation {100 * lay['adc_sat_rate']:.2f} %, bound-management "
                f"iterations {lay['bm_iterations_hist']}, codes at the ADC rails -/+ "
                f"{lay['adc_rail_codes'][0]}/{lay['adc_rail_codes'][1]}, accumulators at the rails "
                f"-/+ {lay['acc_rail_sums'][0]}/{lay['acc_rail_sums'][1]}, gain/mult bits {lay['gain_bits_used']:.1f}/"
                f"{lay['mult_bits_used']:.1f}"
                for lay in golden["layers"]
            )
        )
    console.print(
        f"chance error (random weights, mean of 10 seeds): {100 * err_chance:.1f} %; "
        f"wall {wall:.1f} s; results in {shown(out) / 'results.json'}"
    )

    results = {
        "config": cfg.name,
        "config_digest": cfg.digest(),
        "model": name,
        "data": data.name,
        "images": n,
        "drift_s": ref_t,
        "repeats": args.repeats,
        "levels": {
            "float": {"accuracy": acc_float},
            "analog_float": {
                "accuracy": ref.mean,
                "std": ref.std,
                "a_star": ref.a_star_mean,
                "a_star_std": ref.a_star_std,
            }
            if ref is not None
            else {"accuracy": None},
            "analog_golden": golden,
            "analog_rtl": {k: v for k, v in rtl.items() if k != "errors"}
            if rtl["accuracy"] is not None or "mismatches" in rtl
            else {"accuracy": None},
        },
        "chance_error": err_chance,
        "drift_table": [r.as_dict() for r in table],
        "activations_compared": rtl.get("activations_compared", 0),
        "mismatches": rtl.get("mismatches", 0),
        "mismatch_details": rtl.get("errors", []),
        "rtl_cycles": rtl.get("rtl_cycles"),
        "ideal_cycles": rtl.get("ideal_cycles"),
        **{k: rtl.get(k) for k in THROUGHPUT_KEYS},
        "wall_s": wall,
        "verilator_build_s": rtl.get("verilator_build_s"),
        "workers": 1 if shards is None else len(shards.bounds),
        "scheduler": args.scheduler or ("LocalCluster" if args.workers else None),
    }
    net.build(cfg)  # repeat 0 at the reference drift: the tiles the golden level used
    net.program()
    net.drift(ref_t)
    write_report(out / "report.html", results, vmm_pairs(net, x[:64], images[:64]))
    write_json_atomic(out / "results.json", results)
    console.print(f"report: {shown(out) / 'report.html'}")
    status = 0
    if rtl.get("mismatches"):
        console.print(f"[red]level 4 differs from level 3: {rtl['mismatches']} mismatches[/red]")
        for e in rtl["errors"]:
            console.print("  " + format_mismatch(e), highlight=False)
        console.print(f"waves: {rtl.get('waves')}; log: {rtl.get('log')}", highlight=False)
        status = 1
    violations = golden.get("invariant_violations") or []
    if violations:
        console.print(
            f"[red]analog-golden breaks {len(violations)} periphery properties or coverage "
            "goals (checked without the golden models):[/red]"
        )
        for v in violations:
            console.print("  " + v, highlight=False)
        status = 1
    return status
