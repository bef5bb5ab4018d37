"""Elaboration parameters of the periphery blocks: one frozen dataclass per block.

Field names are those of docs/SPEC.md (``adc_bits`` is ``adc.bits`` ...).  ``rtl/`` never
imports the config: ``aimcflow.cosim.rtlparams`` maps an ``AcceleratorConfig`` onto these.
Run-time choices (activation, output signedness, noise mode, retries, T, C) are registers,
not parameters; their reset values come from the ``*_reset`` fields.

The widths a block shares with its golden model (:class:`NmpuWidths`, :class:`MgmtWidths`,
:class:`SpgWidths`, :class:`ResidualWidths`, :class:`PoolWidths`) are declared once here, with their defaults; the golden parameter
classes in ``aimcflow.models.periphery`` derive from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .memories import check_style


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


@dataclass(frozen=True)
class NmpuWidths:
    """The NMPU's numeric widths (bits; ``out_shift`` and exponents in bit positions), shared
    by :class:`NmpuRtlParams` and the golden ``NmpuParams``.

    ``offset_bits`` defaults to ``adc_bits + gain_bits`` (the width of ``gain * a``) and
    ``bias_bits`` to ``acc_bits``.
    """

    lanes: int = 8
    adc_bits: int = 8
    gain_bits: int = 16
    gain_frac: int = 14
    acc_bits: int = 32
    mult_bits: int = 16
    out_shift: int = 15
    out_bits: int = 8
    e_min: int = -4
    e_max: int = 7
    offset_bits: int | None = None
    bias_bits: int | None = None

    def __post_init__(self) -> None:
        if self.offset_bits is None:
            object.__setattr__(self, "offset_bits", self.adc_bits + self.gain_bits)
        if self.bias_bits is None:
            object.__setattr__(self, "bias_bits", self.acc_bits)


@dataclass(frozen=True)
class NmpuRtlParams(NmpuWidths):
    """NMPU elaboration parameters: the widths (:class:`NmpuWidths`), ``max_tiles`` /
    ``max_cols`` sizing the coefficient and accumulator memories, and register resets.
    """

    max_tiles: int = 4
    max_cols: int = 256
    activation_reset: int = 1
    out_signed_reset: bool = False
    leaky_k_reset: int = 3
    clamp_lo_reset: int = 0
    clamp_hi_reset: int = 127
    #: memory arrays as ``flops`` or ``macro`` instances (``rtl/memories.py``)
    memories: str = "flops"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_style(self.memories)
        _check(self.lanes >= 1, f"lanes = {self.lanes} must be >= 1")
        _check(self.e_min <= self.e_max, f"e_min {self.e_min} > e_max {self.e_max}")
        _check(
            self.acc_bits >= self.adc_bits + self.gain_bits,
            f"acc_bits = {self.acc_bits} < adc_bits + gain_bits = {self.adc_bits + self.gain_bits}",
        )
        _check(self.max_tiles >= 1 and self.max_cols >= 1, "max_tiles and max_cols must be >= 1")
        _check(0 <= self.activation_reset <= 3, "activation_reset must be 0..3")

    @property
    def max_groups(self) -> int:
        """Column groups of ``lanes`` columns: ``ceil(max_cols / lanes)``."""
        return -(-self.max_cols // self.lanes)


@dataclass(frozen=True)
class MgmtWidths:
    """The management controller's numeric widths (bits) and exponent range, shared by
    :class:`MgmtRtlParams` and the golden ``MgmtParams``: DAC and ADC codes, the input
    format ``x_bits`` (signed iff ``x_signed``)."""

    dac_bits: int = 8
    adc_bits: int = 8
    e_min: int = -4
    e_max: int = 7
    x_bits: int = 8
    x_signed: bool = True


@dataclass(frozen=True)
class MgmtRtlParams(MgmtWidths):
    """Management-controller elaboration parameters: the widths (:class:`MgmtWidths`),
    ``x_lanes`` input values and DAC codes per beat, ``lanes`` ADC codes per beat (the NMPU's
    lane count), ``max_rows`` sizing the input buffer (rows of one tile), register resets.
    """

    x_lanes: int = 8
    lanes: int = 8
    max_rows: int = 256
    noise_reset: int = 1
    bound_max_iter_reset: int = 3
    #: memory arrays as ``flops`` or ``macro`` instances (``rtl/memories.py``)
    memories: str = "flops"

    def __post_init__(self) -> None:
        check_style(self.memories)
        _check(
            self.e_min <= 0 <= self.e_max,
            f"e_min .. e_max = {self.e_min} .. {self.e_max} must contain 0",
        )
        _check(self.x_lanes >= 1 and self.lanes >= 1, "x_lanes and lanes must be >= 1")
        _check(self.max_rows >= 1, "max_rows must be >= 1")
        _check(0 <= self.bound_max_iter_reset <= 15, "bound_max_iter_reset must be 0..15")
        _check(self.noise_reset in (0, 1), "noise_reset must be 0 (off) or 1 (absmax_pow2)")

    @property
    def max_beats(self) -> int:
        """Input beats of the largest segment: ``ceil(max_rows / x_lanes)``."""
        return -(-self.max_rows // self.x_lanes)


@dataclass(frozen=True)
class SpgWidths:
    """Widths of the stochastic pulse generator (``[spg]`` of the config), shared by
    ``rtl.spg.SpgRtlParams`` and the golden ``SpgParams``: input values ``value_bits``
    (signed), gains ``gain_bits`` with ``gain_frac`` fraction bits, probabilities
    ``prob_bits``, bit-stream lengths up to ``max_bl`` slots."""

    value_bits: int = 8
    gain_bits: int = 16
    gain_frac: int = 8
    prob_bits: int = 16
    max_bl: int = 255

    @property
    def translator_shift(self) -> int:
        """Exponent ``e`` of ``scale(|v| * gain, e)`` in the translator."""
        return self.value_bits - 1 + self.gain_frac - self.prob_bits


@dataclass(frozen=True)
class ResidualWidths:
    """Widths of the residual add (bits), shared by ``rtl.residual.ResidualRtlParams`` and
    the golden ``ResidualParams``: branch values ``in_bits`` (held as signed
    ``in_bits + 1``), signed multipliers ``mult_bits``, outputs ``out_bits``."""

    lanes: int = 8
    in_bits: int = 8
    mult_bits: int = 16
    out_bits: int = 8

    @property
    def sum_bits(self) -> int:
        """Signed width of ``a * mult_a + b * mult_b`` (inputs held as signed in_bits + 1)."""
        return self.in_bits + 1 + self.mult_bits + 1


@dataclass(frozen=True)
class PoolWidths:
    """Widths of the pooling unit (bits), shared by ``rtl.pool.PoolRtlParams`` and the
    golden ``PoolParams``: values ``bits`` (held as signed ``bits + 1``), the signed
    reciprocal ``mult_bits``, windows of up to ``max_window`` positions (default: adaptive
    pooling of a 32 x 32 map)."""

    lanes: int = 8
    bits: int = 8
    mult_bits: int = 16
    max_window: int = 1024

    @property
    def sum_bits(self) -> int:
        """Signed width of a window sum of up to ``max_window`` values."""
        return self.bits + 1 + (self.max_window - 1).bit_length()

    @property
    def shift_max(self) -> int:
        """Largest useful ``shift``: beyond it every product rounds to 0 alike."""
        return self.sum_bits + self.mult_bits
