"""Management-controller RTL against its golden model, bit for bit, in Amaranth's simulator.

A Python tile (the golden ``ideal_linear_tile``) answers behind the ``dac``/``adc`` streams;
every DAC segment the RTL sends is checked against the golden ``dac_codes`` of that
vector and iteration, and every ``o`` beat against ``manage``.  Random idle/stall cycles on
all four streams, and in every cycle the handshake the module docstring promises
(:func:`check_handshake`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aimcflow.cosim.rtlparams import mgmt_rtl_params
from aimcflow.models.periphery.mgmt import (
    MgmtParams,
    choose_exponent,
    dac_codes,
    ideal_linear_tile,
    manage,
)
from aimcflow.rtl.mgmt import MgmtController
from aimcflow.rtl.params import MgmtRtlParams
from aimcflow.rtl.protocol import (
    as_dicts,
    groups,
    mgmt_answer_beats,
    mgmt_reg_beats,
    mgmt_x_beats,
)
from amaranth.back import verilog
from amaranth_streams import get, put, receive, recorder, run_testbenches, send, to_py, transfer

BASE = MgmtParams(
    dac_bits=6,
    adc_bits=5,
    e_min=-3,
    e_max=2,
    noise="absmax_pow2",
    bound_max_iter=3,
    x_bits=8,
    x_signed=True,
)

# Amaranth deprecations fail the test (warnings as errors, as amaranth-soc does)
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def rtl_params(gp: MgmtParams, x_lanes: int, lanes: int, max_rows: int = 8) -> MgmtRtlParams:
    """The flow's golden -> RTL mapping (``cosim/rtlparams.py``), not a copy of it."""
    return mgmt_rtl_params(gp, x_lanes, lanes, max_rows)


def run_jobs(
    rp: MgmtRtlParams, jobs: list[dict], *, seed: int = 0, idle: float = 0.0, stall: float = 0.0
) -> list[dict]:
    """Each job: golden params ``gp``, inputs ``x`` (V,R), weights ``w`` (R,C), ``shift``.
    One elaborated controller runs them in turn (registers rewritten per job)."""
    dut = MgmtController(rp)
    rng = np.random.default_rng(seed)
    state = {"job": 0, "done": 0, "vector": -1}
    results = [{"o": [], "dac": []} for _ in jobs]

    async def driver(ctx):
        for k, job in enumerate(jobs):
            while state["done"] < k:
                await ctx.tick()
            state["job"], state["vector"] = k, -1
            gp = job["gp"]
            for beat in as_dicts(mgmt_reg_beats(gp.noise, gp.bound_max_iter)):
                await put(ctx, dut.load, beat)
            beats = [b for row in job["x"] for b in mgmt_x_beats(rp, row)]
            await send(ctx, dut.x, beats, rng=rng, idle=idle)

    async def collector(ctx):
        for k, job in enumerate(jobs):
            V, C = job["x"].shape[0], job["w"].shape[1]
            got = await receive(ctx, dut.o, V * groups(C, rp.lanes), rng=rng, stall=stall)
            results[k]["o"] = [to_py(b) for b in got]
            state["done"] = k + 1

    async def tile(ctx):
        while True:
            segment = []
            while not segment or not segment[-1]["last"]:
                (beat,) = await receive(ctx, dut.dac, 1, rng=rng, stall=stall)
                segment.append(to_py(beat))
            job = jobs[state["job"]]
            R = job["x"].shape[1]
            d = np.array([v for b in segment for v in b["d"]][:R])
            it = segment[0]["iter"]
            state["vector"] += it == 0
            results[state["job"]]["dac"].append((state["vector"], it, d))
            answer = ideal_linear_tile(job["w"], job["shift"], rp.adc_bits)
            a, sat_any = answer(d[None], np.array([it]), np.array([True]))
            await send(ctx, dut.adc, mgmt_answer_beats(rp, a[0], sat_any[0]), rng=rng, idle=idle)

    trace: list = []
    signals = (dut.adc.valid, dut.adc.ready, dut.o.valid, dut.o.ready)
    signals += (dut.dac.valid, dut.dac.ready, dut.dac.payload.last)
    run_testbenches(dut, driver, collector, background=[tile, recorder(signals, trace)])
    check_handshake(np.array(trace))
    return results


