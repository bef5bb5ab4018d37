"""Bit-exact golden model of the noise + bound management controller, docs/SPEC.md.

Per tile and input vector ``x[0..R)`` (integers, int64):

- noise management ``off``: ``e = 0``.  ``absmax_pow2``: ``M = max|x|``; ``e = 0`` if
  ``M == 0``, else the smallest ``e`` in ``[e_min, e_max]`` with
  ``scale(M, e) <= 2**(dac_bits-1) - 1``, ``e_max`` if none fits.
- DAC codes ``d = sat(scale(x, e), dac_bits)`` (signed ``dac_bits``).
- bound management: while the tile answers ``sat_any`` and ``iter < bound_max_iter`` and
  ``e < e_max``: ``e += 1``, ``iter += 1``, recompute ``d``, ask the tile again.
- result: final ADC codes ``a``, final ``e``, ``iter`` and ``sat_any`` of the last answer.

Both rules can give ``e = 0``, and the NMPU needs ``e`` in ``[e_min, e_max]``, so
``e_min <= 0 <= e_max`` is required (checked on construction).

Inputs ``x`` are ``x_bits`` wide, signed or unsigned (``x_signed``); by default the
previous layer's output format (``nmpu.out_bits`` and its signedness).

The tile is any callable ``tile(d, iteration, active) -> (a, sat_any)`` with ``d`` (V,R)
int64 DAC codes, ``iteration`` (V,) int64 management iteration of each vector, ``active``
(V,) bool: only the active vectors' answers are used (a tile may skip the others and
return anything there).  Rows of ``d`` are DAC codes (LSB = one DAC step); ``a`` are ADC
codes (LSB = one ADC step).  It returns ``a`` (V,C) int64 ADC codes and ``sat_any`` (V,) bool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from aimcflow.rtl.codes import NOISE_MODES
from aimcflow.rtl.params import MgmtWidths
from numpy.typing import ArrayLike

from ..analog.converters import adc_sat_any
from ..errors import UserInputError
from .fixedpoint import IntArray, rshr, sat, scale, signed_range, unsigned_range
from .nmpu import check_range

if TYPE_CHECKING:
    from ..config import AcceleratorConfig

NoiseMode = Literal["off", "absmax_pow2"]

Tile = Callable[[IntArray, IntArray, np.ndarray], tuple[IntArray, np.ndarray]]


@dataclass(frozen=True)
class MgmtParams(MgmtWidths):
    """Everything that fixes the management controller's numerics: the widths the RTL
    shares (:class:`~aimcflow.rtl.params.MgmtWidths`) and the run-time choices it holds in
    registers."""

    noise: NoiseMode = "absmax_pow2"
    bound_max_iter: int = 3

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, **overrides) -> MgmtParams:
        """Controller parameters of an accelerator config; the input format defaults to the
        NMPU output format (``nmpu.out_bits``, signed iff the NMPU output is signed)."""
        fields = dict(
            dac_bits=cfg.dac.bits,
            adc_bits=cfg.adc.bits,
            e_min=cfg.mgmt.e_min,
            e_max=cfg.mgmt.e_max,
            noise=cfg.mgmt.noise,
            bound_max_iter=cfg.mgmt.bound_max_iter,
            x_bits=cfg.nmpu.out_bits,
            x_signed=cfg.nmpu.signed_output,
        )
        fields.update(overrides)
        return cls(**fields)

    @property
    def x_range(self) -> tuple[int, int]:
        """Inclusive range of an input value."""
        return signed_range(self.x_bits) if self.x_signed else unsigned_range(self.x_bits)

    @property
    def dac_max(self) -> int:
        """Largest DAC code ``2**(dac_bits-1) - 1``."""
        return (1 << (self.dac_bits - 1)) - 1

    def validate(self) -> None:
        """Raise :class:`UserInputError` for a parameter set the RTL cannot build."""
        checks = [
            (
                self.noise in NOISE_MODES,
                f"mgmt.noise = {self.noise!r}; allowed: {', '.join(NOISE_MODES)}",
            ),
            (
                self.e_min <= self.e_max,
                f"mgmt.e_min ({self.e_min}) must be <= e_max ({self.e_max})",
            ),
            (
                self.e_min <= 0 <= self.e_max,
                f"mgmt.e_min .. e_max = {self.e_min} .. {self.e_max} must contain 0 (noise "
                "management 'off' and an all-zero vector use e = 0)",
            ),
            (
                0 <= self.bound_max_iter <= 15,
                f"mgmt.bound_max_iter = {self.bound_max_iter}; allowed: 0 .. 15",
            ),
            (
                2 <= self.dac_bits <= 31,
                f"dac.bits = {self.dac_bits}; allowed: 2 .. 31 (int64 golden model)",
            ),
            (2 <= self.adc_bits <= 32, f"adc.bits = {self.adc_bits}; allowed: 2 .. 32"),
            (2 <= self.x_bits <= 32, f"x_bits = {self.x_bits}; allowed: 2 .. 32"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg)


def check_x(x: ArrayLike, p: MgmtParams) -> IntArray:
    """``x`` as an int64 (V,R) array, every value within the input format."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise UserInputError(f"x: integer array expected, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise UserInputError(f"x: shape {arr.shape}, expected (V, R) with R >= 1")
    arr = arr.astype(np.int64, copy=False)
    kind = "signed" if p.x_signed else "unsigned"
    check_range("x", arr, *p.x_range, f"{kind} x_bits={p.x_bits}")
    return arr


