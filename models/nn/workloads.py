"""The built-in workloads (:mod:`aimcflow.models.nn.archs`), trained and cached, and
users' model files.

Training is deterministic (``torch.manual_seed``, one thread) and cached under
``<cache>/models/<name>-<recipe hash>.pt``, where the recipe hash covers the
architecture, every hyper-parameter and a digest of the training data.

User models (``--model PATH``), read without ever unpickling code:

* a ``.pt2`` archive written by ``torch.export.save`` (graph and weights):
  :func:`aimcflow.models.nn.importer.load_pt2`;
* a state dict (``torch.save(model.state_dict(), path)``, read with
  ``weights_only=True``) of a built-in architecture, named by ``--arch NAME`` or else
  recognised by its parameter names and shapes.

A whole pickled module (``torch.save(model, path)``) is refused: unpickling it would run
code from the file.  The message says how to export the model instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.io import atomic_path, cache_dir
from aimcflow.models.nn.archs import ARCHS, build
from aimcflow.models.nn.data import Dataset
from aimcflow.models.nn.importer import (
    fixed_batch_module,
    import_model,
    input_nodes,
    load_pt2,
)

WORKLOADS = ARCHS


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained model; its hash keys the weights cache."""

    arch: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int = 0


RECIPES = {
    "digits-mlp": Recipe("digits-mlp", epochs=60, batch_size=64, lr=2e-3, weight_decay=1e-4),
    "digits-cnn": Recipe("digits-cnn", epochs=30, batch_size=64, lr=3e-3, weight_decay=1e-4),
    "digits-resnet": Recipe("digits-resnet", epochs=20, batch_size=64, lr=3e-3, weight_decay=1e-4),
    "digits-vit": Recipe("digits-vit", epochs=80, batch_size=32, lr=1e-3, weight_decay=1e-4),
    "resnet20": Recipe("resnet20", epochs=30, batch_size=128, lr=2e-3, weight_decay=1e-4),
}


