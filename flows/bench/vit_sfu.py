"""Benchmark: what the integer special-function unit costs a transformer.

``digits-vit`` on the whole digits test split (360 images) under ``baseline-ftj`` at 1 h
drift, for 5 tile seeds: level 3 with the bit-exact integer SFU (attention's matmuls and
softmax, LayerNorm, GELU: ``models/periphery/sfu.py``) against level 3 with a float SFU
(the same ops in float64 on the same integer inputs, quantized to the same output
formats; ``aimcflow run --sfu float``).  Same chip program for both, so the difference is
the SFU's approximations alone.  Prints per seed and the mean gap with its standard error
(target: at most 0.5 % accuracy).
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.workloads import imported, pretrained

SEEDS = 5
DRIFT_S = 3600.0


def main() -> dict:
    data = load_digits_dataset()
    model = pretrained("digits-vit", data)
    imp = imported(model, data)
    x, y = data.x_test, data.y_test
    rows = []
    for seed in range(SEEDS):
        cfg = load_config("baseline-ftj").model_copy(update={"seed": seed})
        net = convert(imp, cfg, program=False).build(cfg)
        net.program()
        net.drift(DRIFT_S)
        prog = compile_network(net, data.x_train[:512], t_s=DRIFT_S)
        acc = {
            m: float(np.mean(forward_golden(prog, x, sfu=m).argmax(1) == y))
            for m in ("int", "float")
        }
        rows.append({"seed": seed, "analog_float": net.accuracy(x, y), **acc})
        print(
            f"seed {seed}: analog-float {100 * rows[-1]['analog_float']:.2f} %, level 3 int SFU "
            f"{100 * acc['int']:.2f} %, float SFU {100 * acc['float']:.2f} %",
            flush=True,
        )
    gap = np.array([r["float"] - r["int"] for r in rows])
    se = float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0
    print(
        f"float SFU - int SFU: mean {100 * gap.mean():.2f} % +- {100 * se:.2f} % (s.e.), {SEEDS} seeds"
    )
    return {"seeds": rows, "gap_mean": float(gap.mean()), "gap_se": se}
