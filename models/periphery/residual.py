"""Bit-exact golden model of the residual-add unit (docs/SPEC.md, "Residual add").

Two activation tensors of the same shape, ``a`` (main branch) and ``b`` (shortcut), each
an integer tensor in its own layer format (``in_bits`` wide, signed or unsigned, its own
real-valued scale), are brought to the output scale and added (all integers, int64)::

    z   = rshr(a * mult_a + b * mult_b, shift)     # exact sum, one rounding
    s   = sat(z, out_bits + 1)                     # saturate (covers both output formats)
    act = activation(s)                            # the NMPU's set: none|relu|leaky|clamp
    y   = sat(act, out_bits) if out_signed else satu(act, out_bits)

``mult_a``, ``mult_b``: signed ``mult_bits`` integers, with ``shift`` in
``0 .. shift_max`` they are the fixed-point ratios ``scale_a / scale_y`` and
``scale_b / scale_y`` (:func:`residual_coeffs` computes them from the three scales).
The activation and the final saturation are the NMPU golden model's own functions
(:func:`aimcflow.models.periphery.nmpu.activation`, ``saturate_output``): one rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from aimcflow.rtl.params import ResidualWidths
from numpy.typing import ArrayLike

from ..errors import UserInputError
from .fixedpoint import IntArray, rshr, sat, signed_range, unsigned_range
from .nmpu import (
    ACTIVATIONS,
    Activation,
    activation,
    check_range,
    output_format_fields,
    saturate_output,
)

if TYPE_CHECKING:
    from ..config import AcceleratorConfig

_INT64_BITS = 63


@dataclass(frozen=True)
class ResidualParams(ResidualWidths):
    """Everything that fixes the residual add's numerics: the widths the RTL shares
    (:class:`~aimcflow.rtl.params.ResidualWidths`) and the formats.

    ``a_signed``/``b_signed`` are the branches' formats (the producing layers' output
    signedness); ``out_signed``, ``activation``, ``leaky_k`` and the clamp bounds are the
    add's own output format, with the NMPU's meaning (clamp bounds in output LSB).
    """

    a_signed: bool = False
    b_signed: bool = False
    out_signed: bool = False
    activation: Activation = "relu"
    leaky_k: int = 3
    clamp_lo: int = 0
    clamp_hi: int = 127

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, **overrides) -> ResidualParams:
        """Widths of an accelerator config: both branches and the output in the NMPU's
        output format (``nmpu.out_bits``), the NMPU's multiplier width and lanes;
        ``overrides`` replace single fields (the network simulator sets the branch
        signedness and the activation per add)."""
        n = cfg.nmpu
        fields = dict(
            lanes=n.lanes,
            in_bits=n.out_bits,
            a_signed=n.signed_output,
            b_signed=n.signed_output,
            mult_bits=n.mult_bits,
            out_bits=n.out_bits,
            **output_format_fields(cfg),
        )
        fields.update(overrides)
        return cls(**fields)

    @property
    def shift_max(self) -> int:
        """Largest useful ``shift``: beyond it every sum rounds to 0 or -0 alike."""
        return self.sum_bits

    def validate(self) -> None:
        """Raise :class:`UserInputError` for a parameter set the RTL cannot build."""
        checks = [
            (self.lanes >= 1, f"lanes = {self.lanes}; allowed: >= 1"),
            (2 <= self.in_bits <= 24, f"residual in_bits = {self.in_bits}; allowed: 2 .. 24"),
            (2 <= self.out_bits <= 24, f"residual out_bits = {self.out_bits}; allowed: 2 .. 24"),
            (
                2 <= self.mult_bits <= 32,
                f"residual mult_bits = {self.mult_bits}; allowed: 2 .. 32",
            ),
            (
                self.activation in ACTIVATIONS,
                f"residual activation = {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}",
            ),
            (0 <= self.leaky_k <= 31, f"residual leaky_k = {self.leaky_k}; allowed: 0 .. 31"),
            (
                self.clamp_lo <= self.clamp_hi,
                f"residual clamp_lo ({self.clamp_lo}) must be <= clamp_hi ({self.clamp_hi})",
            ),
            (
                max(abs(self.clamp_lo), abs(self.clamp_hi)) < 1 << 40,
                "residual clamp bounds: allowed |value| < 2**40",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg)


@dataclass(frozen=True)
class ResidualCoeffs:
    """Run-time coefficients of one add: branch multipliers (signed ``mult_bits``) and the
    common right shift (``0 .. shift_max``)."""

    mult_a: int
    mult_b: int
    shift: int

    def check(self, p: ResidualParams) -> None:
        lo, hi = signed_range(p.mult_bits)
        for name, v in (("mult_a", self.mult_a), ("mult_b", self.mult_b)):
            if not lo <= v <= hi:
                raise UserInputError(
                    f"residual {name} = {v}; allowed: signed mult_bits={p.mult_bits} ({lo} .. {hi})"
                )
        if not 0 <= self.shift <= p.shift_max:
            raise UserInputError(f"residual shift = {self.shift}; allowed: 0 .. {p.shift_max}")


def input_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive range of an activation in ``bits`` bits of the given signedness."""
    return signed_range(bits) if signed else unsigned_range(bits)


