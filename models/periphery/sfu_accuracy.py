"""Float references of the SFU's operations and the derived error bounds of its integer
approximations (docs/SPEC.md, "SFU accuracy").

Every reference is the exact float function, scaled to the integer output's LSB and
clipped to the output range (clipping is 1-Lipschitz, so a bound on the unclipped error
holds for the clipped pair).  Every bound is a sum of named terms, each derived from one
rounding or approximation step of the golden model ``models/periphery/sfu.py``; none is
measured.  The tests compare the bound with the measured error over the whole input
range (exp, GELU: exhaustive) or per row (softmax, layernorm: the bound depends on the
row's values).
"""

from __future__ import annotations

import math

import numpy as np

from . import sfu
from .fixedpoint import IntArray, signed_range

_LN2 = math.log(2.0)


def exp_poly_error(p: sfu.SfuParams, points: int = 1 << 16) -> float:
    """``max |P(rho) / 2**exp_frac - 2**-rho|`` over rho in [0, 1) for the *integer*
    coefficients, Horner in exact arithmetic (the polynomial's own approximation error)."""
    c0, c1, c2 = (c / (1 << p.exp_frac) for c in p.exp_coefs)
    rho = np.arange(points) / points
    return float(np.abs(c0 + c1 * rho + c2 * rho * rho - 2.0**-rho).max())


