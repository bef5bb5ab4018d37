"""``aimcflow lint``: Verilator ``--lint-only -Wall`` on every generated block.

The reviewed waiver file ``cosim/verilator_waivers.vlt`` is applied and nothing else: any
warning left is a finding, printed, and the command exits 1.
"""

from __future__ import annotations

import argparse
import sys

from aimcflow.flows.args import add_blocks_arg, add_config_arg, add_memories_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lint",
        help="Verilator --lint-only -Wall on the generated Verilog "
        "(reviewed waivers only); exit 1 on any warning",
    )
    add_config_arg(p)
    add_blocks_arg(p)
    add_memories_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth, pydantic (kept out of ``aimcflow --help``)
    from aimcflow.cosim.blocks import generate_all, parse_blocks
    from aimcflow.flows.lint import lint_verilog
    from aimcflow.models.config import load_config

    cfg = load_config(args.config)
    names = parse_blocks(args.blocks)
    print(f"generating Verilog of {', '.join(names)} ...", file=sys.stderr, flush=True)
    blocks = generate_all(cfg, names, args.memories)
    total = 0
    width = max(len(b.name) for b in blocks)
    for b in blocks:
        print(f"verilator --lint-only -Wall {b.module} ...", file=sys.stderr, flush=True)
        r = lint_verilog(b.verilog, b.module, b.models)
        total += len(r.warnings)
        print(f"{b.name:<{width}}  {len(r.warnings)} warning(s) outside the waivers")
        for w in r.warnings:
            print(f"    {w}")
    print(f"lint: {total} warning(s) in {len(blocks)} block(s) with -Wall")
    return 1 if total else 0
