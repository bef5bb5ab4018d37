"""Level 4, host side: the Verilator build of ``network_top`` for a chip program and
:func:`run_level4`, which runs the cocotb test (:mod:`.cocotb_tests`) in a simulator and
returns its :class:`Level4Result`.

The chip program reaches the simulator as a signed job file (:mod:`.jobfile`) next to the
run's parameters: written and read by this run only, never taken from a user.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.golden import logits_of
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams

from ..network_top import NetworkTop, NetworkTopParams
from ..postops import pool_params, residual_params
from ..rtlparams import conv_cycles, mgmt_params, nmpu_params
from ..runner import CosimFailure, build_component, cache_dir
from .jobfile import write_job

MODULE = "aimcflow.cosim.network.cocotb_tests"
TESTCASE = "network"
TOPLEVEL = "aimcflow_network_top"
RING = {"k": 16, "in_words": 256, "out_beats": 4096}  # network_top ring sizes
# result keys besides the Level4Result fields (status counts, timings, probe results)
_CORE = {
    "activations_compared",
    "mismatches",
    "errors",
    "rtl_cycles",
    "conv_cycles",
    "ideal_cycles",
    "layers",
    "sim_wall_s",
    "y_last",
    "startup",
}


def x_format(prog) -> tuple[int, bool]:
    """One controller input format that holds every layer's input: the layers' own format
    when they agree, else signed and one bit wider than the widest unsigned one."""
    fmts = {(lp.in_bits, lp.in_signed) for lp in prog.layers}
    if len(fmts) == 1:
        return next(iter(fmts))
    return max(b + (0 if s else 1) for b, s in fmts), True


def rtl_params(prog):
    """``(NmpuRtlParams, MgmtRtlParams)`` of the chip program's config."""
    x_bits, x_signed = x_format(prog)
    return nmpu_params(prog.cfg), mgmt_params(prog.cfg, x_bits=x_bits, x_signed=x_signed)


def op_rtl_params(prog) -> tuple[ResidualRtlParams | None, PoolRtlParams | None]:
    """The residual-add and pooling units ``network_top`` needs for this program (None for
    a kind the network does not have).  Each op loads its own formats, activation and
    coefficients, so one unit per kind serves every add / pool of the network."""
    res = residual_params(prog.cfg) if prog.adds else None
    pool = pool_params(prog.cfg) if prog.pools else None
    return res, pool


def top_params(prog) -> NetworkTopParams:
    """``network_top``'s parameters for this program."""
    nrtl, mrtl = rtl_params(prog)
    res, pool = op_rtl_params(prog)
    return NetworkTopParams(nrtl, mrtl, conv_cycles(prog.cfg), **RING, residual=res, pool=pool)


def check_fits(prog) -> None:
    """Raise :class:`UserInputError` if a layer needs more row tiles than the NMPU holds."""
    nrtl, _ = rtl_params(prog)
    for lp in prog.layers:
        if len(lp.row_slices) > nrtl.max_tiles:
            raise UserInputError(
                f"layer {lp.name}: {len(lp.row_slices)} row tiles; the periphery RTL "
                f"accumulates at most {nrtl.max_tiles} (max_tiles)"
            )


def build_for(prog, sim: str = "verilator"):
    """The Verilator (or ``sim="icarus"``: Icarus) build of ``network_top`` (``periphery_top``,
    plus the residual and pooling units when the network has them) for this
    program's config (cached by the hash of its Verilog, i.e. of every parameter): a
    :class:`aimcflow.cosim.runner.Build` with ``build_s`` and ``cached``."""
    return build_component(NetworkTop(top_params(prog)), TOPLEVEL, name="network-top", sim=sim)


@dataclass
class Level4Result:
    """What a level-4 run reported (see the module docstring for the cycle definitions)."""

    logits: np.ndarray | None
    activations_compared: int
    mismatches: int
    errors: list[dict]
    rtl_cycles: int
    ideal_cycles: int
    layers: list[dict]
    #: of ``rtl_cycles``, those with the converters busy (``periphery_top.busy``)
    conv_cycles: int
    sim_wall_s: float
    build_s: float
    build_cached: bool
    waves: str | None = None
    log: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def efficiency(self) -> float | None:
        return self.ideal_cycles / self.rtl_cycles if self.rtl_cycles else None


