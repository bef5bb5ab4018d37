"""``aimcflow synth``: Yosys synthesis of the NMPU and the controller per lane count."""

from __future__ import annotations

import argparse
import time

from aimcflow.flows.args import add_config_arg, add_out_arg
from aimcflow.flows.io import prepare_out_dir, write_json_atomic

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
    add_out_arg(p, "synth")
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
    verilog = {(b, n): generate_block(c, b) for b in blocks for n, c in configs.items()}
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
            r = synthesize(gen.verilog, gen.module)
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
            "blocks": table,
            "note": "transistors: stat -tech cmos of the logic; memories kept as $mem_v2 macros "
            "(cells and bits listed, no transistors)",
        },
    )
    print(f"results: {out / 'results.json'}")
    return 0
