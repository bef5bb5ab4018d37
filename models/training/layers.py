"""Trainable fully connected layers: float SGD, analog SGD, Tiki-Taka v2.

A layer holds weights ``W`` of shape (inputs + 1, outputs): the last row is the bias,
driven by a constant input 1 (an analog bias row, as aihwkit's analog bias).  Analog
layers map the device range ``[-w_bound, w_bound]`` onto network weights ``[-1, 1]``
with a digital output scale ``1 / w_bound`` (aihwkit's weight scaling), so a device with a
narrow range (ECRAM, ReRAM) still spans the network's weight range.  Its forward
pass is ``x_aug @ W`` (ideal read of the device weights: the pulsed-training study
isolates the update path).  Its update is ``W += lr * x_aug^T delta`` with ``delta`` the
error (minus the loss gradient):

* :class:`FloatLayer`: exactly that, float64.
* :class:`AnalogSgdLayer`: the parallel stochastic update on a :class:`PulsedArray`,
  pulse trains from the SPG golden model (``models/periphery/spg.py``, bit-identical to
  the RTL) or handed in from outside (the Verilated SPG).
* :class:`TikiTakaV2Layer`: ``W = gamma * (A - A_sp) + C`` (Gokmen & Haensch 2020; TTv2:
  Gokmen, Front. AI 2021).  Gradient pulses go to A; every ``transfer_every`` updates one
  row of A (the read of A with a one-hot input) is accumulated into a digital buffer
  ``H += transfer_lr * (A_row - A_sp_row) / dw_min`` and every ``|H| >= 1`` becomes
  ``trunc(H)`` single pulses on C's row (``H -= trunc(H)``).  ``A_sp`` is A's symmetry
  point (ideal zero-shift calibration), where A also starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aimcflow.models import rng as keyed
from aimcflow.models.analog.pulsed.devices import PulsedArray, PulsedDevice
from aimcflow.models.analog.pulsed.update import apply_update
from aimcflow.models.periphery.spg import PulseGenerator, SpgOutput, SpgParams
from aimcflow.models.training.management import SpgRequest, UpdateSettings, spg_request
from numpy.typing import NDArray


def layer_spg_seed(seed: int, layer: int) -> int:
    """The 32-bit SPG seed of one layer (nonzero), keyed by (seed, layer)."""
    return int(keyed.stream(seed, "update", layer).integers(1, 1 << 32))


def init_weights(seed: int, layer: int, n_in: int, n_out: int) -> NDArray[np.float64]:
    """Uniform +-1/sqrt(n_in) (torch's Linear default), bias row included."""
    g = keyed.stream(seed, "weights", layer)
    bound = 1.0 / np.sqrt(n_in)
    return g.uniform(-bound, bound, (n_in + 1, n_out))


class FloatLayer:
    def __init__(self, w0: NDArray, lr: float):
        self.w = np.array(w0, dtype=np.float64)
        self.lr = lr

    def weights(self) -> NDArray:
        return self.w

    def request(self, x: NDArray, delta: NDArray) -> None:
        self._pending = (x, delta)
        return None

    def apply(self, req, out, step: int) -> None:
        x, delta = self._pending
        self.w += self.lr * np.outer(x, delta)


@dataclass
class _Spg:
    params: SpgParams
    gen: PulseGenerator


class AnalogSgdLayer:
    """Analog SGD: every update is one parallel stochastic pulse update of the array."""

    def __init__(
        self,
        w0: NDArray,
        lr: float,
        device: PulsedDevice,
        seed: int,
        layer: int,
        settings: UpdateSettings,
        spg_params: SpgParams,
    ):
        rows, cols = w0.shape
        self.lr, self.device, self.settings = lr, device, settings
        self.layer = layer
        # network weight = scale * device weight: the device's range maps onto +-1
        self.scale = 1.0 / device.w_bound
        self.array = PulsedArray(device, rows, cols, seed, layer, 0)
        self.array.set_weights(w0 / self.scale)
        self.spg = _Spg(
            spg_params, PulseGenerator(rows, cols, layer_spg_seed(seed, layer), spg_params)
        )

    def weights(self) -> NDArray:
        return self.scale * self.array.w

    def request(self, x: NDArray, delta: NDArray) -> SpgRequest | None:
        # a network change lr x d is a device change (lr / scale) x d
        return spg_request(
            x, delta, self.lr / self.scale, self.device.dw_min, self.settings, self.spg.params
        )

    def golden_pulses(self, req: SpgRequest | None) -> SpgOutput | None:
        if req is None:
            return None
        return self.spg.gen.generate(req.x[None], req.d[None], [req.gain_x], [req.gain_d], req.bl)

    def apply(self, req: SpgRequest | None, out: SpgOutput | None, step: int) -> None:
        """Apply the pulse trains of one update (``out`` holds one update, V = 1)."""
        if req is None:
            return
        apply_update(
            self.array, out.row_pulses[0], out.col_pulses[0], out.row_sign[0], out.col_sign[0], step
        )


class TikiTakaV2Layer(AnalogSgdLayer):
    def __init__(
        self,
        w0: NDArray,
        lr: float,
        device: PulsedDevice,
        seed: int,
        layer: int,
        settings: UpdateSettings,
        spg_params: SpgParams,
        gamma: float = 0.1,
        transfer_every: int = 1,
        transfer_lr: float = 1.0,
    ):
        super().__init__(np.zeros_like(w0), lr, device, seed, layer, settings, spg_params)
        rows, cols = w0.shape
        self.a_sp = self.array.symmetry_point()
        self.array.set_weights(self.a_sp)
        self.c = PulsedArray(device, rows, cols, seed, layer, 1)
        self.c.set_weights(w0 / self.scale)
        self.h = np.zeros((rows, cols))
        self.gamma, self.transfer_every, self.transfer_lr = gamma, transfer_every, transfer_lr
        self.updates = 0

    def weights(self) -> NDArray:
        return self.scale * (self.gamma * (self.array.w - self.a_sp) + self.c.w)

    def apply(self, req, out, step: int) -> None:
        super().apply(req, out, step)
        self.updates += 1
        if self.updates % self.transfer_every == 0:
            self._transfer((self.updates // self.transfer_every - 1) % self.h.shape[0], step)

    def _transfer(self, row: int, step: int) -> None:
        a_row = self.array.w[row] - self.a_sp[row]
        self.h[row] += self.transfer_lr * a_row / self.device.dw_min
        n = np.trunc(self.h[row]).astype(np.int64)
        if not n.any():
            return
        self.h[row] -= n
        counts = np.zeros(self.h.shape, dtype=np.int64)
        counts[row] = np.abs(n)
        up = np.zeros(self.h.shape, dtype=bool)
        up[row] = n > 0
        self.c.apply_pulses(counts, up, step)
