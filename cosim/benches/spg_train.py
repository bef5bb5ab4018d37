"""Training steps of the digits MLP whose last layer takes its pulse trains from the
Verilated SPG: the cocotb half of ``aimcflow train --rtl-steps N``.

The bench runs the network's own training loop (``models/training/mlp.py``) inside the
simulator: for each step it computes the forward/backward pass, asks the golden SPG for
the first layer's pulse trains and the DUT for the last layer's (one update = BL slots on
the DUT's output stream, random backpressure), applies them, and at the end writes every
layer's weights.  :func:`run_rtl_steps` compares them bit for bit with the golden path
(the same steps with the golden SPG everywhere).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import cocotb
import numpy as np
from aimcflow.cosim.benches import spg as spg_bench
from aimcflow.cosim.runner import load_params, save_result
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.periphery import spg as golden
from aimcflow.models.training.layers import layer_spg_seed
from aimcflow.models.training.mlp import Mlp, TrainSettings, golden_steps, sample_at

MODULE = "aimcflow.cosim.benches.spg_train"


def _settings_to_json(s: TrainSettings) -> dict:
    d = asdict(s)
    d["spg"] = asdict(s.spg)
    return d


def _settings_from_json(d: dict) -> TrainSettings:
    d = dict(d)
    d["spg"] = golden.SpgParams(**d["spg"])
    return TrainSettings(**d)


def last_layer_params(data, settings: TrainSettings):
    """SPG lanes of the last layer: hidden units + the bias row, and the classes."""
    return spg_bench.rtl_params(settings.hidden + 1, data.n_classes, settings.spg)


def run_rtl_steps(
    data, settings: TrainSettings, device: str, algo: str, steps: int, p_ready: float = 0.8
) -> dict:
    """Run ``steps`` steps with the Verilated SPG on the last layer and the same steps on
    the golden path; returns counts of differing weights and pulse trains and the time."""
    params = last_layer_params(data, settings)
    build = spg_bench.build_spg(params)
    with tempfile.TemporaryDirectory(prefix="spg-train-") as tmp:
        out = Path(tmp) / "weights.npz"
        res = build.run(
            MODULE,
            {
                "settings": _settings_to_json(settings),
                "device": device,
                "algo": algo,
                "steps": steps,
                "p_ready": p_ready,
                "out_npz": str(out),
            },
            testcase="train_last_layer",
        )
        with np.load(out) as z:
            rtl_w = [z[f"w{k}"] for k in range(len(z.files))]
    gold_w = golden_steps(data, settings, device, algo, steps).weights()
    weight_mismatches = sum(
        int(np.count_nonzero(a.view(np.int64) != b.view(np.int64)))
        for a, b in zip(rtl_w, gold_w, strict=True)
    )
    return {
        "steps": steps,
        "weight_mismatches": weight_mismatches,
        "pulse_mismatches": int(res.result["pulse_mismatches"]),
        "rtl_updates": int(res.result["rtl_updates"]),
        "weights_compared": sum(w.size for w in gold_w),
        "build_s": build.build_s,
        "sim_wall_s": res.wall_s,
    }


# ---------------------------------------------------------------- cocotb side


@cocotb.test()
async def train_last_layer(dut):
    p = load_params()
    s = _settings_from_json(p["settings"])
    data = load_digits_dataset()
    net = Mlp(data.n_features, data.n_classes, s, p["device"], p["algo"])
    params = last_layer_params(data, s)
    tb = spg_bench.SpgTB(dut, params, s.seed + 1, 1.0, float(p["p_ready"]))
    tb.start_clock()
    await tb.reset()
    tb.seed_src.send([layer_spg_seed(s.seed, 1)])
    await tb.run(lambda: tb.seed_src.idle, max_cycles=1000)
    n = len(data.y_train)
    pulse_mismatches = rtl_updates = 0
    for step in range(int(p["steps"])):
        i = sample_at(s.seed, step, n)
        reqs = net.requests(data.x_train[i], int(data.y_train[i]))
        outs = net.golden_outputs(reqs)  # layer 1's golden trains: the shadow check
        req = reqs[1]
        if req is not None:
            start = len(tb.snk.words)
            tb.upd_src.send(
                tb.upd_codec.pack(
                    {
                        "x": req.x[None],
                        "d": req.d[None],
                        "gain_x": np.array([req.gain_x]),
                        "gain_d": np.array([req.gain_d]),
                        "bl": np.array([req.bl]),
                        "deterministic": np.zeros(1, np.int64),
                    },
                    1,
                )
            )
            await tb.run(
                lambda: len(tb.snk.words) >= start + req.bl,  # noqa: B023
                max_cycles=100 * req.bl + 100,
            )
            sl = spg_bench._unpack_slots(params, tb.snk.words[start:])
            rtl = golden.SpgOutput(
                sl["row"][None],
                sl["col"][None],
                np.where(sl["row_neg"][:1] == 1, -1, 1),
                np.where(sl["col_neg"][:1] == 1, -1, 1),
            )
            g = outs[1]
            pulse_mismatches += int(
                not (
                    np.array_equal(rtl.row_pulses, g.row_pulses)
                    and np.array_equal(rtl.col_pulses, g.col_pulses)
                    and np.array_equal(rtl.row_sign, g.row_sign)
                    and np.array_equal(rtl.col_sign, g.col_sign)
                )
            )
            outs[1] = rtl  # the network trains on what the RTL produced
            rtl_updates += 1
        net.apply(reqs, outs, step)
    np.savez(p["out_npz"], **{f"w{k}": w for k, w in enumerate(net.weights())})
    save_result({"pulse_mismatches": pulse_mismatches, "rtl_updates": rtl_updates})
