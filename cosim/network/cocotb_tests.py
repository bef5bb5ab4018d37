"""The level-4 cocotb test: the whole network, compared job by job with level 3 (column
jobs on ``periphery_top``; residual adds, poolings and a transformer's steps on their
units, :mod:`.ops`).

Runs inside the simulator (``network_top``, :func:`aimcflow.cosim.network.build_for`).  The
parameters (:func:`aimcflow.cosim.runner.load_params`) name the signed job file
(chip program, inputs, image ids) that :func:`aimcflow.cosim.network.run_level4` wrote.
:func:`run_network` is the test's body; benches reuse it with a hook on the loaded
coefficients or extra measurements after it (:mod:`aimcflow.cosim.benches.network_probes`).
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from typing import Any

import cocotb
import numpy as np
from aimcflow.models.nn.golden import LayerTrace, golden_periphery, input_codes, layer_jobs
from aimcflow.models.nn.schedule import walk
from aimcflow.models.periphery.mgmt import adc_sat_any
from aimcflow.rtl.params import MgmtRtlParams, NmpuRtlParams

from ..network_top import NetworkTopParams
from ..runner import load_params, save_result
from .benches import NetworkTB, RingNetworkTB
from .compare import MAX_REPORT, compare_job, format_mismatch, report_dac_mismatches
from .jobfile import read_job
from .jobs import RecordingTile, job_coefficients
from .ops import OpRunner, op_stats

_IMPORTED_AT = time.time()  # in the simulator: when cocotb imported this module

CoefHook = Callable[[int, dict[str, np.ndarray]], None]
"""``hook(layer index, coefficients)`` may alter a column job's coefficients (``gain``,
``offset`` (T,C), ``mult``, ``bias`` (C,)) as loaded into the RTL; the golden reference
keeps the chip program's."""

OpHook = Callable[[str, int, Any], Any]
"""``hook(step kind, step index, job)`` of an op step may return another job (other
registers) for its RTL unit (called for every unit job of the step, e.g. each of
attention's matmuls); the golden reference keeps the chip program's."""


HANDSHAKE_MONITORS = {
    "nmpu_handshake_errors": "NMPU i.ready != ~o.valid | o.ready",
    "mgmt_handshake_errors": "management x.ready != (fewer than two segments pending) "
    "(its second input buffer)",
}
"""``network_top``'s per-cycle protocol monitors: violation-count port -> the promise."""


def make_tb(dut, p: dict, live: bool) -> NetworkTB:
    """The ring bench when nothing needs a per-clock decision, else per-beat agents on
    the bypass (random gaps/backpressure, live tiles or ``per_beat``)."""
    nrtl, mrtl = NmpuRtlParams(**p["nmpu_rtl"]), MgmtRtlParams(**p["mgmt_rtl"])
    pv, pr = float(p["p_valid"]), float(p["p_ready"])
    if pv >= 1.0 and pr >= 1.0 and not live and not p.get("per_beat"):
        ring = NetworkTopParams(nrtl, mrtl, **p["ring"])
        return RingNetworkTB(dut, nrtl, mrtl, int(p["seed"]), ring)
    dut.bypass.value = 1
    dut.go.value = 0
    tb = NetworkTB(dut, nrtl, mrtl, int(p["seed"]), pv, pr)
    tb.tile.live_tiles = live
    return tb


def batch_stall_seed(seed: int, first_image: int) -> int:
    """The stall generator's seed for the batch whose first image id is ``first_image``."""
    return (seed * 0x9E3779B1 + first_image) & 0xFFFFFFFF


def _layer_stats(name: str) -> dict:
    return {
        "name": name,
        "rtl_cycles": 0,
        "conv_cycles": 0,
        "ideal_cycles": 0,
        "jobs": 0,
        "activations": 0,
        "requests": 0,
        "live_calls": 0,
    }