def check_handshake(trace: np.ndarray) -> None:
    """The module docstring's promises, every cycle: ``adc`` -> ``o`` is a combinational
    pass-through (``o.valid`` only with ``adc.valid``, and then ``adc.ready == o.ready``:
    the NMPU's backpressure reaches the tile), and ``dac`` streams a segment one beat per
    clock (a beat offered and not the taken last one is followed by another: a stall only
    delays it)."""
    assert len(trace) > 10 and trace[:, 2].any() and trace[:, 4].any()  # it was recorded
    adc_v, adc_r, o_v, o_r, dac_v, dac_r, dac_last = trace.T
    bad = np.flatnonzero(o_v & ~adc_v & 1)
    assert bad.size == 0, f"o.valid without adc.valid in cycles {bad[:8].tolist()}"
    bad = np.flatnonzero(o_v & (adc_r != o_r))
    assert bad.size == 0, f"adc.ready != o.ready while forwarding, cycles {bad[:8].tolist()}"
    keep = dac_v[:-1] & (1 - (dac_r[:-1] & dac_last[:-1]))
    bad = np.flatnonzero(keep & (1 - dac_v[1:]))
    assert bad.size == 0, f"dac segment interrupted after cycles {bad[:8].tolist()}"


def check(rp: MgmtRtlParams, job: dict, res: dict) -> None:
    gp, x, w = job["gp"], job["x"], job["w"]
    a, e, it, sat_any = manage(x, ideal_linear_tile(w, job["shift"], gp.adc_bits), gp)
    V, C = a.shape
    G = groups(C, rp.lanes)
    beats = res["o"]
    assert len(beats) == V * G
    for v in range(V):
        vb = beats[v * G : (v + 1) * G]
        got_a = [c for b in vb for c in b["a"]][:C]
        assert got_a == a[v].tolist(), f"vector {v}: a {got_a} != {a[v].tolist()}"
        for b in vb:
            assert (b["e"], b["iter"], b["sat_any"]) == (e[v], it[v], int(sat_any[v])), v
        assert [b["last"] for b in vb] == [0] * (G - 1) + [1]
    # every DAC segment the tile saw: golden codes for that vector at that iteration's e
    e0 = choose_exponent(x, gp)
    assert len(res["dac"]) == V + int(it.sum())
    for v, i, d in res["dac"]:
        expected = dac_codes(x[v : v + 1], np.array([e0[v] + i]), gp)[0]
        assert d.tolist() == expected.tolist(), f"vector {v} iteration {i}"


def extreme_x(rng, gp: MgmtParams, V: int, R: int) -> np.ndarray:
    lo, hi = gp.x_range
    x = rng.integers(lo, hi + 1, (V, R))
    # scale rows down by random powers of two so every exponent in range is exercised
    x = x >> rng.integers(0, gp.x_bits, (V, 1))
    x[0] = 0  # all-zero vector: e = 0
    x[1, :] = 0
    x[1, 0] = hi  # largest magnitude
    if gp.x_signed:
        x[2, :] = 0
        x[2, -1] = lo  # most negative input
    x[3] = np.clip(1, lo, hi)  # smallest nonzero magnitude: e = e_min
    return x


def test_bound_management_noise_modes_and_register_switch():
    """One design, three register settings: absmax_pow2 with 3 retries, absmax_pow2 with
    retries off, noise off.  R = 5 on 2 x-lanes, C = 5 on 3 lanes (both padded)."""
    rng = np.random.default_rng(21)
    R, C = 5, 5
    rp = rtl_params(BASE, x_lanes=2, lanes=3)
    jobs = []
    for noise, bmi in (("absmax_pow2", 3), ("absmax_pow2", 0), ("off", 2)):
        gp = dataclasses.replace(BASE, noise=noise, bound_max_iter=bmi)
        w = rng.integers(-3, 4, (R, C))
        jobs.append(dict(gp=gp, x=extreme_x(rng, gp, 8, R), w=w, shift=1))
    results = run_jobs(rp, jobs, seed=2, idle=0.25, stall=0.35)
    for job, res in zip(jobs, results, strict=True):
        check(rp, job, res)
    # the corners were reached: the first exponent hit e_min and e_max, retries happened
    # (some up to bound_max_iter), and some vectors stayed saturated
    e0 = choose_exponent(jobs[0]["x"], jobs[0]["gp"])
    _, e, it, sat_any = manage(
        jobs[0]["x"], ideal_linear_tile(jobs[0]["w"], 1, BASE.adc_bits), jobs[0]["gp"]
    )
    assert e0.min() == BASE.e_min and e0.max() == BASE.e_max
    assert it.max() == 3 and e.max() == BASE.e_max and sat_any.any()


