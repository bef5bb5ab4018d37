"""Benchmark: level 4 of ``aimcflow run`` end to end, in one process and on Dask workers.

Each row runs :func:`aimcflow.flows.levels.level4` (what ``aimcflow run`` does at level
4: the run with every stream ready, then the run with 25 % random stalls, every
activation compared with level 3) on the whole digits test split under baseline-ftj at
1 h drift, with a warm Verilator build.

* **End-to-end cost per RTL cycle** = wall time of level 4 with its Verilator build
  already made (the build step is timed apart) / RTL cycles of both runs, against a bare
  cocotb clock loop (one ``RisingEdge`` per cycle) on the same Verilated ``network_top``
  in the same benchmark run.  Everything else is in it: simulator start-up, the job file,
  the golden reference, job set-up, the comparison.  Target <= 2x for every workload.
  The same ratio in CPU time (aimcflow plus its simulator processes, against the bare
  loop's CPU time) is printed beside it: on a shared machine it is the one that does not
  depend on what else runs.
* **digits-resnet at 1 and 2 workers** (a 2-worker ``LocalCluster``, started before the
  clock starts): level-4 images/s, RTL cycles per image, cosim cycles/s (RTL cycles of
  both runs per wall second); the speed-up target on a 2-core machine is >= 1.6x.  The
  merged 2-worker result is checked equal to the 1-process one (logits, counts, cycles).

The machine's load average is printed before and after: on a shared machine the numbers
are only as good as the cores it left free.

``python -m aimcflow.flows.bench.level4_workers [IMAGES]`` runs it alone (default: the
whole test split).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

import numpy as np
from aimcflow.cosim.benches.network_probes import BARE_ONLY
from aimcflow.cosim.network import builds_for
from aimcflow.flows.bench.level4 import cpu_seconds
from aimcflow.flows.levels import level4
from aimcflow.flows.shards import Shards
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.workloads import imported, pretrained
from rich.console import Console

WORKLOADS = ("digits-mlp", "digits-cnn", "digits-resnet")
BARE_CYCLES = 20_000
T_S = 3600.0


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _timed_level4(prog, x, y, images, logits3, shards, build) -> tuple[dict, float, float]:
    """Level 4 with a ready build: (result, wall s, CPU s of this process + simulators)."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    r = level4(prog, x, y, images, logits3, Console(quiet=True), shards=shards, build=build)
    return r, time.perf_counter() - t0, cpu_seconds() - c0


def _cycles(r: dict) -> int:
    """RTL cycles of both level-4 runs (the stalled one only when the first matched)."""
    return r["rtl_cycles"] + (r["stalled"]["rtl_cycles"] if r["stalled"] else 0)


def _comparable(r: dict) -> dict:
    """What a 2-worker run must share with the 1-process one (not timings)."""
    keys = ("accuracy", "mismatches", "activations_compared", "rtl_cycles", "layers")
    st = r["stalled"]
    return {k: r[k] for k in keys} | {
        "stalled": None if st is None else {k: v for k, v in st.items() if k != "sim_wall_s"}
    }


