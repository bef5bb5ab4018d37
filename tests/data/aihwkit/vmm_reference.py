"""Regenerate ``vmm_pcm.json``: the VMM-error experiment (FTJ thesis §4.2.1) run in IBM's
aihwkit 1.2.0 with its default ``InferenceRPUConfig`` -- the configuration ``configs/pcm.toml``
reproduces.  Not part of the project's run time (aihwkit is not a dependency); run it by
hand in an environment that has aihwkit:

    python tests/data/aihwkit/vmm_reference.py problem.npz vmm_pcm.json 40

``problem.npz`` holds the experiment's W (512, 512) and x (1000, 512), written from the
project's venv with ``w, x = problem(load_config("pcm"), 512, 512, 1000)`` (from
``aimcflow.models.analog.vmm_experiment`` and ``aimcflow.models.config``) and
``np.savez("problem.npz", w=w, x=x)``.
Variants: ``full`` (programming, drift, read noise), ``prog+read`` (drift_scale 0) and
``prog`` (drift_scale 0, read_noise_scale 0); each repeat re-programs a fresh layer.
"""

import json
import sys

import numpy as np
import torch


def main(problem_path: str, out_path: str, repeats: int) -> None:
    import aihwkit
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig

    torch.set_num_threads(1)
    p = np.load(problem_path)
    w, x = p["w"], p["x"]
    xt = torch.tensor(x, dtype=torch.float32)
    y_ideal = x @ w
    drifts = [1.0, 3600.0, 86400.0, 3.15e7]
    variants = {
        "full": {},
        "prog+read": {"drift_scale": 0.0},
        "prog": {"drift_scale": 0.0, "read_noise_scale": 0.0},
    }
    out = {
        "source": f"aihwkit {aihwkit.__version__}, torch {torch.__version__}, "
        "default InferenceRPUConfig, AnalogLinear(512, 512, bias=False)",
        "rows": 512,
        "cols": 512,
        "vectors": int(x.shape[0]),
        "repeats": repeats,
        "drift_s": drifts,
        "variants": {},
    }
    for name, kw in variants.items():
        rpu = InferenceRPUConfig()
        rpu.noise_model = PCMLikeNoiseModel(**kw)
        err = np.zeros((repeats, len(drifts)))
        for r in range(repeats):
            torch.manual_seed(7000 + r)
            layer = AnalogLinear(512, 512, bias=False, rpu_config=rpu)
            layer.set_weights(torch.tensor(w.T, dtype=torch.float32))
            layer.eval()
            layer.program_analog_weights()
            for k, t in enumerate(drifts):
                layer.drift_analog_weights(t)
                with torch.no_grad():
                    y = layer(xt).double().numpy()
                err[r, k] = np.linalg.norm(y - y_ideal) / np.linalg.norm(y_ideal)
        out["variants"][name] = {
            "mean": err.mean(0).tolist(),
            "std": err.std(0, ddof=1).tolist(),
        }
        print(name, np.round(err.mean(0), 5), np.round(err.std(0, ddof=1), 5))
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
