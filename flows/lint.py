"""Verilator lint of generated Verilog with the project's reviewed waiver file."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aimcflow.cosim.runner import waiver_path
from aimcflow.cosim.toolchain import find_verilator

_WARN = re.compile(r"^%(Warning|Error)(-[A-Z0-9_]+)?: (.*)$")


@dataclass(frozen=True)
class LintReport:
    module: str
    warnings: list[str]
    returncode: int


def lint_verilog(verilog: str, module: str) -> LintReport:
    """``verilator --lint-only -Wall`` with the waiver file; every ``%Warning``/``%Error``
    line (except the final 'Exiting due to' summary) is a finding."""
    v = find_verilator()
    with tempfile.TemporaryDirectory(prefix="aimcflow-lint-") as tmp:
        src = Path(tmp) / f"{module}.v"
        src.write_text(verilog)
        r = subprocess.run(
            [
                str(v.binary),
                "--lint-only",
                "-Wall",
                "--top-module",
                module,
                str(waiver_path()),
                str(src),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    found = []
    for line in (r.stdout + r.stderr).splitlines():
        m = _WARN.match(line)
        if m and not m.group(3).startswith("Exiting due to"):
            found.append(line.replace(str(src), f"{module}.v"))
    found += unused_inputs(verilog, module)
    if r.returncode and not found:
        found.append(f"verilator exited {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")
    return LintReport(module, found, r.returncode)


def unused_inputs(verilog: str, module: str) -> list[str]:
    """Input ports of ``module`` never read inside it (the unused-signal check that the
    waiver file leaves to us, see cosim/verilator_waivers.vlt)."""
    m = re.search(rf"^module {re.escape(module)}\((.*?)\);(.*?)^endmodule", verilog, re.S | re.M)
    if not m:
        return [f"module {module} not found"]
    body = m.group(2)
    inputs = re.findall(r"^\s*input\s+(?:\[[^\]]*\]\s*)?(\w+)\s*;", body, re.M)
    decl = re.compile(r"^\s*(input|output|wire|reg)\b[^;]*;\s*$")
    code = "\n".join(line for line in body.splitlines() if not decl.match(line))
    return [
        f"%Warning-UNUSEDINPUT: {module}: input port '{name}' is never read"
        for name in inputs
        if not re.search(rf"(?<![\w$.]){re.escape(name)}(?![\w$])", code)
    ]


def lint_blocks(blocks: Iterable) -> dict[str, LintReport]:
    """Lint every :class:`aimcflow.cosim.blocks.GeneratedBlock`."""
    return {b.name: lint_verilog(b.verilog, b.module) for b in blocks}
