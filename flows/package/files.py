"""Files of the tapeout package around each generated top: constraints, clock and reset
spec, per-tool filelists with a ``timescale``, a LibreLane config and run script.

Module names: ``aimcflow generate --module-prefix`` renames every top (and with it every
submodule, which Amaranth names ``<top>.<path>``), so the Verilog of several
configurations can be read into one netlist without a collision.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from aimcflow.models.errors import UserInputError
from aimcflow.models.io import write_json_atomic, write_text_atomic

from .sdc import clock_period_ns, clock_reset_spec, sdc

TIMESCALE = "`timescale 1ns/1ps\n"
"""Time unit/precision for simulators that need one (Icarus: cocotb clocks are in ns)."""

LIBRELANE_KEYS = {
    "DESIGN_NAME": "str",
    "VERILOG_FILES": "list of paths (dir:: prefix = relative to the config)",
    "CLOCK_PORT": "str",
    "CLOCK_PERIOD": "ns",
    "FP_CORE_UTIL": "percent",
    "PNR_SDC_FILE": "path",
    "SIGNOFF_SDC_FILE": "path",
}
"""Every key the generated LibreLane ``config.json`` sets, with its type; checked against
LibreLane's own variable declarations where ``librelane`` is installed."""

CORE_UTILISATION = 40
"""LibreLane ``FP_CORE_UTIL`` (percent of the core area taken by cells)."""


def module_prefix(text: str, digest: str) -> str:
    """``--module-prefix``: a Verilog identifier prefix, or ``hash`` = ``aimcflow_<digest8>_``."""
    p = f"aimcflow_{digest[:8]}_" if text == "hash" else text
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) or len(p) > 64:
        raise UserInputError(
            f"--module-prefix {text!r}: allowed: a Verilog identifier start "
            "(letters, digits, _; not starting with a digit; <= 64 characters) or 'hash'"
        )
    return p


def renamed(gen, module: str):
    """``gen`` with its top module (and every ``<top>.<path>`` submodule) named ``module``."""
    if module == gen.module:
        return gen
    old = re.escape(gen.module)
    text = re.sub(rf"(?<![\w$.\\]){old}(?=[\s(])", module, gen.verilog)  # the top
    text = re.sub(rf"\\{old}\.", lambda _m: f"\\{module}.", text)  # its submodules
    return replace(gen, module=module, verilog=text)


def librelane_config(module: str, period_ns: float) -> dict:
    return {
        "DESIGN_NAME": module,
        "VERILOG_FILES": [f"dir::../../{module}.v"],
        "CLOCK_PORT": "clk",
        "CLOCK_PERIOD": period_ns,
        "FP_CORE_UTIL": CORE_UTILISATION,
        "PNR_SDC_FILE": f"dir::../../constraints/{module}.sdc",
        "SIGNOFF_SDC_FILE": f"dir::../../constraints/{module}.sdc",
    }


RUN_SCRIPT = """#!/bin/sh
# Runs LibreLane's classic flow on every config here.  Needs LibreLane
# (pip install librelane) and a PDK it knows (e.g. --pdk sky130A, fetched by LibreLane's
# own PDK manager); aimcflow does neither.
set -e
cd "$(dirname "$0")"
for cfg in */config.json; do
  python3 -m librelane --pdk "${PDK:-sky130A}" "$cfg"
done
"""


def write_package(
    out: Path, cfg, blocks, waivers: str, icarus_flavour, models: dict[str, str] | None = None
) -> dict:
    """Write the package files for ``blocks`` into ``out``; returns manifest entries.
    ``icarus_flavour(text) -> text`` is the Verilog Icarus simulates (see
    :func:`aimcflow.cosim.icarus.icarus_source`).  ``models``: SRAM macro models
    (``--memories macro``; module -> Verilog, already written as ``<module>.v``), which the
    per-tool filelists list after the blocks."""
    models = models or {}
    period = clock_period_ns(cfg)
    tag = f"aimcflow generate, config {cfg.name} ({cfg.digest()}), clock {period:g} ns"
    files = [f"{b.module}.v" for b in blocks] + [f"{m}.v" for m in models]
    write_text_atomic(out / "timescale.v", TIMESCALE)
    write_text_atomic(out / "CLOCK_RESET.md", clock_reset_spec(period))
    for b in blocks:
        write_text_atomic(
            out / "constraints" / f"{b.module}.sdc", sdc(b.verilog, b.module, period, tag)
        )
        write_text_atomic(out / "icarus" / f"{b.module}.v", icarus_flavour(b.verilog))
    for module, text in models.items():
        write_text_atomic(out / "icarus" / f"{module}.v", icarus_flavour(text))
    for b in blocks:
        write_json_atomic(
            out / "librelane" / b.module / "config.json", librelane_config(b.module, period)
        )
    run_sh = out / "librelane" / "run_librelane.sh"
    write_text_atomic(run_sh, RUN_SCRIPT)
    run_sh.chmod(0o755)
    write_text_atomic(out / "verilator_waivers.vlt", waivers)
    write_text_atomic(
        out / "verilator.f", "".join(f"{f}\n" for f in ["verilator_waivers.vlt", *files])
    )
    icarus = ["timescale.v", *[f"icarus/{f}" for f in files]]
    write_text_atomic(out / "icarus.f", "".join(f"{f}\n" for f in icarus))
    yosys = "".join(f"read_verilog {f}\n" for f in files)
    write_text_atomic(out / "yosys.ys", yosys + "hierarchy -check\n")
    return {
        "clock_period_ns": period,
        "clock_reset_spec": "CLOCK_RESET.md",
        "timescale": "timescale.v",
        "filelists": {
            "verilator": "verilator.f (waiver file first: verilator -f verilator.f --lint-only)",
            "icarus": "icarus.f (iverilog -g2012 -f icarus.f; icarus/ holds the same logic "
            "with every always @* made continuous: Icarus never runs an always @* at time 0)",
            "yosys": "yosys.ys (yosys -s yosys.ys)",
            "plain": "files.f",
        },
        "constraints": {b.name: f"constraints/{b.module}.sdc" for b in blocks},
        "librelane": {
            "configs": {b.name: f"librelane/{b.module}/config.json" for b in blocks},
            "run": "librelane/run_librelane.sh",
            "keys": LIBRELANE_KEYS,
        },
    }


def librelane_declared(names) -> set[str]:
    """The subset of ``names`` LibreLane itself declares: the variables of its Classic flow,
    of every step in it, and its common flow variables (needs the ``librelane`` extra)."""
    from librelane.config import flow as common  # lazy: optional extra, heavy
    from librelane.flows import Flow  # lazy: optional extra, heavy

    classic = Flow.factory.get("Classic")
    declared = {v.name for v in classic.config_vars}
    declared |= {v.name for step in classic.Steps for v in step.config_vars}
    for obj in vars(common).values():
        if isinstance(obj, list):
            declared |= {v.name for v in obj if hasattr(v, "name")}
    return {n for n in names if n in declared}


def dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
