"""Bit-exact golden model of the special-function unit (SFU), docs/SPEC.md "Special-function
unit", plus float references and the derived error bounds of its approximations.

The SFU computes what a transformer needs outside the weight-stationary tiles, all in
integers (I-BERT style, Kim et al., ICML 2021):

- ``matmul``: int8 x int8 -> exact accumulator -> ``sat(rshr(acc * mult, shift), n)``
  (QK^T and AV: products of two activations, which memristor arrays cannot hold).
- ``softmax``: max subtraction, exp by a shift plus a 2nd-order polynomial of ``2**-r``
  (base-2 form of I-BERT's i-exp: no division by ln 2), one reciprocal per row.
- ``layernorm``: mean-free form ``(D x - S1) / sqrt(D S2 - S1**2)``, integer square root
  (Newton iteration here; the RTL's digit-by-digit root gives the same ``floor(sqrt)``),
  one reciprocal per row, output multiplier + shift.
- ``gelu``: I-BERT's polynomial erf, ``x * Phi(x)``.

Every function takes and returns int64 numpy arrays; rows are vectorized (loops only over
Newton iterations, never over elements).  Widths and fixed-point formats are in
:class:`SfuParams`; the constants derived from them (coefficients, shifts) are properties
so that the RTL receives exactly these numbers (``cosim/rtlparams.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from aimcflow.rtl.codes import SFU_OPS
from numpy.typing import ArrayLike

from ..errors import UserInputError
from .fixedpoint import IntArray, rshr, sat, signed_range
from .nmpu import check_range

if TYPE_CHECKING:
    from ..config import AcceleratorConfig

OPS = SFU_OPS
"""Operation codes; the RTL's OP register holds the index into this tuple."""

# 2**-r ~= c0 + c1 r + c2 r**2 on r in [0, 1): minimax fit (equioscillating error
# 1.24e-3, I-BERT's exp polynomial mapped onto base 2 has 2.2e-3), in float.
EXP_POLY = (0.99876025, -0.6695209, 0.17200046)
# I-BERT's erf: erf(z) ~= sgn(z) * (a * (min(|z|, -b) + b)**2 + 1)
ERF_A, ERF_B = -0.2888, -1.769


def _bitlen(n: int) -> int:
    return int(n).bit_length()


