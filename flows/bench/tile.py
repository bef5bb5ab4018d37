"""Benchmark: one 512x512 analog tile, batch 1024, every non-ideality on, against a bare
float32 matmul of the same shape in the same run, single-threaded.

Threads: BLAS and torch are limited to one thread with ``threadpoolctl`` (and
``torch.set_num_threads(1)``) for both sides.  Targets (the tile's speed budget): with every
non-ideality on, within 3x the bare matmul; under ``pcm.toml`` within 1.8x.
Each side is timed by this process's CPU time (``time.process_time``: with one thread it
is the time the work itself took, not the time spent waiting for a core on this shared
machine), minimum of ``REPS`` runs after one warm-up (medians printed too).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from aimcflow.models.analog import fused
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.config import load_config
from threadpoolctl import threadpool_limits

ROWS = COLS = 512
BATCH = 1024
REPS = 15


def _time_s(fn, reps: int = REPS) -> tuple[float, float]:
    """(minimum, median) CPU time of ``fn`` over ``reps`` runs after one warm-up (s)."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return float(np.min(ts)), float(np.median(ts))


def _everything_on(name: str):
    cfg = load_config(name)
    if name == "baseline-ftj":
        # the FTJ tile has no 1/f read noise of its own; switch on every remaining knob:
        # SAR ADC with gain/offset mismatch, drift, compensation, programming, IR drop
        cfg = cfg.replace(
            **{
                "adc.kind": "sar",
                "adc.share": 8,
                "adc.gain_mismatch_sigma": 0.01,
                "adc.offset_mismatch_sigma_lsb": 0.5,
                "noise.read": True,
            }
        )
    return cfg


