"""cocotb bench of the pooling unit (``rtl/pool.py``) against its golden model
(``models/periphery/pool.py``), and its Python door.

Python side (pytest, ``aimcflow vectors pool``):

* :func:`window_beats` turns ``x`` (V, C, H, W) and a window/stride/padding into the
  unit's input beats: per image ``v``, per output position ``(i, j)`` (row-major), per
  channel group ``g`` (``lanes`` channels, ``ceil(C / lanes)`` groups), the window's input
  positions inside the map, row-major, one beat each, ``last`` on the final one.  Padded
  positions are not sent.  :func:`decode_outputs` maps the output beats (same order,
  one per window) back to (V, C, Ho, Wo).  This order is where the window semantics
  live: the bench compares the whole path with the golden ``pool``.

cocotb side:

* ``random_jobs``: random kind (max / avg), map size, window, stride, padding (including
  adaptive 1x1 windows), formats and coefficients until ``vectors`` windows (output
  beats) were checked; random valid gaps and backpressure; one job cut by a reset
  mid-stream; with ``measure`` a full-rate job measures cycles against
  ``beats + LATENCY``.
* ``file_vectors``: one job from an ``.npz`` (``aimcflow vectors pool --sim verilator``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.benches.nmpu import _rand_signed
from aimcflow.cosim.benches.stream_unit import UnitTB, random_run
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import Scoreboard
from aimcflow.models.periphery import pool as golden
from aimcflow.models.periphery.residual import input_range
from aimcflow.rtl import pool as rtl_pool
from aimcflow.rtl.pool import LATENCY, Pool, PoolRtlParams

MODULE = "aimcflow.cosim.benches.pool"
TOPLEVEL = "aimcflow_pool"


def build(rtl: PoolRtlParams, toplevel: str = TOPLEVEL, sim: str = "verilator"):
    return build_component(Pool(rtl), toplevel, name=f"pool-l{rtl.lanes}", sim=sim)


def bench_params(rtl: PoolRtlParams, gp: golden.PoolParams, **kw: Any) -> dict[str, Any]:
    return {"rtl": dataclasses.asdict(rtl), "golden": dataclasses.asdict(gp), **kw}


def _params(p: dict[str, Any]) -> tuple[PoolRtlParams, golden.PoolParams]:
    return PoolRtlParams(**p["rtl"]), golden.PoolParams(**p["golden"])


@dataclass
class Job:
    """Images ``x`` (V,C,H,W) and one pooling with its golden params and coefficients."""

    x: np.ndarray
    kind: str
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    gp: golden.PoolParams
    coeffs: golden.PoolCoeffs

    def expected(self) -> np.ndarray:
        return golden.pool(
            self.x, self.kind, self.window, self.stride, self.gp, self.coeffs, self.padding
        )

    @property
    def out_hw(self) -> tuple[int, int]:
        return golden.out_shape(*self.x.shape[2:], self.window, self.stride, self.padding)


def _window_order(H, W, window, stride, padding, G):
    """Per image: (g, r, c, last) of every beat in stream order (o, g, k)."""
    (kh, kw), (sh, sw), (ph, pw) = window, stride, padding
    Ho, Wo = golden.out_shape(H, W, window, stride, padding)
    i = np.arange(Ho)[:, None, None, None] * sh - ph
    j = np.arange(Wo)[None, :, None, None] * sw - pw
    r, c = np.broadcast_arrays(i + np.arange(kh)[:, None], j + np.arange(kw))
    n_out, K = Ho * Wo, kh * kw
    r, c = r.reshape(n_out, K), c.reshape(n_out, K)
    valid = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    last_k = K - 1 - np.argmax(valid[:, ::-1], axis=1)  # last valid position per window
    shape = (n_out, G, K)
    mask = np.broadcast_to(valid[:, None, :], shape)
    g = np.broadcast_to(np.arange(G)[None, :, None], shape)[mask]
    rr = np.broadcast_to(r[:, None, :], shape)[mask]
    cc = np.broadcast_to(c[:, None, :], shape)[mask]
    k = np.broadcast_to(np.arange(K)[None, None, :], shape)
    last = (k == last_k[:, None, None])[mask]
    return g, rr, cc, last.astype(np.int64)


def window_beats(job_x: np.ndarray, window, stride, padding, lanes: int) -> dict[str, np.ndarray]:
    """``x`` (V,C,H,W) -> ``i`` beat fields ``x`` (beats, lanes), ``last`` (beats,)."""
    V, C, H, W = job_x.shape
    G = -(-C // lanes)
    g, r, c, last = _window_order(H, W, window, stride, padding, G)
    xp = np.pad(job_x, [(0, 0), (0, G * lanes - C), (0, 0), (0, 0)]).reshape(V, G, lanes, H, W)
    beats = xp[:, g, :, r, c]  # advanced indices first: (P, V, lanes)
    return {
        "x": beats.transpose(1, 0, 2).reshape(V * len(g), lanes),
        "last": np.tile(last, V),
    }


def decode_outputs(y: np.ndarray, V: int, C: int, Ho: int, Wo: int, lanes: int) -> np.ndarray:
    """Output beats ``y`` (V*Ho*Wo*G, lanes) -> (V, C, Ho, Wo)."""
    G = -(-C // lanes)
    out = y.reshape(V, Ho, Wo, G * lanes)[..., :C]
    return out.transpose(0, 3, 1, 2)


def load_beats(kind: str, gp: golden.PoolParams, c: golden.PoolCoeffs) -> list[dict[str, int]]:
    return rtl_pool.load_beats(golden.POOL_KINDS.index(kind), gp.signed, c.mult, c.shift)


def random_job(rng: np.random.Generator, base: golden.PoolParams, V: int, kind=None) -> Job:
    """Random kind, C in 1..2*lanes+1, map 1..9 x 1..9 (or a window over the whole map),
    window 1..4, stride 1..3, padding up to window//2, format and coefficients."""
    kind = kind or str(rng.choice(golden.POOL_KINDS))
    gp = dataclasses.replace(base, signed=bool(rng.integers(0, 2)))
    C = int(rng.integers(1, 2 * gp.lanes + 1, endpoint=True))
    H, W = (int(v) for v in rng.integers(1, 9, size=2, endpoint=True))
    if rng.random() < 0.15:  # adaptive 1x1: the whole map (within max_window)
        W = max(1, min(W, gp.max_window // H))
        H = min(H, gp.max_window)
        window, stride, padding = (H, W), (1, 1), (0, 0)
    else:
        kh, kw = (
            int(min(v, d))
            for v, d in zip(rng.integers(1, 4, 2, endpoint=True), (H, W), strict=True)
        )
        window = (kh, kw)
        stride = tuple(int(v) for v in rng.integers(1, 3, 2, endpoint=True))
        padding = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
    if kind == "max" or rng.random() < 0.6:
        coeffs = golden.avg_coeffs(window[0] * window[1], gp)
    else:  # a rescaling average: any multiplier, shifts around the useful range
        m = int(_rand_signed(rng, gp.mult_bits, 1)[0])
        shift = int(rng.integers(0, gp.mult_bits + 6, endpoint=True))
        coeffs = golden.PoolCoeffs(m, min(shift, gp.shift_max))
    x = np.clip(_rand_signed(rng, gp.bits + 1, (V, C, H, W)), *input_range(gp.bits, gp.signed))
    return Job(x, kind, window, stride, padding, gp, coeffs)


# ---------------------------------------------------------------- cocotb side
class PoolTB(UnitTB):
    """The unit's streams; a vector is one image: ``Ho * Wo * ceil(C/lanes)`` output beats
    (one per window), compared per output position (all C channels)."""

    def __init__(
        self, dut, rtl: PoolRtlParams, seed: int, p_valid: float, p_ready: float, prefix: str = ""
    ):
        super().__init__(dut, Pool(rtl), seed, p_valid, p_ready, prefix)
        self.rtl = rtl

    def input_fields(self, job: Job) -> dict[str, np.ndarray]:
        return window_beats(job.x, job.window, job.stride, job.padding, self.rtl.lanes)

    def load_fields(self, job: Job) -> list[dict[str, int]]:
        return load_beats(job.kind, job.gp, job.coeffs)

    def vectors(self, job: Job) -> int:
        return job.x.shape[0]

    def beats_per_vector(self, job: Job) -> int:
        Ho, Wo = job.out_hw
        return Ho * Wo * -(-job.x.shape[1] // self.rtl.lanes)

    def received(self, job: Job, v: int) -> np.ndarray:
        """The first ``v`` images' outputs (v, C, Ho, Wo)."""
        y = self.codec["o"].unpack(self.snk.words[: v * self.beats_per_vector(job)])["y"]
        return decode_outputs(y, v, job.x.shape[1], *job.out_hw, self.rtl.lanes)

    def check(self, sb: Scoreboard, job: Job, exp: np.ndarray) -> int:
        v = self.complete(job)
        if v == 0:
            return 0
        C = job.x.shape[1]
        Ho, Wo = job.out_hw
        # one compared vector per output position: (v, Ho, Wo) rows of C channels
        got = self.received(job, v).transpose(0, 2, 3, 1).reshape(v * Ho * Wo, C)
        want = exp[:v].transpose(0, 2, 3, 1).reshape(v * Ho * Wo, C)
        return sb.check(
            {"y": got},
            {"y": want},
            v * Ho * Wo,
            context=lambda i: (
                f"{job.kind} x{job.x.shape} window={job.window} stride={job.stride} "
                f"padding={job.padding} signed={job.gp.signed} {job.coeffs}"
            ),
        )


def _coverage(job: Job, y: np.ndarray) -> dict[str, int]:
    lo, hi = input_range(job.gp.bits, job.gp.signed)
    return {
        "low_rail": (y == lo).sum(),
        "high_rail": (y == hi).sum(),
        "padded_jobs": int(job.padding != (0, 0)),
    }


@cocotb.test()
async def random_jobs(dut):
    """Constrained-random jobs until ``vectors`` output positions matched the golden model."""
    p = load_params()
    rtl, base = _params(p)
    tb = PoolTB(
        dut, rtl, int(p.get("seed", 1)), float(p.get("p_valid", 0.8)), float(p.get("p_ready", 0.7))
    )
    rng = tb.rng

    def new_job(i: int) -> Job:
        return random_job(rng, base, int(rng.integers(1, 12)), kind=golden.POOL_KINDS[i % 2])

    def measure_job() -> Job:
        """8 unsigned images of lanes x 6 x 6, 2x2 average with stride 2."""
        gp = dataclasses.replace(base, signed=False)
        x = np.clip(_rand_signed(rng, gp.bits + 1, (8, rtl.lanes, 6, 6)), 0, (1 << gp.bits) - 1)
        return Job(x, "avg", (2, 2), (2, 2), (0, 0), gp, golden.avg_coeffs(4, gp))

    result = await random_run(
        tb,
        p,
        f"pool lanes={rtl.lanes}",
        new_job,
        _coverage,
        measure_job,
        lambda job: len(tb.input_fields(job)["last"]) + LATENCY,
    )
    save_result(result)
    assert result["mismatches"] == 0, "\n".join(result["errors"])


@cocotb.test()
async def file_vectors(dut):
    """One job from ``params['in']`` (.npz: x, kind, window, stride, padding, mult,
    shift); ``y`` to ``params['out']``.  No scoreboard: the caller compares."""
    p = load_params()
    rtl, gp = _params(p)
    with np.load(p["in"]) as f:
        x = np.asarray(f["x"], np.int64)
        kind = golden.POOL_KINDS[int(f["kind"])]
        win, st, pad = (tuple(int(v) for v in f[k]) for k in ("window", "stride", "padding"))
        c = golden.PoolCoeffs(int(f["mult"]), int(f["shift"]))
    job = Job(x, kind, win, st, pad, gp, c)
    tb = PoolTB(dut, rtl, int(p.get("seed", 1)), 1.0, 1.0)
    tb.start_clock()
    await tb.reset()
    await tb.program(job)
    cycles = await tb.stream(job)
    np.savez(p["out"], y=tb.received(job, x.shape[0]), cycles=np.int64(cycles))
    save_result({"windows": len(tb.snk.words), "cycles": cycles})
