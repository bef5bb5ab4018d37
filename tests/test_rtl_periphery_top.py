"""periphery_top (controller + NMPU) against the composed golden models, bit for bit.

Golden: for each row tile t, ``manage`` the segment ``x[:, rows of t]`` against that row
tile's ideal linear tile, then ``nmpu`` over the T results.  The status port is checked
against the per-(vector, tile) ``e``, ``iter``, ``sat_any``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aimcflow.cosim.rtlparams import mgmt_rtl_params, nmpu_rtl_params
from aimcflow.models.periphery.mgmt import MgmtParams, ideal_linear_tile, manage
from aimcflow.models.periphery.nmpu import NmpuParams, nmpu, rtl_clamp_bounds
from aimcflow.rtl.periphery_top import PeripheryTop, PeripheryTopParams
from aimcflow.rtl.protocol import (
    as_dicts,
    groups,
    mgmt_answer_beats,
    mgmt_reg_beats,
    mgmt_x_beats,
    nmpu_load_beats,
    nmpu_outputs,
)
from amaranth.back import verilog
from amaranth_streams import put, receive, run_testbenches, send, to_py

LANES, X_LANES = 2, 2
MP = MgmtParams(
    dac_bits=6,
    adc_bits=5,
    e_min=-2,
    e_max=3,
    noise="absmax_pow2",
    bound_max_iter=2,
    x_bits=6,
    x_signed=True,
)
NP = NmpuParams(
    lanes=LANES,
    adc_bits=5,
    gain_bits=6,
    gain_frac=4,
    acc_bits=14,
    mult_bits=6,
    out_shift=7,
    out_bits=6,
    out_signed=True,
    e_min=-2,
    e_max=3,
    activation="leaky",
    leaky_k=1,
)

# Amaranth deprecations fail the test (warnings as errors, as amaranth-soc does)
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def top_params(max_tiles: int = 4, max_cols: int = 6, max_rows: int = 4) -> PeripheryTopParams:
    return PeripheryTopParams(
        nmpu=nmpu_rtl_params(NP, max_tiles=max_tiles, max_cols=max_cols),
        mgmt=mgmt_rtl_params(MP, x_lanes=X_LANES, lanes=LANES, max_rows=max_rows),
    )


def golden(x: np.ndarray, w: np.ndarray, shift: int, coef: dict):
    """x (V,T,R), w (T,R,C) -> y (V,C) and per (v, t) (e, iter, sat_any)."""
    V, T, _ = x.shape
    results = [manage(x[:, t], ideal_linear_tile(w[t], shift, MP.adc_bits), MP) for t in range(T)]
    a = np.stack([r[0] for r in results], axis=1)
    e = np.stack([r[1] for r in results], axis=1)
    status = [
        (int(results[t][1][v]), int(results[t][2][v]), int(results[t][3][v]))
        for v in range(V)
        for t in range(T)
    ]
    return nmpu(a, e, params=NP, **coef), status


def run_top(
    x: np.ndarray, w: np.ndarray, shift: int, coef: dict, *, seed: int, idle: float, stall: float
):
    V, T, R = x.shape
    C = w.shape[2]
    tp = top_params()
    dut = PeripheryTop(tp.nmpu, tp.mgmt)
    rng = np.random.default_rng(seed)
    out: dict = {"status": []}
    segments = [(v, t) for v in range(V) for t in range(T)]
    tile_state = {"segment": -1}

    async def driver(ctx):
        for beat in as_dicts(mgmt_reg_beats(MP.noise, MP.bound_max_iter)):
            await put(ctx, dut.mgmt_load, beat)
        lo, hi = rtl_clamp_bounds(NP)
        for beat in nmpu_load_beats(
            tp.nmpu,
            coef["gain"],
            coef["offset"],
            coef["mult"],
            coef["bias"],
            activation=NP.activation,
            out_signed=NP.out_signed,
            leaky_k=NP.leaky_k,
            clamp_lo=lo,
            clamp_hi=hi,
        ):
            await put(ctx, dut.nmpu_load, beat)
        beats = [b for v, t in segments for b in mgmt_x_beats(tp.mgmt, x[v, t])]
        await send(ctx, dut.x, beats, rng=rng, idle=idle)

    async def collector(ctx):
        got = await receive(ctx, dut.o, V * groups(C, LANES), rng=rng, stall=stall)
        out["y"] = np.array(nmpu_outputs([to_py(b) for b in got], C, LANES))

    async def tile(ctx):
        while True:
            segment = []
            while not segment or not segment[-1]["last"]:
                (beat,) = await receive(ctx, dut.dac, 1, rng=rng, stall=stall)
                segment.append(to_py(beat))
            tile_state["segment"] += segment[0]["iter"] == 0
            _, t = segments[tile_state["segment"]]
            d = np.array([v for b in segment for v in b["d"]][:R])
            a, sat_any = ideal_linear_tile(w[t], shift, MP.adc_bits)(
                d[None], np.array([segment[0]["iter"]]), np.array([True])
            )
            await send(
                ctx, dut.adc, mgmt_answer_beats(tp.mgmt, a[0], sat_any[0]), rng=rng, idle=idle
            )

    async def status_monitor(ctx):
        async for _, _, status in ctx.tick().sample(dut.status):
            s = to_py(status)
            if s["valid"]:
                out["status"].append((s["e"], s["iter"], s["sat_any"]))

    run_testbenches(dut, driver, collector, background=[tile, status_monitor])
    return out


def random_problem(rng, V: int, T: int, R: int, C: int) -> tuple:
    x = rng.integers(-32, 32, (V, T, R)) >> rng.integers(0, 6, (V, T, 1))
    x[0, 0] = 0  # an all-zero segment
    x[-1, -1, 0] = -32  # most negative input
    w = rng.integers(-4, 5, (T, R, C))
    coef = dict(
        gain=rng.integers(-32, 32, (T, C)),
        offset=rng.integers(-300, 300, (T, C)),
        mult=rng.integers(-32, 32, C),
        bias=rng.integers(-20, 20, C),
    )
    return x, w, coef


@pytest.mark.parametrize("T", [1, 4])
def test_top_matches_composed_golden(T):
    """V = 3 vectors, R = 3 rows per tile on 2 x-lanes, C = 5 on 2 lanes (padded), random
    idle/stall on every stream; T = 1 and T = 4 row tiles."""
    rng = np.random.default_rng(100 + T)
    x, w, coef = random_problem(rng, V=3, T=T, R=3, C=5)
    y, status = golden(x, w, 1, coef)
    out = run_top(x, w, 1, coef, seed=T, idle=0.2, stall=0.3)
    assert np.array_equal(out["y"], y), f"RTL\n{out['y']}\ngolden\n{y}"
    assert out["status"] == status
    assert any(it > 0 for _, it, _ in status), "no bound-management retry exercised"


def test_mismatched_block_params_are_refused():
    tp = top_params()
    with pytest.raises(ValueError, match="lanes"):
        PeripheryTopParams(nmpu=tp.nmpu, mgmt=dataclasses.replace(tp.mgmt, lanes=LANES + 1))


def test_top_converts_to_verilog():
    tp = top_params()
    assert "module periphery_top" in verilog.convert(
        PeripheryTop(tp.nmpu, tp.mgmt), name="periphery_top"
    )