def test_exponent_boundaries_exactly():
    """max|x| at every exponent's largest fitting value and one above, both signs; a
    zero-weight tile never saturates, so the output e is the noise-management choice.
    Expected e from the golden ``choose_exponent`` (which applies rshr directly)."""
    gp = BASE
    lo, hi = gp.x_range
    dac_max = (1 << (gp.dac_bits - 1)) - 1
    # largest M fitting e: e <= 0: dac_max >> -e; e > 0: found by the SPEC rule, by search
    edges = {dac_max >> -e for e in range(gp.e_min, 1)}
    for e in range(1, gp.e_max + 1):
        edges.add(max(m for m in range(hi + 1) if ((m + (1 << (e - 1))) >> e) <= dac_max))
    mags = sorted({min(m + k, hi) for m in edges for k in (0, 1)})
    x = np.zeros((2 * len(mags), 3), dtype=np.int64)
    x[: len(mags), 1] = mags
    x[len(mags) :, 2] = [-min(m, -lo) for m in mags]
    rp = rtl_params(gp, x_lanes=2, lanes=2)
    job = dict(gp=gp, x=x, w=np.zeros((3, 2), dtype=np.int64), shift=0)
    (res,) = run_jobs(rp, [job])
    check(rp, job, res)
    assert sorted({b["e"] for b in res["o"]}) == list(range(gp.e_min, gp.e_max + 1))


def test_unsigned_inputs_one_lane():
    gp = dataclasses.replace(BASE, x_bits=6, x_signed=False, dac_bits=5, bound_max_iter=2)
    rng = np.random.default_rng(4)
    rp = rtl_params(gp, x_lanes=1, lanes=1, max_rows=4)
    job = dict(gp=gp, x=extreme_x(rng, gp, 6, 3), w=rng.integers(-4, 5, (3, 2)), shift=0)
    (res,) = run_jobs(rp, [job], seed=5, idle=0.3, stall=0.3)
    check(rp, job, res)


@pytest.mark.parametrize("x_signed", [True, False])
def test_converts_to_verilog(x_signed):
    rp = rtl_params(dataclasses.replace(BASE, x_signed=x_signed), x_lanes=4, lanes=4)
    assert "module mgmt" in verilog.convert(MgmtController(rp), name="mgmt")


@pytest.mark.parametrize("seed", range(6))
def test_random_parameter_sets(seed):
    """Random DAC/ADC/input widths and signedness, exponent range, retries, lanes 1..4 on
    both sides, R and C not multiples of them; 16 vectors with random gaps and stalls."""
    rng = np.random.default_rng(2000 + seed)
    gp = MgmtParams(
        dac_bits=int(rng.integers(3, 9)),
        adc_bits=int(rng.integers(3, 8)),
        e_min=int(rng.integers(-5, 1)),
        e_max=int(rng.integers(0, 5)),
        noise=str(rng.choice(["off", "absmax_pow2"], p=[0.2, 0.8])),
        bound_max_iter=int(rng.integers(0, 5)),
        x_bits=int(rng.integers(2, 11)),
        x_signed=bool(rng.integers(0, 2)),
    )
    x_lanes, lanes = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    R, C = int(rng.integers(1, 3 * x_lanes + 2)), int(rng.integers(1, 3 * lanes + 2))
    rp = rtl_params(gp, x_lanes=x_lanes, lanes=lanes, max_rows=R + int(rng.integers(0, 3)))
    x = extreme_x(rng, gp, 16, R)
    w = rng.integers(-3, 4, (R, C))
    job = dict(gp=gp, x=x, w=w, shift=int(rng.integers(0, 3)))
    (res,) = run_jobs(rp, [job], seed=seed, idle=0.2, stall=0.3)
    check(rp, job, res)


