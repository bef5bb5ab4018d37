"""``aimcflow vectors BLOCK``: run a block's RTL (or golden model) on vectors from a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from aimcflow.flows.args import add_config_arg
from aimcflow.flows.io import check_out_file, save_npz_atomic
from aimcflow.models.errors import UserInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vectors",
        help="run a block on the vectors of an .npz and write its outputs",
        description="Run BLOCK's RTL under Verilator (default), Icarus or its golden model on every "
        "vector of IN (.npz, int64 arrays as docs/SPEC.md lists) and write OUT (.npz).",
    )
    p.add_argument("block", metavar="BLOCK", help="nmpu, mgmt, spg, residual or pool")
    add_config_arg(p)
    p.add_argument("--in", dest="inp", required=True, metavar="IN.npz", help="input vectors")
    p.add_argument("--out", required=True, metavar="OUT.npz", help="output file (.npz)")
    p.add_argument(
        "--sim",
        default="verilator",
        choices=("verilator", "icarus", "golden"),
        help="verilator (RTL, default), icarus (RTL under Icarus Verilog, same bench) or "
        "golden (the bit-exact model)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth, pydantic (kept out of ``aimcflow --help``)
    from aimcflow.cosim.blocks import run_vectors, vector_blocks
    from aimcflow.models.config import load_config

    if args.block not in vector_blocks():
        raise UserInputError(f"unknown block {args.block!r}; allowed: {', '.join(vector_blocks())}")
    out = check_out_file(args.out, args.force, inputs=(Path(args.inp),))
    if out.suffix != ".npz":
        raise UserInputError(f"--out {out}: must end in .npz")
    cfg = load_config(args.config)
    result = run_vectors(args.block, cfg, Path(args.inp), args.sim)
    save_npz_atomic(out, **result)
    first = next(iter(result.values()))
    print(
        f"{args.block}: {first.shape[0]} vectors -> {out} ({args.sim}); fields "
        + ", ".join(f"{k} {v.shape}" for k, v in result.items())
    )
    return 0
