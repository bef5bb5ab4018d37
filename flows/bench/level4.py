"""Benchmark: level 4 ("analog-rtl"), the Verilated periphery in the loop of a whole network.

Over the whole digits test split (360 images) for every built-in digits workload
(digits-mlp, digits-cnn, digits-resnet, digits-vit) under baseline-ftj at 1 h drift, in the
level-4 batches ``aimcflow run`` uses (:func:`aimcflow.flows.shards.level4_batch`), each
network's Verilator builds made (from the cache when warm) before the clock starts:

* **end-to-end cost per RTL cycle** = wall time of :func:`aimcflow.cosim.network.run_level4`
  (job file, simulator start-up, golden reference, job set-up, the cocotb loop, the
  comparison, simulator exit; the build excluded) / RTL cycles, against a bare cocotb
  loop of one ``RisingEdge`` per cycle on the same Verilated top (``network_top``, the
  cosim wrapper whose rings let Python wake once per refill instead of once per clock;
  RTL cycles are those of ``periphery_top`` inside it and of the add / pool units beside
  it) timed at the end of the same simulator run; the bare loops' own time is taken off
  the wall time.  Target <= 2x for every workload.  The same ratio in CPU time (this
  process and its simulator, against the bare loop's CPU time) is printed beside it: on
  a shared machine it is the one that does not depend on what else runs.
  Also printed, per workload: where the wall time goes (start-up to the program loaded,
  the network run in the simulator, of it the per-cycle loop alone, the simulator's exit)
  and the loop's floor (the loop's two triggers per cycle, and those plus reading the
  four handshake signals).
* **digits-vit**: its transformer steps run in the same network run on the units beside
  ``periphery_top`` (attention, layernorm and GELU on the SFU, the positional-embedding
  add on the residual unit, the token mean on the pooling unit), so their RTL cycles are
  in its row.
* **cycle efficiency** = ideal cycles / measured RTL cycles over every column job of every
  layer and every add / pool (ideal: coefficient-load beats plus, per input segment and management iteration,
  its DAC beats followed by its ADC beats, the tile interface being the bottleneck stream;
  see :mod:`aimcflow.cosim.network`).  The ideal counts no conversion latency, so the
  target >= 0.95 applies to the cycles outside conversions (``periphery_top.busy`` low);
  the share of all cycles is printed beside it.  The residual and pooling units count in
  it (one load beat plus one input beat per cycle is their ideal); the SFU's steps are
  printed apart: its softmax and layernorm (a row taken, computed, then sent) do not
  reach one beat per cycle by design.
* **Verilator build time** cold (empty cache directory) and cached (same parameters again),
  on digits-mlp's ``network_top``.

``python -m aimcflow.flows.bench.level4 [IMAGES] [WORKLOAD,...]`` runs it alone (default:
the whole test split, every workload; the whole split takes ~15 min on one free core,
mostly digits-resnet and digits-vit).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
from aimcflow.cosim.benches.network_probes import BARE
from aimcflow.cosim.network import build_for, builds_for, run_level4
from aimcflow.flows.shards import level4_batch
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.seq_steps import SFU_KINDS
from aimcflow.models.nn.workloads import imported, pretrained

WORKLOADS = ("digits-mlp", "digits-cnn", "digits-resnet", "digits-vit")
BARE_CYCLES = 20_000
T_S = 3600.0


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the simulators)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _build_times(prog) -> dict:
    """Cold (empty cache directory) and cached Verilator build of ``prog``'s network_top."""
    old = os.environ.get("AIMCFLOW_CACHE")
    tmp = tempfile.mkdtemp(prefix="aimcflow-bench-l4-")
    os.environ["AIMCFLOW_CACHE"] = tmp  # an empty cache: the first build is cold
    try:
        t0 = time.perf_counter()
        build_for(prog)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        build = build_for(prog)  # same parameters: the same build, from the cache
        cached = time.perf_counter() - t0
        assert build.cached
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop("AIMCFLOW_CACHE", None)
        else:
            os.environ["AIMCFLOW_CACHE"] = old
    print(f"Verilator build of network_top: cold {cold:.1f} s, cached {cached:.2f} s")
    return {"verilator_build_cold_s": cold, "verilator_build_cached_s": cached}


