"""SFU RTL against its golden model, bit for bit, in Amaranth's simulator.

One elaborated design (small widths for speed) runs every op, switched by register:
matmul (narrow and wide saturation, K = 1 and K not a multiple of lanes), softmax and
layernorm rows (L = 1, L not a multiple of lanes, all-equal rows, rail values), GELU over
every input code; random source gaps and output stalls; then the measured latency and
row throughput at full rate against the figures stated in rtl/sfu.py / rtl/sfu_rows.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.cosim.benches import sfu as bench
from aimcflow.cosim.rtlparams import sfu_rtl_params
from aimcflow.models.periphery.sfu import SfuParams
from aimcflow.rtl.protocol import as_dicts
from aimcflow.rtl.sfu import GELU_LATENCY, MATMUL_LATENCY, Sfu
from aimcflow.rtl.sfu_rows import (
    layernorm_latency,
    layernorm_row_cycles,
    softmax_latency,
    softmax_row_cycles,
)
from amaranth_streams import put, run_testbenches, to_py, transfer

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

GP = SfuParams(lanes=3, seq_max=8, width_max=8)


def run_jobs(gp: SfuParams, jobs: list[bench.Job], *, idle=0.0, stall=0.0, seed=0, timing=None):
    """Program and stream each job; compare y and last with the golden model."""
    rp = sfu_rtl_params(gp)
    dut = Sfu(rp)
    rng = np.random.default_rng(seed)

    async def tb(ctx):
        for job in jobs:
            for beat in bench.load_beats(job):
                await put(ctx, dut.load, beat)
            beats = as_dicts(bench.input_beats(job, gp.lanes))
            n_out = bench.output_beats(job, gp.lanes)
            got, tin, tout = await transfer(
                ctx, dut.i, beats, dut.o, n_out, rng=rng, idle=idle, stall=stall
            )
            fields = {
                "y": np.array([to_py(g)["y"] for g in got]),
                "last": np.array([to_py(g)["last"] for g in got]),
            }
            y, last = bench.decode_outputs(fields, job, gp.lanes)
            exp = job.expected()
            bad = np.argwhere(y != exp)
            assert bad.size == 0, (
                f"{job.op} L={job.length}: first mismatch at {bad[0].tolist()}: "
                f"got {y[tuple(bad[0])]}, expected {exp[tuple(bad[0])]}"
            )
            np.testing.assert_array_equal(
                last, bench.expected_last(job, gp.lanes, job.rows), err_msg=job.op
            )
            if timing is not None:
                timing.append((job, tin, tout))

    run_testbenches(dut, tb)


def test_sfu_every_op_random():
    rng = np.random.default_rng(5)
    jobs = []
    for op in ("matmul", "softmax", "layernorm", "gelu"):
        for L in (1, 2, GP.lanes + 1, None):
            jobs.append(bench.random_job(rng, GP, 6, op=op, L=L))
    run_jobs(GP, jobs, idle=0.3, stall=0.3, seed=1)


def test_sfu_gelu_every_code_and_rails():
    lo, hi = -(1 << (GP.in_bits - 1)), (1 << (GP.in_bits - 1)) - 1
    x = np.arange(lo, hi + 1, dtype=np.int64).reshape(-1, 8)
    gelu = bench.Job("gelu", x, GP)
    a = np.full((2, 5), lo, np.int64)
    b = np.full((5, 4), lo, np.int64)
    mm = [
        bench.Job("matmul", a, GP, b=b, mult=(1 << 15) - 1, shift=0, wide=w) for w in (False, True)
    ]
    sm = bench.Job("softmax", np.array([[-32768, 32767, 0], [5, 5, 5], [0, 0, 0]]), GP)
    ln = bench.Job(
        "layernorm",
        np.array([[-32768, 32767, 0, 7], [9, 9, 9, 9], [1, 0, 0, 0]]),
        GP,
        mult=-(1 << 15),
        shift=3,
    )
    # the largest normalized value, sqrt(D - 1) at D = width_max: one outlier in a flat row
    D = GP.width_max
    outlier = np.array([[32767] + [-32768] * (D - 1), [1] + [0] * (D - 1), [0] * (D - 1) + [-1]])
    mult, shift = bench.ln_requant(3, GP)
    ln_max = bench.Job("layernorm", outlier, GP, mult=mult, shift=shift)
    assert np.abs(ln_max.expected()).max() == round(np.sqrt(D - 1) * 8)  # not saturated
    run_jobs(GP, [gelu, *mm, sm, ln, ln_max], stall=0.2, seed=3)


def test_sfu_latency_and_throughput():
    """Full rate: measured latencies and per-row cycles equal the documented formulas."""
    rng = np.random.default_rng(9)
    L = 2 * GP.lanes + 1
    G = bench.groups(L, GP.lanes)
    rp = sfu_rtl_params(GP)
    jobs = [bench.random_job(rng, GP, 4, op=op, L=L) for op in bench.golden.OPS]
    timing: list = []
    run_jobs(GP, jobs, timing=timing)
    for job, tin, tout in timing:
        if job.op in ("matmul", "gelu"):
            lat = MATMUL_LATENCY if job.op == "matmul" else GELU_LATENCY
            per_out = L if job.op == "matmul" else 1  # input beats per output beat
            # II = 1: inputs back to back, each output lat edges after its last input
            assert np.all(np.diff(tin) == 1), (job.op, tin)
            last_in = np.array(tin)[per_out - 1 :: per_out]
            assert np.all(np.array(tout) - last_in == lat), (job.op, tin, tout)
            continue
        last_in = np.array(tin)[G - 1 :: G]
        first_out = np.array(tout)[::G]
        lat = softmax_latency(rp, G) if job.op == "softmax" else layernorm_latency(rp)
        assert np.all(first_out - last_in == lat), (job.op, last_in, first_out, lat)
        cyc = softmax_row_cycles(rp, G) if job.op == "softmax" else layernorm_row_cycles(rp, G)
        first_in = np.array(tin)[::G]
        assert np.all(np.diff(first_in) == cyc), (job.op, first_in, cyc)
        assert np.all(np.diff(tout).reshape(-1)[: G - 1] == 1)  # a row's beats back to back
