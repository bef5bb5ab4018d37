"""``aimcflow generate``: Verilog of every periphery block, a filelist and a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from aimcflow.flows.args import add_config_arg
from aimcflow.flows.io import write_json_atomic, write_text_atomic
from aimcflow.models.errors import UserInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write Verilog of each periphery block, a filelist "
        "and a manifest (parameters, tool versions, config digest)",
    )
    add_config_arg(p)
    p.add_argument(
        "--blocks",
        default=None,
        metavar="B,B",
        help="blocks, comma-separated, or all (default: nmpu, mgmt, periphery_top; "
        "spg, plain_mac, secure_mac and ascon_decrypt when named)",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output directory (default out/generate/)"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite an earlier generate output in --out"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth, pydantic (kept out of ``aimcflow --help``)
    from aimcflow.cosim.blocks import generate_all, parse_blocks
    from aimcflow.cosim.runner import tool_versions, waiver_path
    from aimcflow.models.config import load_config

    cfg = load_config(args.config)
    out = Path(args.out) if args.out else Path("out") / "generate"
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a directory")
    if args.out and (out / "manifest.json").exists() and not args.force:
        raise UserInputError(
            f"--out {out}: already holds manifest.json from an earlier "
            "generate; choose another directory or pass --force"
        )
    # validates the whole config (every block's parameters) before anything is written
    blocks = generate_all(cfg, parse_blocks(args.blocks))
    versions = tool_versions()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for b in blocks:
        write_text_atomic(out / f"{b.module}.v", b.verilog)
        files.append(f"{b.module}.v")
    write_text_atomic(out / "verilator_waivers.vlt", waiver_path().read_text())
    write_text_atomic(out / "files.f", "".join(f + "\n" for f in files))
    manifest = {
        "config": {
            "name": cfg.name,
            "digest": cfg.digest(),
            "source": args.config or "baseline-ftj",
            "parameters": cfg.model_dump(mode="json"),
        },
        "tools": versions,
        "blocks": {
            b.name: {
                "module": b.module,
                "file": f"{b.module}.v",
                "sha256": b.sha256,
                "params": b.params,
            }
            for b in blocks
        },
        "filelist": "files.f",
        "waivers": "verilator_waivers.vlt",
    }
    write_json_atomic(out / "manifest.json", manifest)
    width = max(len(b.name) for b in blocks)
    for b in blocks:
        print(
            f"{b.name:<{width}}  {out / (b.module + '.v')}  ({len(b.verilog.splitlines())} lines)"
        )
    print(f"manifest: {out / 'manifest.json'}  config digest {cfg.digest()}")
    return 0
