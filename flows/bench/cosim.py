"""Cosim benchmark: NMPU throughput against the ideal, and cocotb's cost per RTL cycle.

1. For each lane count, V vectors x C columns streamed at full rate (no gaps, no
   backpressure) through the Verilated NMPU: measured cycles vs the ideal
   ``V * ceil(C / lanes) + LATENCY`` (efficiency; the tests require >= 0.95).
2. Cost per RTL cycle of the random bench (drivers, monitor, scoreboard, golden model)
   against a bare cocotb loop with the same two triggers per cycle on the same build.

The builds are those of ``tests/test_cosim_nmpu.py`` (shared cache), so after ``make test``
only the simulations run.
"""

from __future__ import annotations

import time

from aimcflow.cosim import runner
from aimcflow.cosim.benches import nmpu as bench
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.rtlparams import nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.nmpu import NmpuParams


def _config(lanes: int, adc_bits: int, out_bits: int):
    """The configs of tests/test_cosim_nmpu.py's covering set (same Verilog, same builds)."""

    cfg = load_config("baseline-ftj")
    changes = {"nmpu.lanes": lanes, "adc.bits": adc_bits, "nmpu.out_bits": out_bits}
    if lanes in (1, 8):
        changes["nmpu.acc_bits"] = adc_bits + cfg.nmpu.gain_bits + 2
    return cfg.replace(**changes)


def main() -> dict:
    configs = [(1, 4, 4), (4, 10, 8), (8, 8, 4), (16, 10, 8)]
    V = 1000
    rows, out = [], {"throughput": {}, "cost": {}}
    print(
        f"{'lanes':>5} {'V':>6} {'C':>5} {'cycles':>8} {'ideal':>8} {'efficiency':>10} "
        f"{'build_s':>8}"
    )
    builds = {}
    for lanes, adc, ob in configs:
        cfg = _config(lanes, adc, ob)
        gen = generate_block(cfg, "nmpu")
        t0 = time.perf_counter()
        b = runner.build(gen.verilog, gen.module, name=f"nmpu-l{lanes}")
        build_s = time.perf_counter() - t0
        builds[lanes] = (b, nmpu_params(cfg), NmpuParams.from_config(cfg))
        C = 4 * lanes + 1  # a column count lanes do not divide
        r = b.run(
            bench.MODULE,
            bench.bench_params(
                builds[lanes][1],
                builds[lanes][2],
                vectors=0,
                measure=True,
                measure_vectors=V,
                measure_T=1,
                measure_C=C,
                reset_mid=False,
            ),
            testcase="random_jobs",
        ).result
        print(
            f"{lanes:>5} {V:>6} {C:>5} {r['cycles']:>8} {r['ideal_cycles']:>8} "
            f"{r['efficiency']:>10.4f} {build_s:>8.1f}"
        )
        out["throughput"][str(lanes)] = {
            k: r[k] for k in ("cycles", "ideal_cycles", "efficiency")
        } | {"V": V, "C": C}
        rows.append(r)
    b, rtl, gp = builds[4]
    bare = b.run(bench.MODULE, {"cycles": 50_000}, testcase="bare_clock").result
    rnd = b.run(
        bench.MODULE, bench.bench_params(rtl, gp, vectors=5000, seed=3), testcase="random_jobs"
    ).result
    bare_us = 1e6 * bare["wall_s"] / bare["cycles"]
    full_us = 1e6 * rnd["wall_s"] / rnd["rtl_cycles"]
    print(
        f"\ncocotb cost per RTL cycle (lanes 4): bare clock loop {bare_us:.1f} us, "
        f"random bench {full_us:.1f} us ({full_us / bare_us:.1f}x); "
        f"{rnd['vectors']} vectors in {rnd['rtl_cycles']} cycles, "
        f"{rnd['vectors'] / rnd['wall_s']:.0f} vectors/s"
    )
    out["cost"] = {
        "bare_us_per_cycle": bare_us,
        "bench_us_per_cycle": full_us,
        "ratio": full_us / bare_us,
        "vectors_per_s": rnd["vectors"] / rnd["wall_s"],
    }
    return out


if __name__ == "__main__":
    main()
