"""The two reference workloads on the digits data, trained in seconds and cached.

* ``digits-mlp``: Linear 64-128, ReLU, Linear 128-64, ReLU, Linear 64-10.
* ``digits-cnn``: Unflatten to 1x8x8, Conv 1->8 3x3 (pad 1), BatchNorm, ReLU,
  Conv 8->16 3x3 (stride 2, pad 1), BatchNorm, ReLU, Flatten, Linear 256-10.
  Its BatchNorms are what the chip compiler folds into the NMPU output multiplier.

Both take flat (B, 64) inputs in [0, 1] and return (B, 10) logits, and both are plain
``nn.Sequential`` models: that is the model form :func:`load_user_model` accepts.

Training is deterministic (``torch.manual_seed``, one thread) and cached under
``<cache>/models/<name>-<recipe hash>.pt``, where the recipe hash covers the
architecture, every hyper-parameter and a digest of the training data.

User models (``--model PATH``): either a state dict (``torch.save(model.state_dict())``)
of one of the two architectures, recognised by its parameter names and shapes, or a whole
``torch.save``'d ``nn.Sequential`` built from the layer types
:mod:`aimcflow.models.nn.convert` supports.  Both are read with ``weights_only=True``: the
unpickler may build only tensors, containers and those layer classes, so a file can never
run code; anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.io import atomic_path, cache_dir
from aimcflow.models.nn.data import Dataset

WORKLOADS = ("digits-mlp", "digits-cnn")


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
}


def build(arch: str, n_features: int = 64, n_classes: int = 10):
    """An untrained model of architecture ``arch`` (a name of :data:`WORKLOADS`)."""
    # lazy: torch (~2 s)
    from torch import nn

    if arch == "digits-mlp":
        return nn.Sequential(
            nn.Linear(n_features, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )
    if arch == "digits-cnn":
        side = int(round(n_features**0.5))
        if side * side != n_features:
            raise UserInputError(
                f"digits-cnn needs square images; {n_features} features is not a square"
            )
        out_side = (side + 1) // 2  # stride-2 3x3 conv with padding 1
        return nn.Sequential(
            nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * out_side * out_side, n_classes),
        )
    raise UserInputError(
        f"unknown model '{arch}'; allowed: {', '.join(WORKLOADS)} or a path to a torch model file"
    )


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
            "features": data.n_features,
            "classes": data.n_classes,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(recipe: Recipe, data: Dataset):
    """Train ``recipe.arch`` on ``data`` deterministically (Adam, cross-entropy); eval mode."""
    # lazy: torch (~2 s)
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-reproducible and polite on a shared machine
    try:
        torch.manual_seed(recipe.seed)
        model = build(recipe.arch, data.n_features, data.n_classes)
        x = torch.from_numpy(data.x_train)
        y = torch.from_numpy(data.y_train)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for _ in range(recipe.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), recipe.batch_size):
                idx = perm[i : i + recipe.batch_size]
                opt.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
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
    model = build(arch, data.n_features, data.n_classes)
    if path.is_file() and not retrain:
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = train(recipe, data)

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    return model


def _matches(state: dict, arch: str, data: Dataset) -> bool:
    ref = build(arch, data.n_features, data.n_classes).state_dict()
    return set(ref) == set(state) and all(
        tuple(getattr(state[k], "shape", ())) == tuple(v.shape) for k, v in ref.items()
    )


_SAVE_HINT = (
    "save a state dict (torch.save(model.state_dict(), path)) of "
    + " or ".join(WORKLOADS)
    + ", an nn.Sequential of supported layers, or a torch.export program (.pt2)"
)


def _safe_layer_classes() -> list[type]:
    """The classes a whole-``nn.Sequential`` file may name: the layers the converter maps."""
    # lazy: torch, and the converter's numba tile kernels (only when a model file is read)
    from aimcflow.models.nn.convert import SUPPORTED
    from torch import nn

    return [nn.Sequential, *(getattr(nn, n) for n in SUPPORTED if hasattr(nn, n))]


def _refusal(p: Path, torch_message: str) -> str:
    """One line for a file the safe unpickler refused (torch's own text advises
    ``weights_only=False``, which we never suggest)."""
    m = re.search(r"GLOBAL ([\w.]+)", torch_message)
    if m is None:
        return (
            f"model '{p}': not a torch model file (not a readable torch.save archive); {_SAVE_HINT}"
        )
    what = m.group(1)
    from aimcflow.models.nn.convert import SUPPORTED  # lazy: numba tile kernels (see above)

    return (
        f"model '{p}': holds {what}, which cannot be loaded without running code from the "
        f"file (aimcflow never does); supported layers: {', '.join(SUPPORTED)}; {_SAVE_HINT}"
    )


def load_user_model(path: str | Path, data: Dataset):
    """A user's model file (see the module docstring for the two accepted forms)."""

    # lazy: torch (~2 s)
    import torch
    from torch import nn

    p = Path(path)
    if not p.is_file():
        raise UserInputError(
            f"model '{p}': no such file; give {', '.join(WORKLOADS)} "
            "or a torch.save'd state dict / nn.Sequential"
        )
    try:  # never weights_only=False: unpickling arbitrary objects runs code from the file
        with torch.serialization.safe_globals(_safe_layer_classes()):
            obj = torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise UserInputError(_refusal(p, str(exc))) from None
    except Exception:  # noqa: BLE001 -- any unreadable file is a bad model file
        raise UserInputError(
            f"model '{p}': not a torch model file (torch.load cannot read it); {_SAVE_HINT}"
        ) from None
    if isinstance(obj, dict):
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise UserInputError(f"model '{p}': a dict that is not a state dict of tensors")
        for arch in WORKLOADS:
            try:
                ok = _matches(obj, arch, data)
            except UserInputError:
                continue
            if ok:
                model = build(arch, data.n_features, data.n_classes)
                model.load_state_dict(obj)
                return model.eval()
        raise UserInputError(
            f"model '{p}': state dict matches neither {' nor '.join(WORKLOADS)} "
            f"for {data.n_features} inputs and {data.n_classes} classes; save the whole "
            "nn.Sequential instead (torch.save(model, path))"
        )
    if isinstance(obj, nn.Sequential):
        return obj.float().eval()
    if isinstance(obj, nn.Module):
        raise UserInputError(
            f"model '{p}': a {type(obj).__name__}; supported: an nn.Sequential "
            "(its forward is then known) or a state dict of " + " / ".join(WORKLOADS)
        )
    raise UserInputError(
        f"model '{p}': holds a {type(obj).__name__}, not a torch model; supported: "
        "an nn.Sequential or a state dict of " + " / ".join(WORKLOADS)
    )


def get_model(spec: str | None, data: Dataset):
    """``spec`` a workload name (default ``digits-mlp``) or a model file path.
    Returns ``(name, model)`` with the model in eval mode."""
    if spec is None:
        spec = "digits-mlp"
    if spec in WORKLOADS:
        return spec, pretrained(spec, data)
    looks_like_path = os.sep in spec or spec.endswith((".pt", ".pth")) or Path(spec).exists()
    if not looks_like_path:
        raise UserInputError(
            f"unknown model '{spec}'; allowed: {', '.join(WORKLOADS)} "
            "or a path to a torch model file"
        )
    return str(spec), load_user_model(spec, data)


def accuracy_float(model, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy of the float torch model (level 1), in [0, 1]."""
    # lazy: torch (~2 s)
    import torch

    with torch.no_grad():
        pred = model(torch.from_numpy(np.asarray(x, dtype=np.float32))).argmax(1).numpy()
    return float(np.mean(pred == y))