def _row(arch: str, wall: float, cpu: float, cyc: int, bare: float, bare_cpu: float) -> str:
    per, per_cpu = wall / cyc, cpu / cyc
    return (
        f"{arch:<15} {wall:7.1f} {cyc:11d} {1e6 * per:9.2f} {1e6 * bare:8.2f} "
        f"{per / bare:6.2f} {per_cpu / bare_cpu:6.2f}"
    )


def main(images: int | None = None, workloads: tuple[str, ...] = WORKLOADS) -> dict:
    data = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    n = len(data.x_test) if images is None else min(images, len(data.x_test))
    x = data.x_test[:n]
    ids = np.arange(n, dtype=np.int64)
    batch = level4_batch(n)
    out: dict = {"images": n, "batch_images": batch, "config": cfg.name}
    progs = {}
    for arch in workloads:
        net = convert(imported(pretrained(arch, data), data), cfg)
        net.drift(T_S)
        progs[arch] = compile_network(net, data.x_train[:512], t_s=T_S)
    if "digits-mlp" in progs:
        out |= _build_times(progs["digits-mlp"])
    print(
        f"{n} test images in batches of {batch}, config {cfg.name}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    head = (
        f"{'model':<15} {'wall s':>7} {'RTL cycles':>11} {'us/cycle':>9} {'bare us':>8} "
        f"{'ratio':>6} {'CPU':>6}"
    )
    lines = [head]
    print(head)
    tot_rtl = tot_ideal = tot_conv = tot_ops = tot_ops_ideal = 0
    for arch, prog in progs.items():
        t0 = time.perf_counter()
        builds = builds_for(prog)  # the build, apart from level 4 (cached when warm)
        build_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), cpu_seconds()
        r = run_level4(
            prog,
            x,
            ids,
            build=builds,
            batch_size=batch,
            bench=BARE,
            bench_params={"bare_cycles": BARE_CYCLES},
        )
        wall_all, cpu_all = time.perf_counter() - t0, cpu_seconds() - c0
        e = r.extra
        bare, bare_cpu = e["bare_s_per_cycle"], e["bare_cpu_s_per_cycle"]
        # the bare loops ran after the network in the same simulator (once per periphery
        # configuration); their time is not level 4's
        k = e.get("configurations", 1)
        wall = wall_all - k * e["bare_loops_s"]
        cpu = cpu_all - k * e.get("bare_loops_cpu_s", e["bare_loops_s"])
        same = r.logits is not None and np.array_equal(r.logits, forward_golden(prog, x, ids))
        cyc = r.rtl_cycles
        st = e.get("startup_s", {})
        row = {
            "wall_s": wall,
            "cpu_s": cpu,
            "verilator_build_s": build_s,
            "periphery_configurations": e.get("configurations", 1),
            "rtl_cycles": cyc,
            "ideal_cycles": r.ideal_cycles,
            "cycle_efficiency": r.efficiency,
            "conv_cycles": r.conv_cycles,
            "s_per_rtl_cycle": wall / cyc,
            "bare_s_per_cycle": bare,
            "cost_ratio_vs_bare": wall / cyc / bare,
            "cpu_s_per_rtl_cycle": cpu / cyc,
            "bare_cpu_s_per_cycle": bare_cpu,
            "cpu_cost_ratio_vs_bare": cpu / cyc / bare_cpu,
            "startup_s": st.get("to_program_loaded"),
            "sim_wall_s": r.sim_wall_s,
            "exit_s": e.get("exit_s"),
            "loop_s": e["loop_s"],
            "loop_s_per_rtl_cycle": e["loop_s"] / cyc,
            "loop_ratio_vs_bare": e["loop_s"] / cyc / bare,
            "two_trigger_s_per_cycle": e["two_trigger_s_per_cycle"],
            "two_trigger_4_reads_s_per_cycle": e["two_trigger_4_reads_s_per_cycle"],
            "mismatches": r.mismatches,
            "activations_compared": r.activations_compared,
            "logits_equal_level3": bool(same),
            "layers": [
                {k: lay[k] for k in ("name", "rtl_cycles", "ideal_cycles")} for lay in r.layers
            ],
        }
        sfu = [o for o in e.get("ops_rtl", []) if o["kind"] in SFU_KINDS]
        row["sfu_rtl_cycles"] = sum(o["rtl_cycles"] for o in sfu)
        row["sfu_ideal_cycles"] = sum(o["ideal_cycles"] for o in sfu)
        out[arch] = row
        # the efficiency target covers periphery_top and the residual and pooling units
        # (II = 1 streams); the SFU apart: its softmax and layernorm take a row, compute,
        # then send it, so one beat per cycle is not their ideal
        tot_rtl += r.rtl_cycles - row["sfu_rtl_cycles"]
        tot_ideal += r.ideal_cycles - row["sfu_ideal_cycles"]
        tot_ops += row["sfu_rtl_cycles"]
        tot_ops_ideal += row["sfu_ideal_cycles"]
        tot_conv += r.conv_cycles
        lines.append(_row(arch, wall, cpu, cyc, bare, bare_cpu))
        print(lines[-1] + f"   ({r.mismatches} mismatches, logits = level 3: {same})")
        print(
            f"    wall: start-up to program loaded {st.get('to_program_loaded', float('nan')):.2f}"
            f" s, network run {r.sim_wall_s:.2f} s (of it the per-cycle loop "
            f"{e['loop_s']:.2f} s, {e['loop_s'] / cyc / bare:.2f}x bare), exit "
            f"{e.get('exit_s', float('nan')):.2f} s; build {build_s:.2f} s (not counted)"
        )
        print(
            f"    loop floor per cycle: FallingEdge+ReadOnly "
            f"{1e6 * e['two_trigger_s_per_cycle']:.1f} us, plus reading the 4 handshake "
            f"signals {1e6 * e['two_trigger_4_reads_s_per_cycle']:.1f} us; cycle efficiency "
            f"{r.efficiency:.3f} (converters busy in {r.conv_cycles / cyc:.0%} of the cycles)"
        )
    out["cycle_efficiency_all"] = tot_ideal / tot_rtl if tot_rtl else None
    digital = tot_rtl - tot_conv
    out["cycle_efficiency_digital"] = tot_ideal / digital if digital else None
    print("\n" + "\n".join(lines))
    print(
        "(wall: run_level4 with the builds ready, minus the bare loops that follow it in its "
        "simulator; ratio: wall per RTL cycle / bare RisingEdge loop per cycle, same "
        "simulator run; CPU: the same in CPU seconds; target <= 2x)"
    )
    print(
        f"cycle efficiency over all networks: {out['cycle_efficiency_digital']:.3f} of the cycles "
        f"outside conversions (target >= 0.95; {out['cycle_efficiency_all']:.3f} of all cycles: "
        f"the ideal counts no ADC latency, and the converters are busy in "
        f"{tot_conv / tot_rtl:.0%} of them)"
    )
    if tot_ops:
        out["sfu_cycle_efficiency"] = tot_ops_ideal / tot_ops
        print(
            f"SFU (attention, layernorm, GELU): {tot_ops} RTL cycles, ideal {tot_ops_ideal}, "
            f"efficiency {out['sfu_cycle_efficiency']:.3f} (not in the figure above: its row "
            "ops are not II = 1)"
        )
    return out


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None,
        tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else WORKLOADS,
    )