def test_next_segment_streams_in_while_the_current_one_is_processed():
    """Two input buffers: with no stalls anywhere, segment 1's x beats are all accepted
    before segment 0's result has left on o, and x never waits while a buffer is free."""
    gp = dataclasses.replace(BASE, bound_max_iter=0)
    rp = rtl_params(gp, x_lanes=1, lanes=1)
    R, C, V = 4, 3, 3
    rng = np.random.default_rng(9)
    x = rng.integers(-100, 100, (V, R))
    w = rng.integers(-2, 3, (R, C))
    dut = MgmtController(rp)
    out: dict = {}

    async def driver(ctx):
        for beat in as_dicts(mgmt_reg_beats(gp.noise, 0)):
            await put(ctx, dut.load, beat)
        beats = [b for row in x for b in mgmt_x_beats(rp, row)]
        got, out["x_cycles"], out["o_cycles"] = await transfer(ctx, dut.x, beats, dut.o, V * C)
        out["o"] = [to_py(b) for b in got]

    async def tile(ctx):
        while True:
            segment = []
            while not segment or not segment[-1]["last"]:
                segment.append(to_py(await get(ctx, dut.dac)))
            d = np.array([b["d"][0] for b in segment])
            a, s = ideal_linear_tile(w, 0, rp.adc_bits)(d[None], np.zeros(1), np.ones(1, bool))
            for beat in mgmt_answer_beats(rp, a[0], s[0]):
                await put(ctx, dut.adc, beat)

    run_testbenches(dut, driver, background=[tile])
    a_gold, e_gold, _, _ = manage(x, ideal_linear_tile(w, 0, rp.adc_bits), gp)
    assert [b["a"][0] for b in out["o"]] == a_gold.reshape(-1).tolist()
    assert [b["e"] for b in out["o"][::C]] == e_gold.tolist()
    x_cycles, o_cycles = out["x_cycles"], out["o_cycles"]
    assert x_cycles[: 2 * R] == list(range(2 * R)), "x waited although a buffer was free"
    assert x_cycles[2 * R - 1] < o_cycles[C - 1], "segment 1 did not overlap segment 0"


@pytest.mark.parametrize("e_min,e_max", [(0, 0), (0, 3), (-3, 0)])
def test_one_sided_and_single_exponent_ranges(e_min, e_max):
    """Exponent ranges that allow only right shifts, only left shifts, or none (the RTL
    then builds no shifter for the missing direction)."""
    gp = dataclasses.replace(BASE, e_min=e_min, e_max=e_max, bound_max_iter=2)
    rng = np.random.default_rng(50 + e_max - e_min)
    rp = rtl_params(gp, x_lanes=2, lanes=2)
    job = dict(gp=gp, x=extreme_x(rng, gp, 10, 3), w=rng.integers(-3, 4, (3, 3)), shift=1)
    (res,) = run_jobs(rp, [job], seed=3, idle=0.2, stall=0.2)
    check(rp, job, res)


def test_documented_latencies():
    """Module docstring: an idle controller's first DAC beat 1 clock after the last x beat,
    then one per clock; adc -> o in the same clock."""
    rp = rtl_params(BASE, x_lanes=2, lanes=2)
    dut = MgmtController(rp)
    out: dict = {}

    async def testbench(ctx):
        x_beats = mgmt_x_beats(rp, [1, -2, 3, 4, 5])
        _, out["x"], out["dac"] = await transfer(ctx, dut.x, x_beats, dut.dac, 3)
        answer = mgmt_answer_beats(rp, [0, 1, 2], False)
        _, out["adc"], out["o"] = await transfer(ctx, dut.adc, answer, dut.o, 2)

    run_testbenches(dut, testbench)
    assert out["x"] == [0, 1, 2]
    assert out["dac"] == [3, 4, 5]
    assert out["adc"] == out["o"] == [0, 1]


