"""Speed of the periphery golden models (the network simulator's "analog-golden" level).

Prints vectors per second of ``nmpu`` (V x T x C) and of ``manage`` against the ideal
linear tile (V x R -> C), at the default config's widths on 256 x 256 tiles.
"""

from __future__ import annotations

import time

import numpy as np
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.periphery.mgmt import MgmtParams, ideal_linear_tile, manage
from aimcflow.models.periphery.nmpu import NmpuParams, nmpu


def _best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> dict:
    cfg = AcceleratorConfig()
    rng = np.random.default_rng(0)
    np_ = NmpuParams.from_config(cfg, activation="leaky", out_signed=True)
    V, T, C, R = 2000, 4, 256, 256
    a = rng.integers(-128, 128, (V, T, C))
    e = rng.integers(np_.e_min, np_.e_max + 1, (V, T))
    gain = rng.integers(-(1 << 15), 1 << 15, (T, C))
    offset = rng.integers(-(1 << 20), 1 << 20, (T, C))
    mult = rng.integers(-(1 << 15), 1 << 15, C)
    bias = rng.integers(-1000, 1000, C)
    t_nmpu = _best_of(lambda: nmpu(a, e, gain, offset, mult, bias, np_))

    mp = MgmtParams.from_config(cfg, x_bits=8, x_signed=True)
    x = rng.integers(-128, 128, (V, R)) >> rng.integers(0, 8, (V, 1))
    w = rng.integers(-8, 9, (R, C))
    tile = ideal_linear_tile(w, 6, mp.adc_bits)
    out = {}
    t_mgmt = _best_of(lambda: out.update(it=manage(x, tile, mp)[2]))
    # the ideal tile's int64 matmul dominates; time one pass of it alone for comparison
    d = rng.integers(-128, 128, (V, R))
    t_tile = _best_of(lambda: tile(d, np.zeros(V, np.int64), np.ones(V, bool)))

    res = {
        "nmpu_vectors_per_s": V / t_nmpu,
        "nmpu_shape": [V, T, C],
        "mgmt_vectors_per_s": V / t_mgmt,
        "mgmt_shape": [V, R, C],
        "mgmt_mean_iterations": float(out["it"].mean()),
        "ideal_tile_vectors_per_s": V / t_tile,
    }
    print(f"nmpu   golden: {res['nmpu_vectors_per_s']:12.0f} vectors/s  (V,T,C) = {V},{T},{C}")
    print(
        f"manage golden: {res['mgmt_vectors_per_s']:12.0f} vectors/s  (V,R,C) = {V},{R},{C}"
        f"  mean bound-management retries {res['mgmt_mean_iterations']:.2f}"
    )
    print(f"(ideal linear tile alone, one pass: {res['ideal_tile_vectors_per_s']:.0f} vectors/s)")
    return res


if __name__ == "__main__":
    main()
