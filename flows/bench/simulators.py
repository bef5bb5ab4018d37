"""Icarus vs Verilator: the same bench, seed and Verilog on both simulators.

Per block (nmpu, mgmt, periphery_top at 4 lanes; the configurations of the tests, so the
builds come from the shared cache): build time, simulation wall time, vectors per second,
and whether the two results (cycle counts, corner counters, mismatches) are identical.
Needs ``iverilog``; without it the Icarus column says why.
"""

from __future__ import annotations

import time

from aimcflow.cosim import runner
from aimcflow.cosim.benches import mgmt as mbench
from aimcflow.cosim.benches import nmpu as nbench
from aimcflow.cosim.benches import periphery_top as tbench
from aimcflow.cosim.blocks import generate_block
from aimcflow.cosim.icarus import icarus_available
from aimcflow.cosim.rtlparams import mgmt_params, nmpu_params
from aimcflow.models.config import load_config
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams

VECTORS = 3000


def _cases():
    base = load_config("baseline-ftj")
    c = base.replace(**{"nmpu.lanes": 4, "adc.bits": 10, "nmpu.out_bits": 8})
    yield (
        "nmpu",
        c,
        nbench.MODULE,
        "random_jobs",
        nbench.bench_params(nmpu_params(c), NmpuParams.from_config(c), vectors=VECTORS, seed=41),
    )
    c = base.replace(
        **{"nmpu.lanes": 8, "adc.bits": 10, "nmpu.out_bits": 4, "nmpu.activation": "leaky"}
    )
    yield (
        "mgmt",
        c,
        mbench.MODULE,
        "random_segments",
        mbench.bench_params(mgmt_params(c), MgmtParams.from_config(c), vectors=VECTORS, seed=42),
    )
    c = base.replace(**{"nmpu.lanes": 4, "adc.bits": 8, "nmpu.out_bits": 4})
    yield (
        "periphery_top",
        c,
        tbench.MODULE,
        "random_jobs",
        tbench.bench_params(
            nmpu_params(c),
            mgmt_params(c),
            NmpuParams.from_config(c),
            MgmtParams.from_config(c),
            vectors=VECTORS,
            seed=43,
        ),
    )


def _untimed(res: dict) -> dict:
    return {k: v for k, v in res.items() if not (k.endswith("_s") or "wall" in k)}


def main() -> dict:
    sims = ["verilator"] + (["icarus"] if icarus_available() else [])
    if len(sims) == 1:
        print("icarus: iverilog not installed (Debian iverilog); Verilator only")
    print(
        f"{'block':<14}{'simulator':<10}{'build s':>9}{'sim s':>8}{'vectors/s':>11}"
        f"{'mismatches':>11}  identical"
    )
    out = {}
    for name, cfg, module, testcase, params in _cases():
        gen = generate_block(cfg, name)
        res = {}
        for sim in sims:
            t0 = time.perf_counter()
            label = {"nmpu": "nmpu-l4", "mgmt": "mgmt-l8", "periphery_top": "top-l4"}[name]
            b = runner.build(gen.verilog, gen.module, name=label, sim=sim)  # tests' cache
            build_s = time.perf_counter() - t0
            r = b.run(module, params, testcase=testcase)
            res[sim] = r.result
            same = (
                "-" if sim == "verilator" else str(_untimed(r.result) == _untimed(res["verilator"]))
            )
            vps = r.result["vectors"] / r.wall_s
            print(
                f"{name:<14}{sim:<10}{build_s:>9.1f}{r.wall_s:>8.1f}{vps:>11.0f}"
                f"{r.result['mismatches']:>11}  {same}",
                flush=True,
            )
            out.setdefault(name, {})[sim] = {
                "build_s": build_s,
                "sim_s": r.wall_s,
                "vectors": r.result["vectors"],
                "mismatches": r.result["mismatches"],
                "identical_to_verilator": same,
            }
    return out


if __name__ == "__main__":
    main()
