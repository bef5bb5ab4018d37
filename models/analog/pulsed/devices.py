"""Pulsed device-update models: how one crosspoint's weight moves per coincidence pulse.

Weights are in normalized device units (the same units as ``dw_min``); one coincidence of
a row and a column pulse moves a weight by one *step* (FTJ thesis eq. 2.7).  Three step
laws, as in aihwkit's pulsed devices (``ConstantStepDevice``, ``SoftBoundsDevice``,
``ExpStepDevice``; our exponential law is the simpler documented form below):

* ``constant``: ``step_up = dw_up``, ``step_down = dw_down``.
* ``soft_bounds``: ``step_up = dw_up (1 - w / w_max)``, ``step_down = dw_down (1 - w / w_min)``
  (``w_min < 0``): steps shrink linearly to zero at the bounds.
* ``exp_step``: ``step_up = dw_up exp(-gamma w / w_max)``, ``step_down = dw_down
  exp(+gamma w / |w_min|)``: steps shrink exponentially towards the bound they approach.

In every law ``dw_up = dw_min (1 + up_down) d_k``, ``dw_down = dw_min (1 - up_down) d_k``
with a per-device factor ``d_k = max(0, 1 + dw_min_dtod * N(0,1))`` (device-to-device
variation), bounds ``w_max = w_bound (1 + w_bound_dtod N)``, ``w_min = -w_bound (1 +
w_bound_dtod N')``, and every single pulse's step multiplied by ``1 + dw_min_ctoc N``
(cycle-to-cycle variation, a fresh normal per pulse).  The weight is then clipped to
``[w_min, w_max]`` (hard bounds).

Presets take ``dw_min``, ``n_states``, ``up_down_asymmetry``, ``dw_min_dtod``,
``dw_min_ctoc`` and ``linear`` from the inference device presets
(``models/analog/devices.py``: one place for those numbers) and add the update law and
bounds: ``w_bound = n_states * dw_min / 2`` (n_states steps across ``[-w_bound, w_bound]``).
Sources: FTJ thesis (docs/ARCHITECTURE.md, References) §3.1.1 and §5.1 — "Extreme" (largest dw_min,
nonlinear, unstable in training), "Balanced" (dw_min 0.1, asymmetric), "Constrained"
(50x smaller dw_min, linear response, higher cycle-to-cycle variation); ECRAM: the
protonic-synapse abstracts, linear and symmetric.  The step laws
chosen per preset (exp_step for ftj-extreme, soft_bounds for ftj-balanced and reram) are
our reading of "nonlinear"/"asymmetric" where the thesis' response figures are lost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from aimcflow.models import rng as keyed
from aimcflow.models.analog.devices import DEVICES
from aimcflow.models.errors import UserInputError

StepLaw = Literal["constant", "soft_bounds", "exp_step"]


@dataclass(frozen=True)
class PulsedDevice:
    """Parameters of one pulsed device model (all weights in normalized units)."""

    name: str
    law: StepLaw
    dw_min: float  # mean step per coincidence at w = 0 (normalized weight units)
    w_bound: float  # nominal bounds are [-w_bound, w_bound]
    up_down: float = 0.0  # up/down asymmetry: dw_up = dw_min(1+a), dw_down = dw_min(1-a)
    dw_min_dtod: float = 0.0  # device-to-device spread of the step (relative sigma)
    dw_min_ctoc: float = 0.0  # cycle-to-cycle spread of each pulse's step (relative sigma)
    w_bound_dtod: float = 0.0  # device-to-device spread of the bounds (relative sigma)
    gamma: float = 0.0  # exp_step nonlinearity
    source: str = ""

    @property
    def n_states(self) -> int:
        return int(round(2 * self.w_bound / self.dw_min))


def _from_inference(
    name: str, law: StepLaw, gamma: float = 0.0, ctoc: float | None = None
) -> PulsedDevice:
    d = DEVICES[name]
    return PulsedDevice(
        name=name,
        law=law,
        dw_min=d.dw_min,
        w_bound=d.n_states * d.dw_min / 2,
        up_down=d.up_down_asymmetry,
        dw_min_dtod=d.dw_min_dtod,
        dw_min_ctoc=d.dw_min_ctoc if ctoc is None else ctoc,
        w_bound_dtod=0.0,
        gamma=gamma,
        source=d.source,
    )


def _presets() -> dict[str, PulsedDevice]:
    return {
        # measured 1-us FTJ: largest step, nonlinear (exponential saturation), asymmetric
        "ftj-extreme": _from_inference("ftj-extreme", "exp_step", gamma=2.0),
        # ns-pulse FTJ: dw_min 0.1, asymmetric soft-bounds response
        "ftj-balanced": _from_inference("ftj-balanced", "soft_bounds"),
        # FTJ operated in its linear middle range: constant step, 50x smaller dw_min
        "ftj-constrained": _from_inference("ftj-constrained", "constant"),
        # protonic ECRAM: linear, symmetric
        "ecram-protonic": _from_inference("ecram-protonic", "constant"),
        "reram": _from_inference("reram", "soft_bounds"),
        # an ideal linear device: small constant step, no variation (not in the inference
        # presets, whose ideal device has no pulsed data)
        "ideal": PulsedDevice(
            name="ideal",
            law="constant",
            dw_min=0.001,
            w_bound=1.0,
            source="ideal: constant step, no variation",
        ),
    }


PRESET_NAMES = (
    "ftj-extreme",
    "ftj-balanced",
    "ftj-constrained",
    "ecram-protonic",
    "reram",
    "ideal",
)


def get_pulsed_device(name: str, **overrides) -> PulsedDevice:
    """A pulsed preset by name; unknown names are a :class:`UserInputError`."""
    if name not in PRESET_NAMES:
        raise UserInputError(f"unknown device preset '{name}'; allowed: {', '.join(PRESET_NAMES)}")
    dev = _presets()[name]
    return replace(dev, **overrides) if overrides else dev


class PulsedArray:
    """An R x C array of one device model: per-device parameters drawn once (d2d), weights,
    and the pulse-by-pulse update.  Randomness is keyed (``models/rng.py``) by
    (seed, layer, array id[, update index]) so equal pulse trains give equal weights."""

    def __init__(
        self, device: PulsedDevice, rows: int, cols: int, seed: int, layer: int, array_id: int = 0
    ):
        self.device = device
        self.seed, self.layer, self.array_id = int(seed), int(layer), int(array_id)
        g = keyed.stream(seed, "d2d", layer, array_id)
        shape = (rows, cols)
        d2d = np.maximum(0.0, 1.0 + device.dw_min_dtod * g.standard_normal(shape))
        self.dw_up = device.dw_min * (1.0 + device.up_down) * d2d
        self.dw_down = device.dw_min * (1.0 - device.up_down) * d2d
        self.w_max = device.w_bound * np.maximum(
            0.1, 1 + device.w_bound_dtod * g.standard_normal(shape)
        )
        self.w_min = -device.w_bound * np.maximum(
            0.1, 1 + device.w_bound_dtod * g.standard_normal(shape)
        )
        self.w = np.zeros(shape)

    @property
    def shape(self) -> tuple[int, int]:
        return self.w.shape

    def set_weights(self, w: np.ndarray) -> None:
        """Program weights directly (as aihwkit's set_weights), clipped to the bounds."""
        self.w = np.clip(np.asarray(w, dtype=np.float64), self.w_min, self.w_max)

    def symmetry_point(self) -> np.ndarray:
        """Weight at which one up and one down pulse cancel on average (per device)."""
        dev = self.device
        if dev.law == "soft_bounds":
            # dw_up (1 - w/w_max) = dw_down (1 - w/w_min)
            a, b = self.dw_up, self.dw_down
            return (a - b) / (a / self.w_max - b / self.w_min)
        if dev.law == "exp_step" and dev.gamma > 0:
            # dw_up exp(-g w/w_max) = dw_down exp(g w/|w_min|)
            ratio = np.where(self.dw_down > 0, self.dw_up / np.maximum(self.dw_down, 1e-300), 1)
            return np.log(ratio) / (dev.gamma * (1 / self.w_max + 1 / -self.w_min))
        return np.zeros(self.shape)

    def _steps(
        self,
        w: np.ndarray,
        up: np.ndarray,
        dwu: np.ndarray,
        dwd: np.ndarray,
        wmax: np.ndarray,
        wmin: np.ndarray,
    ) -> np.ndarray:
        """Signed mean step at weights ``w`` of devices with the given parameters."""
        dev = self.device
        if dev.law == "constant":
            su, sd = dwu, dwd
        elif dev.law == "soft_bounds":
            su, sd = dwu * (1 - w / wmax), dwd * (1 - w / wmin)
        else:
            su, sd = dwu * np.exp(-dev.gamma * w / wmax), dwd * np.exp(dev.gamma * w / -wmin)
        return np.where(up, su, -sd)

    def apply_pulses(self, counts: np.ndarray, up: np.ndarray, update_index: int) -> None:
        """Apply ``counts[i, j]`` pulses in direction ``up[i, j]`` (True = increase).

        Nonlinear laws go pulse by pulse (pulse k for every device with >= k pulses,
        vectorized over those devices), so state-dependent steps are exact.  The constant
        law uses the closed form: n steps of ``dw (1 + ctoc N(0,1))`` sum to ``n dw +
        ctoc dw sqrt(n) N(0,1)`` (the same distribution), and since all pulses of one
        update go the same way, one clip at the end equals clipping after each pulse
        (exactly without c2c noise; with it, only steps that individually point
        backwards near a bound differ).  Cycle-to-cycle normals come from the stream
        keyed by (seed, layer, array, update_index)."""
        flat = np.flatnonzero(counts)
        if flat.size == 0:
            return
        n = counts.ravel()[flat]
        u = up.ravel()[flat]
        dwu, dwd = self.dw_up.ravel()[flat], self.dw_down.ravel()[flat]
        wmax, wmin = self.w_max.ravel()[flat], self.w_min.ravel()[flat]
        w = self.w.ravel()[flat]
        ctoc = self.device.dw_min_ctoc
        g = (
            keyed.stream(self.seed, "cycle", self.layer, self.array_id, update_index)
            if ctoc
            else None
        )
        if self.device.law == "constant":
            step = np.where(u, dwu, -dwd)
            delta = n * step
            if g is not None:
                delta = delta + ctoc * np.abs(step) * np.sqrt(n) * g.standard_normal(n.size)
            w = np.clip(w + delta, wmin, wmax)
        else:
            for k in range(1, int(n.max()) + 1):
                active = n >= k
                step = self._steps(w, u, dwu, dwd, wmax, wmin)
                if g is not None:
                    noise = np.zeros(n.size)
                    noise[active] = g.standard_normal(int(active.sum()))
                    step = step * (1.0 + ctoc * noise)
                w = np.where(active, np.clip(w + step, wmin, wmax), w)
        out = self.w.ravel().copy()
        out[flat] = w
        self.w = out.reshape(self.w.shape)