def main(images: int | None = None) -> dict:
    data = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    n = len(data.x_test) if images is None else min(images, len(data.x_test))
    x, y = data.x_test[:n], data.y_test[:n]
    ids = np.arange(n, dtype=np.int64)
    out: dict = {"images": n, "config": cfg.name, "load_before": os.getloadavg()}
    print(f"{n} test images, config {cfg.name}; {_load()}")
    print(
        f"{'model':<14} {'wall s':>7} {'build s':>7} {'RTL cycles':>11} {'cyc/img':>8} "
        f"{'us/cycle':>9} {'bare us':>8} {'ratio':>6} {'CPU ratio':>9} {'mism.':>6}"
    )
    progs, results, builds = {}, {}, {}
    for arch in WORKLOADS:
        net = convert(imported(pretrained(arch, data), data), cfg)
        net.drift(T_S)
        prog = compile_network(net, data.x_train[:512], t_s=T_S)
        logits3 = forward_golden(prog, x, ids)
        progs[arch] = (prog, logits3)
        t0 = time.perf_counter()
        build = builds[arch] = builds_for(prog)  # the build step, apart from level 4
        build_s = time.perf_counter() - t0
        bare = build[0].run(BARE_ONLY[0], {"bare_cycles": BARE_CYCLES}, testcase=BARE_ONLY[1])
        bare_s, bare_cpu = bare.result["bare_s_per_cycle"], bare.result["bare_cpu_s_per_cycle"]
        r, wall, cpu = _timed_level4(prog, x, y, ids, logits3, None, build)
        results[arch] = r
        cyc = _cycles(r)
        per, per_cpu = wall / cyc, cpu / cyc
        out[arch] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "verilator_build_s": build_s,
            "rtl_cycles_both_runs": cyc,
            "rtl_cycles_per_image": r["rtl_cycles"] / n,
            "s_per_rtl_cycle": per,
            "bare_s_per_cycle": bare_s,
            "cost_ratio_vs_bare": per / bare_s,
            "cpu_s_per_rtl_cycle": per_cpu,
            "bare_cpu_s_per_cycle": bare_cpu,
            "cpu_cost_ratio_vs_bare": per_cpu / bare_cpu,
            "sim_wall_s": r["sim_wall_s"],
            "stalled_sim_wall_s": r["stalled"]["sim_wall_s"] if r["stalled"] else None,
            "mismatches": r["mismatches"],
            "activations_compared": r["activations_compared"],
        }
        print(
            f"{arch:<14} {wall:7.1f} {build_s:7.1f} {cyc:11d} "
            f"{r['rtl_cycles'] / n:8.0f} {1e6 * per:9.1f} {1e6 * bare_s:8.1f} "
            f"{per / bare_s:6.2f} {per_cpu / bare_cpu:9.2f} {r['mismatches']:6d}"
        )
        st = r["stalled"]["sim_wall_s"] if r["stalled"] else 0.0
        print(
            f"    in the simulator: first run {r['sim_wall_s']:.1f} s, stalled run {st:.1f} s; "
            f"the rest ({wall - r['sim_wall_s'] - st:.1f} s) is start-up, job file and exit"
        )
    print("(end to end: wall of level 4 (both runs, build ready) / RTL cycles of both runs;")
    print(" CPU ratio: CPU s of aimcflow and its simulator per cycle vs the bare loop's CPU s;")
    print(" target <= 2x the bare cocotb clock loop)")

    # digits-resnet at 1 and 2 workers
    from distributed import Client, LocalCluster  # lazy: dask

    prog, logits3 = progs["digits-resnet"]
    one = out["digits-resnet"]
    t1 = one["wall_s"]
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                host="127.0.0.1",
                silence_logs=logging.ERROR,
            )
        )
        client = stack.enter_context(Client(cluster, set_as_default=False))
        shards = Shards.plan(n, client, 2)
        r2, t2, _ = _timed_level4(prog, x, y, ids, logits3, shards, builds["digits-resnet"])
    same = _comparable(results["digits-resnet"]) == _comparable(r2)
    out["digits-resnet-workers"] = {
        "1": {"images_per_s": n / t1, "cosim_cycles_per_s": one["rtl_cycles_both_runs"] / t1},
        "2": {"images_per_s": n / t2, "cosim_cycles_per_s": _cycles(r2) / t2},
        "speedup": t1 / t2,
        "shards": r2["shards"],
        "merged_equal_one_process": same,
    }
    print(f"\ndigits-resnet level 4 (both runs), {n} images, RTL cycles per image "
          f"{one['rtl_cycles_per_image']:.0f}:")  # fmt: skip
    for w, t, c in ((1, t1, one["rtl_cycles_both_runs"]), (2, t2, _cycles(r2))):
        print(f"  {w} worker{'s' if w > 1 else ' '}: {n / t:6.2f} images/s, {c / t:9.0f} cosim "
              f"cycles/s ({t:.1f} s)")  # fmt: skip
    print(f"  speed-up {t1 / t2:.2f}x (target >= 1.6x on 2 cores); merged 2-worker result "
          f"equal to 1 process: {same}")  # fmt: skip
    out["load_after"] = os.getloadavg()
    print(_load())
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
