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
from aimcflow.models.nn.seq_steps import SFU_KINDS
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams
from aimcflow.rtl.sfu import SfuRtlParams

from ..network_top import NetworkTop, NetworkTopParams
from ..postops import pool_params, residual_params
from ..rtlparams import conv_cycles, mgmt_params, nmpu_params, sfu_params
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
    "saved_at",
}


def x_format(prog) -> tuple[int, bool]:
    """One controller input format that holds every layer's input: the layers' own format
    when they agree, else signed and one bit wider than the widest unsigned one."""
    fmts = {(lp.in_bits, lp.in_signed) for lp in prog.layers}
    if len(fmts) == 1:
        return next(iter(fmts))
    return max(b + (0 if s else 1) for b, s in fmts), True


def layer_rtl_params(prog, i: int) -> tuple:
    """``(NmpuRtlParams, MgmtRtlParams, conversion cycles)`` of layer ``i``: its config
    (``[[layer]]`` entry applied, the compiler's ``out_shift``)."""
    x_bits, x_signed = x_format(prog)
    c = prog.layer_cfg(i)
    return (
        nmpu_params(c),
        mgmt_params(c, x_bits=x_bits, x_signed=x_signed),
        conv_cycles(c),
    )


@dataclass(frozen=True)
class RtlGroup:
    """The layers that run on one periphery RTL configuration (one build)."""

    nmpu: object  # NmpuRtlParams
    mgmt: object  # MgmtRtlParams
    conv_cycles: int
    layers: tuple[int, ...]


def rtl_groups(prog) -> list[RtlGroup]:
    """The chip program's layers grouped by their periphery RTL parameters (one group per
    distinct parameter set, in order of first layer)."""
    groups: dict[str, tuple] = {}
    for i in range(len(prog.layers)):
        n, m, cc = layer_rtl_params(prog, i)
        key = json.dumps([dataclasses.asdict(n), dataclasses.asdict(m), cc], sort_keys=True)
        groups.setdefault(key, (n, m, cc, []))[3].append(i)
    return [RtlGroup(n, m, cc, tuple(ls)) for n, m, cc, ls in groups.values()]


def rtl_params(prog):
    """``(NmpuRtlParams, MgmtRtlParams)`` of a chip program whose layers all share one
    periphery configuration (else :func:`rtl_groups`)."""
    (g, *rest) = rtl_groups(prog)
    if rest:
        raise ValueError(f"{1 + len(rest)} periphery configurations; use rtl_groups")
    return g.nmpu, g.mgmt


@dataclass(frozen=True)
class OpUnits:
    """The units beside ``periphery_top`` a program needs (None: a unit it has no op for)."""

    residual: ResidualRtlParams | None = None
    pool: PoolRtlParams | None = None
    sfu: SfuRtlParams | None = None

    def params(self) -> dict:
        """The bench parameters ``residual_rtl``, ``pool_rtl``, ``sfu_rtl`` (JSON)."""
        vals = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {f"{k}_rtl": None if v is None else dataclasses.asdict(v) for k, v in vals.items()}


def op_rtl_params(prog) -> OpUnits:
    """The units ``network_top`` needs for this program: the residual-add unit for its
    residual adds and constant adds (a positional embedding), the pooling unit for its
    poolings and token means, the special-function unit for attention, layernorm and GELU.
    Each op loads its own formats, activation and coefficients, so one unit per kind
    serves every op of the network."""
    kinds = {sp.kind for sp in getattr(prog, "seqs", ())}
    return OpUnits(
        residual=residual_params(prog.cfg) if prog.adds or "add_const" in kinds else None,
        pool=pool_params(prog.cfg) if prog.pools or "token_mean" in kinds else None,
        sfu=sfu_params(prog.cfg) if kinds & set(SFU_KINDS) else None,
    )


def top_params(prog, group: RtlGroup | None = None, ops: bool = True) -> NetworkTopParams:
    """``network_top``'s parameters for this program's periphery configuration ``group``
    (None: its only one), with the units between layers when ``ops`` (with per-layer
    parameter sets only the first configuration's run drives the ops between layers)."""
    g = group if group is not None else rtl_groups(prog)[0]
    u = op_rtl_params(prog) if ops else OpUnits()
    return NetworkTopParams(
        g.nmpu, g.mgmt, g.conv_cycles, **RING, residual=u.residual, pool=u.pool, sfu=u.sfu
    )


