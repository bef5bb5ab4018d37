"""Integer helpers of SPEC.md, vectorized over numpy int64 arrays.

These four rules are used by every golden model; nothing else in the project
re-implements them. All values are two's-complement integers held in int64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]


def _as_int(v: ArrayLike) -> IntArray:
    a = np.asarray(v)
    if a.dtype.kind not in "iub":
        raise TypeError(f"integer array expected, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def rshr(v: ArrayLike, s: ArrayLike) -> IntArray:
    """Arithmetic right shift by ``s >= 0`` with round-half-up: floor((v + 2**(s-1)) / 2**s)."""
    v = _as_int(v)
    s = _as_int(s)
    if np.any(s < 0):
        raise ValueError("rshr shift must be >= 0")
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return np.right_shift(v + half, s)


def scale(v: ArrayLike, e: ArrayLike) -> IntArray:
    """``v << -e`` for ``e <= 0``, ``rshr(v, e)`` for ``e > 0`` (a multiply by 2**-e)."""
    v = _as_int(v)
    e = _as_int(e)
    left = np.left_shift(v, np.maximum(-e, 0))
    right = rshr(v, np.maximum(e, 0))
    return np.where(e <= 0, left, right)


def sat(v: ArrayLike, n: int) -> IntArray:
    """Clamp to the signed ``n``-bit range [-2**(n-1), 2**(n-1) - 1]."""
    return np.clip(_as_int(v), -(1 << (n - 1)), (1 << (n - 1)) - 1)


def satu(v: ArrayLike, n: int) -> IntArray:
    """Clamp to the unsigned ``n``-bit range [0, 2**n - 1]."""
    return np.clip(_as_int(v), 0, (1 << n) - 1)


def signed_range(n: int) -> tuple[int, int]:
    """Inclusive (lo, hi) of a signed ``n``-bit integer."""
    return -(1 << (n - 1)), (1 << (n - 1)) - 1


def unsigned_range(n: int) -> tuple[int, int]:
    """Inclusive (lo, hi) of an unsigned ``n``-bit integer."""
    return 0, (1 << n) - 1


def quantize_input(x: ArrayLike, scale: float, bits: int, signed: bool) -> IntArray:
    """Float values -> integer codes of LSB ``scale``: round half up of ``x / scale``,
    saturated to signed or unsigned ``bits``."""
    q = np.floor(np.asarray(x, dtype=np.float64) / scale + 0.5).astype(np.int64)
    return sat(q, bits) if signed else satu(q, bits)
