"""Golden models of the plain and the share-masked dot-product MACs (``rtl/plain_mac.py``,
``rtl/secure_mac.py``), vectorized over operations.

Function of both: ``y = sum_i w[i] * x[i]`` over ``n`` lanes, ``w`` signed ``w_bits``
(two's complement), ``x`` unsigned ``x_bits``, exact (``acc_bits`` wide, never saturates).

The secure MAC never holds ``w`` or ``x`` in a register: each is split on load into two
additive shares modulo ``2**acc_bits`` (``v = v0 + v1 mod 2**K``) and the four cross
products ``A_jk = sum_i w_j[i] * x_k[i] mod 2**K`` are accumulated separately; it hands
on the four ``A_jk`` (``y = sum A_jk`` as a K-bit two's-complement number).  The masks come
from a bank of xorshift64 generators seeded once (at reset, from ``seed``); see the RTL
module's docstring for the first-order security argument.  This module reproduces the
RTL's masks exactly so its share outputs can be checked bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aimcflow.models.errors import UserInputError
from numpy.typing import ArrayLike, NDArray

U64 = np.uint64
MASK64 = (1 << 64) - 1


def acc_bits(n: int, w_bits: int = 8, x_bits: int = 8) -> int:
    """Width of an exact signed accumulator for ``n`` products signed w_bits x unsigned x_bits."""
    most_negative = n * (1 << (w_bits - 1)) * ((1 << x_bits) - 1)
    return most_negative.bit_length() + 1 if most_negative else 1


def _check(w: NDArray, x: NDArray, n: int, w_bits: int, x_bits: int) -> None:
    if w.shape[-1] != n or x.shape[-1] != n:
        raise UserInputError(f"MAC vectors must have {n} lanes; got w {w.shape}, x {x.shape}")
    lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    if w.min(initial=0) < lo or w.max(initial=0) > hi:
        raise UserInputError(f"weights must be signed {w_bits}-bit ({lo}..{hi})")
    if x.min(initial=0) < 0 or x.max(initial=0) > (1 << x_bits) - 1:
        raise UserInputError(f"activations must be unsigned {x_bits}-bit (0..{(1 << x_bits) - 1})")


def dot(w: ArrayLike, x: ArrayLike, w_bits: int = 8, x_bits: int = 8) -> NDArray[np.int64]:
    """Exact dot products, shape (..., n) x (..., n) -> (...): what ``plain_mac`` outputs."""
    w = np.asarray(w, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    _check(w, x, w.shape[-1], w_bits, x_bits)
    return np.einsum("...i,...i->...", w, x)


def plain_cycles(x_bits: int = 8) -> int:
    """Clock cycles from accepting ``x`` to the result being taken with ready held high."""
    return x_bits + 2


# ------------------------------------------------------------------ secure MAC
def splitmix64(v: int) -> int:
    """SplitMix64 finalizer: expands the one-time seed into generator start states."""
    z = (v + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def generator_seeds(seed: int, count: int, stream: int) -> list[int]:
    """Nonzero start states of ``count`` xorshift64 generators for mask stream 0 (w) / 1 (x)."""
    out = []
    for j in range(count):
        s = splitmix64((seed << 20) ^ (stream << 16) ^ j)
        out.append(s or 1)  # xorshift64 must not start at 0
    return out


def rtl_mask_seeds(spec: SecureMacSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Reset states of the RTL's two generator banks (w, x) for ``rtl/secure_mac.py``'s
    ``SecureMacParams.mask_seeds``: the seed expansion lives only here."""
    return tuple(tuple(generator_seeds(spec.seed, spec.generators, s)) for s in (0, 1))


