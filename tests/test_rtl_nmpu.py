"""NMPU RTL against its golden model, bit for bit, in Amaranth's simulator.

Corners: accumulator saturation, most negative / positive codes and coefficients, e at
e_min and e_max, an all-zero vector, T = 1 and T = 4, C not divisible by lanes, every
activation (switched by register in one elaborated design), output backpressure, and the
cycle count of a back-to-back stream (no bubble between vectors).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aimcflow.cosim.rtlparams import nmpu_rtl_params
from aimcflow.models.periphery.nmpu import NmpuParams, nmpu, rtl_clamp_bounds
from aimcflow.rtl.nmpu import LATENCY, Nmpu
from aimcflow.rtl.params import NmpuRtlParams
from aimcflow.rtl.protocol import groups, nmpu_input_beats, nmpu_load_beats, nmpu_outputs
from amaranth.back import verilog
from amaranth_streams import put, run_testbenches, to_py, transfer

SMALL = NmpuParams(
    lanes=3,
    adc_bits=4,
    gain_bits=6,
    gain_frac=4,
    acc_bits=10,
    mult_bits=6,
    out_shift=8,
    out_bits=5,
    out_signed=True,
    e_min=-2,
    e_max=3,
    activation="none",
    leaky_k=2,
    clamp_lo=-3,
    clamp_hi=5,
)

PROGRESS_BOUND = 200
"""Cycles without any transfer after which a run fails (a lost beat fails in seconds): the
longest legitimate pause is LATENCY plus a run of random stalls, far below this."""

# Amaranth deprecations fail the test (warnings as errors, as amaranth-soc does)
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def rtl_params(gp: NmpuParams, max_tiles: int = 4, max_cols: int = 8) -> NmpuRtlParams:
    """The flow's own golden -> RTL mapping, with small memories."""
    return nmpu_rtl_params(gp, max_tiles, max_cols)


def extreme_ints(rng, lo: int, hi: int, shape) -> np.ndarray:
    """Uniform in [lo, hi] with a third of the values forced to lo, hi or 0."""
    v = rng.integers(lo, hi + 1, shape)
    pick = rng.random(shape)
    v = np.where(pick < 0.12, lo, v)
    v = np.where((pick >= 0.12) & (pick < 0.24), hi, v)
    return np.where((pick >= 0.24) & (pick < 0.33), 0, v)


def random_case(rng, gp: NmpuParams, V: int, T: int, C: int) -> dict:
    def srange(n):
        return -(1 << (n - 1)), (1 << (n - 1)) - 1

    return dict(
        a=extreme_ints(rng, *srange(gp.adc_bits), (V, T, C)),
        e=extreme_ints(rng, gp.e_min, gp.e_max, (V, T)),
        gain=extreme_ints(rng, *srange(gp.gain_bits), (T, C)),
        # offset and bias mostly in the range where outputs stay off the rails (full-width
        # extremes are the corner test's job); the extremes of that range are still drawn
        offset=extreme_ints(
            rng, *srange(min(gp.offset_bits, gp.adc_bits + gp.gain_bits - 2)), (T, C)
        ),
        mult=extreme_ints(rng, *srange(gp.mult_bits), C),
        bias=extreme_ints(rng, *srange(min(gp.bias_bits, gp.out_bits + 1)), C),
    )


