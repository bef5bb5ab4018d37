"""Benchmark: the pulsed (stochastic, coincidence-counting) update of a 512 x 512 array at
BL 31 against a dense float outer-product update of the same shape, in the same run.

Reported as crosspoint updates per second (R * C * updates / wall time):

* ``float_outer``: ``W += lr * outer(x, d)`` (numpy, float64).
* ``pulsed_apply``: coincidence counts (one float32 matmul over the BL slots) plus the
  pulse-by-pulse device update, from given pulse trains.
* ``pulsed_total``: the same plus pulse-train generation by the bit-exact SPG golden model
  (1024 lanes x 31 slots) and the update-management mapping.
"""

from __future__ import annotations

import time

import numpy as np
from aimcflow.models.analog.pulsed.devices import PulsedArray, get_pulsed_device
from aimcflow.models.analog.pulsed.update import apply_update
from aimcflow.models.periphery.spg import PulseGenerator, SpgParams
from aimcflow.models.training.management import UpdateSettings, spg_request

R = C = 512
BL = 31
LR = 0.1


def _rate(fn, updates: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(updates):
        fn()
    return R * C * updates / (time.perf_counter() - t0)


def _pulsed_rates(name: str, x: np.ndarray, d: np.ndarray) -> dict:
    p = SpgParams()
    dev = get_pulsed_device(name)
    settings = UpdateSettings(desired_bl=BL)
    req = spg_request(x, d, LR, dev.dw_min, settings, p)
    gen = PulseGenerator(R, C, seed=1, params=p)
    out = gen.generate(req.x[None], req.d[None], [req.gain_x], [req.gain_d], req.bl)
    arr = PulsedArray(dev, R, C, seed=0, layer=0)
    step = [0]

    def pulsed_apply():
        step[0] += 1
        apply_update(
            arr, out.row_pulses[0], out.col_pulses[0], out.row_sign[0], out.col_sign[0], step[0]
        )

    def pulsed_total():
        step[0] += 1
        r = spg_request(x, d, LR, dev.dw_min, settings, p)
        o = gen.generate(r.x[None], r.d[None], [r.gain_x], [r.gain_d], r.bl)
        apply_update(arr, o.row_pulses[0], o.col_pulses[0], o.row_sign[0], o.col_sign[0], step[0])

    counts = out.row_pulses[0].T.astype(np.int64) @ out.col_pulses[0].astype(np.int64)
    return {
        "bl": int(req.bl),
        "mean_coincidences": float(counts.mean()),
        "pulsed_apply_per_s": _rate(pulsed_apply, 10),
        "pulsed_total_per_s": _rate(pulsed_total, 10),
    }


def main() -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, R)
    d = rng.uniform(-1, 1, C)
    results: dict = {"rows": R, "cols": C, "bl": BL}

    w = np.zeros((R, C))

    def float_update():
        w.__iadd__(LR * np.outer(x, d))

    results["float_outer_per_s"] = _rate(float_update, 50)

    for name in ("ideal", "ftj-constrained"):
        results[name] = _pulsed_rates(name, x, d)

    f = results["float_outer_per_s"]
    print(f"512x512 update, BL {BL}, crosspoint updates per second")
    print(f"  float outer product       {f:12.3e}")
    for name in ("ideal", "ftj-constrained"):
        r = results[name]
        print(
            f"  pulsed {name:<16} apply {r['pulsed_apply_per_s']:12.3e}  "
            f"(+SPG golden) {r['pulsed_total_per_s']:12.3e}  "
            f"mean coincidences {r['mean_coincidences']:.2f}  "
            f"float/pulsed {f / r['pulsed_apply_per_s']:.1f}x"
        )
    return results


if __name__ == "__main__":
    main()