@pytest.mark.parametrize("x_lanes", [1, 2])
def test_tile_interface_busy_every_clock(x_lanes):
    """Module docstring: with x always valid, a tile answering in the clock after the last
    DAC beat and no backpressure, the next segment (or retry) is launched in the clock of
    the previous answer's last beat, so from the first DAC beat to the last ADC beat
    exactly one dac or adc beat transfers per clock: (iter + 1) * (DAC beats + ADC beats)
    clocks per vector.  The first DAC beat is valid 1 clock after the first segment's last
    x beat.  R = 2 rows make 2-beat segments on 1 lane and 1-beat segments (the buffer
    word read in the clock it is written) on 2 lanes; outputs bit-exact against manage."""
    gp = BASE
    rp = rtl_params(gp, x_lanes=x_lanes, lanes=1)
    R, C, V = 2, 3, 8
    lo, hi = gp.x_range
    # same-sign inputs into all-2 weights saturate the 5-bit ADC, small magnitudes for up
    # to bound_max_iter retries (DAC codes near 31 at the first e), extreme ones up to e_max
    x = np.array([[hi, hi], [3, -2], [lo, lo], [1, 1], [hi, 0], [0, 0], [-5, 7], [2, 3]])
    w = np.full((R, C), 2, dtype=np.int64)
    tile = ideal_linear_tile(w, 0, rp.adc_bits)
    a_gold, e_gold, it_gold, sat_gold = manage(x, tile, gp)
    # the run covers every iteration count and a result left saturated at e_max
    assert set(it_gold.tolist()) == set(range(gp.bound_max_iter + 1))
    assert (sat_gold & (e_gold == gp.e_max)).any()
    nb, G = groups(R, x_lanes), groups(C, rp.lanes)
    dut = MgmtController(rp)
    log: dict = {"x": [], "dac": [], "adc": [], "o": []}

    async def testbench(ctx):
        for beat in as_dicts(mgmt_reg_beats(gp.noise, gp.bound_max_iter)):
            await put(ctx, dut.load, beat)
        x_beats = [b for row in x for b in mgmt_x_beats(rp, row)]
        segment: list = []
        answer: list = []
        ctx.set(dut.dac.ready, 1)
        ctx.set(dut.o.ready, 1)
        for cycle in range(2000):
            if log["o"] and len(log["o"]) == V * G:
                break
            ctx.set(dut.x.valid, int(bool(x_beats)))
            if x_beats:
                ctx.set(dut.x.payload, x_beats[0])
            ctx.set(dut.adc.valid, int(bool(answer)))
            if answer:
                ctx.set(dut.adc.payload, answer[0])
            *_, x_rdy, d_val, d_pay, a_rdy, o_val, o_pay = await ctx.tick().sample(
                dut.x.ready,
                dut.dac.valid,
                dut.dac.payload,
                dut.adc.ready,
                dut.o.valid,
                dut.o.payload,
            )
            if x_beats and x_rdy:
                log["x"].append(cycle)
                x_beats.pop(0)
            if answer and a_rdy:
                log["adc"].append(cycle)
                answer.pop(0)
            if o_val:
                log["o"].append(to_py(o_pay))
            if d_val:
                log["dac"].append(cycle)
                segment.append(to_py(d_pay))
                if segment[-1]["last"]:  # answer offered from the next clock
                    d = np.array([c for b in segment for c in b["d"]][:R])
                    a, s = tile(d[None], np.array([segment[0]["iter"]]), np.ones(1, bool))
                    answer = list(mgmt_answer_beats(rp, a[0], s[0]))
                    segment = []
        else:
            raise AssertionError("timeout")

    run_testbenches(dut, testbench)
    got_a = np.array([b["a"][0] for b in log["o"]]).reshape(V, G)[:, :C]
    assert got_a.tolist() == a_gold.tolist()
    assert [b["e"] for b in log["o"][::G]] == e_gold.tolist()
    assert [b["iter"] for b in log["o"][::G]] == it_gold.tolist()
    busy = sorted(log["dac"] + log["adc"])
    assert len(busy) == int(np.sum(it_gold + 1)) * (nb + G)
    assert busy == list(range(busy[0], busy[0] + len(busy))), "a clock without a tile beat"
    assert busy[0] == log["x"][nb - 1] + 1
