"""Benchmark: level 4 ("analog-rtl"), the Verilated periphery in the loop of a whole network.

Over the whole digits test split (360 images) for digits-mlp and digits-cnn under
baseline-ftj, with a warm Verilator build:

* **cycle efficiency** = ideal cycles / measured RTL cycles over every column job of every
  layer (ideal: coefficient-load beats plus, per input segment and management iteration,
  its DAC beats followed by its ADC beats, the tile interface being the bottleneck stream;
  see :mod:`aimcflow.cosim.network`).  Target >= 0.95.
* **cosim cost per RTL cycle**: the simulation's wall time (golden reference, job set-up
  and the cocotb loop; simulator start-up excluded) per RTL cycle, against a bare cocotb
  loop of one ``RisingEdge`` per cycle on the same Verilated top (``network_top``, the
  cosim wrapper whose rings let Python wake once per refill instead of once per clock;
  RTL cycles are those of ``periphery_top`` inside it) in the same simulator run.
  Target within 2x.  Also printed: the per-cycle loop alone, and its floor (the loop's two
  triggers per cycle, and those plus reading the four handshake signals).
* **wall time** of the level-4 run (simulator start-up included, build excluded).
* **Verilator build time** cold (empty cache directory) and cached (same parameters again).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np
from aimcflow.cosim.benches.network_probes import BARE
from aimcflow.cosim.network import build_for, builds_for, run_level4
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.workloads import pretrained

BARE_CYCLES = 20_000


def main() -> dict:
    data = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    x = data.x_test
    progs = {}
    for arch in ("digits-mlp", "digits-cnn"):
        net = convert(pretrained(arch, data), cfg)
        net.drift(3600.0)
        progs[arch] = compile_network(net, data.x_train[:512], t_s=3600.0)

    out: dict = {"images": len(x), "config": cfg.name}
    old = os.environ.get("AIMCFLOW_CACHE")
    tmp = tempfile.mkdtemp(prefix="aimcflow-bench-l4-")
    os.environ["AIMCFLOW_CACHE"] = tmp  # an empty cache: the first build is cold
    try:
        t0 = time.perf_counter()
        build_for(progs["digits-mlp"])
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        build = build_for(progs["digits-mlp"])  # same parameters: the same build, from the cache
        cached = time.perf_counter() - t0
        assert build.cached
        # each network's own build (the compiler's out_shift differs between them)
        builds = {arch: builds_for(prog) for arch, prog in progs.items()}
        out["verilator_build_cold_s"], out["verilator_build_cached_s"] = cold, cached
        print(f"Verilator build of periphery_top: cold {cold:.1f} s, cached {cached:.2f} s")
        print(
            f"{'model':<11} {'wall s':>7} {'sim s':>7} {'RTL cycles':>11} {'ideal':>9} "
            f"{'effic.':>7} {'us/cycle':>9} {'bare us':>8} {'ratio':>6} {'mism.':>6}"
        )
        tot_rtl = tot_ideal = 0
        for arch, prog in progs.items():
            t0 = time.perf_counter()
            r = run_level4(
                prog, x, build=builds[arch], bench=BARE, bench_params={"bare_cycles": BARE_CYCLES}
            )
            wall = time.perf_counter() - t0
            same = r.logits is not None and np.array_equal(r.logits, forward_golden(prog, x))
            per_cycle = r.sim_wall_s / r.rtl_cycles
            bare = r.extra["bare_s_per_cycle"]
            row = {
                "wall_s": wall,
                "sim_wall_s": r.sim_wall_s,
                "rtl_cycles": r.rtl_cycles,
                "ideal_cycles": r.ideal_cycles,
                "cycle_efficiency": r.efficiency,
                "s_per_rtl_cycle": per_cycle,
                "bare_s_per_cycle": bare,
                "two_trigger_s_per_cycle": r.extra["two_trigger_s_per_cycle"],
                "two_trigger_4_reads_s_per_cycle": r.extra["two_trigger_4_reads_s_per_cycle"],
                "cost_ratio_vs_bare": per_cycle / bare,
                "loop_s_per_rtl_cycle": r.extra["loop_s"] / r.rtl_cycles,
                "loop_ratio_vs_bare": r.extra["loop_s"] / r.rtl_cycles / bare,
                "mismatches": r.mismatches,
                "activations_compared": r.activations_compared,
                "logits_equal_level3": bool(same),
                "layers": [
                    {
                        "name": lay["name"],
                        "rtl_cycles": lay["rtl_cycles"],
                        "ideal_cycles": lay["ideal_cycles"],
                    }
                    for lay in r.layers
                ],
            }
            out[arch] = row
            tot_rtl += r.rtl_cycles
            tot_ideal += r.ideal_cycles
            print(
                f"{arch:<11} {wall:7.1f} {r.sim_wall_s:7.1f} {r.rtl_cycles:11d} "
                f"{r.ideal_cycles:9d} {r.efficiency:7.3f} {1e6 * per_cycle:9.1f} "
                f"{1e6 * bare:8.1f} {per_cycle / bare:6.1f} {r.mismatches:6d}"
            )
            print(
                f"    per-cycle loop only (no golden reference / job set-up): "
                f"{1e6 * r.extra['loop_s'] / r.rtl_cycles:.1f} us/cycle, "
                f"{r.extra['loop_s'] / r.rtl_cycles / bare:.1f}x bare"
            )
            print(
                f"    cost floor per cycle: FallingEdge+ReadOnly "
                f"{1e6 * r.extra['two_trigger_s_per_cycle']:.1f} us, plus reading the 4 "
                f"handshake signals {1e6 * r.extra['two_trigger_4_reads_s_per_cycle']:.1f} us"
            )
            for lay in r.layers:
                print(
                    f"    layer {lay['name']:<4} RTL {lay['rtl_cycles']:9d}  ideal "
                    f"{lay['ideal_cycles']:9d}  efficiency "
                    f"{lay['ideal_cycles'] / max(lay['rtl_cycles'], 1):.3f}"
                )
        out["cycle_efficiency_all"] = tot_ideal / tot_rtl
        print(f"cycle efficiency over both networks: {tot_ideal / tot_rtl:.3f} (target >= 0.95)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop("AIMCFLOW_CACHE", None)
        else:
            os.environ["AIMCFLOW_CACHE"] = old
    return out


if __name__ == "__main__":
    main()
