"""Benchmark: whole-network inference speed at the float, analog-float and analog-golden
levels.

The digits test split (360 images) through digits-mlp and digits-cnn under baseline-ftj:
images per second of the torch float model, of the analog-float network (tiles programmed
and drifted to 1 h once, outside the timing) and of the analog-golden level (integer
management + NMPU golden models; compiling the chip program timed separately), and the
analog-float / float time ratio.
"""

from __future__ import annotations

import time

import torch
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.workloads import pretrained


def _best_of(fn, n: int = 3) -> float:
    fn()  # warm-up: first calls pay for lazy initialisation
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> dict:
    torch.set_num_threads(1)  # one core, like the analog models: a like-for-like ratio
    data = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    x = data.x_test
    xt = torch.from_numpy(x)
    out = {}
    print(
        f"{'model':<12} {'float img/s':>12} {'analog-float img/s':>19} {'ratio':>7} "
        f"{'compile s':>10} {'analog-golden img/s':>20}"
    )
    for arch in ("digits-mlp", "digits-cnn"):
        model = pretrained(arch, data)
        net = convert(model, cfg, program=True)
        net.drift(3600.0)

        def run_float(model=model):
            with torch.no_grad():
                model(xt)

        t_float = _best_of(run_float)
        t_analog = _best_of(lambda net=net: net.forward_float(x))
        t0 = time.perf_counter()
        prog = compile_network(net, data.x_train[:512], t_s=3600.0)
        t_compile = time.perf_counter() - t0
        t_golden = _best_of(lambda prog=prog: forward_golden(prog, x), n=2)
        n = len(x)
        out[arch] = {
            "images": n,
            "float_images_per_s": n / t_float,
            "analog_float_images_per_s": n / t_analog,
            "ratio": t_analog / t_float,
            "compile_s": t_compile,
            "analog_golden_images_per_s": n / t_golden,
        }
        print(
            f"{arch:<12} {n / t_float:>12.0f} {n / t_analog:>19.0f} {t_analog / t_float:>7.1f} "
            f"{t_compile:>10.2f} {n / t_golden:>20.0f}"
        )
    return out


if __name__ == "__main__":
    main()