def _data_digest(data: Dataset) -> str:
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def recipe_hash(recipe: Recipe, data: Dataset) -> str:
    blob = json.dumps(
        {
            "recipe": asdict(recipe),
            "data": _data_digest(data),
            "features": data.n_features if len(data.input_shape) == 1 else list(data.input_shape),
            "classes": data.n_classes,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(recipe: Recipe, data: Dataset, on_epoch=None, *, model=None, after_step=None):
    """Train ``recipe.arch`` on ``data`` deterministically (Adam, cross-entropy); eval mode.
    ``on_epoch(epoch, loss)`` is called after every epoch (mean training loss).
    ``model``: continue training this module (default: a fresh ``recipe.arch``);
    ``after_step(model)`` runs after every optimizer step (e.g. HWA weight clipping)."""
    # lazy: torch (~2 s)
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-reproducible and polite on a shared machine
    try:
        torch.manual_seed(recipe.seed)
        if model is None:
            model = build(recipe.arch, data.input_shape, data.n_classes)
        x = torch.from_numpy(data.x_train)
        y = torch.from_numpy(data.y_train)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for epoch in range(recipe.epochs):
            perm = torch.randperm(len(x), generator=gen)
            total = 0.0
            for i in range(0, len(x), recipe.batch_size):
                idx = perm[i : i + recipe.batch_size]
                opt.zero_grad()
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                if after_step is not None:
                    after_step(model)
                total += float(loss.detach()) * len(idx)
            if on_epoch is not None:
                on_epoch(epoch + 1, total / len(x))
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def pretrained(arch: str, data: Dataset, *, retrain: bool = False):
    """The trained workload ``arch``: from the cache if its recipe hash is there, else trained
    now and cached (written atomically)."""
    # lazy: torch (~2 s)
    import torch

    if arch not in RECIPES:
        build(arch)  # raises the UserInputError naming the allowed workloads
    recipe = RECIPES[arch]
    path = cache_dir() / "models" / f"{arch}-{recipe_hash(recipe, data)}.pt"
    model = build(arch, data.input_shape, data.n_classes)
    if path.is_file() and not retrain:
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = train(recipe, data)

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    return model


def _matches(state: dict, arch: str, data: Dataset) -> bool:
    ref = build(arch, data.input_shape, data.n_classes).state_dict()
    return set(ref) == set(state) and all(
        tuple(getattr(state[k], "shape", ())) == tuple(v.shape) for k, v in ref.items()
    )


EXPORT_HINT = (
    "export it instead: torch.export.save(torch.export.export(model.eval(), "
    "(example_input,)), 'model.pt2'), or save torch.save(model.state_dict(), path) of a "
    "built-in architecture and give --arch NAME (" + ", ".join(WORKLOADS) + ")"
)


def _is_pt2(p: Path) -> bool:
    """A torch.export archive (a zip holding ``archive_format`` = pt2) rather than a
    torch.save file (also a zip, holding ``data.pkl``)."""
    try:
        with zipfile.ZipFile(p) as z:
            fmt = [
                n for n in z.namelist() if n.endswith("/archive_format") or n == "archive_format"
            ]
            return bool(fmt) and z.read(fmt[0]).strip() == b"pt2"
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def _check_shape(p: Path, model_shape: tuple, data: Dataset) -> None:
    if tuple(model_shape) != tuple(data.input_shape):
        raise UserInputError(
            f"model '{p}' takes images of shape {tuple(model_shape)}, the data has "
            f"{tuple(data.input_shape)}; give data of the shape the model was exported for"
        )


def load_user_model(path: str | Path, data: Dataset, arch: str | None = None):
    """A user's model file (see the module docstring for the accepted forms), as an
    eval-mode torch module."""

    # lazy: torch (~2 s)
    import torch

    p = Path(path)
    if not p.is_file():
        raise UserInputError(
            f"model '{p}': no such file; give {', '.join(WORKLOADS)}, a .pt2 "
            "(torch.export.save) or a state dict with --arch"
        )
    if _is_pt2(p):
        if arch is not None:
            raise UserInputError(
                f"--arch {arch}: a .pt2 holds its own graph; give --arch only with a state dict"
            )
        ep = load_pt2(p)
        inp = input_nodes(ep)
        shape = tuple(int(s) for s in inp[0].meta["val"].shape[1:]) if len(inp) == 1 else ()
        _check_shape(p, shape, data)
        model = fixed_batch_module(ep)
        model.aimcflow_program = ep  # the importer reads the graph, not a re-export
        return model
    try:  # tensors and containers only: unpickling arbitrary objects runs code from the file
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # not a pickle that names classes: not a model file
            raise UserInputError(
                f"model '{p}': not a torch model file (torch.load cannot read it); {EXPORT_HINT}"
            ) from None
        m = re.search(r"GLOBAL ([\w.]+)", str(exc))
        raise UserInputError(
            f"model '{p}': holds {m.group(1) if m else 'a Python object'}, a pickled object "
            "(a whole pickled module is one: torch.save(model)) which cannot be loaded without "
            f"running code from the file; aimcflow never does: {EXPORT_HINT}"
        ) from None
    except Exception:  # noqa: BLE001 -- any unreadable file is a bad model file
        raise UserInputError(
            f"model '{p}': not a torch model file (neither a .pt2 archive nor a "
            f"torch.save file); {EXPORT_HINT}"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserInputError(
            f"model '{p}': holds a {type(obj).__name__}, not a state dict of tensors; {EXPORT_HINT}"
        )
    candidates = [arch] if arch is not None else list(WORKLOADS)
    for a in candidates:
        if a not in WORKLOADS:
            build(a)  # raises the UserInputError naming the allowed architectures
        try:
            ok = _matches(obj, a, data)
        except UserInputError:
            if arch is not None:
                raise
            continue
        if ok:
            model = build(a, data.input_shape, data.n_classes)
            model.load_state_dict(obj)
            return model.eval()
    what = f"--arch {arch}" if arch is not None else " nor ".join(WORKLOADS)
    raise UserInputError(
        f"model '{p}': state dict does not match {what} for images of shape "
        f"{tuple(data.input_shape)} and {data.n_classes} classes; {EXPORT_HINT}"
    )


def check_model_spec(spec: str | None) -> str:
    """``spec`` checked without loading anything: a workload name (``None``: the default
    ``digits-mlp``) or something that names a file; else a UserInputError listing the
    allowed names.  Whether the file exists and holds a model is left to
    :func:`load_user_model`."""
    if spec is None:
        return "digits-mlp"
    if spec in WORKLOADS:
        return spec
    looks_like_path = (
        os.sep in spec or spec.endswith((".pt", ".pth", ".pt2")) or Path(spec).exists()
    )
    if not looks_like_path:
        raise UserInputError(
            f"unknown model '{spec}'; allowed: {', '.join(WORKLOADS)} "
            "or a path to a model file (.pt2, or a state dict with --arch)"
        )
    return str(spec)


def get_model(spec: str | None, data: Dataset, arch: str | None = None):
    """``spec`` a workload name (default ``digits-mlp``) or a model file path (``arch``:
    the architecture of a state dict).  Returns ``(name, model)`` in eval mode."""
    spec = check_model_spec(spec)
    if spec in WORKLOADS:
        if arch is not None:
            raise UserInputError(f"--arch {arch}: give --arch only with a state-dict file")
        return spec, pretrained(spec, data)
    return spec, load_user_model(spec, data, arch)


def imported(model, data: Dataset):
    """The model's imported graph (:mod:`aimcflow.models.nn.importer`) for ``data``'s
    image shape; checks that it returns (B, classes) logits for the data's classes."""
    ep = getattr(model, "aimcflow_program", None)
    imp = import_model(ep if ep is not None else model, data.input_shape)
    check_output(model, data)
    return imp


def check_output(model, data: Dataset) -> None:
    """The model must map (2, *input_shape) inputs to (2, n_classes) logits."""
    # lazy: torch (~2 s)
    import torch

    try:
        with torch.no_grad():
            out = model(torch.zeros((2, *data.input_shape)))
    except Exception as exc:  # noqa: BLE001 -- a model that cannot run the data is user input
        raise UserInputError(
            f"model does not accept images of shape {tuple(data.input_shape)}: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not isinstance(out, torch.Tensor):  # e.g. an LSTM's (output, (h, c)) tuple
        raise UserInputError(
            f"model returns a {type(out).__name__}, not a tensor of logits (B, classes)"
        )
    if out.ndim != 2 or out.shape[1] != data.n_classes:
        raise UserInputError(
            f"model returns shape {tuple(out.shape)} for 2 images; the data has "
            f"{data.n_classes} classes, so (2, {data.n_classes}) is needed"
        )


def accuracy_float(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Test accuracy of the float torch model (level 1), in [0, 1]."""
    # lazy: torch (~2 s)
    import torch

    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.asarray(x[i : i + batch_size], dtype=np.float32))
            hits += int((model(xb).argmax(1).numpy() == y[i : i + batch_size]).sum())
    return hits / max(1, len(x))