def xorshift64_step(s: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """One step of Marsaglia's xorshift64 (13, 7, 17) on every element."""
    s = s ^ (s << U64(13))
    s = s ^ (s >> U64(7))
    return s ^ (s << U64(17))


def _slice_lanes(states: NDArray[np.uint64], n: int, k: int) -> NDArray[np.int64]:
    """The generator bank's bits as n K-bit numbers: lane i = bits [iK, (i+1)K) of the
    concatenation (generator 0 in the least significant 64 bits)."""
    bits = np.unpackbits(states.astype("<u8").view(np.uint8), bitorder="little")
    bits = bits[: n * k].reshape(n, k).astype(np.int64)
    return bits @ (np.int64(1) << np.arange(k, dtype=np.int64))


@dataclass(frozen=True)
class SecureMacSpec:
    """Parameters shared by the secure-MAC golden model and RTL (``rtl.secure_mac``)."""

    n: int = 64
    w_bits: int = 8
    x_bits: int = 8
    seed: int = 0x5EC0DE

    @property
    def k(self) -> int:
        """Share and accumulator width (bits): the ring is Z / 2**k."""
        return acc_bits(self.n, self.w_bits, self.x_bits)

    @property
    def generators(self) -> int:
        """xorshift64 generators per mask stream: enough for n masks of k bits."""
        return -(-self.n * self.k // 64)

    @property
    def cycles(self) -> int:
        """Cycles from accepting ``x`` to the shares being taken (ready held high)."""
        return self.k + 2


class SecureMacModel:
    """Bit-exact model of ``secure_mac`` state: mask generators and share registers.

    Call :meth:`load_w` / :meth:`mac` in the order the RTL accepts beats.  Every load
    steps its mask stream's generators once; the mask increment ``d`` is the generator
    bank's state before the step, and the share-1 register accumulates it:
    ``v1 <- v1 + d``, ``v0 <- v - v1`` (mod 2**k).
    """

    def __init__(self, spec: SecureMacSpec = SecureMacSpec()) -> None:
        self.spec = spec
        g = spec.generators
        self.gen = [np.array(generator_seeds(spec.seed, g, s), dtype=np.uint64) for s in (0, 1)]
        z = np.zeros(spec.n, dtype=np.int64)
        self.w0, self.w1, self.x0, self.x1 = z.copy(), z.copy(), z.copy(), z.copy()

    def _mask_step(self, stream: int) -> NDArray[np.int64]:
        d = _slice_lanes(self.gen[stream], self.spec.n, self.spec.k)
        self.gen[stream] = xorshift64_step(self.gen[stream])
        return d

    def load_w(self, w: ArrayLike) -> None:
        sp = self.spec
        w = np.asarray(w, dtype=np.int64)
        _check(w, np.zeros(sp.n, dtype=np.int64), sp.n, sp.w_bits, sp.x_bits)
        mod = 1 << sp.k
        self.w1 = (self.w1 + self._mask_step(0)) % mod
        self.w0 = (w - self.w1) % mod

    def mac(self, x: ArrayLike) -> NDArray[np.int64]:
        """Load ``x`` and return the four share accumulators ``[A00, A01, A10, A11]``."""
        sp = self.spec
        x = np.asarray(x, dtype=np.int64)
        _check(np.zeros(sp.n, dtype=np.int64), x, sp.n, sp.w_bits, sp.x_bits)
        mod = 1 << sp.k
        self.x1 = (self.x1 + self._mask_step(1)) % mod
        self.x0 = (x - self.x1) % mod
        ws = np.stack([self.w0, self.w1])
        xs = np.stack([self.x0, self.x1])
        # python ints: k-bit x k-bit products summed over n lanes overflow int64 for k > 27
        a = (
            [
                [int(sum(int(p) * int(q) for p, q in zip(wj, xk, strict=True))) % mod for xk in xs]
                for wj in ws
            ]
            if sp.k > 27
            else (np.einsum("ji,ki->jk", ws, xs) % mod).tolist()
        )
        return np.array([a[0][0], a[0][1], a[1][0], a[1][1]], dtype=np.int64)


def recombine(shares: ArrayLike, k: int) -> NDArray[np.int64]:
    """``y`` from the four share accumulators (last axis): sum mod 2**k as k-bit signed."""
    s = np.asarray(shares, dtype=np.int64).sum(axis=-1) % (1 << k)
    return np.where(s >= 1 << (k - 1), s - (1 << k), s)
