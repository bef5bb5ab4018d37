"""SFU RTL against its golden model, bit for bit, in Amaranth's simulator.

One elaborated design (small widths for speed) runs every op, switched by register:
matmul (narrow and wide saturation, K = 1 and K not a multiple of lanes), softmax and
layernorm rows (L = 1, L not a multiple of lanes, all-equal rows, rail values), GELU over
every input code; random source gaps and output stalls; then the measured latency and
row throughput at full rate against the figures stated in rtl/sfu.py / rtl/sfu_rows.py.
Every run also checks the documented handshake in every cycle, under random output
stalls: matmul and GELU move as one pipeline (``i.ready == ~o.valid | o.ready``); a row
op's first output beat is valid a fixed latency after the row's last input beat whatever
the stalls, and ``o.valid`` then stays high until the row's last beat is taken (a stall
only delays the next beat).
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
from amaranth_streams import assert_ready_promise, put, run_testbenches, to_py, transfer

PROGRESS_BOUND = 2000
"""Cycles without any transfer after which a run fails: the longest legitimate pause is a
row op's latency (a few hundred cycles at these widths) plus a run of random stalls."""

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
            trace: list = []
            got, tin, tout = await transfer(
                ctx, dut.i, beats, dut.o, n_out, rng=rng, idle=idle, stall=stall,
                timeout=PROGRESS_BOUND, trace=trace,
            )  # fmt: skip
            check_handshake(job, rp, gp.lanes, trace, tin, tout)
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


def check_handshake(job, rp, lanes: int, trace: list, tin: list, tout: list) -> None:
    """The per-cycle handshake promise of ``job.op`` (module docstring) over one run."""
    if job.op in ("matmul", "gelu"):
        assert_ready_promise(trace, f"{job.op}: ")
        return
    out_valid = np.asarray(trace)[:, 2]
    G = bench.groups(job.length, lanes)
    lat = softmax_latency(rp, G) if job.op == "softmax" else layernorm_latency(rp)
    for r in range(len(tout) // G):
        last_in, first, last = tin[(r + 1) * G - 1], tout[r * G], tout[(r + 1) * G - 1]
        prev = tout[r * G - 1] if r else -1
        start = max(last_in, prev) + 1  # o.valid before that is the previous row's
        rise = start + int(np.argmax(out_valid[start:]))
        if prev < last_in + lat:  # the previous row's last beat is gone by then
            assert rise == last_in + lat, (job.op, r, "first beat valid late", rise - last_in)
        assert out_valid[rise : last + 1].all(), (job.op, r, "o.valid dropped inside a row")
        assert first >= rise


def test_sfu_every_op_random():
    rng = np.random.default_rng(5)
    jobs = []
    for op in ("matmul", "softmax", "layernorm", "gelu"):
        for L in (1, 2, GP.lanes + 1, None):
            jobs.append(bench.random_job(rng, GP, 6, op=op, L=L))
    run_jobs(GP, jobs, idle=0.3, stall=0.3, seed=1)
    run_jobs(GP, jobs[::2], stall=0.5, seed=2)  # input always offered: the tightest timing


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
