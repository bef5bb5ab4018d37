"""The network levels that ``aimcflow run`` and ``aimcflow sweep`` share: level 3
(analog-golden: compile the chip program and run the golden periphery) and level 4
(analog-rtl: the same program with the Verilated periphery in the loop).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
from aimcflow.cosim import network
from aimcflow.flows import shards as shard_runs
from aimcflow.flows.io import shown
from aimcflow.flows.shards import Shards, level4_batch
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.golden import LayerTrace, forward_golden, periphery_corners
from aimcflow.models.nn.invariants import coverage_goals, periphery_invariants
from aimcflow.models.nn.schedule import placement
from aimcflow.models.nn.seq_steps import SFU_KINDS
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams

CALIBRATION_IMAGES = 512  # training images for the compiler's output-scale percentiles
STALLS = 0.25  # fraction of cycles the stalled level-4 run holds o, dac and adc off


def analog_golden_level(
    net,
    cfg,
    data,
    x,
    y,
    images,
    t_s: float,
    out=None,
    console=None,
    shards: Shards | None = None,
    sfu: str = "int",
):
    """Compile the seed-``cfg.seed`` programming at ``t_s`` and run level 3 on it; the chip
    program goes to ``out/chip_program.{npz,json}`` (not saved when ``out`` is None, as in
    ``aimcflow sweep``).  ``shards``: where the images run (:mod:`aimcflow.flows.shards`;
    default all in this process).  ``sfu``: "int" (the SFU golden model) or "float" (a
    transformer's SFU ops in float, models/nn/seq_steps.py).  Returns (level-3 dict,
    program or None, level-3 logits or None)."""

    try:  # a config the integer periphery cannot be built for (e.g. 16-bit ADC) skips level 3
        NmpuParams.from_config(cfg)
        MgmtParams.from_config(cfg)
    except UserInputError as exc:
        return {"accuracy": None, "reason": str(exc)}, None, None
    net.build(cfg)
    net.program()
    net.drift(t_s)
    acc2 = net.accuracy(x, y, images)

    def status(text: str):  # a spinner on the console when there is one
        return console.status(text) if console is not None else contextlib.nullcontext()

    try:  # a model level 2 runs but the NMPU cannot (e.g. LeakyReLU 0.1): reported, not fatal
        with status("compiling the chip program (calibrating every tile)"):
            prog = compile_network(net, data.x_train[:CALIBRATION_IMAGES], t_s=t_s)
    except UserInputError as exc:
        return {"accuracy": None, "reason": str(exc)}, None, None
    if out is not None:
        prog.save(out / "chip_program")
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    with status(f"analog-golden on {len(x)} images"):
        if shards is None:
            logits3 = forward_golden(prog, x, images, traces=traces, sfu=sfu)
        else:
            logits3 = shard_runs.level3(shards, prog, x, images, traces, sfu=sfu)
    acc3 = float(np.mean(logits3.argmax(1) == y))
    layers = []
    corners = periphery_corners(prog, traces)
    for i, (lp, tr, corner) in enumerate(zip(prog.layers, traces, corners, strict=True)):
        lcfg = prog.layer_cfg(i)
        its = np.concatenate(tr.iters)
        sat = np.concatenate(tr.sat)
        layers.append(
            {
                "name": lp.name,
                "adc_sat_rate": float(np.mean(sat)),
                # final ADC codes at the [negative, positive] rail; accumulators at the
                # [negative, positive] rail of nmpu.acc_bits (models.nn.golden.periphery_corners)
                "adc_rail_codes": corner["adc_rails"],
                "acc_rail_sums": corner["acc_rails"],
                "bm_iterations_hist": np.bincount(
                    its, minlength=lcfg.mgmt.bound_max_iter + 1
                ).tolist(),
                "adc_bits": lcfg.adc.bits,
                "dac_bits": lcfg.dac.bits,
                "out_shift": lp.out_shift,
                "bound_max_iter": lcfg.mgmt.bound_max_iter,
                "shrink_k": lp.shrink_k,
                "gain_bits_used": lp.gain_bits_used,
                "mult_bits_used": lp.mult_bits_used,
                "in_scale": lp.in_scale,
                "out_scale": lp.out_scale,
            }
        )
    # SPEC properties checked without the golden models, and the config's coverage goals
    violations = periphery_invariants(prog, traces)
    violations += coverage_goals(cfg.verify.goals, layers, traces, prog)
    return (
        {
            "accuracy": acc3,
            "invariant_violations": violations,
            "drift_s": t_s,
            "seed": cfg.seed,
            "sfu": sfu if prog.seqs else None,
            "analog_float_same_tiles": acc2,
            "chip_program": None if out is None else str(shown(out) / "chip_program.npz"),
            "layers": layers,
        },
        prog,
        logits3,
    )


THROUGHPUT_KEYS = (
    "conv_cycles",
    "periphery_cycles",
    "bound_by",
    "clock_period_ns",
    "inferences_per_s",
)


def throughput(rtl_cycles: int, conv_cycles: int, images: int, period_ns: float) -> dict:
    """Where level 4's ``periphery_top`` cycles went: ``conv_cycles`` with the converters
    busy (``periphery_top.busy``: the ADC kind's latency per request), the rest in the
    digital periphery (DAC/ADC streaming, loads, NMPU); which of the two bounds the
    throughput, and inferences/s at the ``clock.period_ns`` clock (one ``periphery_top``
    computing every layer in turn)."""
    periphery = rtl_cycles - conv_cycles
    seconds = rtl_cycles * period_ns * 1e-9
    return {
        "images": images,
        "conv_cycles": conv_cycles,
        "periphery_cycles": periphery,
        "bound_by": "converters" if conv_cycles > periphery else "digital periphery",
        "clock_period_ns": period_ns,
        "inferences_per_s": images / seconds if seconds > 0 else None,
    }


UNIT_FILES = {
    "add": "rtl/residual.py",
    "pool": "rtl/pool.py",
    **{k: "rtl/sfu.py" for k in SFU_KINDS},
    "add_const": "rtl/residual.py",
    "token_mean": "rtl/pool.py",
}
"""The RTL unit each op-step kind runs on at level 4 (beside ``periphery_top``)."""


def ops_by_kind(ops_rtl: list[dict]) -> dict[str, dict]:
    """Level 4's per-op statistics summed per kind: steps, unit jobs, values compared, RTL
    and ideal cycles, and the unit that ran them."""
    out: dict[str, dict] = {}
    for o in ops_rtl:
        k = out.setdefault(
            o["kind"],
            {"unit": UNIT_FILES.get(o["kind"]), "steps": 0, "jobs": 0, "activations": 0,
             "rtl_cycles": 0, "ideal_cycles": 0},
        )  # fmt: skip
        k["steps"] += 1
        for f in ("jobs", "activations", "rtl_cycles", "ideal_cycles"):
            k[f] += int(o[f])
    return out


def sfu_summary(prog, kinds: dict[str, dict]) -> dict | None:
    """A transformer's SFU at level 4 (None without SFU steps): in the loop of the network
    run (``network_top``'s SFU, :mod:`aimcflow.cosim.network.ops`), its jobs, values
    compared and cycles over attention, layernorm and GELU."""
    if not any(sp.kind in SFU_KINDS for sp in prog.seqs):
        return None
    ks = [kinds[k] for k in SFU_KINDS if k in kinds]
    return {
        "in_the_loop": bool(ks),
        "unit": UNIT_FILES["gelu"],
        **{f: sum(k[f] for k in ks) for f in ("jobs", "activations", "rtl_cycles", "ideal_cycles")},
    }


def level4(
    prog,
    x,
    y,
    images,
    logits3,
    console,
    sim: str = "verilator",
    shards: Shards | None = None,
    build=None,
) -> dict:
    """Level 4 on ``prog`` (:mod:`aimcflow.cosim.network`); its logits are also checked against level
    3's as a whole (the job-by-job comparison already covers every activation).  ``sim``:
    the RTL simulator, ``"verilator"`` or ``"icarus"`` (same bench, same results).
    ``shards``: where the images run (:mod:`aimcflow.flows.shards`; default all in this
    process, one simulator run), in level-4 batches of at most
    :data:`~aimcflow.flows.shards.LEVEL4_BATCH` images either way.  ``build``: the
    simulator builds of ``prog`` already made (:func:`aimcflow.cosim.network.builds_for`;
    then ``verilator_build_s`` is only the time to hand them over)."""
    try:  # a program or config the periphery RTL cannot hold: reported, not fatal
        network.check_fits(prog)
        with console.status(f"building periphery_top with {sim} (cached per config)"):
            tb = time.perf_counter()
            # one build per periphery configuration
            build = network.builds_for(prog, sim) if build is None else build
            build_s = time.perf_counter() - tb  # Verilog generation + cache lookup or build
    except UserInputError as exc:
        return {"accuracy": None, "reason": str(exc)}
    shards = shards if shards is not None else Shards.plan(len(x))
    where = "" if shards.local else f" on {len(shards.bounds)} Dask workers"
    with console.status(
        f"analog-rtl: periphery RTL ({sim}) in the loop{' with the SFU' if prog.seqs else ''}, "
        f"{len(x)} images{where}, then again with {STALLS:.0%} random stalls"
    ):
        r, rs = shard_runs.level4(shards, prog, x, images, logits3, build, sim, STALLS)
    mismatches = shard_runs.mismatches(r, logits3)
    # where each op ran: analog layers' periphery in periphery_top; an op kind in its unit
    # only if the run reports RTL results for it (never claimed otherwise)
    kinds = ops_by_kind(r.extra.get("ops_rtl", []))
    ops = placement(
        prog,
        f"RTL (periphery_top on {sim}, compared with level 3)",
        {
            k: f"RTL ({f} in network_top on {sim}, compared with level 3)"
            for k, f in UNIT_FILES.items()
            if k in kinds
        },
    )
    acc = float(np.mean(r.logits.argmax(1) == y)) if r.logits is not None else None
    stalled = None
    if rs is not None and not mismatches:  # the same images with random stalls on o, dac, adc
        bad = shard_runs.mismatches(rs, logits3)
        mismatches += bad
        stalled = {
            "stall_fraction": STALLS,
            "mismatches": bad,
            "rtl_cycles": rs.rtl_cycles,
            "ideal_cycles": rs.ideal_cycles,
            "cycle_efficiency": rs.efficiency,
            "sim_wall_s": rs.sim_wall_s,
        }
        if bad:
            r = rs  # report the stalled run's errors, waves and log
            acc = None
    return {
        "accuracy": acc,
        "sfu": sfu_summary(prog, kinds),
        "activations_compared": r.activations_compared,
        "mismatches": mismatches,
        "errors": r.errors,
        "rtl_cycles": r.rtl_cycles,
        "ideal_cycles": r.ideal_cycles,
        "cycle_efficiency": r.efficiency,
        **throughput(r.rtl_cycles, r.conv_cycles, len(x), prog.cfg.clock.period_ns),
        "sim_wall_s": r.sim_wall_s,
        "simulator": sim,
        # the build of ``simulator`` (key name kept from when Verilator was the only one)
        "verilator_build_s": build_s,
        "verilator_build_cached": r.build_cached,
        "waves": r.waves,
        "log": r.log,
        "layers": r.layers,
        "ops_rtl": r.extra.get("ops_rtl", []),
        "ops_by_kind": kinds,
        "ops": ops,
        "ops_not_in_rtl": [o["op"] for o in ops if o["ran"].startswith("golden")],
        "stalled": stalled,
        "batch_images": level4_batch(len(x)),
        "shards": len(shards.bounds),
    }
