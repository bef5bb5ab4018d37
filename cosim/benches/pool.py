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
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from aimcflow.cosim.benches.nmpu import _rand_signed
from aimcflow.models.periphery import pool as golden
from aimcflow.models.periphery.residual import input_range
from aimcflow.rtl import pool as rtl_pool
from aimcflow.rtl.pool import LATENCY, Pool, PoolRtlParams

MODULE = "aimcflow.cosim.benches.pool"
TOPLEVEL = "aimcflow_pool"


def build(rtl: PoolRtlParams, toplevel: str = TOPLEVEL):
    from aimcflow.cosim.runner import build_component

    return build_component(Pool(rtl), toplevel, name=f"pool-l{rtl.lanes}")


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
try:
    import cocotb
except ImportError:  # pragma: no cover - cocotb is a dependency; keep import-light users working
    cocotb = None

if cocotb is not None:
    from aimcflow.cosim.packing import port_codecs
    from aimcflow.cosim.runner import load_params, save_result
    from aimcflow.cosim.streams import TB, Scoreboard, StreamSink, StreamSource

    class PoolTB(TB):
        """Clock, reset, the ``i``/``load`` sources and the ``o`` sink of one unit."""

        def __init__(self, dut, rtl: PoolRtlParams, seed: int, p_valid: float, p_ready: float):
            super().__init__(dut, seed)
            self.rtl = rtl
            self.codec = port_codecs(Pool(rtl), ("i", "o", "load"))
            self.src = self.add(StreamSource(dut, "i", self.rng, p_valid))
            self.load = self.add(StreamSource(dut, "load", self.rng, p_valid))
            self.snk = self.add(StreamSink(dut, "o", self.rng, p_ready))

        def windows(self, job: Job) -> int:
            """Output beats of a job: images x output positions x channel groups."""
            Ho, Wo = job.out_hw
            return job.x.shape[0] * Ho * Wo * -(-job.x.shape[1] // self.rtl.lanes)

        async def program(self, job: Job) -> None:
            beats = load_beats(job.kind, job.gp, job.coeffs)
            fields = {k: np.array([b[k] for b in beats]) for k in beats[0]}
            self.load.send(self.codec["load"].pack(fields))
            await self.run(lambda: self.load.idle, max_cycles=1000 * len(beats) + 100)

        async def stream(self, job: Job, stop_after: int | None = None) -> int:
            self.snk.words.clear()
            beats = window_beats(job.x, job.window, job.stride, job.padding, self.rtl.lanes)
            self.src.send(self.codec["i"].pack(beats))
            want = self.windows(job) if stop_after is None else stop_after
            return await self.run(
                lambda: len(self.snk.words) >= want, 200 * len(beats["last"]) + 1000
            )

        def check(self, sb: Scoreboard, job: Job, exp: np.ndarray) -> int:
            """Compare every complete image received so far; one compared vector is one
            output position (all C channels)."""
            V, C = job.x.shape[:2]
            Ho, Wo = job.out_hw
            per_image = self.windows(job) // V
            v = len(self.snk.words) // per_image
            if v == 0:
                return 0
            y = self.codec["o"].unpack(self.snk.words[: v * per_image])["y"]
            got = decode_outputs(y, v, C, Ho, Wo, self.rtl.lanes)
            # compare per window beat: (v, Ho, Wo, C) rows of the image
            g_rows = got.transpose(0, 2, 3, 1).reshape(v * Ho * Wo, C)
            e_rows = exp[:v].transpose(0, 2, 3, 1).reshape(v * Ho * Wo, C)
            return sb.check(
                {"y": g_rows},
                {"y": e_rows},
                v * Ho * Wo,
                context=lambda i: (
                    f"{job.kind} x{job.x.shape} window={job.window} stride={job.stride} "
                    f"padding={job.padding} signed={job.gp.signed} {job.coeffs}"
                ),
            )

    def _coverage(job: Job, y: np.ndarray) -> np.ndarray:
        lo, hi = input_range(job.gp.bits, job.gp.signed)
        return np.array([(y == lo).sum(), (y == hi).sum(), int(job.padding != (0, 0))])

    @cocotb.test()
    async def random_jobs(dut):
        """Constrained-random jobs until ``vectors`` windows matched the golden model."""
        p = load_params()
        rtl, base = _params(p)
        total = int(p.get("vectors", 1000))
        tb = PoolTB(
            dut,
            rtl,
            int(p.get("seed", 1)),
            float(p.get("p_valid", 0.8)),
            float(p.get("p_ready", 0.7)),
        )
        rng = tb.rng
        sb = Scoreboard(f"pool lanes={rtl.lanes}")
        tb.start_clock()
        await tb.reset()
        t_start = time.perf_counter()
        result: dict[str, Any] = {}
        coverage = np.zeros(3, np.int64)
        job_i = 0
        reset_done = not p.get("reset_mid", True)
        while sb.compared < total:
            V = int(rng.integers(1, 12))
            job = random_job(rng, base, V, kind=golden.POOL_KINDS[job_i % 2])
            job_i += 1
            exp = job.expected()
            coverage += _coverage(job, exp)
            await tb.program(job)
            if not reset_done and V >= 2:
                per_image = tb.windows(job) // V
                await tb.stream(job, stop_after=(V // 2) * per_image + 1)
                tb.check(sb, job, exp)  # the images delivered before the reset
                await tb.reset()
                await tb.program(job)
                reset_done = True
                result["reset_after_beats"] = (V // 2) * per_image + 1
            await tb.stream(job)
            tb.check(sb, job, exp)
            if sb.mismatches:
                break
        if p.get("measure"):
            gp = dataclasses.replace(base, signed=False)
            x = np.clip(_rand_signed(rng, gp.bits + 1, (8, rtl.lanes, 6, 6)), 0, (1 << gp.bits) - 1)
            job = Job(x, "avg", (2, 2), (2, 2), (0, 0), gp, golden.avg_coeffs(4, gp))
            tb.src.p_valid = tb.snk.p_ready = 1.0
            await tb.program(job)
            cycles = await tb.stream(job)
            tb.check(sb, job, job.expected())
            beats = 8 * 6 * 6
            ideal = beats + LATENCY
            result.update(
                measure_beats=beats, cycles=cycles, ideal_cycles=ideal, efficiency=ideal / cycles
            )
        result.update(
            vectors=sb.compared,
            mismatches=sb.mismatches,
            errors=sb.errors,
            jobs=job_i,
            rtl_cycles=tb.cycle,
            wall_s=time.perf_counter() - t_start,
            low_rail=int(coverage[0]),
            high_rail=int(coverage[1]),
            padded_jobs=int(coverage[2]),
        )
        save_result(result)
        assert sb.mismatches == 0, "\n".join(sb.errors)

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
        Ho, Wo = job.out_hw
        y = tb.codec["o"].unpack(tb.snk.words)["y"]
        np.savez(
            p["out"],
            y=decode_outputs(y, x.shape[0], x.shape[1], Ho, Wo, rtl.lanes),
            cycles=np.int64(cycles),
        )
        save_result({"windows": len(tb.snk.words), "cycles": cycles})
