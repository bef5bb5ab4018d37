"""``aimcflow fit``: train a built-in architecture's float model on a data set and export it.

``aimcflow fit --model ARCH [--data PATH] --epochs N [--out DIR]`` trains ``ARCH``
(Adam, cross-entropy, deterministic: one thread, seed ``--seed``, default 0; the workload's recipe for the
batch size, learning rate and weight decay) on the training split and writes to ``--out``
(default ``out/fit/``):

* ``model.pt2``: the trained model as a ``torch.export`` program (graph and weights, no
  pickled code), ready for ``aimcflow run --model DIR/model.pt2 --data PATH``;
* ``results.json``: ``model``, ``data``, ``epochs``, ``test_accuracy`` (float model on
  the whole test split), ``train_loss`` per epoch, ``input_shape``, ``classes``,
  ``train_s``, ``wall_s``.

So a user goes from a data set to a verified chip in three commands: ``fit``, ``run``
and ``sweep``.  Bad data or arguments exit with status 2 before anything is written.

``--hwa CFG`` adds hardware-aware training (:mod:`aimcflow.models.training.hwa`): after
the ``--epochs`` of float training, ``--hwa-epochs`` more (default: as many) run with the
forward non-idealities of the accelerator config ``CFG`` (a preset or TOML file) injected
in every Linear and Conv2d: the device's programming noise on the weights (one draw per
mini-batch), output and short-term weight noise, DAC and ADC quantization and clipping
(straight-through gradients), bound management, and the weights clipped at
``--hwa-clip`` standard deviations of their layer after every step.  ``--hwa-noise-scale``
multiplies the injected noise (the FTJ thesis trained at 3x).  ``results.json`` then also
holds ``hwa`` (config, its digest, epochs, noise scale, clip, the float-only accuracy
before HWA) and ``train_loss`` covers both phases.  The exported model is a plain float
model: evaluate it with ``aimcflow run --model DIR/model.pt2 --config CFG``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from aimcflow.flows.args import (
    add_data_args,
    add_out_arg,
    bounded_float,
    bounded_int,
    load_data,
)
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.errors import UserInputError
from aimcflow.models.io import atomic_path
from aimcflow.models.nn.archs import ARCHS, build

MAX_EPOCHS = 10_000
MAX_SEED = 2**31 - 1
# HWA bounds (models/training/hwa.py holds the same numbers; it imports torch, so the
# parser, which must stay light for ``aimcflow --help``, keeps its own copy checked by
# tests/test_hwa.py)
MAX_NOISE_SCALE = 100.0
MAX_CLIP_SIGMA = 100.0
DEFAULT_CLIP_SIGMA = 2.5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="train a built-in architecture on your data and export it as model.pt2",
        description="Train a built-in architecture's float model on a data set (default "
        "digits) and save it as a torch.export program (model.pt2) with its test accuracy "
        "in results.json.",
    )
    p.add_argument(
        "--model",
        required=True,
        choices=ARCHS,
        metavar="ARCH",
        help=f"architecture to train: {', '.join(ARCHS)}",
    )
    add_data_args(p)
    p.add_argument(
        "--epochs",
        type=bounded_int(1, MAX_EPOCHS),
        required=True,
        metavar="N",
        help=f"training epochs, 1 .. {MAX_EPOCHS}",
    )
    p.add_argument(
        "--seed",
        type=bounded_int(0, MAX_SEED),
        default=0,
        metavar="S",
        help=f"training seed (initial weights, batch order, HWA noise), 0 .. {MAX_SEED} "
        "(default 0)",
    )
    p.add_argument(
        "--hwa",
        default=None,
        metavar="CFG",
        help="hardware-aware training for the accelerator config CFG (a TOML file or a "
        "preset: baseline-ftj, pcm, ideal) after the float epochs",
    )
    p.add_argument(
        "--hwa-epochs",
        type=bounded_int(1, MAX_EPOCHS),
        default=None,
        metavar="N",
        help=f"hardware-aware epochs, 1 .. {MAX_EPOCHS} (default: --epochs); needs --hwa",
    )
    p.add_argument(
        "--hwa-noise-scale",
        type=bounded_float(0.0, MAX_NOISE_SCALE),
        default=None,
        metavar="X",
        help=f"multiplies the injected noise, 0 .. {MAX_NOISE_SCALE:g} (default 1); needs --hwa",
    )
    p.add_argument(
        "--hwa-clip",
        type=bounded_float(0.0, MAX_CLIP_SIGMA),
        default=None,
        metavar="SIGMA",
        help="clip each layer's weights at SIGMA standard deviations after every step, "
        f"0 (off) .. {MAX_CLIP_SIGMA:g} (default {DEFAULT_CLIP_SIGMA}); needs --hwa",
    )
    add_out_arg(p, "fit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch and numpy (kept out of ``aimcflow --help``)
    import torch
    from aimcflow.models.nn.importer import export_module, import_program
    from aimcflow.models.nn.workloads import RECIPES, accuracy_float, check_output, train

    t0 = time.perf_counter()
    hwa_opts = {
        "--hwa-epochs": args.hwa_epochs,
        "--hwa-noise-scale": args.hwa_noise_scale,
        "--hwa-clip": args.hwa_clip,
    }
    if args.hwa is None and any(v is not None for v in hwa_opts.values()):
        given = ", ".join(k for k, v in hwa_opts.items() if v is not None)
        raise UserInputError(f"{given}: only with --hwa CFG (hardware-aware training)")
    spec = None
    if args.hwa is not None:
        # lazy: torch (kept out of ``aimcflow --help``)
        from aimcflow.models.config import load_config
        from aimcflow.models.training.hwa import HwaSpec

        spec = HwaSpec(
            load_config(args.hwa),
            noise_scale=1.0 if args.hwa_noise_scale is None else args.hwa_noise_scale,
            clip_sigma=DEFAULT_CLIP_SIGMA if args.hwa_clip is None else args.hwa_clip,
        )
    data = load_data(args)
    build(args.model, data.input_shape, data.n_classes)  # a shape that does not fit: exit 2
    recipe = dataclasses.replace(RECIPES[args.model], epochs=args.epochs, seed=args.seed)
    hwa_epochs = args.hwa_epochs or args.epochs
    out = prepare_out_dir(args.out, "fit", args.force)
    print(
        f"fit {args.model} on {data.name}: {len(data.y_train)} training / "
        f"{len(data.y_test)} test images of shape {data.input_shape}, {data.n_classes} "
        f"classes, {args.epochs} epochs",
        flush=True,
    )
    losses: list[float] = []

    def report(epoch: int, loss: float) -> None:
        losses.append(loss)
        print(f"epoch {epoch:>4}  loss {loss:.4f}  {time.perf_counter() - t0:7.1f} s", flush=True)

    t_train = time.perf_counter()
    model = train(recipe, data, on_epoch=report)
    hwa = None
    if spec is not None:
        from aimcflow.models.training.hwa import finetune  # lazy: torch

        acc_before = accuracy_float(model, data.x_test, data.y_test)
        print(
            f"float test accuracy {100 * acc_before:.2f} %; hardware-aware training for "
            f"{spec.cfg.name} ({hwa_epochs} epochs, noise x{spec.noise_scale:g}, weight clip "
            f"{spec.clip_sigma:g} sigma)",
            flush=True,
        )

        def report_hwa(epoch: int, loss: float) -> None:
            report(args.epochs + epoch, loss)

        model = finetune(
            model, dataclasses.replace(recipe, epochs=hwa_epochs), data, spec, report_hwa
        )
        hwa = {
            "config": spec.cfg.name,
            "config_digest": spec.cfg.digest(),
            "epochs": hwa_epochs,
            "noise_scale": spec.noise_scale,
            "clip_sigma": spec.clip_sigma,
            "float_accuracy_before": acc_before,
        }
    train_s = time.perf_counter() - t_train
    acc = accuracy_float(model, data.x_test, data.y_test)
    ep = export_module(model, data.input_shape)
    import_program(ep)  # the exported graph must be one aimcflow can map
    check_output(model, data)
    with atomic_path(out / "model.pt2", suffix=".pt2") as tmp:
        torch.export.save(ep, tmp)
    write_json_atomic(
        out / "results.json",
        {
            "model": args.model,
            "data": data.name,
            "epochs": args.epochs,
            "seed": args.seed,
            "test_accuracy": acc,
            "train_loss": losses,
            "input_shape": list(data.input_shape),
            "classes": data.n_classes,
            "recipe": dataclasses.asdict(recipe),
            "hwa": hwa,
            "train_s": train_s,
            "wall_s": time.perf_counter() - t0,
        },
    )
    print(
        f"test accuracy {100 * acc:.2f} %; wrote {shown(out) / 'model.pt2'} and "
        f"{shown(out) / 'results.json'}"
    )
    return 0