def _breakdown(tile, x: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """Per-step CPU times (ms, minimum of REPS) of one forward of the bench batch, each
    step called on its own with the tile's own methods on the data the forward would give
    it: where the time of ``forward_float`` goes.  Pass 1 is the screened first pass,
    pass 2 the full pass of the rows it saturates."""

    cfg = tile.cfg
    step = np.float32(tile.input_lsb)
    s = fused.absmax_rows(x)
    steps = {"abs-max (NM)": lambda: fused.absmax_rows(x)}

    def dac_of(rows, scale):
        bufs = [np.empty((rows.size, tile.rows), dt) for dt in (np.float32, np.int8, np.int8)]

        def run():
            return fused.dac(
                x, rows, np.float32(1.0) / scale, step, np.float32(cfg.dac.bound),
                np.float32(tile._dac_cmax), *bufs,
            )  # fmt: skip

        return bufs, run

    rows1 = np.arange(x.shape[0])
    (xq1, c1, a1), dac1 = dac_of(rows1, s)
    l1 = dac1()
    sig1 = tile._sigma32(xq1)
    res = np.zeros((x.shape[0], tile.cols))
    colf = (tile.w_scale * tile.drift_alpha).astype(np.float32)
    steps["pass 1 DAC"] = dac1
    steps["pass 1 noise std"] = lambda: tile._sigma32(xq1)
    q8 = torch.from_numpy(c1)
    steps["pass 1 screen int8 GEMM"] = lambda: torch._int_mm(q8, tile._q8_t)
    steps["pass 1 screen (GEMM + kernel)"] = lambda: tile._screen(c1, l1, images, sig1, 0)
    sure = tile._screen(c1, l1, images, sig1, 0)
    keep = np.nonzero(~sure)[0]
    args1 = (xq1[keep], c1[keep], a1[keep], images[keep], sig1[keep], s[keep], 0, res, keep)
    steps[f"pass 1 full pass ({keep.size} rows left)"] = lambda: tile._full_pass(*args1, colf)
    sat = sure.copy()
    sat[keep] = tile._full_pass(*args1, colf)
    rows2 = np.nonzero(sat)[0]
    s2 = (s[rows2] * np.float32(2.0)).astype(np.float32)
    (xq2, c2, a2), dac2 = dac_of(rows2, s2)
    dac2()
    sig2 = tile._sigma32(xq2)
    steps[f"pass 2 DAC ({rows2.size} rows)"] = dac2
    steps["pass 2 noise std"] = lambda: tile._sigma32(xq2)
    steps["pass 2 float32 GEMM"] = lambda: xq2 @ tile._w32
    if tile._ir_int8 is not None:
        qa, qp = tile._ir_int8[:2]
        ta, tc = torch.from_numpy(a2), torch.from_numpy(c2)
        steps["pass 2 IR-drop int8 GEMMs (2)"] = lambda: (
            torch._int_mm(ta, qa),
            torch._int_mm(tc, qp),
        )
    args2 = (xq2, c2, a2, images[rows2], sig2, s2, 1, res, rows2, colf)
    steps["pass 2 full pass (all of it)"] = lambda: tile._full_pass(*args2)
    return {k: _time_s(f)[0] * 1e3 for k, f in steps.items()}


def main() -> dict:
    torch.set_num_threads(1)
    results = {}
    with threadpool_limits(limits=1):
        r = np.random.default_rng(0)
        w = r.standard_normal((ROWS, COLS))
        w /= np.abs(w).max()
        x = r.uniform(-1, 1, (BATCH, ROWS))
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        images = np.arange(BATCH)
        t_bare, med_bare = _time_s(lambda: x32 @ w32)
        print(
            f"bare float32 matmul {BATCH}x{ROWS} @ {ROWS}x{COLS}: {t_bare * 1e3:.2f} ms "
            f"(median {med_bare * 1e3:.2f}), {BATCH / t_bare:,.0f} MVM/s (1 thread)"
        )
        results["bare_ms"] = t_bare * 1e3
        for name, target in (("baseline-ftj", 3.0), ("pcm", 1.8)):
            cfg = _everything_on(name)
            tile = AnalogTile(w, cfg)
            tile.program()
            tile.drift(3600.0)
            passes = tile.forward_float_stats(x, images)[1]
            t, med = _time_s(lambda tile=tile: tile.forward_float(x, images))
            ratio = t / t_bare
            ok = "meets" if ratio <= target else "MISSES"
            print(
                f"{name:13s} tile: {t * 1e3:7.2f} ms (median {med * 1e3:.2f}), "
                f"{BATCH / t:>10,.0f} MVM/s, "
                f"{ratio:.2f}x bare ({ok} target {target}x); IR drop "
                f"{'on' if tile._ir_on else 'below threshold'}"
                f"{' (int8 products)' if tile._ir_int8 is not None else ''}; "
                f"analog passes per vector "
                f"mean {passes.mean():.3f}"
            )
            results[name] = {
                "ms": t * 1e3,
                "median_ms": med * 1e3,
                "mvm_per_s": BATCH / t,
                "ratio": ratio,
                "target": target,
                "mean_passes": float(passes.mean()),
            }
            if name == "baseline-ftj":
                # where the time goes: the same tile without IR drop (aihwkit's approximation
                # costs two more matrix products per pass) and without bound management
                for label, change in (
                    ("no IR drop", {"tile.ir_drop": 0.0}),
                    ("no IR drop, no BM", {"tile.ir_drop": 0.0, "mgmt.float_bound": "none"}),
                ):
                    t2 = AnalogTile(w, cfg.replace(**change))
                    t2.program()
                    t2.drift(3600.0)
                    tt = _time_s(lambda t2=t2: t2.forward_float(x, images))[0]
                    print(f"  {name} {label:18s}: {tt * 1e3:7.2f} ms, {tt / t_bare:.2f}x bare")
                    results[f"{name} {label}"] = {"ms": tt * 1e3, "ratio": tt / t_bare}
                parts = _breakdown(tile, x, images)
                print(f"  {name} per step (ms, each timed alone):")
                for k, v in parts.items():
                    print(f"    {k:38s} {v:6.2f}")
                results[f"{name} steps_ms"] = parts
    return results


if __name__ == "__main__":
    main()