def choose_exponent(x: ArrayLike, p: MgmtParams) -> IntArray:
    """Noise-management exponent per vector: ``x`` (V,R) -> ``e`` (V,) int64."""
    x = check_x(x, p)
    V = x.shape[0]
    if p.noise == "off":
        return np.zeros(V, dtype=np.int64)
    M = np.abs(x).max(axis=1)
    es = np.arange(p.e_min, p.e_max + 1, dtype=np.int64)
    # scale(M, e) <= L  <=>  M <= L >> -e for e <= 0 (M >= 0): avoids shifting M out of int64
    left_ok = M[:, None] <= (p.dac_max >> np.maximum(-es, 0))[None, :]
    right_ok = rshr(M[:, None], np.maximum(es, 0)[None, :]) <= p.dac_max
    fits = np.where(es[None, :] <= 0, left_ok, right_ok)
    e = np.where(fits.any(axis=1), es[np.argmax(fits, axis=1)], p.e_max)
    return np.where(M == 0, 0, e).astype(np.int64)


def dac_codes(x: ArrayLike, e: ArrayLike, p: MgmtParams) -> IntArray:
    """DAC codes ``d = sat(scale(x, e), dac_bits)``: ``x`` (V,R), ``e`` (V,) -> (V,R).

    To stay inside int64 on the left-shift side (``e <= 0``) without changing the result:
    ``x`` is clipped to ``+-2**(dac_bits-1)`` (any value beyond saturates to the same code
    for every shift >= 0) and the shift is capped at ``dac_bits`` (enough to saturate any
    nonzero value).  The right-shift side (``e > 0``) uses ``x`` as it is.
    """
    x = np.asarray(x, dtype=np.int64)
    e = np.broadcast_to(np.asarray(e, dtype=np.int64), x.shape[:1])[:, None]
    half_range = 1 << (p.dac_bits - 1)
    left = np.left_shift(np.clip(x, -half_range, half_range), np.minimum(-e, p.dac_bits).clip(0))
    return sat(np.where(e <= 0, left, scale(x, np.maximum(e, 0))), p.dac_bits)


def manage(
    x: ArrayLike, tile: Tile, p: MgmtParams
) -> tuple[IntArray, IntArray, IntArray, np.ndarray]:
    """Noise + bound management of ``x`` (V,R) against ``tile`` (module docstring).

    Returns ``a`` (V,C) int64, ``e`` (V,) int64, ``iter`` (V,) int64, ``sat_any`` (V,) bool.
    Only the vectors still saturating are re-asked (``active`` mask).
    """
    x = check_x(x, p)
    V = x.shape[0]
    e = choose_exponent(x, p)
    it = np.zeros(V, dtype=np.int64)
    active = np.ones(V, dtype=bool)
    a, sat_any = tile(dac_codes(x, e, p), it.copy(), active.copy())
    a = np.array(a, dtype=np.int64)
    sat_any = np.array(sat_any, dtype=bool)
    while True:
        active = sat_any & (it < p.bound_max_iter) & (e < p.e_max)
        if not active.any():
            return a, e, it, sat_any
        e = e + active
        it = it + active
        a_new, sat_new = tile(dac_codes(x, e, p), it.copy(), active.copy())
        a[active] = np.asarray(a_new, dtype=np.int64)[active]
        sat_any[active] = np.asarray(sat_new, dtype=bool)[active]


IDEAL_TILE_W_BITS = 16
"""Declared width of the ideal tile's integer weights ``w`` (signed): ``d @ w`` of 1024
rows of 32-bit DAC codes stays inside int64 with room to spare."""


def ideal_linear_tile(w: ArrayLike, shift: int, adc_bits: int) -> Tile:
    """The ideal integer tile of ``aimcflow vectors mgmt``: ``a = sat(rshr(d @ w, shift),
    adc_bits)``, ``sat_any`` = some code at the ADC's most negative or positive code.
    ``w`` (R,C) integer weights, ``shift >= 0``."""
    w = np.asarray(w)
    if w.dtype.kind not in "iu" or w.ndim != 2:
        raise UserInputError(f"w: integer (R, C) array expected, got {w.dtype} {w.shape}")
    if int(shift) < 0:
        raise UserInputError(f"shift = {int(shift)}; allowed: >= 0")
    w = w.astype(np.int64)
    shift = int(shift)

    def tile(d: IntArray, iteration: IntArray, active: np.ndarray) -> tuple[IntArray, np.ndarray]:
        a = np.zeros((d.shape[0], w.shape[1]), dtype=np.int64)
        a[active] = sat(rshr(d[active] @ w, shift), adc_bits)  # inactive rows are ignored
        return a, adc_sat_any(a, adc_bits)

    return tile
