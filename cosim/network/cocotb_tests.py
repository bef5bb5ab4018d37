"""The level-4 cocotb test: the whole network, compared job by job with level 3.

Runs inside the simulator (``network_top``, :func:`aimcflow.cosim.network.build_for`).  The
parameters (:func:`aimcflow.cosim.runner.load_params`) name the signed job file
(chip program, inputs, image ids) that :func:`aimcflow.cosim.network.run_level4` wrote.
:func:`run_network` is the test's body; benches reuse it with a hook on the loaded
coefficients or extra measurements after it (:mod:`aimcflow.cosim.benches.network_probes`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

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

_IMPORTED_AT = time.time()  # in the simulator: when cocotb imported this module

CoefHook = Callable[[int, dict[str, np.ndarray]], None]
"""``hook(layer index, coefficients)`` may alter a column job's coefficients (``gain``,
``offset`` (T,C), ``mult``, ``bias`` (C,)) as loaded into the RTL; the golden reference
keeps the chip program's."""


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


async def run_network(dut, p: dict, coef_hook: CoefHook | None = None):
    """Run the job file's network through the RTL, layer by layer; returns
    ``(tb, result dict, failed)``.  Stops at the first layer with a mismatch."""
    t_start = time.time()
    job = read_job(p["job"], p["job_key"])  # signed by run_level4 in this same run
    t_unpickled = time.time()
    prog, x, images = job["prog"], job["x"], job["images"]
    bs = int(job["batch_size"])
    tb = make_tb(dut, p, bool(job["live_tiles"]))
    t_tb = time.time()
    tb.start_clock()
    await tb.reset()
    stalls = float(p.get("stalls", 0.0))
    if stalls > 0:
        if not isinstance(tb, RingNetworkTB):
            raise ValueError("stalls need ring mode (no gaps, no backpressure, recorded tiles)")
        await tb.set_stalls(stalls, int(p["seed"]))
    hs_seen = 0  # network_top's count of NMPU handshake-promise violations so far
    t_loaded = time.time()
    t0 = time.perf_counter()
    traces = [LayerTrace(lp.name) for lp in prog.layers]
    stats = [_layer_stats(lp.name) for lp in prog.layers]
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
        # the schedule: stages come back here for the RTL; residual adds and pooling
        # run on their golden models inside walk() (the host reports them as such)
        walker = walk(prog, input_codes(prog, x[b0 : b0 + bs]))
        step = next(walker)
        while True:
            i, h = step
            lp = prog.layers[i]
            lj = layer_jobs(prog, i, h, ids)
            results = []
            adc_bits = int(prog.layer_cfg(i).adc.bits)
            jobs = lj.jobs if i in rtl_layers else []
            if i not in rtl_layers:
                results = [golden_periphery(cj) for cj in lj.jobs]
            for cj in jobs:
                rec = [RecordingTile(t) for t in cj.tiles]
                gold = golden_periphery(dataclasses.replace(cj, tiles=rec))
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
                hs = dut.nmpu_handshake_errors.value.to_unsigned()
                if hs != hs_seen:
                    tb.protocol_errors.append(
                        f"NMPU i.ready != ~o.valid | o.ready in {hs - hs_seen} cycles"
                    )
                    hs_seen = hs
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
    result = {
        "activations_compared": compared,
        "status_compared": status_compared,
        "mismatches": mismatches,
        "dac_mismatches": dac_mismatches,
        "protocol_errors": protocol_errors,
        "sat_flag_errors": sat_flag_errors,
        "stalls": stalls,
        "errors": errors,
        "rtl_cycles": sum(s["rtl_cycles"] for s in stats),
        "conv_cycles": sum(s["conv_cycles"] for s in stats),
        "ideal_cycles": sum(s["ideal_cycles"] for s in stats),
        "layers": stats,
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
    save_result(result)
    assert not failed, "level 4 differs from level 3:\n" + "\n".join(
        map(format_mismatch, result["errors"])
    )


@cocotb.test()
async def network(dut):
    """The whole network at level 4, compared job by job with level 3."""
    _, result, failed = await run_network(dut, load_params())
    finish(result, failed)
