"""The parallel stochastic update: coincidence counts from pulse trains, applied to devices.

One update of an R x C array: row lane i emits pulses ``a_i(t)``, column lane j emits
``b_j(t)`` for slots t = 1..BL; crosspoint (i, j) receives ``n_ij = sum_t a_i(t) b_j(t)``
coincidences (FTJ thesis eq. 2.7), each moving its weight one device step in the direction
``sign(x_i) * sign(delta_j)`` (delta = the error, i.e. minus the loss gradient, so the
expected change is ``+lr * x_i * delta_j``).  Counts for all crosspoints are one matmul
over the BL slots: ``n = a^T b``.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.analog.pulsed.devices import PulsedArray
from numpy.typing import NDArray


def coincidences(row_pulses: NDArray, col_pulses: NDArray) -> NDArray[np.int64]:
    """Counts ``(R, C)`` from pulse trains ``(BL, R)`` and ``(BL, C)`` (0/1).

    A float32 matmul is exact here: every partial sum is an integer <= BL < 2**24."""
    a = np.asarray(row_pulses, dtype=np.float32)
    b = np.asarray(col_pulses, dtype=np.float32)
    return (a.T @ b).astype(np.int64)


def directions(row_sign: NDArray, col_sign: NDArray) -> NDArray[np.bool_]:
    """True where the update increases the weight: sign(x_i) * sign(delta_j) > 0."""
    return (np.asarray(row_sign)[:, None] * np.asarray(col_sign)[None, :]) > 0


def apply_update(
    array: PulsedArray,
    row_pulses: NDArray,
    col_pulses: NDArray,
    row_sign: NDArray,
    col_sign: NDArray,
    update_index: int,
) -> NDArray[np.int64]:
    """One parallel update of ``array`` from its pulse trains; returns the counts."""
    counts = coincidences(row_pulses, col_pulses)
    array.apply_pulses(counts, directions(row_sign, col_sign), update_index)
    return counts