@dataclass(frozen=True)
class SfuParams:
    """Everything that fixes the SFU's numerics (widths and fractional bits in bits).

    Formats: ``in_bits`` signed (matmul operands; GELU input and output, LSB
    ``2**-gelu_frac``); ``wide_bits`` signed (softmax input, LSB ``2**-sm_frac``; layernorm
    input, any LSB; matmul "wide" output); ``out_bits`` signed (softmax output, LSB
    ``2**-(out_bits-1)``, range 0 .. 2**(out_bits-1)-1; layernorm and matmul narrow output).
    ``mult_bits``: signed output multiplier of matmul and layernorm.  Internal precisions:
    ``exp_frac`` (exp value), ``exp_r_bits`` (fraction fed to the polynomial),
    ``log2e_bits``, ``phi_frac`` (GELU's Phi), ``ln_frac`` (normalized value before the
    output multiplier), ``ln_guard`` (extra root bits), ``recip_prec`` (minimum bits of a
    reciprocal).
    """

    lanes: int = 8
    seq_max: int = 64
    width_max: int = 64
    in_bits: int = 8
    wide_bits: int = 16
    out_bits: int = 8
    mult_bits: int = 16
    sm_frac: int = 8
    gelu_frac: int = 4
    exp_frac: int = 15
    exp_r_bits: int = 12
    log2e_bits: int = 16
    phi_frac: int = 14
    ln_frac: int = 14
    ln_guard: int = 8
    recip_prec: int = 16

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_config(cls, cfg: AcceleratorConfig, **overrides) -> SfuParams:
        s = cfg.sfu
        fields = dict(
            lanes=s.lanes,
            seq_max=s.seq_max,
            width_max=s.width_max,
            in_bits=s.in_bits,
            wide_bits=s.wide_bits,
            out_bits=s.out_bits,
            mult_bits=s.mult_bits,
            sm_frac=s.sm_frac,
            gelu_frac=s.gelu_frac,
        )
        return cls(**(fields | overrides))

    # ------------------------------------------------------------ derived constants
    @property
    def k_max(self) -> int:
        """Longest dot product of ``matmul``: head width (QK^T) or sequence (AV)."""
        return max(self.seq_max, self.width_max)

    @property
    def acc_bits(self) -> int:
        """Signed width of the exact matmul accumulator."""
        return 2 * self.in_bits - 1 + _bitlen(self.k_max)

    @property
    def shift_max(self) -> int:
        """Largest output shift of matmul / layernorm."""
        return self.acc_bits + self.mult_bits

    @property
    def log2e(self) -> int:
        """``round(log2(e) * 2**log2e_bits)``."""
        return round(math.log2(math.e) * (1 << self.log2e_bits))

    @property
    def exp_coefs(self) -> tuple[int, int, int]:
        """``(C0, C1, C2)``: EXP_POLY in units of ``2**-exp_frac``."""
        return tuple(round(c * (1 << self.exp_frac)) for c in EXP_POLY)  # type: ignore[return-value]

    @property
    def exp_max(self) -> int:
        """Largest exp value ``E`` (at ``r = 0``, no shift): C0."""
        return self.exp_coefs[0]

    @property
    def sm_recip_bits(self) -> int:
        """F: ``factor = floor(2**F / S)``; S < seq_max * 2**exp_frac keeps factor >=
        2**recip_prec."""
        return _bitlen(self.seq_max * self.exp_max) + self.recip_prec

    @property
    def gelu_clip(self) -> int:
        """B = round(-b * sqrt(2) * 2**gelu_frac): I-BERT's clip point of |z| in input LSB."""
        return round(-ERF_B * math.sqrt(2) * (1 << self.gelu_frac))

    @property
    def gelu_ka_bits(self) -> int:
        return 16

    @property
    def gelu_ka(self) -> int:
        """KA = round(|a|/4 * 2**16): Phi = 1/2 (1 + erf) = KA s / 2**(16 + 2 gelu_frac)."""
        return round(-ERF_A / 4 * (1 << self.gelu_ka_bits))

    @property
    def gelu_phi_shift(self) -> int:
        return self.gelu_ka_bits + 2 * self.gelu_frac - self.phi_frac

    @property
    def ln_q_max(self) -> int:
        """Bound of ``Q = D S2 - S1**2 <= D * S2 <= D**2 * 2**(2 wide_bits - 2)``."""
        return self.width_max**2 << (2 * self.wide_bits - 2)

    @property
    def ln_root_bits(self) -> int:
        """Bits of ``r = isqrt(Q << 2 ln_guard)``."""
        return (_bitlen(self.ln_q_max) + 2 * self.ln_guard + 1) // 2

    @property
    def ln_recip_bits(self) -> int:
        """R: ``factor = floor(2**R / r)`` >= 2**recip_prec for every r."""
        return self.ln_root_bits + self.recip_prec

    @property
    def ln_w_bits(self) -> int:
        """Signed width of ``w``: ``|x - mean| / std <= sqrt(D - 1)``, and the reciprocal's
        floor and the rounding add < 0.5 %, so ``|w| < (isqrt(width_max - 1) + 1) 2**ln_frac``."""
        return _bitlen(math.isqrt(self.width_max - 1) + 1) + self.ln_frac + 1

    @property
    def ln_w_shift(self) -> int:
        return self.ln_recip_bits - self.ln_guard - self.ln_frac

    def validate(self) -> None:
        """Raise :class:`UserInputError` for a parameter set the int64 model or RTL cannot
        hold (messages use the config key names of ``[sfu]``)."""
        checks = [
            (self.lanes >= 1, f"sfu.lanes = {self.lanes}; allowed: >= 1"),
            (2 <= self.seq_max <= 1024, f"sfu.seq_max = {self.seq_max}; allowed: 2 .. 1024"),
            (2 <= self.width_max <= 1024, f"sfu.width_max = {self.width_max}; allowed: 2 .. 1024"),
            (2 <= self.in_bits <= 16, f"sfu.in_bits = {self.in_bits}; allowed: 2 .. 16"),
            (
                self.in_bits <= self.wide_bits <= 24,
                f"sfu.wide_bits = {self.wide_bits}; allowed: in_bits ({self.in_bits}) .. 24",
            ),
            (
                2 <= self.out_bits <= self.wide_bits,
                f"sfu.out_bits = {self.out_bits}; allowed: 2 .. wide_bits ({self.wide_bits})",
            ),
            (2 <= self.mult_bits <= 24, f"sfu.mult_bits = {self.mult_bits}; allowed: 2 .. 24"),
            (
                self.exp_r_bits <= self.sm_frac + self.log2e_bits,
                f"sfu.sm_frac = {self.sm_frac}; allowed: >= {self.exp_r_bits - self.log2e_bits}",
            ),
            (0 <= self.sm_frac <= 16, f"sfu.sm_frac = {self.sm_frac}; allowed: 0 .. 16"),
            (
                0 <= self.gelu_frac < self.in_bits and self.gelu_phi_shift >= 0,
                f"sfu.gelu_frac = {self.gelu_frac}; allowed: 0 .. in_bits-1 ({self.in_bits - 1})",
            ),
            (
                self.ln_w_shift >= 0 and (self.ln_q_max << 2 * self.ln_guard) < 1 << 62,
                f"sfu.wide_bits = {self.wide_bits} with sfu.width_max = {self.width_max}: "
                "the layernorm variance does not fit the int64 model; allowed: "
                "2*wide_bits + 2*bitlen(width_max) <= 44",
            ),
            (
                self.acc_bits + self.mult_bits <= 62,
                f"sfu.in_bits/mult_bits too wide: acc_bits + mult_bits = "
                f"{self.acc_bits + self.mult_bits}; allowed: <= 62",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg)


# -------------------------------------------------------------------- input checks
def _ints(name: str, v: ArrayLike, ndim: int) -> IntArray:
    arr = np.asarray(v)
    if arr.dtype.kind not in "iu":
        raise UserInputError(f"{name}: integer array expected, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise UserInputError(f"{name}: {arr.ndim}-D array, expected {ndim}-D")
    return arr.astype(np.int64, copy=False)


def _in_range(name: str, v: IntArray, bits: int) -> None:
    check_range(name, v, *signed_range(bits), f"signed {bits}-bit")


def _length(name: str, n: int, lo: int, hi: int, what: str) -> None:
    if not lo <= n <= hi:
        raise UserInputError(f"{name}: {what} {n}; allowed: {lo} .. {hi} (sfu parameters)")


def check_requant(mult: int, shift: int, p: SfuParams) -> None:
    """Output multiplier (signed ``mult_bits``) and shift (``0 .. shift_max``)."""
    _in_range("mult", np.asarray([mult], np.int64), p.mult_bits)
    if not 0 <= int(shift) <= p.shift_max:
        raise UserInputError(f"shift: value {shift} outside 0 .. {p.shift_max}")


def requant_coeffs(ratio: float, p: SfuParams) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult / 2**shift ~= ratio`` (a real ratio of scales > 0): the
    largest ``shift <= shift_max`` at which ``round(ratio * 2**shift)`` fits signed
    ``mult_bits`` (the most precise choice).  A ratio no shift can hold is refused."""
    top = (1 << (p.mult_bits - 1)) - 1
    if not (math.isfinite(ratio) and ratio > 0) or math.floor(ratio + 0.5) > top:
        raise UserInputError(
            f"SFU requantization ratio {ratio:.4g}; allowed: > 0 and at most {top} "
            f"(signed sfu.mult_bits = {p.mult_bits})"
        )
    e = math.floor(math.log2((top + 0.5) / ratio))
    shift = max(0, min(p.shift_max, e))
    while shift > 0 and math.floor(ratio * 2.0**shift + 0.5) > top:
        shift -= 1
    return int(math.floor(ratio * 2.0**shift + 0.5)), int(shift)


# --------------------------------------------------------------------------- matmul
def matmul(
    a: ArrayLike, b: ArrayLike, mult: int, shift: int, p: SfuParams, wide: bool = False
) -> IntArray:
    """``a`` (M,K) x ``b`` (K,N), signed ``in_bits`` -> (M,N):
    ``sat(rshr(sum_k a b * mult, shift), wide_bits if wide else out_bits)``.  The sum is
    exact (``acc_bits`` wide, K <= k_max)."""
    a, b = _ints("a", a, 2), _ints("b", b, 2)
    if a.shape[1] != b.shape[0]:
        raise UserInputError(f"matmul: a {a.shape} and b {b.shape} do not chain")
    _length("matmul", a.shape[1], 1, p.k_max, "K")
    _in_range("a", a, p.in_bits)
    _in_range("b", b, p.in_bits)
    check_requant(mult, shift, p)
    acc = a @ b
    return sat(rshr(acc * int(mult), int(shift)), p.wide_bits if wide else p.out_bits)


# --------------------------------------------------------------------------- exp
def exp_parts(d: IntArray, p: SfuParams) -> tuple[IntArray, IntArray]:
    """``(q, r)`` of ``d <= 0`` (LSB ``2**-sm_frac``): ``u = -d * LOG2E``, integer part
    ``q = u >> (sm_frac + log2e_bits)``, fraction ``r`` truncated to ``exp_r_bits``."""
    u = -d * p.log2e
    frac = p.sm_frac + p.log2e_bits
    q = np.right_shift(u, frac)
    r = np.right_shift(u, frac - p.exp_r_bits) & ((1 << p.exp_r_bits) - 1)
    return q, r


def exp_poly(r: IntArray, p: SfuParams) -> IntArray:
    """``P = C0 + rshr((C1 + rshr(C2 r, rb)) r, rb)`` ~= 2**-(r / 2**rb) * 2**exp_frac."""
    c0, c1, c2 = p.exp_coefs
    rb = p.exp_r_bits
    h = c1 + rshr(c2 * r, rb)
    return c0 + rshr(h * r, rb)


def int_exp(d: ArrayLike, p: SfuParams) -> IntArray:
    """``E = rshr(P(r), min(q, 31))`` ~= exp(d / 2**sm_frac) * 2**exp_frac for ``d <= 0``."""
    d = np.asarray(d, np.int64)
    q, r = exp_parts(d, p)
    return rshr(exp_poly(r, p), np.minimum(q, 31))


# -------------------------------------------------------------------------- softmax
def softmax_rows(x: ArrayLike, p: SfuParams) -> tuple[IntArray, IntArray, IntArray]:
    """Intermediates of :func:`softmax`: ``E`` (V,L), ``S`` (V,), ``factor`` (V,)."""
    x = _ints("x", x, 2)
    _length("softmax", x.shape[1], 1, p.seq_max, "row length")
    _in_range("x", x, p.wide_bits)
    e = int_exp(x - x.max(axis=1, keepdims=True), p)
    s = e.sum(axis=1)
    return e, s, (np.int64(1) << p.sm_recip_bits) // s


def softmax(x: ArrayLike, p: SfuParams) -> IntArray:
    """Rows of ``x`` (V,L), signed ``wide_bits``, LSB ``2**-sm_frac`` -> probabilities
    (V,L), LSB ``2**-(out_bits-1)``: ``min(rshr(E * factor, F - out_bits + 1),
    2**(out_bits-1) - 1)``."""
    e, _, factor = softmax_rows(x, p)
    top = (1 << (p.out_bits - 1)) - 1
    return np.minimum(rshr(e * factor[:, None], p.sm_recip_bits - p.out_bits + 1), top)


# ------------------------------------------------------------------------ layernorm
def isqrt_newton(n: ArrayLike) -> IntArray:
    """``floor(sqrt(n))`` elementwise by integer Newton iteration (I-BERT):
    ``x <- (x + n // x) // 2`` from ``x0 = 2**ceil(bitlen(n)/2) >= sqrt(n)``, stopping
    when it no longer decreases.  Loops over iterations only (<= bitlen/2 + 2)."""
    n = np.asarray(n, np.int64)
    bl = np.zeros_like(n)
    m = n.copy()
    while np.any(m > 0):  # bit length, vectorized over elements
        bl += m > 0
        m = np.right_shift(m, 1)
    x = np.left_shift(np.int64(1), (bl + 1) // 2)
    for _ in range(40):
        nxt = np.right_shift(x + n // np.maximum(x, 1), 1)
        done = nxt >= x
        if done.all():
            break
        x = np.where(done, x, nxt)
    return np.where(n > 0, x, 0)


def layernorm_rows(x: ArrayLike, p: SfuParams) -> dict[str, IntArray]:
    """Intermediates of :func:`layernorm` for rows ``x`` (V,D)."""
    x = _ints("x", x, 2)
    D = x.shape[1]
    _length("layernorm", D, 1, p.width_max, "row width")
    _in_range("x", x, p.wide_bits)
    s1 = x.sum(axis=1)
    s2 = (x * x).sum(axis=1)
    q = D * s2 - s1 * s1
    r = isqrt_newton(np.left_shift(q, 2 * p.ln_guard))
    factor = np.where(r > 0, (np.int64(1) << p.ln_recip_bits) // np.maximum(r, 1), 0)
    num = D * x - s1[:, None]
    w = rshr(num * factor[:, None], p.ln_w_shift)  # (x - mean) / std * 2**ln_frac
    return {"s1": s1, "s2": s2, "q": q, "r": r, "factor": factor, "num": num, "w": w}


def layernorm(x: ArrayLike, mult: int, shift: int, p: SfuParams) -> IntArray:
    """Rows ``x`` (V,D), signed ``wide_bits`` -> ``sat(rshr(w * mult, shift), out_bits)``
    with ``w ~= (x - mean) / std * 2**ln_frac`` (population std, no eps; an all-equal row
    gives 0).  Choose ``mult / 2**shift ~= 2**(f_out - ln_frac)`` for an output LSB of
    ``2**-f_out``; gamma and beta fold into the next linear layer."""
    check_requant(mult, shift, p)
    w = layernorm_rows(x, p)["w"]
    return sat(rshr(w * int(mult), int(shift)), p.out_bits)


# ----------------------------------------------------------------------------- gelu
def gelu_phi(x: IntArray, p: SfuParams) -> IntArray:
    """Phi(x) in ``2**-phi_frac`` units (I-BERT's polynomial erf)."""
    b = p.gelu_clip
    c = np.minimum(np.abs(x), b)
    s = (c - b) * (c - b)
    phi = rshr(s * p.gelu_ka, p.gelu_phi_shift)
    return np.where(x < 0, phi, (1 << p.phi_frac) - phi)


def gelu(x: ArrayLike, p: SfuParams) -> IntArray:
    """``x`` signed ``in_bits`` (LSB ``2**-gelu_frac``) -> ``sat(rshr(x * Phi, phi_frac),
    in_bits)``, same LSB."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise UserInputError(f"x: integer array expected, got dtype {x.dtype}")
    x = x.astype(np.int64, copy=False)
    _in_range("x", x, p.in_bits)
    return sat(rshr(x * gelu_phi(x, p), p.phi_frac), p.in_bits)