def run_jobs(
    rp: NmpuRtlParams,
    jobs: list[tuple[NmpuParams, dict]],
    *,
    seed: int = 0,
    idle: float = 0.0,
    stall: float = 0.0,
) -> list[dict]:
    """Run every (golden params, case) job through ONE elaborated NMPU, reloading
    coefficients and registers between jobs; return outputs and transfer cycles."""
    dut = Nmpu(rp)
    rng = np.random.default_rng(seed)
    results: list[dict] = []

    async def testbench(ctx):
        for gp, case in jobs:
            lo, hi = rtl_clamp_bounds(gp)
            for beat in nmpu_load_beats(
                rp,
                case["gain"],
                case["offset"],
                case["mult"],
                case["bias"],
                activation=gp.activation,
                out_signed=gp.out_signed,
                leaky_k=gp.leaky_k,
                clamp_lo=lo,
                clamp_hi=hi,
            ):
                await put(ctx, dut.load, beat)
            V, _, C = case["a"].shape
            ins = list(nmpu_input_beats(rp, case["a"], case["e"]))
            trace: list[tuple[int, int, int, int]] = []
            got, in_cycles, out_cycles = await transfer(
                ctx,
                dut.i,
                ins,
                dut.o,
                V * groups(C, rp.lanes),
                rng=rng,
                idle=idle,
                stall=stall,
                timeout=PROGRESS_BOUND,
                trace=trace,
            )
            beats = [to_py(b) for b in got]
            results.append(
                dict(
                    y=np.array(nmpu_outputs(beats, C, rp.lanes)),
                    last=[b["last"] for b in beats],
                    in_cycles=in_cycles,
                    out_cycles=out_cycles,
                    trace=np.array(trace),
                    beats=len(ins),
                )
            )

    run_testbenches(dut, testbench)
    return results


def check(gp: NmpuParams, case: dict, res: dict) -> None:
    """Outputs bit for bit, ``last`` flags, and the docstring's handshake promise in every
    cycle: ``i.ready = ~o.valid | o.ready`` (a stall freezes the pipeline, nothing else
    drops ``i.ready``)."""
    _, in_ready, out_valid, out_ready = res["trace"].T
    promise = (1 - out_valid) | out_ready
    bad = np.flatnonzero(in_ready != promise)
    assert bad.size == 0, f"i.ready != ~o.valid | o.ready in cycles {bad[:8].tolist()}"
    expected = nmpu(params=gp, **case)
    assert np.array_equal(res["y"], expected), f"RTL\n{res['y']}\ngolden\n{expected}"
    C = case["a"].shape[2]
    G = groups(C, gp.lanes)
    assert res["last"] == [int(g == G - 1) for g in range(G)] * case["a"].shape[0]


def test_every_activation_by_register_with_backpressure():
    """One design; the activation register switches none/relu/leaky/clamp between runs.
    T = 2, C = 5 with 3 lanes (last group half full), random idle input and stalled output."""
    rng = np.random.default_rng(11)
    jobs = []
    for kind, signed_out in (
        ("none", True),
        ("relu", False),
        ("leaky", True),
        ("clamp", True),
        ("clamp", False),
    ):
        gp = dataclasses.replace(SMALL, activation=kind, out_signed=signed_out)
        jobs.append((gp, random_case(rng, gp, V=5, T=2, C=5)))
    results = run_jobs(rtl_params(SMALL), jobs, seed=1, idle=0.2, stall=0.4)
    for (gp, case), res in zip(jobs, results, strict=True):
        check(gp, case, res)


def test_corners_extreme_codes_exponents_zero_and_accumulator_saturation():
    """T = 4 row tiles at acc_bits = adc_bits + gain_bits (the smallest allowed), so one
    tile at e_max already saturates: a and gain at their most negative / positive codes,
    e at e_min and e_max, and an all-zero vector."""
    gp = dataclasses.replace(SMALL, activation="none", out_shift=0, out_bits=8)
    V, T, C = 6, 4, 4
    lo_a, hi_a = -8, 7
    a = np.zeros((V, T, C), dtype=np.int64)
    a[0] = lo_a  # most negative codes everywhere
    a[1] = hi_a  # most positive
    a[2] = [[lo_a, hi_a, lo_a, hi_a]] * T
    a[3] = 0  # all-zero vector
    a[4] = [[hi_a, hi_a, lo_a, lo_a], [lo_a, lo_a, hi_a, hi_a], [1, -1, 1, -1], [hi_a] * 4]
    a[5] = [[1, 2, 3, 4]] * T
    e = np.array([[3] * T, [3] * T, [-2, 3, -2, 3], [0] * T, [3, 3, -2, -2], [-2] * T])
    gain = np.array([[-32, 31, -32, 31]] * T)
    offset = np.array([[-512, 511, 0, 7]] * T)
    mult = np.array([1, 1, -32, 31])
    bias = np.array([0, -512, 511, 3])
    case = dict(a=a, e=e, gain=gain, offset=offset, mult=mult, bias=bias)
    # sanity of the corner itself: at e_max one product reaches the accumulator rail
    assert abs(256 << (3 - gp.e_min)) > (1 << (gp.acc_bits - 1))
    (res,) = run_jobs(rtl_params(gp), [(gp, case)])
    check(gp, case, res)


