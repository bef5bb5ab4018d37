"""cocotb bench of ``postops_top`` (:mod:`aimcflow.cosim.postops_top`): residual adds and
poolings alternate on one toplevel, each driven by its own unit's agents through a port
prefix, each checked against its golden model -- the level-4 pattern of running the ops
between layers on the RTL (an op's RTL output is what the next op would consume).

``alternating_ops``: random residual and pooling jobs, alternating, until ``vectors``
vectors (residual rows plus pooled output positions) were compared; random gaps and
backpressure on both units.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import cocotb
from aimcflow.cosim.benches import pool, residual
from aimcflow.cosim.postops_top import PREFIXES, PostOpsTop, PostOpsTopParams
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import Scoreboard
from aimcflow.models.periphery.nmpu import ACTIVATIONS
from aimcflow.models.periphery.pool import POOL_KINDS, PoolParams
from aimcflow.models.periphery.residual import ResidualParams
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams

MODULE = "aimcflow.cosim.benches.postops"
TOPLEVEL = "aimcflow_postops_top"


def build(params: PostOpsTopParams):
    return build_component(PostOpsTop(params), TOPLEVEL, name=f"postops-l{params.pool.lanes}")


def bench_params(
    params: PostOpsTopParams, res_gp: ResidualParams, pool_gp: PoolParams, **kw: Any
) -> dict[str, Any]:
    return {
        "rtl": dataclasses.asdict(params),
        "golden": {"residual": dataclasses.asdict(res_gp), "pool": dataclasses.asdict(pool_gp)},
        **kw,
    }


@cocotb.test()
async def alternating_ops(dut):
    p = load_params()
    rtl = PostOpsTopParams(
        ResidualRtlParams(**p["rtl"]["residual"]), PoolRtlParams(**p["rtl"]["pool"])
    )
    res_gp = ResidualParams(**p["golden"]["residual"])
    pool_gp = PoolParams(**p["golden"]["pool"])
    seed, pv, pr = int(p.get("seed", 1)), float(p.get("p_valid", 0.8)), float(p.get("p_ready", 0.7))
    res_tb = residual.ResidualTB(dut, rtl.residual, seed, pv, pr, prefix=PREFIXES["residual"])
    pool_tb = pool.PoolTB(dut, rtl.pool, seed + 1, pv, pr, prefix=PREFIXES["pool"])
    rng = res_tb.rng
    sb = Scoreboard(f"postops lanes={rtl.pool.lanes}")
    res_tb.start_clock()
    await res_tb.reset()  # one reset line for both units
    t0 = time.perf_counter()
    total, k = int(p.get("vectors", 1000)), 0
    ops = {"residual": 0, "pool": 0}
    while sb.compared < total and not sb.mismatches:
        if k % 2 == 0:
            job = residual.random_job(
                rng, res_gp, int(rng.integers(5, 60)), activation=ACTIVATIONS[k // 2 % 4]
            )
            tb, name = res_tb, "residual"
        else:
            job = pool.random_job(
                rng, pool_gp, int(rng.integers(1, 5)), kind=POOL_KINDS[k // 2 % 2]
            )
            tb, name = pool_tb, "pool"
        exp = job.expected()
        await tb.program(job)
        await tb.stream(job)
        tb.check(sb, job, exp)
        ops[name] += 1
        k += 1
    save_result(
        {
            "vectors": sb.compared,
            "mismatches": sb.mismatches,
            "errors": sb.errors,
            "ops": ops,
            "rtl_cycles": res_tb.cycle + pool_tb.cycle,
            "wall_s": time.perf_counter() - t0,
        }
    )
    assert sb.mismatches == 0, "\n".join(sb.errors)
