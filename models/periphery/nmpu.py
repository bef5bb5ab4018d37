"""Bit-exact golden model of the near-memory fixed-point unit (NMPU), docs/SPEC.md.

Per output column ``c`` and row tile ``t = 0..T-1`` (all values integers, int64)::

    p_t = gain[t, c] * a_t[c] + offset[t, c]          # LSB: 2**-gain_frac ADC LSB
    s_t = p_t << (e_t - e_min)                        # exact, no rounding
    acc = sat(acc + s_t, acc_bits)                    # saturating, in order t = 0..T-1
    z   = rshr(acc * mult[c], out_shift) + bias[c]    # bias in output LSB
    act = none | relu | leaky(k) | clamp(lo, hi)
    y   = sat(act, out_bits) if out_signed else satu(act, out_bits)

Operand formats (the RTL uses the same widths; choices SPEC.md leaves open are marked *):

- ``a``: signed ``adc_bits`` ADC codes.  ``e``: integer in ``[e_min, e_max]``.
- ``gain``: signed ``gain_bits`` with ``gain_frac`` fractional bits (Q(gain_bits-gain_frac).gain_frac).
- ``offset``: signed ``offset_bits`` (* default ``adc_bits + gain_bits``, the width of
  ``gain * a``); its LSB is that of ``gain * a``, i.e. ``2**-gain_frac`` ADC LSB.
- ``mult``: signed ``mult_bits``.  ``bias``: signed ``bias_bits`` (* default ``acc_bits``),
  in output LSB (added after the ``out_shift`` rounding).
- leaky: ``z`` if ``z >= 0`` else ``rshr(z, leaky_k)``.  clamp: ``min(max(z, lo), hi)``
  with ``lo <= hi``.  The RTL's clamp registers are signed ``out_bits + 1`` wide (*) and
  hold :func:`rtl_clamp_bounds`: the bounds passed through the output saturation.  That
  is exact, since saturation is monotone and so commutes with min/max.

The accumulator starts at 0 before tile 0.  ``acc_bits >= adc_bits + gain_bits`` is
required so a single product never saturates the sum by itself (a config the RTL refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from aimcflow.rtl.codes import ACTIVATIONS
from aimcflow.rtl.params import NmpuWidths
from numpy.typing import ArrayLike

from ..errors import UserInputError
from .fixedpoint import IntArray, rshr, sat, satu, signed_range

if TYPE_CHECKING:
    from ..config import AcceleratorConfig

Activation = Literal["none", "relu", "leaky", "clamp"]

_INT64_BITS = 63  # usable magnitude bits of int64 incl. sign


def output_format_fields(cfg: AcceleratorConfig) -> dict:
    """The config's NMPU output format and activation (``nmpu.signed_output``,
    ``activation``, ``leaky_k``, clamp bounds) as parameter fields, for every block that
    ends in the NMPU's activation (NMPU, residual add)."""
    n = cfg.nmpu
    return dict(
        out_signed=n.signed_output,
        activation=n.activation,
        leaky_k=n.leaky_k,
        clamp_lo=n.clamp_lo,
        clamp_hi=n.clamp_hi,
    )