def check_format(name: str, v: ArrayLike, bits: int, signed: bool) -> IntArray:
    """``v`` as int64, or :class:`UserInputError` if not integer or outside the format."""
    arr = np.asarray(v)
    if arr.dtype.kind not in "iu":
        raise UserInputError(f"{name}: integer array expected, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    kind = "signed" if signed else "unsigned"
    check_range(name, arr, *input_range(bits, signed), f"{kind} in_bits={bits}")
    return arr


def residual_add(
    a: ArrayLike, b: ArrayLike, params: ResidualParams, coeffs: ResidualCoeffs
) -> IntArray:
    """``y = act(sat(rshr(a*mult_a + b*mult_b, shift), out_bits+1))`` saturated to the output
    format; ``a`` and ``b`` integer arrays of one shape (any), result int64 of that shape.

    Raises :class:`UserInputError` for different shapes, a non-integer dtype, a value
    outside its branch format or a coefficient outside its width."""
    coeffs.check(params)
    a = check_format("a", a, params.in_bits, params.a_signed)
    b = check_format("b", b, params.in_bits, params.b_signed)
    if a.shape != b.shape:
        raise UserInputError(f"residual add: a has shape {a.shape} but b has {b.shape}")
    z = rshr(a * coeffs.mult_a + b * coeffs.mult_b, coeffs.shift)
    s = sat(z, params.out_bits + 1)
    return saturate_output(activation(s, params), params)


def residual_coeffs(
    scale_a: float, scale_b: float, scale_y: float, params: ResidualParams
) -> ResidualCoeffs:
    """Fixed-point ratios ``scale_a / scale_y`` and ``scale_b / scale_y`` (real units per
    LSB of each branch and of the output): the largest ``shift <= shift_max`` at which
    both rounded multipliers ``round(ratio * 2**shift)`` fit signed ``mult_bits``.

    The absolute error of the add then is at most ``(|a| + |b|) * 2**-(shift+1)`` output
    LSB before the final rounding, so the largest shift is the most precise one.  A ratio
    too large for any shift (more than ``2**(mult_bits-1) - 1``) is refused."""
    for name, s in (("scale_a", scale_a), ("scale_b", scale_b), ("scale_y", scale_y)):
        if not (math.isfinite(s) and s > 0):
            raise UserInputError(f"residual {name} = {s}; allowed: a finite value > 0")
    ra, rb = scale_a / scale_y, scale_b / scale_y
    top = (1 << (params.mult_bits - 1)) - 1

    def fits(shift: int) -> bool:
        return all(math.floor(r * 2.0**shift + 0.5) <= top for r in (ra, rb))

    if not fits(0):
        raise UserInputError(
            f"residual scale ratios {ra:.4g}, {rb:.4g} exceed the multiplier range "
            f"(at most {top} with shift 0): choose a larger output scale"
        )
    shift = next(s for s in range(params.shift_max, -1, -1) if fits(s))
    return ResidualCoeffs(
        mult_a=math.floor(ra * 2.0**shift + 0.5),
        mult_b=math.floor(rb * 2.0**shift + 0.5),
        shift=shift,
    )
