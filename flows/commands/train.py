"""``aimcflow train``: train the digits MLP in place with pulsed updates.

The analog network (a pulsed device preset, analog SGD or Tiki-Taka v2, pulse trains from
the SPG golden model) and a float-SGD twin with the same initial weights, data order and
hyper-parameters are trained side by side; test accuracy is printed per epoch.
``--rtl-steps N`` then repeats the first N update steps with the Verilated pulse
generator producing the last layer's pulse trains and checks that every weight equals the
golden path's bit for bit.  ``results.json`` holds the SPEC.md keys (``device``, ``algo``,
``epochs``, ``rtl_steps``, ``rtl_mismatches``) plus the hyper-parameters.
"""

from __future__ import annotations

import argparse
import time

from aimcflow.flows.args import add_config_arg, add_out_arg, bounded_int
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.errors import UserInputError

MAX_EPOCHS = 1000
MAX_HIDDEN = 2036  # the pulse generator's lanes: hidden units + bias row + 10 outputs <= 2047
MAX_RTL_STEPS = 20_000  # each step is simulated cycle by cycle: about an hour
MAX_LR = 100.0  # beyond it SGD on [0, 1] inputs only overflows

DEVICES = ("ftj-extreme", "ftj-balanced", "ftj-constrained", "ecram-protonic", "reram", "ideal")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v <= MAX_LR:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a number in (0, {MAX_LR:g}]")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the digits MLP with pulsed in-memory updates",
        description="Train the digits MLP with pulsed updates on a device "
        "preset beside float SGD; optionally prove N steps on the Verilated SPG.",
    )
    p.add_argument(
        "--device",
        required=True,
        choices=DEVICES,
        metavar="PRESET",
        help=f"pulsed device preset: {', '.join(DEVICES)}",
    )
    p.add_argument(
        "--algo",
        default="sgd",
        choices=("sgd", "ttv2"),
        help="analog SGD or Tiki-Taka v2 (default sgd)",
    )
    p.add_argument(
        "--epochs",
        type=bounded_int(1, MAX_EPOCHS),
        default=5,
        metavar="N",
        help=f"training epochs: 1..{MAX_EPOCHS} (default 5)",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=0.1,
        metavar="LR",
        help=f"learning rate of both the analog and the float run: (0, {MAX_LR:g}] (default 0.1)",
    )
    p.add_argument(
        "--hidden",
        type=bounded_int(1, MAX_HIDDEN),
        default=32,
        metavar="N",
        help=f"hidden units: 1..{MAX_HIDDEN} (default 32)",
    )
    p.add_argument(
        "--bl",
        type=int,
        default=None,
        metavar="BL",
        help="desired pulse-train length (aihwkit desired_BL), 1..spg.max_bl; BL "
        "management picks ceil(lr*max|x|*max|d|/dw_min) up to it "
        "(default: spg.max_bl, so BL management alone decides)",
    )
    p.add_argument(
        "--rtl-steps",
        type=bounded_int(0, MAX_RTL_STEPS),
        default=0,
        metavar="N",
        help="repeat the first N steps with the Verilated SPG on the last layer "
        f"and compare weights bit for bit: 0..{MAX_RTL_STEPS} (default 0 = off)",
    )
    add_config_arg(p)
    add_out_arg(p, "train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: pydantic, torch, numpy (kept out of ``aimcflow --help``)
    from aimcflow.models.config import load_config
    from aimcflow.models.nn.data import load_digits_dataset
    from aimcflow.models.periphery.spg import SpgParams
    from aimcflow.models.training.mlp import TrainSettings, train

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    spg = SpgParams.from_config(cfg)
    if args.bl is None:
        args.bl = spg.max_bl
    if not 1 <= args.bl <= spg.max_bl:
        raise UserInputError(
            f"--bl {args.bl} is out of range; allowed: 1 .. {spg.max_bl} (spg.max_bl of the config)"
        )
    settings = TrainSettings(
        hidden=args.hidden, lr=args.lr, seed=cfg.seed % (1 << 32), desired_bl=args.bl, spg=spg
    )
    out = prepare_out_dir(args.out, "train", args.force)
    data = load_digits_dataset()

    print(
        f"digits MLP 64-{args.hidden}-10, device {args.device}, {args.algo}, lr {args.lr}, "
        f"desired BL {args.bl}, {len(data.y_train)} training / {len(data.y_test)} test images"
    )
    print(f"{'epoch':>5}  {'analog':>8}  {'float SGD':>9}  {'time':>7}")

    def report(row: dict) -> None:
        print(
            f"{row['epoch']:>5}  {row['accuracy']:>8.2%}  {row['float_accuracy']:>9.2%}  "
            f"{time.perf_counter() - t0:>6.1f}s",
            flush=True,
        )

    rows = train(data, settings, args.device, args.algo, args.epochs, report)

    rtl = None
    if args.rtl_steps:
        # lazy: amaranth (kept out of ``aimcflow --help``)
        from aimcflow.cosim.benches.spg_train import run_rtl_steps

        print(
            f"RTL: {args.rtl_steps} update steps with the Verilated SPG on the last layer ...",
            flush=True,
        )
        rtl = run_rtl_steps(data, settings, args.device, args.algo, args.rtl_steps)
        print(
            f"RTL: {rtl['rtl_updates']} pulse updates, {rtl['pulse_mismatches']} differing "
            f"pulse trains, {rtl['weight_mismatches']} of {rtl['weights_compared']} weights "
            f"differ from the golden path (build {rtl['build_s']:.1f} s, "
            f"simulation {rtl['sim_wall_s']:.1f} s)"
        )

    mismatches = 0 if rtl is None else rtl["weight_mismatches"] + rtl["pulse_mismatches"]
    write_json_atomic(
        out / "results.json",
        {
            "device": args.device,
            "algo": args.algo,
            "epochs": rows,
            "rtl_steps": args.rtl_steps,
            "rtl_mismatches": mismatches,
            "rtl": rtl,
            "lr": args.lr,
            "hidden": args.hidden,
            "desired_bl": args.bl,
            "config": cfg.name,
            "wall_s": time.perf_counter() - t0,
        },
    )
    print(f"wrote {shown(out) / 'results.json'}")
    return 1 if mismatches else 0
