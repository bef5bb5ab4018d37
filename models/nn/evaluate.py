"""Accuracy over drift time and repeats, and the normalized accuracy A* (FTJ thesis eq. 3.8).

    A* = 1 - (eps_analog - eps_float) / (eps_chance - eps_float)

with eps the test error (1 - accuracy).  A* = 1: the analog network is as good as float;
A* = 0: as good as random weights.  eps_chance is measured, as the thesis defines it, as
the float test error of the same architecture with random weights: the model is copied,
every parameterised layer's ``reset_parameters()`` (torch's default initialisation) is
called under ``torch.manual_seed(k)`` for k = 0..K-1 (a graph loaded from a .pt2 has no
layer modules: its parameters get the same distributions by name), and the K test errors
are averaged.

Each repeat ``r`` re-programs every tile with seed ``cfg.seed + r`` (fresh programming
noise, fresh read/output noise), then reads the network at every drift time after that
one programming, as the thesis does.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.nn.analog_ops import AnalogLayer
from aimcflow.models.nn.workloads import accuracy_float

DEFAULT_DRIFTS_S = (1.0, 3600.0, 86400.0, 365.0 * 86400.0)
CHANCE_SEEDS = 10


def normalized_accuracy(err_analog, err_float: float, err_chance: float):
    """A* of eq. 3.8 (works elementwise on arrays of analog errors)."""
    denom = err_chance - err_float
    if denom <= 0:
        return np.full_like(np.asarray(err_analog, dtype=float), np.nan)
    return 1.0 - (np.asarray(err_analog, dtype=float) - err_float) / denom


def _reinit(m) -> None:
    """torch's default initialisation of every parameter by name, for a model without
    layer modules (a graph loaded from a .pt2): a weight of >= 2 dims and its bias
    uniform in +-1/sqrt(fan_in) (what Linear/Conv2d's reset_parameters draw), a 1-d
    weight (a norm's scale) 1, other biases 0; running means 0, variances 1."""
    # lazy: torch (~2 s)
    import torch

    params = dict(m.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            stem, leaf = name.rsplit(".", 1) if "." in name else ("", name)
            w = params.get(f"{stem}.weight" if stem else "weight")
            if p.ndim >= 2:
                bound = 1.0 / max(1, p[0].numel()) ** 0.5
                p.uniform_(-bound, bound)
            elif leaf == "bias" and w is not None and w.ndim >= 2:
                bound = 1.0 / max(1, w[0].numel()) ** 0.5
                p.uniform_(-bound, bound)
            else:
                p.fill_(1.0 if leaf == "weight" else 0.0)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)


def chance_error(model, x: np.ndarray, y: np.ndarray, seeds: int = CHANCE_SEEDS) -> float:
    """Mean float test error of ``model``'s architecture with random (default-init) weights."""
    # lazy: torch (~2 s)
    import torch

    errs = []
    for k in range(seeds):
        with warnings.catch_warnings():  # copying a .pt2 graph module: a torch-internal notice
            warnings.simplefilter("ignore", FutureWarning)
            m = copy.deepcopy(model)
        torch.manual_seed(k)
        layers = [mod for mod in m.modules() if hasattr(mod, "reset_parameters")]
        if not layers:
            _reinit(m)
        for mod in layers:
            mod.reset_parameters()
        for mod in m.modules():
            if hasattr(mod, "reset_running_stats"):
                mod.reset_running_stats()
        errs.append(1.0 - accuracy_float(m.eval(), x, y))
    return float(np.mean(errs))


def repeat_config(cfg: AcceleratorConfig, repeat: int) -> AcceleratorConfig:
    """The config of repeat ``repeat``: same everything, tile seeds shifted by the repeat."""
    return cfg if repeat == 0 else cfg.replace(seed=cfg.seed + repeat)


def _sample_std(a: np.ndarray) -> float:
    """Sample std (ddof=1); 0 for a single value."""
    return float(np.std(a, ddof=1)) if len(a) > 1 else 0.0


@dataclass(frozen=True)
class DriftResult:
    """Accuracies (repeats,) at one drift time and their A*."""

    t_s: float
    accuracies: np.ndarray
    a_star: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Sample std over repeats (ddof=1; 0 for one repeat)."""
        return _sample_std(self.accuracies)

    @property
    def a_star_mean(self) -> float:
        return float(np.mean(self.a_star))

    @property
    def a_star_std(self) -> float:
        return _sample_std(self.a_star)

    def as_dict(self) -> dict:
        return {
            "drift_s": self.t_s,
            "accuracy_mean": self.mean,
            "accuracy_std": self.std,
            "a_star_mean": self.a_star_mean,
            "a_star_std": self.a_star_std,
            "accuracies": [float(a) for a in self.accuracies],
        }


def correct_counts(
    net,
    x: np.ndarray,
    y: np.ndarray,
    drifts_s: Sequence[float],
    repeats: int,
    *,
    images: np.ndarray | None = None,
    batch_size: int = 512,
    cfg: AcceleratorConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> np.ndarray:
    """Correctly classified images (repeats, drift times) of ``net`` (an
    :class:`AnalogNetwork`) at the analog-float level for ``repeats`` programmings.  Counts
    of disjoint image sets add up exactly (what ``aimcflow run --workers`` relies on).
    ``on_step(repeat, t_s)`` is called after every evaluation.  Repeat seeds count from
    ``cfg`` (default ``net.cfg``); the network is left programmed as in the last repeat."""
    base = net.cfg if cfg is None else cfg
    correct = np.zeros((repeats, len(drifts_s)), dtype=np.int64)
    for r in range(repeats):
        net.build(repeat_config(base, r))
        net.program()
        for j, t in enumerate(drifts_s):
            net.drift(t)
            pred = net.forward_float(x, images, batch_size).argmax(1)
            correct[r, j] = int(np.sum(pred == y))
            if on_step is not None:
                on_step(r, t)
    return correct


def drift_results(
    correct: np.ndarray, n: int, drifts_s: Sequence[float], err_float: float, err_chance: float
) -> list[DriftResult]:
    """Per drift time: the accuracies ``correct / n`` of :func:`correct_counts` (the
    fraction as ``np.mean`` of the hits gives it, bit for bit) and their A*."""
    acc = correct / float(n)
    return [
        DriftResult(
            float(t), acc[:, j], normalized_accuracy(1.0 - acc[:, j], err_float, err_chance)
        )
        for j, t in enumerate(drifts_s)
    ]


def drift_sweep(
    net,
    x: np.ndarray,
    y: np.ndarray,
    drifts_s: Sequence[float],
    repeats: int,
    err_float: float,
    err_chance: float,
    *,
    images: np.ndarray | None = None,
    batch_size: int = 512,
    cfg: AcceleratorConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[DriftResult]:
    """Analog-float accuracy of ``net`` (an :class:`AnalogNetwork`) at each drift time for
    ``repeats`` programmings (:func:`correct_counts`, :func:`drift_results`)."""
    correct = correct_counts(
        net, x, y, drifts_s, repeats, images=images, batch_size=batch_size, cfg=cfg,
        on_step=on_step,
    )  # fmt: skip
    return drift_results(correct, len(x), drifts_s, err_float, err_chance)


def vmm_pairs(
    net, x: np.ndarray, images: np.ndarray | None = None, max_points: int = 4000, seed: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per analog layer: (name, ideal outputs, analog-float outputs), the matrix products
    only (bias excluded), on the inputs the analog network itself feeds each layer; a
    deterministic sample of at most ``max_points`` outputs per layer."""

    x = np.asarray(x, dtype=np.float64)
    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    pick = np.random.default_rng(seed)
    pairs = []

    def step(op, *h):
        if not isinstance(op, AnalogLayer):
            return op(*h)
        rows, keys, shape = op.to_rows(h[0], images)
        y = op.matrix.forward_float(rows, keys)  # once: it is also what the next op reads
        ideal = (rows @ op.weight).reshape(-1)
        analog = y.reshape(-1)
        idx = pick.choice(ideal.size, size=min(max_points, ideal.size), replace=False)
        pairs.append((op.name, ideal[idx], analog[idx]))
        return op.from_rows(op.add_bias(y), shape)

    net.run(x, step)
    return pairs
