"""The digits MLP trained in place: 64 -> hidden (sigmoid) -> 10 (softmax), per-sample SGD.

Three ways to train the same network from the same initial weights, data order and
hyper-parameters: float SGD, analog SGD and Tiki-Taka v2 (``models/training/layers.py``).
One training step is split in two halves so that the pulse trains of any layer can come
from outside (the Verilated SPG in ``cosim/benches/spg_train.py``):
:meth:`Mlp.requests` (forward, backward, SPG inputs per layer) and :meth:`Mlp.apply`
(apply the pulse trains).  :meth:`Mlp.step` joins them with the golden SPG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aimcflow.models import rng as keyed
from aimcflow.models.analog.pulsed.devices import get_pulsed_device
from aimcflow.models.periphery.spg import SpgParams
from aimcflow.models.training.layers import (
    AnalogSgdLayer,
    FloatLayer,
    TikiTakaV2Layer,
    init_weights,
)
from aimcflow.models.training.management import UpdateSettings
from numpy.typing import NDArray

ALGOS = ("sgd", "ttv2")


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters shared by the analog run and its float-SGD twin."""

    hidden: int = 32
    lr: float = 0.05  # FTJ thesis §4: analog lr 0.05 (half the FP32 lr of 0.1)
    seed: int = 0
    desired_bl: int = 31  # FTJ thesis Table 3.3: update.desired_bl = 31
    ttv2_gamma: float = 0.1
    ttv2_transfer_every: int = 1
    ttv2_transfer_lr: float = 1.0
    spg: SpgParams = field(default_factory=SpgParams)


def _sigmoid(z: NDArray) -> NDArray:
    # exp(-z) overflows to inf for z < -709 and the result is then exactly 0, as it should
    # be: a large learning rate drives units there, which is no reason for a warning
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: NDArray) -> NDArray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _aug(x: NDArray) -> NDArray:
    return np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1)


class Mlp:
    def __init__(
        self,
        n_in: int,
        n_out: int,
        settings: TrainSettings,
        device: str | None = None,
        algo: str = "sgd",
    ):
        s = settings
        self.settings = s
        w0 = [init_weights(s.seed, 0, n_in, s.hidden), init_weights(s.seed, 1, s.hidden, n_out)]
        if device is None:
            self.layers = [FloatLayer(w, s.lr) for w in w0]
            return
        dev = get_pulsed_device(device)
        us = UpdateSettings(desired_bl=s.desired_bl)
        if algo == "sgd":
            self.layers = [
                AnalogSgdLayer(w, s.lr, dev, s.seed, k, us, s.spg) for k, w in enumerate(w0)
            ]
        elif algo == "ttv2":
            self.layers = [
                TikiTakaV2Layer(
                    w,
                    s.lr,
                    dev,
                    s.seed,
                    k,
                    us,
                    s.spg,
                    s.ttv2_gamma,
                    s.ttv2_transfer_every,
                    s.ttv2_transfer_lr,
                )
                for k, w in enumerate(w0)
            ]
        else:
            raise ValueError(f"algo {algo!r}; allowed: {', '.join(ALGOS)}")

    def predict(self, x: NDArray) -> NDArray:
        h = _sigmoid(_aug(x) @ self.layers[0].weights())
        return np.argmax(_aug(h) @ self.layers[1].weights(), axis=-1)

    def accuracy(self, x: NDArray, y: NDArray) -> float:
        return float(np.mean(self.predict(x) == y))

    def requests(self, x: NDArray, y: int) -> list:
        """Forward + backward of one sample; the per-layer update requests."""
        x0 = _aug(np.asarray(x, dtype=np.float64))
        h = _sigmoid(x0 @ self.layers[0].weights())
        h1 = _aug(h)
        w1 = self.layers[1].weights()
        p = _softmax(h1 @ w1)
        d1 = -p
        d1[y] += 1.0  # error = one-hot - softmax = minus the cross-entropy gradient
        d0 = (w1[:-1] @ d1) * h * (1.0 - h)
        return [self.layers[0].request(x0, d0), self.layers[1].request(h1, d1)]

    def apply(self, reqs: list, outs: list, step: int) -> None:
        for layer, req, out in zip(self.layers, reqs, outs, strict=True):
            layer.apply(req, out, step)

    def golden_outputs(self, reqs: list) -> list:
        return [
            getattr(layer, "golden_pulses", lambda r: None)(req)
            for layer, req in zip(self.layers, reqs, strict=True)
        ]

    def step(self, x: NDArray, y: int, step: int) -> list:
        reqs = self.requests(x, y)
        outs = self.golden_outputs(reqs)
        self.apply(reqs, outs, step)
        return reqs

    def weights(self) -> list[NDArray]:
        return [layer.weights().copy() for layer in self.layers]


def epoch_order(seed: int, epoch: int, n: int) -> NDArray[np.int64]:
    """The sample order of one epoch, keyed by (seed, epoch)."""
    return keyed.stream(seed, "data", epoch).permutation(n)


def sample_at(seed: int, step: int, n: int) -> int:
    """Training sample of global step ``step``: epoch ``step // n + 1`` in its own order."""
    return int(epoch_order(seed, step // n + 1, n)[step % n])


def golden_steps(data, settings: TrainSettings, device: str, algo: str, steps: int) -> Mlp:
    """The first ``steps`` update steps of :func:`train`'s analog run (golden SPG)."""
    net = Mlp(data.n_features, data.n_classes, settings, device, algo)
    n = len(data.y_train)
    for step in range(steps):
        i = sample_at(settings.seed, step, n)
        net.step(data.x_train[i], int(data.y_train[i]), step)
    return net


def train(
    data,
    settings: TrainSettings,
    device: str,
    algo: str,
    epochs: int,
    report: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train the analog MLP and its float-SGD twin side by side; per epoch test accuracy."""
    n_in, n_out = data.n_features, data.n_classes
    analog = Mlp(n_in, n_out, settings, device, algo)
    ref = Mlp(n_in, n_out, settings, None)
    rows = []
    step = 0
    for epoch in range(1, epochs + 1):
        for i in epoch_order(settings.seed, epoch, len(data.y_train)):
            x, y = data.x_train[i], int(data.y_train[i])
            analog.step(x, y, step)
            ref.step(x, y, step)
            step += 1
        row = {
            "epoch": epoch,
            "accuracy": analog.accuracy(data.x_test, data.y_test),
            "float_accuracy": ref.accuracy(data.x_test, data.y_test),
        }
        rows.append(row)
        if report:
            report(row)
    return rows
