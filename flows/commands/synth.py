"""``aimcflow synth``: Yosys synthesis of the NMPU and the controller per lane count."""

from __future__ import annotations

import argparse
import dataclasses
import time

from aimcflow.flows.args import add_config_arg, add_memories_arg, add_out_arg
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.flows.memory_manifest import macro_models
from aimcflow.flows.package.sdc import clock_period_ns
from aimcflow.flows.sta import MAX_FANOUT, liberty, liberty_row, require_sta

SYNTH_BLOCKS = ("nmpu", "mgmt")


def _lanes(text: str) -> list[int]:
    try:
        vals = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give lane counts as integers, e.g. 1,4,8,16"
        ) from None
    if not vals or any(v < 1 or v > 64 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: lane counts must be 1 .. 64")
    return sorted(set(vals))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="Yosys synthesis: cells and transistor estimate per "
        "block and lane count; writes results.json",
    )
    add_config_arg(p)
    p.add_argument(
        "--lanes",
        type=_lanes,
        default=None,
        metavar="L,L,...",
        help="lane counts to synthesize (default: the config's nmpu.lanes)",
    )
    p.add_argument(
        "--blocks",
        default=",".join(SYNTH_BLOCKS),
        metavar="B,B",
        help=f"blocks to synthesize, comma-separated, or all (default {','.join(SYNTH_BLOCKS)})",
    )
    p.add_argument(
        "--liberty",
        default=None,
        metavar="LIB",
        help="map to a standard-cell library and time it with OpenSTA: osu018 (Debian "
        "qflow-tech-osu018); prints slack, Fmax, critical path, area with/without memories",
    )
    p.add_argument(
        "--no-flop-memories",
        action="store_true",
        help="with --liberty: skip the (slow) map of the memories to flip-flops; timing then "
        "treats the memories as black boxes",
    )
    add_out_arg(p, "synth")
    add_memories_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth, pydantic (kept out of ``aimcflow --help``)
    from aimcflow.cosim.blocks import block_params, generate_block, parse_blocks
    from aimcflow.flows.synth import as_dict, synthesize
    from aimcflow.models.config import load_config

    cfg = load_config(args.config)
    blocks = parse_blocks(args.blocks)
    lanes = args.lanes or [cfg.nmpu.lanes]
    configs = {n: cfg.replace(**{"nmpu.lanes": n}) for n in lanes}
    for c in configs.values():  # every (block, lanes) must be buildable before any work
        for b in blocks:
            block_params(c, b)
    # one snapshot of every Verilog text before the (long) synthesis runs start
    print(
        f"generating Verilog of {', '.join(blocks)} for lanes {', '.join(map(str, lanes))} ...",
        flush=True,
    )
    verilog = {
        (b, n): generate_block(c, b, args.memories) for b in blocks for n, c in configs.items()
    }
    if args.liberty:
        return run_liberty(args, cfg, blocks, lanes, verilog)
    out = prepare_out_dir(args.out, "synth", args.force)
    table: dict[str, dict] = {}
    print(
        f"{'block':<14}{'lanes':>6}{'cells':>10}{'transistors':>13}{'memories':>10}"
        f"{'mem bits':>10}{'time':>8}",
        flush=True,
    )
    for b in blocks:
        per = {}
        for n in configs:
            gen = verilog[(b, n)]
            t0 = time.perf_counter()
            boxes = "".join(macro_models([gen], blackbox=True).values())
            r = synthesize(gen.verilog + boxes, gen.module)
            if args.memories == "macro":  # the macros are black-box cells: count their bits
                r = dataclasses.replace(
                    r,
                    memories=sum(m["macro"]["banks"] for m in gen.memories),
                    memory_bits=sum(m["bits"] for m in gen.memories),
                )
            per[str(n)] = {**as_dict(r), "synth_s": round(time.perf_counter() - t0, 1)}
            print(
                f"{b:<14}{n:>6}{r.cells:>10}{r.transistors:>13}{r.memories:>10}"
                f"{r.memory_bits:>10}{per[str(n)]['synth_s']:>7.0f}s",
                flush=True,
            )
        main = per[str(cfg.nmpu.lanes)] if str(cfg.nmpu.lanes) in per else per[str(lanes[0])]
        table[b] = {"cells": main["cells"], "transistors": main["transistors"], "lanes": per}
    write_json_atomic(
        out / "results.json",
        {
            "config": cfg.name,
            "config_digest": cfg.digest(),
            "lanes": lanes,
            "memories": args.memories,
            "blocks": table,
            "note": "transistors: stat -tech cmos of the logic; memories kept as $mem_v2 cells "
            "(flops) or 1R1W SRAM black boxes (macro): cells and bits listed, no transistors",
        },
    )
    print(f"results: {shown(out) / 'results.json'}")
    print(
        "note: memories (coefficient, accumulator, input buffers) are excluded from cells and "
        "transistors; see 'mem bits' (--liberty gives areas with and without them)"
    )
    return 0


def run_liberty(args, cfg, blocks, lanes, verilog) -> int:
    """``synth --liberty``: per block and lane count, OpenSTA timing and liberty areas."""
    lib = liberty(args.liberty)  # refused before any work when not installed
    require_sta()
    period = clock_period_ns(cfg)
    flops = not args.no_flop_memories
    out = prepare_out_dir(args.out, "synth", args.force)
    if args.memories == "macro":
        how = "as SRAM macros (black-box cells: no area, timing stops at their pins)"
    elif flops:
        how = "as flip-flops for timing"
    else:
        how = "as black boxes (not timed, no area)"
    print(f"library {args.liberty} ({lib}); clock {period:g} ns; memories {how}", flush=True)
    head = f"{'block':<14}{'lanes':>6}{'slack ns':>10}{'Fmax MHz':>10}{'area um2':>12}"
    head += f"{'w/o mem um2':>13}{'fanout':>14}  critical path"
    print(head, flush=True)
    rows: dict[str, dict] = {}
    for b in blocks:
        rows[b] = {}
        for n in lanes:
            t0 = time.perf_counter()
            r = liberty_row(verilog[(b, n)], lib, period, flops)
            r["synth_s"] = round(time.perf_counter() - t0, 1)
            rows[b][str(n)] = r
            full = r.get("area_with_flop_memories_um2")
            fan = f"{r['max_fanout_before_repair']}->{r['max_fanout']}"
            print(
                f"{b:<14}{n:>6}{r['worst_slack_ns']:>10.3f}{r['fmax_mhz']:>10.1f}"
                f"{'-' if full is None else f'{full:.0f}':>12}{r['area_logic_um2']:>13.0f}"
                f"{fan:>14}"
                f"  {r['startpoint']} -> {r['endpoint']}",
                flush=True,
            )
    write_json_atomic(
        out / "results.json",
        {
            "config": cfg.name,
            "config_digest": cfg.digest(),
            "liberty": args.liberty,
            "clock_period_ns": period,
            "memories": args.memories if args.memories == "macro" or flops else "excluded",
            "lanes": lanes,
            "blocks": rows,
        },
    )
    print(f"results: {shown(out) / 'results.json'}")
    print(
        "fanout: largest data-pin fanout as ABC left it -> after the buffer trees added on "
        f"every net over {MAX_FANOUT} loads (the areas include those buffers)"
    )
    return 0