async def run_network(
    dut,
    p: dict,
    coef_hook: CoefHook | None = None,
    op_hook: OpHook | None = None,
    *,
    tb: NetworkTB | None = None,
    memo: dict | None = None,
):
    """Run the job file's network through the RTL, step by step (layers on
    ``periphery_top``; residual adds, poolings and transformer steps on their units); returns
    ``(tb, result dict, failed)``.  Stops at the first step with a mismatch.

    ``tb``: the bench of an earlier run in this simulator (clock running, not reset
    again) to run the network once more on; ``memo``: the golden reference of every column
    job (recorded tile answers and golden result, keyed by batch, layer and column tile),
    filled by the first run and reused by the next (the same jobs when the first matched)."""
    t_start = time.time()
    job = read_job(p["job"], p["job_key"])  # signed by run_level4 in this same run
    t_unpickled = time.time()
    prog, x, images = job["prog"], job["x"], job["images"]
    bs = int(job["batch_size"])
    fresh = tb is None
    if tb is None:
        tb = make_tb(dut, p, bool(job["live_tiles"]))
    stalls = float(p.get("stalls", 0.0))
    # the units between layers: the network's stream timing, plus the stalled run's
    # random backpressure on their outputs (agents hold no running coroutine, so a second
    # run in this simulator makes its own)
    ops = OpRunner(
        dut,
        p,
        int(p["seed"]),
        float(p["p_valid"]),
        min(float(p["p_ready"]), 1.0 - stalls),
    )
    t_tb = time.time()
    if fresh:
        tb.start_clock()
        await tb.reset()
    if stalls > 0 and not isinstance(tb, RingNetworkTB):
        raise ValueError("stalls need ring mode (no gaps, no backpressure, recorded tiles)")
    # network_top's counts of handshake-promise violations so far, per monitor
    hs_seen = {port: getattr(dut, port).value.to_unsigned() for port in HANDSHAKE_MONITORS}
    # everything alive now (numpy, numba, torch, the chip program) lives until the
    # simulator exits: out of the cyclic collector's sight, so its full collections
    # during the run and at interpreter exit do not walk it again
    gc.freeze()
    t_loaded = time.time()
    t0 = time.perf_counter()
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    stats = [_layer_stats(lp.name) for lp in prog.layers]
    ostats: dict[str, dict] = {}  # per op step (add, pool, transformer step)
    errors: list[dict] = []
    compared = status_compared = mismatches = dac_mismatches = 0
    protocol_errors = sat_flag_errors = 0
    # the layers this run drives through the RTL (one periphery configuration); the others
    # run on the golden models, so every layer sees level 3's inputs either way
    rtl_layers = set(p.get("rtl_layers", range(len(prog.layers))))
    outs = []
    failed = False
    for b0 in range(0, len(x), bs):
        ids = images[b0 : b0 + bs]
        if stalls > 0:  # reseeded per batch: a batch's stalls do not depend on where it runs
            await tb.set_stalls(stalls, batch_stall_seed(int(p["seed"]), int(ids[0])))
        ops.reseed(int(p["seed"]), int(ids[0]))
        # the schedule: stages, adds, poolings and transformer steps come back here for the RTL
        walker = walk(prog, input_codes(prog, x[b0 : b0 + bs]), ops=True)
        step = next(walker)
        while True:
            sp, ins = step
            if sp.kind != "stage":  # an add, a pooling or a transformer step on its units
                ost = ostats.setdefault(sp.name, op_stats(sp))
                try:
                    run = await ops.run(prog, sp, ins, ids, errors, op_hook)
                except AssertionError as exc:  # a timeout: the unit stopped answering
                    errors.append({"op": sp.name, "kind": sp.kind, "timeout": str(exc)})
                    failed = True
                    mismatches += 1
                    break
                compared += run.activations
                mismatches += run.mismatches
                ost["rtl_cycles"] += run.cycles
                ost["ideal_cycles"] += run.ideal
                ost["jobs"] += run.jobs
                ost["activations"] += run.activations
                if mismatches:
                    failed = True
                    break
                try:
                    step = walker.send(run.y)
                except StopIteration as stop:
                    h = stop.value
                    break
                continue
            i, h = sp.index, ins[0]
            lp = prog.layers[i]
            lj = layer_jobs(prog, i, h, ids)
            results = []
            adc_bits = int(prog.layer_cfg(i).adc.bits)
            jobs = lj.jobs if i in rtl_layers else []
            if i not in rtl_layers:
                results = [golden_periphery(cj) for cj in lj.jobs]
            for cj in jobs:
                key = (b0, i, int(cj.column_tile))
                if memo is not None and key in memo:
                    rec, gold = memo[key]
                else:
                    rec = [RecordingTile(t) for t in cj.tiles]
                    gold = golden_periphery(dataclasses.replace(cj, tiles=rec))
                    if memo is not None:
                        memo[key] = (rec, gold)
                coef = job_coefficients(cj)
                if coef_hook is not None:
                    coef_hook(i, coef)
                conv0 = int(dut.conv_cycles.value)
                try:
                    rtl, cyc, ideal = await tb.run_job(cj, rec, coef, gold)
                except AssertionError as exc:  # a timeout: the RTL stopped answering
                    errors.append(
                        {
                            "layer": int(lp.index),
                            "layer_name": lp.name,
                            "tile": int(cj.column_tile),
                            "timeout": str(exc),
                        }
                    )
                    failed = True
                    mismatches += 1
                    break
                by, bsx = compare_job(cj, lp, rtl, gold, lj, ids, errors)
                compared += rtl.y.size
                status_compared += rtl.e.size
                mismatches += by + bsx
                # a DAC request other than the golden controller's is a mismatch too
                dac_bad = tb.tile.dac_mismatches
                dac_mismatches += len(dac_bad)
                mismatches += len(dac_bad)
                report_dac_mismatches(cj, lp, lj, ids, dac_bad, errors)
                # stream promises: the NMPU's handshake (network_top's monitor), o.last
                for port, promise in HANDSHAKE_MONITORS.items():
                    hs = getattr(dut, port).value.to_unsigned()
                    if hs != hs_seen[port]:
                        tb.protocol_errors.append(f"{promise} in {hs - hs_seen[port]} cycles")
                        hs_seen[port] = hs
                # the tile contract: sat_any = some code at an ADC rail (the mgmt golden rule)
                bad_sat = sum(
                    int(np.sum(s != adc_sat_any(a, adc_bits)))
                    for rt in rec
                    for _, _, a, s in rt.calls.values()
                )
                if bad_sat:
                    tb.protocol_errors.append(
                        f"{bad_sat} tile answers whose sat_any disagrees with their codes"
                    )
                    sat_flag_errors += bad_sat
                for msg in tb.protocol_errors[: max(0, MAX_REPORT - len(errors))]:
                    errors.append(
                        {
                            "layer": int(lp.index),
                            "layer_name": lp.name,
                            "tile": int(cj.column_tile),
                            "protocol": msg,
                        }
                    )
                protocol_errors += len(tb.protocol_errors)
                mismatches += len(tb.protocol_errors)
                tb.protocol_errors = []
                st = stats[i]
                st["rtl_cycles"] += cyc
                st["conv_cycles"] += int(dut.conv_cycles.value) - conv0
                st["jobs"] += 1
                st["ideal_cycles"] += ideal
                st["activations"] += rtl.y.size
                st["requests"] += tb.tile.requests
                st["live_calls"] += tb.tile.live_calls
                results.append(rtl)
            if failed or mismatches:
                failed = True
                break
            h = lj.finish(results, traces[i])
            try:
                step = walker.send(h)
            except StopIteration as stop:
                h = stop.value
                break
        if failed:
            break
        outs.append(h)
    for i, (st, tr) in enumerate(zip(stats, traces, strict=True)):
        its = np.concatenate(tr.iters) if tr.iters else np.zeros(0, dtype=np.int64)
        sat = np.concatenate(tr.sat) if tr.sat else np.zeros(0, dtype=bool)
        st["bm_iterations_hist"] = np.bincount(
            its, minlength=prog.layer_cfg(i).mgmt.bound_max_iter + 1
        ).tolist()
        st["rtl"] = i in rtl_layers
        st["adc_sat_rate"] = float(np.mean(sat)) if sat.size else 0.0
        st["adc_sat_count"], st["adc_sat_n"] = int(np.sum(sat)), int(sat.size)  # merging shards
    result = {
        "activations_compared": compared,
        "status_compared": status_compared,
        "mismatches": mismatches,
        "dac_mismatches": dac_mismatches,
        "protocol_errors": protocol_errors,
        "sat_flag_errors": sat_flag_errors,
        "stalls": stalls,
        "errors": errors,
        "rtl_cycles": sum(s["rtl_cycles"] for s in (*stats, *ostats.values())),
        "conv_cycles": sum(s["conv_cycles"] for s in stats),
        "ideal_cycles": sum(s["ideal_cycles"] for s in (*stats, *ostats.values())),
        "layers": stats,
        "ops_rtl": list(ostats.values()),
        "sim_wall_s": time.perf_counter() - t0,
        "loop_s": tb.loop_s,
        "startup": {
            "module_imported": _IMPORTED_AT,
            "test_started": t_start,
            "unpickled": t_unpickled,
            "tb_built": t_tb,
            "program_loaded": t_loaded,
        },
        "y_last": None if failed else np.concatenate(outs).tolist(),
    }
    return tb, result, failed


def finish(result: dict, failed: bool) -> None:
    """Save the result for the host, then fail the test on any mismatch."""
    result["saved_at"] = time.time()  # the host times the simulator's exit from here
    save_result(result)
    gc.freeze()  # the simulator exits next: no collection walks the run's objects again
    assert not failed, "level 4 differs from level 3:\n" + "\n".join(
        map(format_mismatch, result["errors"])
    )


@cocotb.test()
async def network(dut):
    """The whole network at level 4, compared job by job with level 3; with
    ``then_stalls`` > 0 and no mismatch, once more with that fraction of random stalls on
    the same bench (``result["stalled_run"]``), reusing the first run's golden reference."""
    p = load_params()
    then = float(p.get("then_stalls", 0.0))
    memo: dict | None = {} if then > 0 else None
    tb, result, failed = await run_network(dut, p, memo=memo)
    if not failed and then > 0:
        _, stalled, failed = await run_network(dut, p | {"stalls": then}, tb=tb, memo=memo)
        result["stalled_run"] = stalled
        if failed:  # the stalled run's errors
            save_result(result)
            raise AssertionError(
                "level 4 with random stalls differs from level 3:\n"
                + "\n".join(map(format_mismatch, stalled["errors"]))
            )
    finish(result, failed)
