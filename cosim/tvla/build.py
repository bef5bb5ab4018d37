"""Generate, build (cached) and run the compiled Verilator TVLA harness of a MAC design.

The design is wrapped by :class:`~aimcflow.cosim.tvla.probe.PowerProbe` (all registers, and
for the ``nets`` power model all named nets, on ``power_state``), converted to Verilog, and compiled together with a C++ harness generated
from ``harness.cpp.in`` into one native program: Python is not in the per-cycle loop.
Builds live under ``<cache>/tvla/<design>-<key>`` (key = hash of Verilog, harness source,
flags, tool versions) behind a file lock, like :mod:`aimcflow.cosim.runner`'s builds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from aimcflow.cosim.blocks import BLOCKS
from aimcflow.models.periphery.secure_mac import SecureMacSpec, plain_cycles
from aimcflow.rtl.secure_mac import SecureMac

from .. import deathsig
from ..buildcache import cache_key, cached_dir
from ..runner import _make_overrides, amaranth_verilog, tool_versions, waiver_path
from .probe import POWER_MODELS, PowerProbe

DESIGNS = ("plain_mac", "secure_mac")
SECRETS = ("weight", "activation")
TOP = "probed"


def make_design(design: str, lanes: int = 64):
    """The RTL component for ``design`` (n = ``lanes``, 8-bit weights and activations),
    with the parameters ``aimcflow generate`` uses (``cosim/blocks.py``)."""

    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
    b = BLOCKS[design]
    return b.component(b.params(None, n=lanes))


def cycles_per_dot_product(dut) -> int:
    """Clock edges per dot product of a MAC component (the golden models' rule)."""

    p = dut.params
    if isinstance(dut, SecureMac):
        return SecureMacSpec(n=p.n, w_bits=p.w_bits, x_bits=p.x_bits).cycles
    return plain_cycles(p.x_bits)


@dataclass
class Harness:
    design: str
    binary: Path
    samples: int  # clock edges (power samples) per dot product
    state_bits: int  # register bits in the power model
    registers: int  # probed signals (registers, plus nets for the nets power model)
    build_s: float
    cached: bool
    power_model: str = "registers"


def harness_source(
    lanes: int,
    w_words: int,
    x_words: int,
    state_words: int,
    samples: int,
    mask_key: int | None = None,
) -> str:
    """The C++ harness; ``mask_key``: the value driven on the design's ``seed`` port from
    reset on (None: the design has no such port)."""
    text = resources.files("aimcflow.cosim.tvla").joinpath("harness.cpp.in").read_text()
    for k, v in {
        "LANES": lanes,
        "W_WORDS": w_words,
        "X_WORDS": x_words,
        "STATE_WORDS": state_words,
        "SAMPLES": samples,
        "SET_KEY": "" if mask_key is None else f"top.seed = {mask_key:#x}ULL;",
    }.items():
        text = text.replace(f"@{k}@", str(v))
    return text


def build_harness(
    design: str,
    lanes: int = 64,
    power_model: str = "registers",
    dut=None,
    mask_key: int | None = None,
) -> Harness:
    """Build (or reuse) the native TVLA program of ``design`` under ``power_model``
    (``registers`` or ``nets``).  ``dut``: a MAC component to assess instead of the named
    design's default (``design`` then only names the build directory), e.g. a variant
    built by a test.  ``mask_key``: the secure MAC's key (default: the golden model's
    ``SecureMacSpec.seed``), driven on its ``seed`` port."""

    if power_model not in POWER_MODELS:
        raise ValueError(f"power model {power_model!r}; known: {', '.join(POWER_MODELS)}")
    dut = make_design(design, lanes) if dut is None else dut
    p = dut.params
    lanes = p.n
    probe = PowerProbe(dut, power_model)
    samples = cycles_per_dot_product(dut)
    words = lambda bits: -(-bits // 32)  # noqa: E731
    has_key = "seed" in dut.signature.members
    mask = (SecureMacSpec.seed if mask_key is None else mask_key) if has_key else None
    cpp = harness_source(
        lanes,
        words(lanes * p.w_bits),
        words(lanes * p.x_bits),
        words(probe.state_bits),
        samples,
        mask,
    )
    verilog = amaranth_verilog(probe, TOP)
    versions = tool_versions()  # exports VERILATOR_ROOT / PATH
    waivers = waiver_path().read_text()
    vargs = [
        "--cc",
        "--exe",
        "-O3",
        "--x-assign",
        "fast",
        "--x-initial",
        "fast",
        "--top-module",
        TOP,
        "--prefix",
        "Vtop",
        "-o",
        "tvla",
    ]
    make = [*_make_overrides(), "OPT_FAST=-O2", "OPT_SLOW=-O1"]
    key = cache_key({"v": verilog, "cpp": cpp, "a": vargs, "m": make, "w": waivers, "t": versions})

    def fill(bdir: Path) -> str:
        print(
            f"building the TVLA harness of {design} ({lanes} lanes, {power_model}) with "
            "Verilator: not in the cache yet, up to a few minutes ...",
            file=sys.stderr,
            flush=True,
        )
        (bdir / f"{TOP}.v").write_text(verilog)
        (bdir / "harness.cpp").write_text(cpp)
        (bdir / "waivers.vlt").write_text(waivers)
        log = bdir / "build.log"
        with open(log, "w") as fh:
            for cmd in (
                [
                    "verilator",
                    *vargs,
                    "-Mdir",
                    str(bdir),
                    str(bdir / "waivers.vlt"),
                    str(bdir / f"{TOP}.v"),
                    str(bdir / "harness.cpp"),
                ],
                ["make", "-j", "2", "-C", str(bdir), "-f", "Vtop.mk", *make],
            ):
                r = subprocess.run(deathsig.wrap(cmd), stdout=fh, stderr=subprocess.STDOUT)
                if r.returncode:
                    raise RuntimeError(
                        f"TVLA harness build failed ({cmd[0]}); log {log}:\n"
                        + log.read_text()[-3000:]
                    )
        return json.dumps({"state_bits": probe.state_bits, "samples": samples})

    t0 = time.perf_counter()
    bdir, cached = cached_dir("tvla", f"{design}-{lanes}-{power_model}-{key}", fill)
    return Harness(
        design,
        bdir / "tvla",
        samples,
        probe.state_bits,
        len(probe.registers),
        time.perf_counter() - t0,
        cached,
        power_model,
    )


@dataclass
class TvlaRun:
    traces: int
    max_abs_t: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    first_cross: int | None = None
    seconds: float = 0.0  # wall clock of the simulation loop
    cycles: int = 0
    cpu_seconds: float = 0.0  # CPU time of the simulation loop (the machine may be shared)

    @property
    def traces_per_s(self) -> float:
        return self.traces / self.seconds if self.seconds > 0 else float("nan")

    @property
    def traces_per_cpu_s(self) -> float:
        return self.traces / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")


def run_harness(
    h: Harness,
    traces: int,
    secret: str,
    order: int = 1,
    seed: int = 1,
    every: int | None = None,
    dump: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> TvlaRun:
    """Run the native harness; ``progress(traces_done)`` is called at each curve point."""
    cmd = [
        str(h.binary),
        "--traces",
        str(traces),
        "--secret",
        secret,
        "--order",
        str(order),
        "--seed",
        str(seed),
    ]
    if every:
        cmd += ["--every", str(every)]
    if dump:
        cmd += ["--dump", str(dump)]
    run = TvlaRun(traces, float("nan"))
    with subprocess.Popen(
        deathsig.wrap(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            f = line.split()
            if not f:
                continue
            if f[0] == "CURVE":
                run.curve.append((int(f[1]), float(f[2])))
                if progress:
                    progress(int(f[1]))
            elif f[0] == "CROSS":
                run.first_cross = int(f[1])
            elif f[0] == "DONE":
                run.max_abs_t, run.seconds, run.cycles = float(f[2]), float(f[3]), int(f[4])
                run.cpu_seconds = float(f[5])
        err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"TVLA harness {h.binary} exited {proc.returncode}: {err.strip()}")
    return run