def run_level4(
    prog,
    x: np.ndarray,
    images: np.ndarray | None = None,
    *,
    build=None,
    batch_size: int = 512,
    live_tiles: bool = False,
    p_valid: float = 1.0,
    p_ready: float = 1.0,
    seed: int = 1,
    waves_on_failure: bool = True,
    per_beat: bool = False,
    stalls: float = 0.0,
    bench: tuple[str, str] = (MODULE, TESTCASE),
    bench_params: dict | None = None,
) -> Level4Result:
    """Run ``x`` (float inputs) through ``prog`` at level 4.

    ``p_valid``/``p_ready`` < 1 add random gaps and backpressure on the streams.
    ``stalls`` (0 .. 255/256) > 0: in ring mode the wrapper holds ``o``, ``dac`` and ``adc``
    off at random in that fraction of cycles (seeded by ``seed``,
    :mod:`aimcflow.cosim.network_top`): backpressure on the output and on the analog side.
    ``bench`` (cocotb test module, test name) and ``bench_params`` (extra parameters)
    select a variant of the test (:mod:`aimcflow.cosim.benches.network_probes`); result
    keys it adds land in ``extra``.

    With no gaps, no backpressure and recorded tile answers the bench feeds
    ``network_top``'s rings (:mod:`aimcflow.cosim.network_top`, Python wakes once per
    refill); otherwise, or with ``per_beat``, per-beat agents drive ``periphery_top``
    through the wrapper's bypass, one Python wake-up per clock.
    """
    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    b = build if build is not None else build_for(prog)
    work = cache_dir() / "network" / uuid.uuid4().hex[:12]
    work.mkdir(parents=True)
    try:
        blob = work / "job.bin"
        job_key = write_job(
            blob,
            {
                "prog": prog,
                "x": np.asarray(x),
                "images": images,
                "batch_size": batch_size,
                "live_tiles": live_tiles,
            },
        )
        nrtl, mrtl = rtl_params(prog)
        res_rtl, pool_rtl = op_rtl_params(prog)
        params = {
            "job": str(blob),
            "job_key": job_key,
            "nmpu_rtl": dataclasses.asdict(nrtl),
            "mgmt_rtl": dataclasses.asdict(mrtl),
            "residual_rtl": None if res_rtl is None else dataclasses.asdict(res_rtl),
            "pool_rtl": None if pool_rtl is None else dataclasses.asdict(pool_rtl),
            "p_valid": p_valid,
            "p_ready": p_ready,
            "seed": seed,
            "ring": RING,
            "per_beat": per_beat,
            "stalls": stalls,
            **(bench_params or {}),
        }
        waves = log = None
        t_launch = time.time()
        try:
            rr = b.run(bench[0], params, testcase=bench[1], waves_on_failure=waves_on_failure)
            res, wall = rr.result, rr.wall_s
        except CosimFailure as exc:
            run_dir = exc.run_dir
            f = run_dir / "result.json"
            if not f.exists():
                raise
            res, wall = json.loads(f.read_text()), float("nan")
            waves = str(exc.waves) if exc.waves else None
            log = str(run_dir / "sim.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "startup" in res:  # where the simulator run's fixed cost goes
        st = res["startup"]
        res["startup_s"] = {
            "to_module_import": st["module_imported"] - t_launch,
            "to_test_start": st["test_started"] - t_launch,
            "to_unpickled": st["unpickled"] - t_launch,
            "to_tb_built": st["tb_built"] - t_launch,
            "to_program_loaded": st["program_loaded"] - t_launch,
        }
    y_last = res.get("y_last")
    logits = logits_of(prog, np.asarray(y_last, dtype=np.int64)) if y_last is not None else None
    return Level4Result(
        logits=logits,
        activations_compared=int(res["activations_compared"]),
        mismatches=int(res["mismatches"]),
        errors=list(res["errors"]),
        rtl_cycles=int(res["rtl_cycles"]),
        ideal_cycles=int(res["ideal_cycles"]),
        layers=list(res["layers"]),
        conv_cycles=int(res.get("conv_cycles", 0)),
        sim_wall_s=float(res.get("sim_wall_s", wall)),
        build_s=b.build_s,
        build_cached=b.cached,
        waves=waves,
        log=log,
        extra={k: v for k, v in res.items() if k not in _CORE},
    )