def test_single_tile_stream_has_no_bubble_and_ideal_cycle_count():
    """T = 1, V = 6 vectors, C = 7 on 3 lanes: inputs accepted every clock and outputs
    delivered every clock, total cycles exactly V*ceil(C/lanes) + LATENCY."""
    gp = dataclasses.replace(SMALL, activation="relu", out_signed=False)
    rng = np.random.default_rng(5)
    case = random_case(rng, gp, V=6, T=1, C=7)
    (res,) = run_jobs(rtl_params(gp), [(gp, case)])
    check(gp, case, res)
    beats = 6 * groups(7, 3)
    assert res["in_cycles"] == list(range(beats))
    assert res["out_cycles"] == list(range(LATENCY, LATENCY + beats))
    assert res["out_cycles"][-1] + 1 == beats + LATENCY


def test_four_tiles_full_rate_and_spec_widths():
    """SPEC.md typical widths (adc 8, gain 16/14, acc 32, mult 16 >> 15) on 2 lanes, T = 4,
    C = 3: inputs accepted at initiation interval 1."""
    gp = NmpuParams(lanes=2, activation="leaky", out_signed=True, leaky_k=3)
    rng = np.random.default_rng(7)
    case = random_case(rng, gp, V=4, T=4, C=3)
    (res,) = run_jobs(rtl_params(gp, max_tiles=4, max_cols=4), [(gp, case)])
    check(gp, case, res)
    assert res["in_cycles"] == list(range(4 * 4 * groups(3, 2)))


@pytest.mark.parametrize("T", [1, 3])
def test_random_output_stalls_cost_exactly_the_stalled_cycles(T):
    """Input always offered, output stalled at random (40 %): the handshake promise holds in
    every cycle (checked by ``check``) and the run takes exactly beats + LATENCY + stalled
    cycles (a stalled cycle: ``o.valid`` high, ``o.ready`` low); any bubble after a stall
    would add cycles."""
    gp = dataclasses.replace(SMALL, activation="relu", out_signed=False)
    rng = np.random.default_rng(20 + T)
    case = random_case(rng, gp, V=10, T=T, C=5)
    (res,) = run_jobs(rtl_params(gp), [(gp, case)], seed=21 + T, stall=0.4)
    check(gp, case, res)
    _, _, out_valid, out_ready = res["trace"].T
    stalled = int(np.sum(out_valid & (1 - out_ready)))
    assert stalled >= 5  # the case really stalls
    assert res["out_cycles"][-1] + 1 == res["beats"] + LATENCY + stalled


def test_output_stall_keeps_every_beat():
    gp = dataclasses.replace(SMALL, activation="clamp", out_signed=False, clamp_lo=2, clamp_hi=40)
    rng = np.random.default_rng(3)
    case = random_case(rng, gp, V=8, T=1, C=3)
    (res,) = run_jobs(rtl_params(gp), [(gp, case)], seed=9, stall=0.7)
    check(gp, case, res)


@pytest.mark.parametrize("lanes", [1, 4])
def test_converts_to_verilog(lanes):
    text = verilog.convert(Nmpu(rtl_params(dataclasses.replace(SMALL, lanes=lanes))), name="nmpu")
    assert "module nmpu" in text


