"""DAC and ADC behavioral models: code <-> value maps, quantizers, latency and energy.

Code convention (both converters, signed ``bits``): code ``c`` means the value
``c * bound / (2**(bits-1) - 1)``, so the full-scale codes +-(2**(bits-1) - 1) are exactly
+-bound.  This is aihwkit's ``inp_res = 1/(2**bits - 2)`` / ``out_res`` step over the range
``[-bound, bound]``: 8 bits and bound 1 give a step of 1/127; aihwkit's default 1/126 over
+-1 is our 7-bit DAC (codes +-63), its 1/510 over +-12 our 9-bit ADC (codes +-255).

* float level (aihwkit semantics): values are rounded to the step and clipped to
  +-bound; a column saturates when its rounded value lies beyond +-bound.  These
  quantizers run inside the tile's compiled float-path kernels (``fused.dac`` and
  ``fused.pass_tail``, in float32), their one implementation.
* integer level (SPEC.md): ADC codes are ``sat(round(I / LSB), bits)``, the full two's
  complement range, and ``sat_any`` flags a code equal to the most negative or most
  positive code.

Rounding is half up, floor(v + 1/2), the same rule as SPEC.md's ``rshr``.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.periphery.fixedpoint import signed_range

# Energy per conversion step (Walden figure of merit, J/conv-step) by ADC architecture.
# SAR: the median of the FTJ thesis' Table 2.1 survey of 8-bit ~1 GS/s ADCs
# (docs/ARCHITECTURE.md, References): P/(f_s 2^ENOB) for the five designs = 33.2, 33.7, 17.0, 12.7, 25.1 fJ,
# median 25 fJ.  Ramp: a ramp conversion spends 2^B comparator steps per column (thesis
# §2.2: energy O(N_c 2^B)); we charge it the same energy per step, i.e. the same FoM.
# Ideal: no energy (an abstraction).
ADC_FOM_J_PER_STEP = {"ideal": 0.0, "sar": 25e-15, "ramp": 25e-15}


def lsb(bits: int, bound: float) -> float:
    """Value of one code: bound / (2**(bits-1) - 1) (units of ``bound``)."""
    return float(bound) / float((1 << (bits - 1)) - 1)


def round_half_up(v: np.ndarray) -> np.ndarray:
    """floor(v + 0.5), elementwise; float in, float out."""
    return np.floor(v + 0.5)


def adc_sat_any(codes: np.ndarray, bits: int) -> np.ndarray:
    """Per row (the last axis): is any code the most negative or most positive ``bits``
    code?  SPEC.md's ``sat_any``, also the management golden model's."""
    lo, hi = signed_range(bits)
    return np.any((codes == lo) | (codes == hi), axis=-1)


def adc_codes(y: np.ndarray, bits: int, lsb_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer ADC: codes sat(round(y / LSB), bits) (int64) and per-row sat_any (bool)."""
    lo, hi = signed_range(bits)
    c = np.clip(round_half_up(y / lsb_value), lo, hi).astype(np.int64)
    return c, adc_sat_any(c, bits)


def adc_latency_cycles(kind: str, bits: int, cols: int, share: int = 1) -> int:
    """Clock cycles to convert all ``cols`` columns once.

    ideal: 1; ramp: 2**bits (one shared ramp, every column compared in parallel);
    sar: bits cycles per conversion, one ADC per ``share`` columns, conversions of the
    columns sharing an ADC in sequence: bits * share (bits * min(share, cols)).
    """
    if kind == "ideal":
        return 1
    if kind == "ramp":
        return 1 << bits
    if kind == "sar":
        return bits * min(share, cols)
    raise ValueError(f"unknown ADC kind {kind!r}")


def adc_energy_per_conversion_j(kind: str, bits: int) -> float:
    """Energy of one B-bit conversion (J): FoM_W * 2**bits (table ``ADC_FOM_J_PER_STEP``)."""
    return ADC_FOM_J_PER_STEP[kind] * float(1 << bits)
