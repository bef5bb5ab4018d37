"""Golden models of the plain and the share-masked dot-product MACs (``rtl/plain_mac.py``,
``rtl/secure_mac.py``), vectorized over lanes.

Function of both: ``y = sum_i w[i] * x[i]`` over ``n`` lanes, ``w`` signed ``w_bits``
(two's complement), ``x`` unsigned ``x_bits``, exact (``acc_bits`` wide, never saturates).

The secure MAC holds every weight and activation as two Boolean shares of ``K =
acc_bits`` bits (``v = b0 XOR b1``; ``w`` sign-extended, ``x`` zero-extended to K bits),
converts them to arithmetic shares modulo ``2**K`` with Goubin's Boolean-to-arithmetic
conversion (``v = A + b1 mod 2**K``, :func:`goubin_b2a`), and accumulates the four cross
products ``A_jk = sum_i w_j[i] * x_k[i] mod 2**K`` separately; it hands on the four
``A_jk`` (``y = sum A_jk`` as a K-bit two's-complement number).  All randomness comes from
four banks of xorshift64 generators seeded once (after reset, from the ``seed`` key): per operand one
bank for the Boolean re-masking increment ``d`` and one for Goubin's ``gamma``.  See the
RTL module's docstring for the first-order security argument.  This module is the only
place the scheme's numerics live; it reproduces the RTL's shares, gammas and conversions
exactly so the share outputs can be checked bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aimcflow.models.errors import UserInputError
from numpy.typing import ArrayLike, NDArray

U64 = np.uint64
MASK64 = (1 << 64) - 1

# generator banks of the secure MAC, in the order of rtl/secure_mac.py's BANK_NAMES
BANK_D_W, BANK_D_X, BANK_GAMMA_W, BANK_GAMMA_X = 0, 1, 2, 3
BANKS = 4


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


def generator_seeds(seed: int, count: int, bank: int) -> list[int]:
    """Nonzero start states of the ``count`` xorshift64 generators of ``bank`` (BANK_*):
    ``splitmix64(rotl64(seed, 20) ^ (bank << 16) ^ j)`` (1 if 0).  ``seed`` is the 64-bit
    mask key the RTL reads from its ``seed`` port after reset (the PUF key in silicon);
    for keys below 2**44 the rotation is the plain shift ``seed << 20``."""
    if not 0 <= seed < (1 << 64):
        raise UserInputError(f"secure MAC seed {seed}: give a 64-bit key (0 .. 2**64-1)")
    key = ((seed << 20) | (seed >> 44)) & MASK64
    out = []
    for j in range(count):
        s = splitmix64(key ^ (bank << 16) ^ j)
        out.append(s or 1)  # xorshift64 must not start at 0
    return out


def rtl_mask_seeds(spec: SecureMacSpec) -> tuple[tuple[int, ...], ...]:
    """States of the four generator banks (d_w, d_x, gamma_w, gamma_x) once the RTL has
    loaded them from its ``seed`` port (``spec.seed``), before the first operand."""
    return tuple(tuple(generator_seeds(spec.seed, spec.generators, b)) for b in range(BANKS))


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


def goubin_b2a(
    x_masked: ArrayLike, r: ArrayLike, gamma: ArrayLike, k: int
) -> dict[str, NDArray[np.int64]]:
    """Goubin's Boolean-to-arithmetic conversion (CHES 2001, Theorem 1), mod ``2**k``.

    For Boolean shares ``v = x_masked XOR r`` and any ``gamma`` (uniform for security), ``A``
    satisfies ``v = A + r (mod 2**k)``; ``v`` itself is never formed.  Returns ``A`` and every
    intermediate under the RTL's net names (``rtl/secure_mac.py`` names its signals after
    these keys): ``rg = r ^ g``, ``t0 = x' ^ g``, ``t1 = t0 - g``, ``t2 = t1 ^ x'``,
    ``t3 = x' ^ rg``, ``t4 = t3 - rg``, ``a = t2 ^ t4``.  All values unsigned k-bit.
    """
    mod = (1 << k) - 1
    xm = np.asarray(x_masked, dtype=np.int64)
    r = np.asarray(r, dtype=np.int64)
    g = np.asarray(gamma, dtype=np.int64)
    rg = r ^ g
    t0 = xm ^ g
    t1 = (t0 - g) & mod
    t2 = t1 ^ xm
    t3 = xm ^ rg
    t4 = (t3 - rg) & mod
    return {"rg": rg, "t0": t0, "t1": t1, "t2": t2, "t3": t3, "t4": t4, "a": t2 ^ t4}


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
        """xorshift64 generators per bank: enough for n lanes of k bits."""
        return -(-self.n * self.k // 64)

    @property
    def cycles(self) -> int:
        """Cycles from accepting ``x`` to the shares being taken (ready held high): the load,
        the B2A conversion, k compute cycles, the hand-over."""
        return self.k + 3


class _Operand:
    """Share registers of one operand (all lanes): Boolean ``b0``, ``b1``; arithmetic ``a``
    (with ``b1`` the other arithmetic share); its ``d`` and ``gamma`` generator banks."""

    def __init__(self, spec: SecureMacSpec, d_bank: int, gamma_bank: int) -> None:
        self.spec = spec
        g = spec.generators
        self.gen_d = np.array(generator_seeds(spec.seed, g, d_bank), dtype=np.uint64)
        self.gen_gamma = np.array(generator_seeds(spec.seed, g, gamma_bank), dtype=np.uint64)
        z = np.zeros(spec.n, dtype=np.int64)
        self.b0, self.b1, self.a = z.copy(), z.copy(), z.copy()

    def gamma(self) -> NDArray[np.int64]:
        """The gamma lanes the conversion uses now (the gamma bank's current state)."""
        return _slice_lanes(self.gen_gamma, self.spec.n, self.spec.k)

    def load(self, v: NDArray[np.int64]) -> None:
        """``b1 <- b1 ^ d`` (d = the d bank's state before its step), ``b0 <- v ^ b1``; both
        banks step once, so every new sharing is converted with a new gamma."""
        k = self.spec.k
        d = _slice_lanes(self.gen_d, self.spec.n, k)
        self.gen_d = xorshift64_step(self.gen_d)
        self.gen_gamma = xorshift64_step(self.gen_gamma)
        self.b1 = self.b1 ^ d
        self.b0 = (v & ((1 << k) - 1)) ^ self.b1

    def convert(self) -> dict[str, NDArray[np.int64]]:
        nets = goubin_b2a(self.b0, self.b1, self.gamma(), self.spec.k)
        self.a = nets["a"]
        return nets


class SecureMacModel:
    """Bit-exact model of ``secure_mac`` state: generator banks and share registers.

    Call :meth:`load_w` / :meth:`mac` in the order the RTL accepts beats.  A load
    re-masks the operand's Boolean shares (``b1 <- b1 ^ d``, ``b0 <- v ^ b1``); each
    :meth:`mac` converts both operands (the weights again too: unchanged shares and gamma
    give the same ``A``) and accumulates the four cross products of the arithmetic shares
    ``(A, b1)``.
    """

    def __init__(self, spec: SecureMacSpec = SecureMacSpec()) -> None:
        self.spec = spec
        self.w = _Operand(spec, BANK_D_W, BANK_GAMMA_W)
        self.x = _Operand(spec, BANK_D_X, BANK_GAMMA_X)

    def load_w(self, w: ArrayLike) -> None:
        sp = self.spec
        w = np.asarray(w, dtype=np.int64)
        _check(w, np.zeros(sp.n, dtype=np.int64), sp.n, sp.w_bits, sp.x_bits)
        self.w.load(w)

    def mac(self, x: ArrayLike) -> NDArray[np.int64]:
        """Load ``x`` and return the four share accumulators ``[A00, A01, A10, A11]``
        (index 0 = the arithmetic share ``A``, 1 = ``b1``; first index ``w``)."""
        sp = self.spec
        x = np.asarray(x, dtype=np.int64)
        _check(np.zeros(sp.n, dtype=np.int64), x, sp.n, sp.w_bits, sp.x_bits)
        mod = 1 << sp.k
        self.x.load(x)
        self.w.convert()
        self.x.convert()
        ws = np.stack([self.w.a, self.w.b1])
        xs = np.stack([self.x.a, self.x.b1])
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