@dataclass(frozen=True)
class NmpuParams(NmpuWidths):
    """Everything that fixes the NMPU's numerics: the widths the RTL shares
    (:class:`~aimcflow.rtl.params.NmpuWidths`, with its ``offset_bits``/``bias_bits`` rule)
    and the run-time choices the RTL holds in registers."""

    out_signed: bool = False
    activation: Activation = "relu"
    leaky_k: int = 3
    clamp_lo: int = 0
    clamp_hi: int = 127

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate()

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, **overrides) -> NmpuParams:
        """NMPU parameters of an accelerator config; ``overrides`` replace single fields
        (the network simulator sets ``activation``/``out_signed`` per layer)."""
        n = cfg.nmpu
        fields = dict(
            lanes=n.lanes,
            adc_bits=cfg.adc.bits,
            gain_bits=n.gain_bits,
            gain_frac=n.gain_frac,
            acc_bits=n.acc_bits,
            mult_bits=n.mult_bits,
            out_shift=n.shift,
            out_bits=n.out_bits,
            e_min=cfg.mgmt.e_min,
            e_max=cfg.mgmt.e_max,
            **output_format_fields(cfg),
        )
        fields.update(overrides)
        return cls(**fields)

    @property
    def shift_max(self) -> int:
        """Largest exponent shift ``e - e_min`` (bits)."""
        return self.e_max - self.e_min

    @property
    def p_bits(self) -> int:
        """Signed width of ``p = gain * a + offset``."""
        return max(self.adc_bits + self.gain_bits, self.offset_bits) + 1

    def validate(self) -> None:
        """Raise :class:`UserInputError` for a parameter set the RTL cannot build."""
        checks = [
            (self.lanes >= 1, f"nmpu.lanes = {self.lanes} must be >= 1"),
            (
                self.activation in ACTIVATIONS,
                f"nmpu.activation = {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}",
            ),
            (
                self.e_min <= self.e_max,
                f"mgmt.e_min ({self.e_min}) must be <= e_max ({self.e_max})",
            ),
            (
                0 <= self.gain_frac < self.gain_bits,
                f"nmpu.gain_frac = {self.gain_frac}; allowed: 0 .. gain_bits-1 ({self.gain_bits - 1})",
            ),
            (
                self.acc_bits >= self.adc_bits + self.gain_bits,
                f"nmpu.acc_bits = {self.acc_bits} is too small: the accumulator must hold one "
                f"gain*a product, allowed: >= adc.bits + nmpu.gain_bits = "
                f"{self.adc_bits + self.gain_bits}",
            ),
            (
                self.acc_bits + self.mult_bits <= _INT64_BITS - 1,
                f"nmpu.acc_bits + nmpu.mult_bits = {self.acc_bits + self.mult_bits}; allowed: <= 62 "
                "(the golden model computes acc*mult in int64)",
            ),
            (
                self.p_bits + self.acc_bits + 1 <= _INT64_BITS,
                f"nmpu widths too large for the int64 golden model: max(adc.bits + "
                f"nmpu.gain_bits, offset_bits) + nmpu.acc_bits = "
                f"{self.p_bits - 1 + self.acc_bits}; allowed: <= 61",
            ),
            (2 <= self.offset_bits <= 62, f"offset_bits = {self.offset_bits}; allowed: 2 .. 62"),
            (2 <= self.bias_bits <= 62, f"bias_bits = {self.bias_bits}; allowed: 2 .. 62"),
            (0 <= self.leaky_k <= 31, f"nmpu.leaky_k = {self.leaky_k}; allowed: 0 .. 31"),
            (
                self.clamp_lo <= self.clamp_hi,
                f"nmpu.clamp_lo ({self.clamp_lo}) must be <= clamp_hi ({self.clamp_hi})",
            ),
        ]
        for name, v in (("clamp_lo", self.clamp_lo), ("clamp_hi", self.clamp_hi)):
            checks.append((abs(v) < 1 << 40, f"nmpu.{name} = {v}; allowed: |value| < 2**40"))
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg)


