"""Benchmark: one 512x512 analog tile, batch 1024, every non-ideality on, against a bare
float32 matmul of the same shape in the same run, single-threaded.

Threads: BLAS and torch are limited to one thread with ``threadpoolctl`` (and
``torch.set_num_threads(1)``) for both sides.  Targets (issue 2 §7): with every
non-ideality on, within 3x the bare matmul; under ``pcm.toml`` within 1.8x.
Each side is timed by this process's CPU time (``time.process_time``: with one thread it
is the time the work itself took, not the time spent waiting for a core on this shared
machine), minimum of ``REPS`` runs after one warm-up (medians printed too).
"""

from __future__ import annotations

import time

import numpy as np

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
    from aimcflow.models.config import load_config

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


def main() -> dict:
    import torch
    from aimcflow.models.analog.tile import AnalogTile
    from threadpoolctl import threadpool_limits

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
                f"{' (bfloat16 products)' if tile._ir_bf16 is not None else ''}; "
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
    return results


if __name__ == "__main__":
    main()
