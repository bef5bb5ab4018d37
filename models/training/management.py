"""Update management (aihwkit semantics) and the mapping of one update onto the SPG.

aihwkit's pulsed update with ``update_bl_management`` and ``update_management``:

* ``BL = min(ceil(lr * max|x| * max|d| / dw_min), desired_BL)`` (at least 1);
* ``A = B = sqrt(lr / (dw_min * BL))``;
* row probabilities ``p_i = A sqrt(max|d| / max|x|) |x_i|``, column probabilities
  ``q_j = B sqrt(max|x| / max|d|) |d_j|`` (both clipped at 1 by the generator), so the
  expected change ``BL p_i q_j dw_min = lr |x_i d_j|``.

The SPG (``models/periphery/spg.py``) takes signed ``value_bits`` codes meaning
``v / 2**(value_bits-1)`` and an unsigned gain with ``gain_frac`` fractional bits.  The
periphery normalises each vector by its maximum, ``v_i = round(x_i / max|x| * vmax)``
(half away from zero) with
``vmax = 2**(value_bits-1) - 1``, and folds the maximum into the gain:
``gain_x = A_x * max|x| * 2**(value_bits-1) / vmax``, coded as ``round(gain * 2**gain_frac)``
and saturated at the largest code (a saturated gain only shrinks probabilities that would
have been clipped at 1 anyway for the largest inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from aimcflow.models.periphery.spg import SpgParams
from numpy.typing import NDArray


@dataclass(frozen=True)
class UpdateSettings:
    """Pulsed-update hyper-parameters (aihwkit names)."""

    desired_bl: int = 31
    update_management: bool = True
    update_bl_management: bool = True


@dataclass(frozen=True)
class SpgRequest:
    """One update as the SPG sees it: codes, gain codes, bit length."""

    x: NDArray[np.int64]  # (R,) signed value codes
    d: NDArray[np.int64]  # (C,)
    gain_x: int
    gain_d: int
    bl: int


def manage(
    x_max: float, d_max: float, lr: float, dw_min: float, s: UpdateSettings
) -> tuple[int, float, float]:
    """``(BL, A_x, A_d)``: probabilities are ``A_x |x_i|`` and ``A_d |d_j|``."""
    bl = s.desired_bl
    if s.update_bl_management:
        bl = max(1, min(math.ceil(lr * x_max * d_max / dw_min), s.desired_bl))
    a = math.sqrt(lr / (dw_min * bl))
    if s.update_management:
        return bl, a * math.sqrt(d_max / x_max), a * math.sqrt(x_max / d_max)
    return bl, a, a


def _codes(v: NDArray, v_max: float, p: SpgParams) -> NDArray[np.int64]:
    vmax = (1 << (p.value_bits - 1)) - 1
    r = np.asarray(v, dtype=np.float64) / v_max * vmax
    # half away from zero: +x and -x get codes of equal magnitude (no sign bias)
    return (np.sign(r) * np.floor(np.abs(r) + 0.5)).astype(np.int64)


def _gain_code(a: float, v_max: float, p: SpgParams) -> int:
    vmax = (1 << (p.value_bits - 1)) - 1
    g = a * v_max * (1 << (p.value_bits - 1)) / vmax
    return int(min(math.floor(g * (1 << p.gain_frac) + 0.5), p.gain_max))


def spg_request(
    x: NDArray, d: NDArray, lr: float, dw_min: float, s: UpdateSettings, p: SpgParams
) -> SpgRequest | None:
    """The SPG inputs for the update ``lr * x d^T``; None when x or d is all zero."""
    x_max = float(np.max(np.abs(x)))
    d_max = float(np.max(np.abs(d)))
    if x_max == 0.0 or d_max == 0.0:
        return None
    bl, a_x, a_d = manage(x_max, d_max, lr, dw_min, s)
    bl = min(bl, p.max_bl)
    return SpgRequest(
        _codes(x, x_max, p),
        _codes(d, d_max, p),
        _gain_code(a_x, x_max, p),
        _gain_code(a_d, d_max, p),
        bl,
    )