def _check_int(name: str, v: ArrayLike, shape: tuple[int, ...] | None = None) -> IntArray:
    arr = np.asarray(v)
    if arr.dtype.kind not in "iu":
        raise UserInputError(f"{name}: integer array expected, got dtype {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise UserInputError(f"{name}: shape {arr.shape}, expected {shape}")
    return arr.astype(np.int64, copy=False)


def check_range(name: str, v: IntArray, lo: int, hi: int, what: str) -> None:
    """Raise :class:`UserInputError` if any element of ``v`` is outside ``[lo, hi]``."""
    if v.size and (v.min() < lo or v.max() > hi):
        bad = v[(v < lo) | (v > hi)].flat[0]
        raise UserInputError(f"{name}: value {int(bad)} outside {what} range {lo} .. {hi}")


def check_operands(
    a: ArrayLike,
    e: ArrayLike,
    gain: ArrayLike,
    offset: ArrayLike,
    mult: ArrayLike,
    bias: ArrayLike,
    p: NmpuParams,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Shapes ``a`` (V,T,C), ``e`` (V,T), ``gain``/``offset`` (T,C), ``mult``/``bias`` (C,);
    every value within its declared width.  Returns int64 copies-or-views."""
    a = _check_int("a", a)
    if a.ndim != 3:
        raise UserInputError(f"a: shape {a.shape}, expected (V, T, C)")
    V, T, C = a.shape
    if T < 1 or C < 1:
        raise UserInputError(f"a: shape {a.shape}; T and C must be >= 1")
    e = _check_int("e", e, (V, T))
    gain = _check_int("gain", gain, (T, C))
    offset = _check_int("offset", offset, (T, C))
    mult = _check_int("mult", mult, (C,))
    bias = _check_int("bias", bias, (C,))
    check_range("a", a, *signed_range(p.adc_bits), f"signed adc.bits={p.adc_bits}")
    check_range("e", e, p.e_min, p.e_max, "mgmt.e_min .. e_max")
    check_range("gain", gain, *signed_range(p.gain_bits), f"signed gain_bits={p.gain_bits}")
    check_range(
        "offset", offset, *signed_range(p.offset_bits), f"signed offset_bits={p.offset_bits}"
    )
    check_range("mult", mult, *signed_range(p.mult_bits), f"signed mult_bits={p.mult_bits}")
    check_range("bias", bias, *signed_range(p.bias_bits), f"signed bias_bits={p.bias_bits}")
    return a, e, gain, offset, mult, bias


def affine(a: IntArray, gain: IntArray, offset: IntArray) -> IntArray:
    """``p = gain * a + offset`` (broadcasting), LSB ``2**-gain_frac`` ADC LSB."""
    return gain * a + offset


def accumulate(p: IntArray, e: IntArray, params: NmpuParams) -> IntArray:
    """Saturating partial-sum accumulation over row tiles: ``p`` (V,T,C), ``e`` (V,T) -> (V,C).

    ``s_t = p_t << (e_t - e_min)`` is exact in the SPEC; to stay inside int64 the shift is
    capped at ``acc_bits + 1``: any nonzero ``p`` shifted that far already has magnitude
    >= 2**(acc_bits+1), which saturates ``acc + s_t`` to the same bound as the full shift,
    so the capped result is identical.
    """
    k = np.minimum(e - params.e_min, params.acc_bits + 1)
    s = np.left_shift(p, k[:, :, None])
    acc = np.zeros(p.shape[::2], dtype=np.int64)
    for t in range(p.shape[1]):  # sequential by definition: saturation order is fixed
        acc = sat(acc + s[:, t, :], params.acc_bits)
    return acc


def activation(z: IntArray, params: NmpuParams) -> IntArray:
    """Activation of ``z`` (output LSB) by ``params.activation``."""
    kind = params.activation
    if kind == "none":
        return z
    if kind == "relu":
        return np.maximum(z, 0)
    if kind == "leaky":
        return np.where(z >= 0, z, rshr(z, params.leaky_k))
    return np.clip(z, params.clamp_lo, params.clamp_hi)


def saturate_output(v: IntArray, params: NmpuParams) -> IntArray:
    """The final saturation: ``sat(v, out_bits)`` or ``satu(v, out_bits)`` by ``out_signed``."""
    return sat(v, params.out_bits) if params.out_signed else satu(v, params.out_bits)


def rtl_clamp_bounds(params: NmpuParams) -> tuple[int, int]:
    """Values for the RTL's clamp-lo/hi registers (signed ``out_bits + 1``): the config's
    bounds saturated to the output range, which gives identical outputs."""
    lo, hi = saturate_output(np.array([params.clamp_lo, params.clamp_hi]), params)
    return int(lo), int(hi)


def output_stage(acc: IntArray, mult: IntArray, bias: IntArray, params: NmpuParams) -> IntArray:
    """``acc`` (V,C) -> ``y`` (V,C): multiplier, rounding shift, bias, activation, saturation."""
    z = rshr(acc * mult, params.out_shift) + bias
    return saturate_output(activation(z, params), params)


def nmpu(
    a: ArrayLike,
    e: ArrayLike,
    gain: ArrayLike,
    offset: ArrayLike,
    mult: ArrayLike,
    bias: ArrayLike,
    params: NmpuParams,
) -> IntArray:
    """The whole NMPU: ``a`` (V,T,C) ADC codes, ``e`` (V,T) exponents, ``gain``/``offset``
    (T,C), ``mult``/``bias`` (C,) -> ``y`` (V,C) int64 output activations.

    Raises :class:`UserInputError` for a wrong shape, dtype or a value outside its width.
    """
    a, e, gain, offset, mult, bias = check_operands(a, e, gain, offset, mult, bias, params)
    p = affine(a, gain[None], offset[None])
    acc = accumulate(p, e, params)
    return output_stage(acc, mult[None], bias[None], params)