def test_exponent_shift_wider_than_the_accumulator():
    """e in -2 .. 20 with acc_bits = 10: the exact shift p << (e - e_min) reaches 22 bits,
    past the accumulator, and must saturate exactly as the golden model says."""
    gp = dataclasses.replace(SMALL, e_max=20, activation="none", out_signed=True)
    rng = np.random.default_rng(8)
    case = random_case(rng, gp, V=6, T=2, C=4)
    case["e"] = np.where(rng.random((6, 2)) < 0.5, case["e"], rng.integers(-2, 1, (6, 2)))
    (res,) = run_jobs(rtl_params(gp), [(gp, case)], seed=4, stall=0.2)
    check(gp, case, res)


def test_one_column_group_accumulates_back_to_back():
    """C = 2 on 3 lanes (a single column group), T = 4: every beat revisits the
    accumulator word the previous beat is writing (read-during-write), with and without
    output stalls."""
    gp = dataclasses.replace(SMALL, activation="leaky", out_signed=True)
    rng = np.random.default_rng(12)
    jobs = [(gp, random_case(rng, gp, V=6, T=4, C=2)) for _ in range(2)]
    results = run_jobs(rtl_params(gp), jobs[:1], seed=6)
    results += run_jobs(rtl_params(gp), jobs[1:], seed=7, idle=0.3, stall=0.5)
    for (gp_, case), res in zip(jobs, results, strict=True):
        check(gp_, case, res)
    assert results[0]["in_cycles"] == list(range(6 * 4))


def random_params(rng) -> NmpuParams:
    adc, gain = int(rng.integers(3, 9)), int(rng.integers(3, 11))
    acc, mult = adc + gain + int(rng.integers(0, 7)), int(rng.integers(3, 9))
    kind = str(rng.choice(["none", "relu", "leaky", "clamp"]))
    out_bits = int(rng.integers(3, 9))
    lo = int(rng.integers(-(1 << out_bits), 1 << out_bits))
    return NmpuParams(
        lanes=int(rng.integers(1, 5)),
        adc_bits=adc,
        gain_bits=gain,
        gain_frac=int(rng.integers(0, gain)),
        acc_bits=acc,
        mult_bits=mult,
        out_shift=int(rng.integers(0, acc + mult - 3)),
        out_bits=out_bits,
        out_signed=bool(rng.integers(0, 2)),
        e_min=int(rng.integers(-4, 1)),
        e_max=int(rng.integers(0, 7)),
        activation=kind,
        leaky_k=int(rng.integers(0, 6)),
        clamp_lo=lo,
        clamp_hi=lo + int(rng.integers(0, 1 << out_bits)),
    )


@pytest.mark.parametrize("seed", range(10))
def test_random_parameter_sets(seed):
    """Random widths, lanes 1..4, T 1..4, C 1..13, activation and signedness; 24 vectors
    per design with random input gaps and output stalls."""
    rng = np.random.default_rng(1000 + seed)
    gp = random_params(rng)
    T, C = int(rng.integers(1, 5)), int(rng.integers(1, 3 * gp.lanes + 2))
    case = random_case(rng, gp, V=24, T=T, C=C)
    (res,) = run_jobs(
        rtl_params(gp, max_tiles=4, max_cols=C + int(rng.integers(0, 4))),
        [(gp, case)],
        seed=seed,
        idle=0.15,
        stall=0.3,
    )
    check(gp, case, res)


@pytest.mark.parametrize("e_min,e_max", [(0, 0), (-3, 0)])
def test_narrow_exponent_ranges(e_min, e_max):
    gp = dataclasses.replace(SMALL, e_min=e_min, e_max=e_max, activation="relu", out_signed=False)
    rng = np.random.default_rng(60 + e_min)
    case = random_case(rng, gp, V=8, T=2, C=4)
    (res,) = run_jobs(rtl_params(gp), [(gp, case)], seed=2, stall=0.2)
    check(gp, case, res)
