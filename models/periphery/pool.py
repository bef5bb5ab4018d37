"""Bit-exact golden model of the pooling unit (docs/SPEC.md, "Pooling").

Input ``x`` (V, C, H, W): integer activations, ``bits`` wide, signed or unsigned (the
producing layer's format); output (V, C, Ho, Wo) in the same format.  Window
``(kh, kw)``, stride ``(sh, sw)``, padding ``(ph, pw)`` on each side; dilation 1 and
floor mode, as ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` by default::

    Ho = (H + 2*ph - kh) // sh + 1,  Wo = (W + 2*pw - kw) // sw + 1
    window(i, j) = rows i*sh - ph .. + kh-1, columns j*sw - pw .. + kw-1

- ``max``: ``y = max`` over the window's positions inside the input (padding never wins,
  i.e. padded positions are -inf; ``ph <= kh // 2`` and ``pw <= kw // 2`` so every
  window holds at least one input position).  Exact.
- ``avg``: ``sum`` over the window's positions inside the input (padding adds 0 but is
  counted in the divisor, ``count_include_pad=True``), then
  ``y = sat(rshr(sum * mult, shift), bits)`` (``satu`` for an unsigned format), with a
  fixed-point reciprocal ``mult`` (signed ``mult_bits``) and ``shift``: see
  :func:`avg_coeffs`.  A power-of-two divisor ``2**p`` gets ``mult = 1, shift = p``, so
  the result is exactly ``sum / 2**p`` rounded half up.
- adaptive average pooling to 1x1 is ``avg`` with window ``(H, W)``, stride 1, no padding
  (:func:`adaptive_avg_1x1`).

The RTL sees the windows as streams of positions (the padded ones are not sent); it
keeps a running max or sum per lane, so a window may hold up to ``max_window`` positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from aimcflow.rtl.codes import POOL_KINDS
from aimcflow.rtl.params import PoolWidths
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from ..errors import UserInputError
from .fixedpoint import IntArray, rshr, sat, satu, signed_range
from .residual import check_format

if TYPE_CHECKING:
    from ..config import AcceleratorConfig

PoolKind = Literal["max", "avg"]


@dataclass(frozen=True)
class PoolParams(PoolWidths):
    """Everything that fixes the pooling unit's numerics: the widths the RTL shares
    (:class:`~aimcflow.rtl.params.PoolWidths`) and the map format ``signed``."""

    signed: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, **overrides) -> PoolParams:
        """The NMPU's output format and multiplier width and its lanes; ``overrides``
        replace single fields (the network simulator sets ``signed`` per layer)."""
        n = cfg.nmpu
        fields = dict(lanes=n.lanes, bits=n.out_bits, signed=n.signed_output, mult_bits=n.mult_bits)
        fields.update(overrides)
        return cls(**fields)

    def validate(self) -> None:
        checks = [
            (self.lanes >= 1, f"lanes = {self.lanes}; allowed: >= 1"),
            (2 <= self.bits <= 24, f"pool bits = {self.bits}; allowed: 2 .. 24"),
            (2 <= self.mult_bits <= 32, f"pool mult_bits = {self.mult_bits}; allowed: 2 .. 32"),
            (
                1 <= self.max_window <= 1 << 16,
                f"pool max_window = {self.max_window}; allowed: 1 .. 65536",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg)


@dataclass(frozen=True)
class PoolCoeffs:
    """Average pooling's reciprocal: ``y = rshr(sum * mult, shift)`` (``mult`` signed
    ``mult_bits``, ``shift`` in ``0 .. shift_max``).  Unused by max pooling."""

    mult: int = 1
    shift: int = 0

    def check(self, p: PoolParams) -> None:
        lo, hi = signed_range(p.mult_bits)
        if not lo <= self.mult <= hi:
            raise UserInputError(
                f"pool mult = {self.mult}; allowed: signed mult_bits={p.mult_bits} ({lo} .. {hi})"
            )
        if not 0 <= self.shift <= p.shift_max:
            raise UserInputError(f"pool shift = {self.shift}; allowed: 0 .. {p.shift_max}")


def avg_coeffs(divisor: int, params: PoolParams) -> PoolCoeffs:
    """Reciprocal of a window size ``divisor`` (``1 .. max_window``).

    ``2**p``: ``mult = 1, shift = p`` (exact).  Otherwise ``mult = round(2**shift /
    divisor)`` at the largest ``shift`` whose ``mult`` fits signed ``mult_bits``; then
    ``|y - sum/divisor| <= 1/2 + |sum| * |mult * 2**-shift - 1/divisor|``; the second
    term is below ``2**bits * 2**-(mult_bits-1)`` output LSB (0.008 for 8-bit values and a
    16-bit ``mult``)."""
    if not 1 <= divisor <= params.max_window:
        raise UserInputError(
            f"average-pool divisor {divisor}; allowed: 1 .. max_window ({params.max_window})"
        )
    if divisor & (divisor - 1) == 0:
        return PoolCoeffs(1, divisor.bit_length() - 1)
    top = (1 << (params.mult_bits - 1)) - 1
    # mult = round(2**shift / d) <= top  <=>  2**shift < (top + 1/2) * d
    shift = ((2 * top + 1) * divisor - 1).bit_length() - 2
    mult = ((1 << (shift + 1)) + divisor) // (2 * divisor)  # round half up of 2**shift / d
    return PoolCoeffs(mult, shift)


def out_shape(
    H: int, W: int, window: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[int, int]:
    """``(Ho, Wo)`` of a pooling; :class:`UserInputError` for a window the rules refuse."""
    (kh, kw), (sh, sw), (ph, pw) = window, stride, padding
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise UserInputError(
            f"pool window {window}, stride {stride}, padding {padding}: window and stride "
            "must be >= 1, padding >= 0"
        )
    if ph > kh // 2 or pw > kw // 2:
        raise UserInputError(
            f"pool padding {padding} with window {window}: allowed padding <= window // 2"
        )
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise UserInputError(
            f"pool window {window} with padding {padding} does not fit a {H} x {W} input"
        )
    return Ho, Wo


def windows(
    x: IntArray,
    window: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    fill: int,
) -> IntArray:
    """(V, C, H, W) -> (V, C, Ho, Wo, kh, kw): every window's positions, padded ones
    ``fill`` (a view where no padding is needed)."""
    (kh, kw), (sh, sw), (ph, pw) = window, stride, padding
    Ho, Wo = out_shape(x.shape[2], x.shape[3], window, stride, padding)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    v = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return v[:, :, : (Ho - 1) * sh + 1 : sh, : (Wo - 1) * sw + 1 : sw]


def _pair(name: str, v) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, (int, np.integer)) for i in t):
        raise UserInputError(f"pool {name} {v!r}: allowed an int or a pair of ints")
    return int(t[0]), int(t[1])


def pool(
    x: ArrayLike,
    kind: PoolKind,
    window,
    stride,
    params: PoolParams,
    coeffs: PoolCoeffs | None = None,
    padding=0,
) -> IntArray:
    """Max or average pooling of ``x`` (V, C, H, W) -> (V, C, Ho, Wo), int64.

    ``window``/``stride``/``padding``: an int or ``(rows, cols)``.  ``coeffs`` is needed for
    ``avg`` (e.g. ``avg_coeffs(kh * kw, params)``).  Raises :class:`UserInputError` for
    a bad shape, kind, window or a value outside ``bits``."""
    if kind not in POOL_KINDS:
        raise UserInputError(f"pool kind {kind!r}; allowed: {', '.join(POOL_KINDS)}")
    window, stride, padding = (
        _pair("window", window),
        _pair("stride", stride),
        _pair("padding", padding),
    )
    x = check_format("x", x, params.bits, params.signed)
    if x.ndim != 4:
        raise UserInputError(f"pool x: shape {x.shape}, expected (V, C, H, W)")
    if window[0] * window[1] > params.max_window:
        raise UserInputError(
            f"pool window {window} has {window[0] * window[1]} positions; allowed: "
            f"<= max_window ({params.max_window})"
        )
    if kind == "max":
        fill = np.iinfo(np.int64).min  # padded positions never win
        return windows(x, window, stride, padding, fill).max(axis=(-2, -1))
    if coeffs is None:
        raise UserInputError("average pooling needs coefficients (avg_coeffs)")
    coeffs.check(params)
    s = windows(x, window, stride, padding, 0).sum(axis=(-2, -1))
    y = rshr(s * coeffs.mult, coeffs.shift)
    return sat(y, params.bits) if params.signed else satu(y, params.bits)


def adaptive_avg_1x1(x: ArrayLike, params: PoolParams, coeffs: PoolCoeffs | None = None):
    """Adaptive average pooling to 1x1: ``avg`` over the whole (H, W) map; ``coeffs``
    default to :func:`avg_coeffs` of ``H * W``.  (V, C, H, W) -> (V, C, 1, 1)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise UserInputError(f"pool x: shape {x.shape}, expected (V, C, H, W)")
    H, W = int(x.shape[2]), int(x.shape[3])
    if coeffs is None:
        coeffs = avg_coeffs(H * W, params)
    return pool(x, "avg", (H, W), 1, params, coeffs)
