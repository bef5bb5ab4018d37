"""Amaranth-simulator tests of ``rtl/spg.py`` bit for bit against the golden model
``models/periphery/spg.py``: stochastic and deterministic modes, seeds, back-to-back
updates, random backpressure on both sides, BL = 1 and BL = max."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aimcflow.cosim.benches.spg import rtl_params
from aimcflow.models.periphery import spg as golden
from aimcflow.rtl.spg import SpgRtlParams, StochasticPulseGenerator
from amaranth.sim import Simulator
from amaranth_streams import put, recorder, until_high


def _params(rows: int, cols: int, **widths) -> SpgRtlParams:
    """RTL parameters built the way the flows build them (golden jump constants included)."""
    return rtl_params(rows, cols, golden.SpgParams(**widths))


PROGRESS_BOUND = 500
"""Cycles a handshake may take before the test fails: a lost beat fails in well under a
second instead of hanging until the pytest timeout (the longest legitimate wait is one
update of ``max_bl`` slots under random stalls)."""


def _bits(view, n: int) -> list[int]:
    word = view.as_value().value
    return [(word >> k) & 1 for k in range(n)]


def run_rtl(
    params: SpgRtlParams,
    seed: int,
    x,
    d,
    gx,
    gd,
    bl: int,
    det,
    rng,
    p_valid: float = 0.7,
    p_ready: float = 0.7,
):
    """Load ``seed``, stream the updates through the DUT with random valid/ready gaps and
    return the golden-model-shaped arrays (row (V,BL,R), col (V,BL,C), signs, last flags)."""
    dut = StochasticPulseGenerator(params)
    V = len(x)
    slots: list = []
    gaps_in = rng.random(V) > p_valid
    gaps_out = rng.random(V * bl * 4 + 16) > p_ready

    async def driver(ctx):
        await put(ctx, dut.seed, seed, timeout=PROGRESS_BOUND)
        for v in range(V):
            if gaps_in[v]:
                await ctx.tick()
            update = {
                "x": [int(a) for a in x[v]],
                "d": [int(a) for a in d[v]],
                "gain_x": int(gx[v]),
                "gain_d": int(gd[v]),
                "bl": bl,
                "deterministic": int(det[v]),
            }
            await put(ctx, dut.i, update, timeout=PROGRESS_BOUND)

    async def monitor(ctx):
        k = idle = 0
        while len(slots) < V * bl:
            ready = 0 if gaps_out[k % len(gaps_out)] else 1
            k += 1
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                slots.append(payload)
                idle = 0
            else:
                idle += 1
                assert idle < PROGRESS_BOUND, f"{len(slots)} of {V * bl} slots, then none"

    trace: list = []
    signals = (dut.seed.valid, dut.seed.ready, dut.i.valid, dut.i.ready)
    signals += (dut.o.valid, dut.o.ready, dut.o.payload.last)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.add_testbench(recorder(signals, trace), background=True)
    sim.run()
    check_handshake(np.array(trace))
    R, C = params.rows, params.cols
    row = np.array([_bits(s.row, R) for s in slots]).reshape(V, bl, R)
    col = np.array([_bits(s.col, C) for s in slots]).reshape(V, bl, C)
    rneg = np.array([_bits(s.row_neg, R) for s in slots]).reshape(V, bl, R)
    cneg = np.array([_bits(s.col_neg, C) for s in slots]).reshape(V, bl, C)
    last = np.array([int(s.last) for s in slots]).reshape(V, bl)
    return row, col, rneg, cneg, last


def check_handshake(trace: np.ndarray) -> None:
    """The module docstring's promises, every cycle: ``seed`` is taken only while idle
    (no slot offered); an update is taken while idle (and no seed offered) or in the cycle
    the previous update's last slot is taken (no bubble between updates), and at no other
    time; an update's slots follow one per clock (a slot offered and not the taken last one
    is followed by another: a stall only delays it)."""
    seed_v, seed_r, i_v, i_r, o_v, o_r, o_last = trace.T
    assert len(trace) > 10 and o_v.any()  # it was recorded
    bad = np.flatnonzero(seed_r != 1 - o_v)
    assert bad.size == 0, f"seed.ready != idle in cycles {bad[:8].tolist()}"
    promise = ((1 - o_v) & (1 - seed_v)) | (o_v & o_last & o_r)
    bad = np.flatnonzero(i_r != promise)
    assert bad.size == 0, f"i.ready breaks its promise in cycles {bad[:8].tolist()}"
    keep = o_v[:-1] & (1 - (o_r[:-1] & o_last[:-1]))
    bad = np.flatnonzero(keep & (1 - o_v[1:]))
    assert bad.size == 0, f"slots interrupted after cycles {bad[:8].tolist()}"


def _golden(params: SpgRtlParams, seed, x, d, gx, gd, bl, det):
    """Golden trains, update by update so stochastic and deterministic updates can mix."""
    gp = golden.SpgParams(
        params.value_bits, params.gain_bits, params.gain_frac, params.prob_bits, params.max_bl
    )
    gen = golden.PulseGenerator(params.rows, params.cols, seed, gp)
    outs = [
        gen.generate(x[v : v + 1], d[v : v + 1], gx[v : v + 1], gd[v : v + 1], bl, bool(det[v]))
        for v in range(len(x))
    ]
    cat = lambda f: np.concatenate([getattr(o, f) for o in outs])  # noqa: E731
    return cat("row_pulses"), cat("col_pulses"), cat("row_sign"), cat("col_sign")


def _random_case(rng, params: SpgRtlParams, V: int):
    lo, hi = -(1 << (params.value_bits - 1)), 1 << (params.value_bits - 1)
    x = rng.integers(lo, hi, (V, params.rows))
    d = rng.integers(lo, hi, (V, params.cols))
    x[0, 0] = lo  # |v| of the most negative value needs the full unsigned width
    gmax = (1 << params.gain_bits) - 1
    # gains mostly near 1.0 (probabilities spread over 0..1), some saturating, some extreme
    gx = np.clip(rng.integers(0, 3 << params.gain_frac, V), 0, gmax)
    gd = np.clip(rng.integers(0, 3 << params.gain_frac, V), 0, gmax)
    gx[-1], gd[-1] = gmax, 0
    return x, d, gx, gd


@pytest.mark.parametrize(
    "params,seed,bl",
    [
        (_params(5, 3), 0, 7),  # seed 0 -> the documented base
        (_params(4, 4), 0xDEADBEEF, 1),  # BL = 1
        (_params(3, 2, max_bl=31), 12345, 31),  # BL = max
        # translator shift > 0 exercises the rounding branch of scale()
        (
            _params(3, 3, value_bits=6, gain_bits=12, gain_frac=10, prob_bits=8, max_bl=15),
            99,
            13,
        ),
    ],
)
def test_rtl_matches_golden(params, seed, bl):
    rng = np.random.default_rng(seed ^ bl)
    V = 24
    x, d, gx, gd = _random_case(rng, params, V)
    det = rng.random(V) < 0.3
    row, col, rneg, cneg, last = run_rtl(params, seed, x, d, gx, gd, bl, det, rng)
    g_row, g_col, g_rs, g_cs = _golden(params, seed, x, d, gx, gd, bl, det)
    np.testing.assert_array_equal(row, g_row)
    np.testing.assert_array_equal(col, g_col)
    # sign lines are constant over an update and equal to the golden sign
    np.testing.assert_array_equal(np.where(rneg == 1, -1, 1), np.repeat(g_rs[:, None], bl, 1))
    np.testing.assert_array_equal(np.where(cneg == 1, -1, 1), np.repeat(g_cs[:, None], bl, 1))
    expect_last = np.zeros((V, bl), dtype=int)
    expect_last[:, -1] = 1
    np.testing.assert_array_equal(last, expect_last)
    # the case is not degenerate: both pulses and gaps occur
    assert 0 < row.mean() < 1 and 0 < col.mean() < 1


def test_no_bubble_between_updates():
    """With ready held high, V updates of BL slots take V*BL consecutive transfers."""
    params = _params(2, 2)
    dut = StochasticPulseGenerator(params)
    V, bl = 6, 5
    cycles = []

    async def driver(ctx):
        await put(ctx, dut.seed, 7, timeout=PROGRESS_BOUND)
        ctx.set(
            dut.i.payload,
            {"x": [1, 2], "d": [3, 4], "gain_x": 256, "gain_d": 256, "bl": bl, "deterministic": 0},
        )
        ctx.set(dut.i.valid, 1)
        for v in range(V):
            await until_high(ctx, dut.i.ready, f"update {v}", PROGRESS_BOUND)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        t = 0
        while len(cycles) < V * bl:
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                cycles.append(t)
            t += 1
            assert t < PROGRESS_BOUND + V * bl, f"{len(cycles)} of {V * bl} slots"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    assert np.all(np.diff(cycles) == 1)


def test_bl_zero_emits_nothing():
    """BL = 0 is rejected by the golden model; the RTL documents it as an empty update."""
    params = _params(2, 2)
    dut = StochasticPulseGenerator(params)
    seen = []

    async def driver(ctx):
        for bl in (0, 3):
            ctx.set(
                dut.i.payload,
                {
                    "x": [127, 0],
                    "d": [127, 0],
                    "gain_x": 256,
                    "gain_d": 256,
                    "bl": bl,
                    "deterministic": 1,
                },
            )
            ctx.set(dut.i.valid, 1)
            await until_high(ctx, dut.i.ready, f"update bl={bl}", PROGRESS_BOUND)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(12):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                seen.append(int(payload.last))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    assert seen == [0, 0, 1]  # only the BL = 3 update's three slots


KAT_FROM_1 = (1, 270369, 67634689, 2647435461)
"""docs/SPEC.md: xorshift32 (13, 17, 5) from state 1, and its next three states."""


def test_prng_known_answer_and_comparator_at_r_equal_q():
    """The RTL's first slots from seed 1 follow the SPEC's known-answer sequence, and a lane
    with ``q == r`` does not pulse (``r < q`` is strict) while ``q == r + 1`` does.

    P = 32 so ``r`` is the whole state; translator shift 0 (value_bits 8, gain_frac 25), so
    ``q = |v| * gain`` = the gain for ``v = 1``.  Both lanes get the identity seed jump, so
    both start at the seed: the row lane with ``q = KAT``, the column lane with ``KAT + 1``,
    one slot per update."""
    widths = dict(value_bits=8, gain_bits=32, gain_frac=25, prob_bits=32, max_bl=3)
    identity = tuple(1 << j for j in range(32))
    params = dataclasses.replace(_params(1, 1, **widths), lane_jumps=(identity, identity))
    dut = StochasticPulseGenerator(params)
    seen = []

    async def driver(ctx):
        await put(ctx, dut.seed, 1, timeout=PROGRESS_BOUND)
        for kat in KAT_FROM_1:
            upd = {"x": [1], "d": [1], "gain_x": kat, "gain_d": kat + 1, "bl": 1}
            ctx.set(dut.i.payload, {**upd, "deterministic": 0})
            ctx.set(dut.i.valid, 1)
            await until_high(ctx, dut.i.ready, f"update q={kat}", PROGRESS_BOUND)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(PROGRESS_BOUND):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                seen.append((_bits(payload.row, 1)[0], _bits(payload.col, 1)[0]))
            if len(seen) == len(KAT_FROM_1):
                return
        raise AssertionError(f"{len(seen)} slots only")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    assert seen == [(0, 1)] * len(KAT_FROM_1)
