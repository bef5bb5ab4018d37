"""``aimcflow fit``: train a built-in architecture's float model on a data set and export it.

``aimcflow fit --model ARCH [--data PATH] --epochs N [--out DIR]`` trains ``ARCH``
(Adam, cross-entropy, deterministic: one thread, seed 0; the workload's recipe for the
batch size, learning rate and weight decay) on the training split and writes to ``--out``
(default ``out/fit/``):

* ``model.pt2``: the trained model as a ``torch.export`` program (graph and weights, no
  pickled code), ready for ``aimcflow run --model DIR/model.pt2 --data PATH``;
* ``results.json``: ``model``, ``data``, ``epochs``, ``test_accuracy`` (float model on
  the whole test split), ``train_loss`` per epoch, ``input_shape``, ``classes``,
  ``train_s``, ``wall_s``.

So a user goes from a data set to a verified chip in three commands: ``fit``, ``run``
and ``sweep``.  Bad data or arguments exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from aimcflow.flows.args import add_data_args, add_out_arg, bounded_int, load_data
from aimcflow.flows.io import prepare_out_dir, shown, write_json_atomic
from aimcflow.models.io import atomic_path
from aimcflow.models.nn.archs import ARCHS, build

MAX_EPOCHS = 10_000


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
    add_out_arg(p, "fit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch and numpy (kept out of ``aimcflow --help``)
    import torch
    from aimcflow.models.nn.importer import export_module, import_program
    from aimcflow.models.nn.workloads import RECIPES, accuracy_float, check_output, train

    t0 = time.perf_counter()
    data = load_data(args)
    build(args.model, data.input_shape, data.n_classes)  # a shape that does not fit: exit 2
    recipe = dataclasses.replace(RECIPES[args.model], epochs=args.epochs)
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
            "test_accuracy": acc,
            "train_loss": losses,
            "input_shape": list(data.input_shape),
            "classes": data.n_classes,
            "recipe": dataclasses.asdict(recipe),
            "train_s": train_s,
            "wall_s": time.perf_counter() - t0,
        },
    )
    print(
        f"test accuracy {100 * acc:.2f} %; wrote {shown(out) / 'model.pt2'} and "
        f"{shown(out) / 'results.json'}"
    )
    return 0