def exp_ref(d: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """exp(d / 2**sm_frac) in units of 2**-exp_frac."""
    return np.exp(np.asarray(d, float) / (1 << p.sm_frac)) * (1 << p.exp_frac)


def exp_error_bound(d: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """Per input ``d <= 0``: bound of ``|E - exp_ref(d)|`` in units of 2**-exp_frac.

    With ``t = -d log2(e) / 2**sm_frac`` and ``t' = q + rho'`` its computed value
    (``rho' = r / 2**exp_r_bits``):

    - final ``rshr(P, q)``: 1/2;
    - Horner roundings: ``|P - Pexact(rho')| <= 1/2 + 1/2`` (the inner rshr's 1/2 is
      multiplied by ``r / 2**rb < 1``), scaled by ``2**-q``;
    - polynomial: :func:`exp_poly_error`, scaled by ``2**-q``;
    - truncation of the fraction to ``exp_r_bits``: ``2**-rho'`` vs ``2**-rho``,
      ``rho - rho' < 2**-rb``: ``<= ln2 2**-rb 2**-q``;
    - rounded LOG2E: ``|t' - t| <= x |LOG2E/2**lb - log2 e|`` (x = -d / 2**sm_frac), so
      ``|2**-t' - 2**-t| <= ln2 x |dL| 2**-min(t, t')``.
    """
    d = np.asarray(d, np.int64)
    q, _ = sfu.exp_parts(d, p)
    scale = 1 << p.exp_frac
    eps_poly = exp_poly_error(p) * scale
    per_q = 1.0 + eps_poly + _LN2 * 2.0**-p.exp_r_bits * scale
    x = -d / (1 << p.sm_frac)
    dl = abs(p.log2e / (1 << p.log2e_bits) - math.log2(math.e))
    t = x * math.log2(math.e)
    log2e_term = _LN2 * x * dl * 2.0 ** -np.maximum(t - x * dl, 0.0) * scale
    return 0.5 + per_q * 2.0 ** -np.minimum(q, 1100).astype(float) + log2e_term


def softmax_ref(x: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """Float softmax of ``x / 2**sm_frac`` per row, in output LSB, clipped to the top code."""
    z = np.asarray(x, float) / (1 << p.sm_frac)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    top = (1 << (p.out_bits - 1)) - 1
    return np.minimum(prob * (1 << (p.out_bits - 1)), top)


def softmax_error_bound(x: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """Per element of rows ``x``: bound of ``|softmax - softmax_ref|`` in output LSB.

    With ``a_i = E_i / 2**exp_frac = e_i + eta_i`` (``|eta_i| <= b_i``, the exp bound),
    ``Z = sum e``, ``A = sum a >= Z - sum b``:

    - output rshr: 1/2;
    - reciprocal floor: ``factor = 2**F/S - theta``, ``0 <= theta < 1``: ``<= 2**(o-F) E_i``
      (o = out_bits - 1);
    - exp errors: ``|a_i/A - e_i/Z| <= (b_i Z + e_i sum b) / (Z (Z - sum b))``, times 2**o.
    """
    x = np.asarray(x, np.int64)
    d = x - x.max(axis=1, keepdims=True)
    e, _, _ = sfu.softmax_rows(x, p)
    scale = 1 << p.exp_frac
    b = exp_error_bound(d, p) / scale
    ez = np.exp(d / (1 << p.sm_frac))
    Z = ez.sum(axis=1, keepdims=True)
    sb = b.sum(axis=1, keepdims=True)
    o = p.out_bits - 1
    exp_term = (b * Z + ez * sb) / (Z * (Z - sb)) * (1 << o)
    return 0.5 + e * 2.0 ** (o - p.sm_recip_bits) + exp_term


def layernorm_ref(x: IntArray, mult: int, shift: int, p: sfu.SfuParams) -> np.ndarray:
    """Float ``(x - mean) / std`` (population std, eps = 0) times
    ``2**ln_frac * mult / 2**shift``, clipped to ``out_bits``; all-equal rows give 0."""
    xf = np.asarray(x, float)
    D = xf.shape[1]
    num = D * xf - xf.sum(axis=1, keepdims=True)
    q = D * (xf * xf).sum(axis=1, keepdims=True) - xf.sum(axis=1, keepdims=True) ** 2
    n = np.where(q > 0, num / np.sqrt(np.maximum(q, 1.0)), 0.0)
    lo, hi = signed_range(p.out_bits)
    return np.clip(n * (1 << p.ln_frac) * mult / 2.0**shift, lo, hi)


def layernorm_error_bound(x: IntArray, mult: int, shift: int, p: sfu.SfuParams) -> np.ndarray:
    """Per element: bound of ``|layernorm - layernorm_ref|`` in output LSB.

    ``rho = sqrt(Q) 2**h`` (h = ln_guard), ``r = floor(rho)``, ``factor = floor(2**R / r)``:
    ``|factor - 2**R / rho| <= max(1, 2**R / (r rho))`` (``rho - r < 1``).  With
    ``M = |mult| / 2**shift``: ``1/2`` (output rshr) ``+ M (1/2`` (w's rshr) ``+ |num|
    2**(G + h - R) max(1, 2**R / (r rho)))``.  Rows with Q = 0 are exact (num = 0).
    """
    it = sfu.layernorm_rows(x, p)
    rho = np.sqrt(it["q"].astype(float)) * (1 << p.ln_guard)
    r = it["r"].astype(float)
    R = p.ln_recip_bits
    fac_err = np.maximum(1.0, 2.0**R / np.maximum(r * rho, 1.0))
    M = abs(mult) / 2.0**shift
    w_err = 0.5 + np.abs(it["num"]) * 2.0 ** (p.ln_frac + p.ln_guard - R) * fac_err[:, None]
    return np.where(it["q"][:, None] > 0, 0.5 + M * w_err, 0.0)


def gelu_ref(x: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """Float GELU ``x Phi(x)`` (exact erf) of ``x / 2**gelu_frac``, in input LSB, clipped."""
    xf = np.asarray(x, float) / (1 << p.gelu_frac)
    erf = np.vectorize(math.erf, otypes=[float])(xf / math.sqrt(2.0))
    lo, hi = signed_range(p.in_bits)
    return np.clip(xf * 0.5 * (1.0 + erf) * (1 << p.gelu_frac), lo, hi)


def gelu_phi_real(x: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """The model's Phi before rounding: ``KA s / 2**(16 + 2 gelu_frac)`` (x < 0) or one
    minus it: I-BERT's polynomial erf with the integer constants B and KA."""
    x = np.asarray(x, np.int64)
    c = np.minimum(np.abs(x), p.gelu_clip)
    s = ((c - p.gelu_clip) ** 2).astype(float)
    phi = s * p.gelu_ka / 2.0 ** (p.gelu_ka_bits + 2 * p.gelu_frac)
    return np.where(x < 0, phi, 1.0 - phi)


def gelu_error_bound(x: IntArray, p: sfu.SfuParams) -> np.ndarray:
    """Per input: bound of ``|gelu - gelu_ref|`` in input LSB: ``1/2`` (output rshr)
    ``+ |x| 2**-phi_frac / 2`` (Phi's rshr, times x in LSB... scaled by 2**-phi_frac)
    ``+ |x| |Phi_model - Phi|`` (the polynomial erf with integer constants)."""
    x = np.asarray(x, np.int64)
    xf = x.astype(float)
    phi_true = 0.5 * (
        1.0 + np.vectorize(math.erf, otypes=[float])(xf / (1 << p.gelu_frac) / math.sqrt(2.0))
    )
    approx = np.abs(xf) * np.abs(gelu_phi_real(x, p) - phi_true)
    return 0.5 + np.abs(xf) * 2.0 ** -(p.phi_frac + 1) + approx


def matmul_ref(
    a: IntArray, b: IntArray, mult: int, shift: int, p: sfu.SfuParams, wide: bool = False
) -> np.ndarray:
    """Exact ``a @ b * mult / 2**shift``, clipped; the integer result is within 1/2."""
    lo, hi = signed_range(p.wide_bits if wide else p.out_bits)
    acc = np.asarray(a, np.int64) @ np.asarray(b, np.int64)
    return np.clip(acc * (mult / 2.0**shift), lo, hi)