def check_fits(prog) -> None:
    """Raise :class:`UserInputError` if a layer needs more row tiles than the NMPU holds."""
    nrtl = rtl_groups(prog)[0].nmpu
    for lp in prog.layers:
        if len(lp.row_slices) > nrtl.max_tiles:
            raise UserInputError(
                f"layer {lp.name}: {len(lp.row_slices)} row tiles; the periphery RTL "
                f"accumulates at most {nrtl.max_tiles} (max_tiles)"
            )


def build_for(prog, sim: str = "verilator"):
    """The Verilator (or ``sim="icarus"``: Icarus) build of ``periphery_top`` for this
    program's one periphery configuration (cached by the hash of its Verilog, i.e. of every
    parameter): a :class:`aimcflow.cosim.runner.Build` with ``build_s`` and ``cached``.
    A program with per-layer parameter sets needs :func:`builds_for`."""
    groups = rtl_groups(prog)
    if len(groups) != 1:
        raise ValueError(f"{len(groups)} periphery configurations; use builds_for")
    return builds_for(prog, sim, groups)[0]


def builds_for(prog, sim: str = "verilator", groups: list[RtlGroup] | None = None) -> list:
    """One build per periphery configuration of the program (:func:`rtl_groups`)."""
    out = []
    for k, g in enumerate(groups if groups is not None else rtl_groups(prog)):
        top = NetworkTop(top_params(prog, g, ops=k == 0))
        out.append(build_component(top, TOPLEVEL, name="network-top", sim=sim))
    return out


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
    #: the run with random stalls that followed in the same simulator (``then_stalls``)
    stalled: Level4Result | None = None

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
    then_stalls: float = 0.0,
    bench: tuple[str, str] = (MODULE, TESTCASE),
    bench_params: dict | None = None,
) -> Level4Result:
    """Run ``x`` (float inputs) through ``prog`` at level 4.

    ``p_valid``/``p_ready`` < 1 add random gaps and backpressure on the streams.
    ``stalls`` (0 .. 255/256) > 0: in ring mode the wrapper holds ``o``, ``dac`` and ``adc``
    off at random in that fraction of cycles (seeded by ``seed``,
    :mod:`aimcflow.cosim.network_top`): backpressure on the output and on the analog side.
    ``then_stalls`` > 0: if the run matched, the same images once more with that fraction
    of stalls in the same simulator run, reusing the first run's golden reference (one
    simulator start-up and one golden reference for both); its result is ``stalled``.
    Either way the stalls are reseeded per batch from ``seed`` and the batch's first image
    id, so a batch's cycles do not depend on what ran before it.
    ``bench`` (cocotb test module, test name) and ``bench_params`` (extra parameters)
    select a variant of the test (:mod:`aimcflow.cosim.benches.network_probes`); result
    keys it adds land in ``extra``.

    With no gaps, no backpressure and recorded tile answers the bench feeds
    ``network_top``'s rings (:mod:`aimcflow.cosim.network_top`, Python wakes once per
    refill); otherwise, or with ``per_beat``, per-beat agents drive ``periphery_top``
    through the wrapper's bypass, one Python wake-up per clock.
    """
    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    groups = rtl_groups(prog)
    if build is None:
        builds = builds_for(prog, groups=groups)
    else:
        builds = list(build) if isinstance(build, list | tuple) else [build]
    if len(builds) != len(groups):
        raise ValueError(f"{len(groups)} periphery configurations but {len(builds)} builds")
    kw = dict(
        batch_size=batch_size, live_tiles=live_tiles, p_valid=p_valid, p_ready=p_ready,
        seed=seed, waves_on_failure=waves_on_failure, per_beat=per_beat, stalls=stalls,
        then_stalls=then_stalls, bench=bench, bench_params=bench_params,
    )  # fmt: skip
    runs = []
    for k, (g, b) in enumerate(zip(groups, builds, strict=True)):
        runs.append(_run_group(prog, x, images, g, b, ops=k == 0, **kw))
        if runs[-1].mismatches:  # the first failing configuration is the report
            break
    return _merge(runs, groups)


