"""Residual-add and pooling RTL against their golden models, bit for bit, in Amaranth's
simulator: every activation / pooling kind switched by register in one elaborated design,
rails and rounding ties, random input gaps and output backpressure, and the cycle count
of a full-rate stream (initiation interval 1, LATENCY); in every cycle of every run the
documented handshake ``i.ready == ~o.valid | o.ready``, and under random output stalls a
stream costs exactly beats + LATENCY + stalled cycles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aimcflow.cosim.benches import pool as pool_bench
from aimcflow.cosim.benches import residual as res_bench
from aimcflow.cosim.postops import pool_rtl_params, residual_rtl_params
from aimcflow.models.periphery import pool as pool_golden
from aimcflow.models.periphery import residual as res_golden
from aimcflow.rtl.pool import LATENCY as POOL_LATENCY
from aimcflow.rtl.pool import Pool
from aimcflow.rtl.protocol import as_dicts
from aimcflow.rtl.residual import LATENCY as RES_LATENCY
from aimcflow.rtl.residual import ResidualAdd
from amaranth.back import verilog
from amaranth_streams import (
    assert_ready_promise,
    put,
    run_testbenches,
    stalled_cycles,
    to_py,
    transfer,
)

PROGRESS_BOUND = 200
"""Cycles without any transfer after which a run fails: the longest legitimate pause is
LATENCY plus a run of random stalls (or a window's worth of inputs), far below this."""

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

RES = res_golden.ResidualParams(lanes=3, in_bits=5, mult_bits=6, out_bits=4)
POOL = pool_golden.PoolParams(lanes=3, bits=5, mult_bits=6, max_window=16)


def run_residual(jobs, *, seed=0, idle=0.0, stall=0.0):
    dut = ResidualAdd(residual_rtl_params(RES))
    rng = np.random.default_rng(seed)
    results = []

    async def testbench(ctx):
        for job in jobs:
            for beat in res_bench.load_beats(job.gp, job.coeffs):
                await put(ctx, dut.load, beat)
            V, N = job.a.shape
            ins = as_dicts(res_bench.input_beats(job.a, job.b, RES.lanes))
            trace: list = []
            got, in_c, out_c = await transfer(
                ctx, dut.i, ins, dut.o, len(ins), rng=rng, idle=idle, stall=stall,
                timeout=PROGRESS_BOUND, trace=trace,
            )  # fmt: skip
            assert_ready_promise(trace, "residual: ")
            beats = [to_py(b) for b in got]
            fields = {k: np.array([b[k] for b in beats]) for k in ("y", "last")}
            y, last = res_bench.decode_outputs(fields, V, N, RES.lanes)
            results.append(
                dict(y=y, last=last, in_cycles=in_c, out_cycles=out_c, trace=trace, beats=len(ins))
            )

    run_testbenches(dut, testbench)
    return results


def test_residual_every_activation_with_backpressure():
    rng = np.random.default_rng(3)
    jobs = [
        res_bench.random_job(rng, RES, V=7, N=5, activation=act)
        for act in ("none", "relu", "leaky", "clamp", "relu", "none")
    ]
    for job, res in zip(jobs, run_residual(jobs, seed=1, idle=0.3, stall=0.4), strict=True):
        assert np.array_equal(res["y"], job.expected()), (job, res["y"], job.expected())
        assert res["last"][:, -1].all() and not res["last"][:, :-1].any()


def test_residual_rails_ties_and_full_rate():
    """Extreme codes and multipliers (both output rails), shift 1 with odd sums (ties),
    then a full-rate stream: inputs every clock, outputs from LATENCY on, no bubble."""
    gp = dataclasses.replace(RES, a_signed=True, b_signed=True, out_signed=True, activation="none")
    a = np.array([[-16, 15, -16, 15, 1, -1], [3, -3, 5, -5, 0, 7]])
    b = np.array([[-16, 15, 15, -16, 0, 0], [0, 0, 0, 0, 1, -1]])
    rails = res_bench.Job(a, b, gp, res_golden.ResidualCoeffs(-32, 31, 0))
    ties = res_bench.Job(a, b, gp, res_golden.ResidualCoeffs(1, 1, 1))
    exp = ties.expected()
    assert exp[1].tolist() == [2, -1, 3, -2, 1, 3]  # x.5 rounds up: 1.5 -> 2, -1.5 -> -1
    assert {-8, 7} <= set(rails.expected().ravel().tolist())
    r_rails, r_ties = run_residual([rails, ties])
    assert np.array_equal(r_rails["y"], rails.expected())
    assert np.array_equal(r_ties["y"], exp)
    beats = 2 * 2
    assert r_ties["in_cycles"] == list(range(beats))
    assert r_ties["out_cycles"] == list(range(RES_LATENCY, RES_LATENCY + beats))


def test_residual_output_stalls_cost_exactly_the_stalled_cycles():
    """Input always offered, output stalled at random (40 %): the stream takes exactly
    beats + LATENCY + stalled cycles (a stalled cycle: ``o.valid`` high, ``o.ready`` low);
    a bubble after a stall would add cycles, a dropped stall would lose data."""
    rng = np.random.default_rng(31)
    job = res_bench.random_job(rng, RES, V=40, N=5, activation="relu")
    (res,) = run_residual([job], seed=32, stall=0.4)
    assert np.array_equal(res["y"], job.expected())
    stalled = stalled_cycles(res["trace"])
    assert stalled >= 10  # the run really stalls
    assert res["out_cycles"][-1] + 1 == res["beats"] + RES_LATENCY + stalled


def run_pool(jobs, *, seed=0, idle=0.0, stall=0.0):
    dut = Pool(pool_rtl_params(POOL))
    rng = np.random.default_rng(seed)
    results = []

    async def testbench(ctx):
        for job in jobs:
            for beat in pool_bench.load_beats(job.kind, job.gp, job.coeffs):
                await put(ctx, dut.load, beat)
            fields = pool_bench.window_beats(job.x, job.window, job.stride, job.padding, POOL.lanes)
            ins = as_dicts(fields)
            n_out = int(fields["last"].sum())
            trace: list = []
            got, in_c, out_c = await transfer(
                ctx, dut.i, ins, dut.o, n_out, rng=rng, idle=idle, stall=stall,
                timeout=PROGRESS_BOUND, trace=trace,
            )  # fmt: skip
            assert_ready_promise(trace, "pool: ")
            y = np.array([to_py(b)["y"] for b in got])
            V, C = job.x.shape[:2]
            results.append(
                dict(
                    y=pool_bench.decode_outputs(y, V, C, *job.out_hw, POOL.lanes),
                    in_cycles=in_c,
                    out_cycles=out_c,
                    trace=trace,
                    beats=len(ins),
                )
            )

    run_testbenches(dut, testbench)
    return results


def test_pool_kinds_windows_with_backpressure():
    rng = np.random.default_rng(8)
    jobs = [pool_bench.random_job(rng, POOL, V=2, kind=k) for k in ("max", "avg") * 5]
    # padding, adaptive 1x1 and a non-power-of-two average are in the set
    jobs.append(
        pool_bench.Job(
            rng.integers(-16, 16, (2, 4, 5, 5)),
            "avg",
            (3, 3),
            (2, 2),
            (1, 1),
            dataclasses.replace(POOL, signed=True),
            pool_golden.avg_coeffs(9, POOL),
        )
    )
    x = rng.integers(0, 32, (2, 4, 4, 4))
    jobs.append(
        pool_bench.Job(x, "avg", (4, 4), (1, 1), (0, 0), POOL, pool_golden.avg_coeffs(16, POOL))
    )
    jobs.append(
        pool_bench.Job(
            x - 16,
            "max",
            (3, 3),
            (1, 1),
            (1, 1),
            dataclasses.replace(POOL, signed=True),
            pool_golden.PoolCoeffs(),
        )
    )
    for job, res in zip(jobs, run_pool(jobs, seed=2, idle=0.3, stall=0.4), strict=True):
        assert np.array_equal(res["y"], job.expected()), (job, res["y"], job.expected())


def test_pool_rails_ties_and_full_rate():
    gp = dataclasses.replace(POOL, signed=True)
    # sums -2, -6, 2, 6 over 4 (ties), and -16*4, 15*4 times 2 (both rails)
    x = np.array([[-1, -1, 0, 0], [-2, -2, -1, -1], [1, 1, 0, 0], [2, 2, 1, 1]])
    ties = pool_bench.Job(
        x.reshape(1, 4, 2, 2), "avg", (2, 2), (2, 2), (0, 0), gp, pool_golden.avg_coeffs(4, gp)
    )
    assert ties.expected().ravel().tolist() == [0, -1, 1, 2]
    xr = np.array([[-16] * 4, [15] * 4]).reshape(1, 2, 2, 2)
    rails = pool_bench.Job(xr, "avg", (2, 2), (2, 2), (0, 0), gp, pool_golden.PoolCoeffs(1, 1))
    assert rails.expected().ravel().tolist() == [-16, 15]
    full = pool_bench.Job(
        np.arange(3 * 6 * 4).reshape(1, 3, 6, 4) % 32,
        "max",
        (2, 2),
        (2, 2),
        (0, 0),
        POOL,
        pool_golden.PoolCoeffs(),
    )
    r_ties, r_rails, r_full = run_pool([ties, rails, full])
    assert np.array_equal(r_ties["y"], ties.expected())
    assert np.array_equal(r_rails["y"], rails.expected())
    assert np.array_equal(r_full["y"], full.expected())
    beats = 3 * 2 * 4  # 6 windows of 4 positions, one channel group
    assert r_full["in_cycles"] == list(range(beats))
    assert r_full["out_cycles"] == [4 * k + 3 + POOL_LATENCY for k in range(6)]


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_output_stalls_cost_exactly_the_stalled_cycles(kind):
    """Input always offered, output stalled at random (60 %, one output per 4 inputs): N
    windows of K positions take exactly N K + LATENCY + stalled cycles."""
    rng = np.random.default_rng(41)
    x = rng.integers(0, 32, (2, 3, 6, 6))
    coeffs = pool_golden.avg_coeffs(4, POOL) if kind == "avg" else pool_golden.PoolCoeffs()
    job = pool_bench.Job(x, kind, (2, 2), (2, 2), (0, 0), POOL, coeffs)
    (res,) = run_pool([job], seed=42, stall=0.6)
    assert np.array_equal(res["y"], job.expected())
    stalled = stalled_cycles(res["trace"])
    assert stalled >= 5
    assert res["out_cycles"][-1] + 1 == res["beats"] + POOL_LATENCY + stalled


def test_verilog_elaborates_at_spec_widths():
    """Both units convert to Verilog at SPEC.md widths (8-bit activations, 16-bit mult)."""
    for comp, name in (
        (ResidualAdd(residual_rtl_params(res_golden.ResidualParams())), "aimcflow_residual"),
        (Pool(pool_rtl_params(pool_golden.PoolParams())), "aimcflow_pool"),
    ):
        text = verilog.convert(comp, name=name, emit_src=False)
        assert f"module {name}" in text