def _merge(runs: list[Level4Result], groups: list[RtlGroup]) -> Level4Result:
    """One result of the per-configuration runs: each layer's statistics from the run that
    drove it through the RTL; counts summed; logits of the last run (every run's logits
    equal level 3's when it has no mismatch, since the other layers run the golden models)."""
    if len(runs) == 1:
        return runs[0]
    layers = [None] * len(runs[0].layers)
    for r, g in zip(runs, groups, strict=False):
        for i in g.layers:
            layers[i] = r.layers[i]
    for i, lay in enumerate(layers):
        if lay is None:  # not reached: an earlier configuration failed
            layers[i] = runs[-1].layers[i]
    last = runs[-1]
    return Level4Result(
        logits=last.logits,
        activations_compared=sum(lay.get("activations", 0) for lay in layers if lay is not None)
        + sum(o["activations"] for o in runs[0].extra.get("ops_rtl", ())),
        mismatches=sum(r.mismatches for r in runs),
        errors=[e for r in runs for e in r.errors],
        rtl_cycles=sum(r.rtl_cycles for r in runs),
        ideal_cycles=sum(r.ideal_cycles for r in runs),
        layers=layers,
        conv_cycles=sum(r.conv_cycles for r in runs),
        sim_wall_s=sum(r.sim_wall_s for r in runs),
        build_s=sum(r.build_s for r in runs),
        build_cached=all(r.build_cached for r in runs),
        waves=next((r.waves for r in runs if r.waves), None),
        log=next((r.log for r in runs if r.log), None),
        extra=last.extra
        | {"ops_rtl": runs[0].extra.get("ops_rtl", []), "configurations": len(runs)},
        stalled=None
        if any(r.stalled is None for r in runs)
        else _merge([r.stalled for r in runs], groups),
    )


def _run_group(
    prog, x, images, group: RtlGroup, b, *, ops, batch_size, live_tiles, p_valid, p_ready,
    seed, waves_on_failure, per_beat, stalls, then_stalls, bench, bench_params,
) -> Level4Result:  # fmt: skip
    """One simulator run: the layers of ``group`` through its RTL, the others through the
    golden models (their inputs are the golden ones either way: a mismatch stops the run);
    with ``ops`` the adds and pools through the residual and pooling units."""

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
        units = op_rtl_params(prog) if ops else OpUnits()
        params = {
            "job": str(blob),
            "job_key": job_key,
            "nmpu_rtl": dataclasses.asdict(group.nmpu),
            "mgmt_rtl": dataclasses.asdict(group.mgmt),
            "rtl_layers": list(group.layers),
            **units.params(),
            "p_valid": p_valid,
            "p_ready": p_ready,
            "seed": seed,
            "ring": RING,
            "per_beat": per_beat,
            "stalls": stalls,
            "then_stalls": then_stalls,
            **(bench_params or {}),
        }
        waves = log = None
        t_launch = time.time()
        try:
            rr = b.run(bench[0], params, testcase=bench[1], waves_on_failure=waves_on_failure)
            res, wall = rr.result, rr.wall_s
            if "saved_at" in res:  # result saved -> simulator gone and results read
                res["exit_s"] = time.time() - res.pop("saved_at")
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
    return _result(prog, res, t_launch, wall, b, waves, log)


def _result(prog, res: dict, t_launch: float, wall: float, b, waves, log) -> Level4Result:
    """A :class:`Level4Result` of the bench's result dict (and of its stalled run's)."""
    if "startup" in res:  # where the simulator run's fixed cost goes
        st = res["startup"]
        res["startup_s"] = {
            "to_module_import": st["module_imported"] - t_launch,
            "to_test_start": st["test_started"] - t_launch,
            "to_unpickled": st["unpickled"] - t_launch,
            "to_tb_built": st["tb_built"] - t_launch,
            "to_program_loaded": st["program_loaded"] - t_launch,
        }
    stalled = res.pop("stalled_run", None)
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
        stalled=None
        if stalled is None
        else _result(prog, stalled, t_launch, float("nan"), b, waves, log),
    )
