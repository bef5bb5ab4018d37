"""Counter-based random streams keyed by where the noise is used, not when.

Every noise draw in the analog models is a pure function of (seed, purpose, coords...,
row id, element index): the key, not the call order, selects the numbers, so results do
not change with batch size, batch order or parallelism.

Two generators live here:

* :func:`stream` — a numpy ``Generator`` on Philox keyed by (seed, purpose, coords); for
  one-off draws of a whole array (programming noise of one tile, ADC mismatch).
* :func:`keyed_normal` — the fast path for per-image noise: standard normals for a batch
  of rows (images), where row ``r`` depends only on (seed, purpose, coords, r).  It is a
  keyed counter hash (SplitMix64's finalizer over key + counter, Steele et al., OOPSLA
  2014) followed by Box-Muller, vectorized over the whole batch: no Python loop over
  images.  Uniforms carry 24 bits, so |z| <= sqrt(2 ln 2^24) = 5.77: tails beyond 5.77
  sigma are cut (probability 8e-9 per draw).
"""

from __future__ import annotations

import hashlib

import numpy as np

# Purposes get distinct key words so e.g. programming noise and read noise never share a stream.
PURPOSES = {
    "program": 1,
    "drift": 2,
    "read": 3,
    "out": 4,
    "adc_mismatch": 5,
    "weights": 6,
    "data": 7,
    "update": 8,
    "cycle": 9,
    "d2d": 10,
}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = np.float32(2.0 * np.pi)
_U24 = np.float32(2.0**-24)


def _key(seed: int, purpose: str, *coords: int) -> tuple[int, int]:
    """Fold (seed, purpose, coords...) into two uint64 words (Philox's 128-bit key)."""
    if purpose not in PURPOSES:
        raise KeyError(f"unknown noise purpose {purpose!r}; known: {sorted(PURPOSES)}")
    h = hashlib.blake2b(digest_size=16)
    for word in (int(seed), PURPOSES[purpose], len(coords), *map(int, coords)):
        h.update(int(word).to_bytes(16, "little", signed=True))
    d = h.digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def stream(seed: int, purpose: str, *coords: int) -> np.random.Generator:
    """A numpy Generator for one (seed, purpose, layer, tile, ...) key."""
    k0, k1 = _key(seed, purpose, *coords)
    return np.random.Generator(np.random.Philox(key=np.array([k0, k1], dtype=np.uint64)))


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, in place on a uint64 array (multiplications wrap mod 2**64)."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def keyed_bits(seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray,
               size: int) -> np.ndarray:
    """Random uint64 words, shape (len(rows), size); row i depends only on the key and rows[i]."""
    k0, k1 = _key(seed, purpose, *coords)
    rows = np.asarray(rows).astype(np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        # per-row base: a hash of (key, row id), so rows are unrelated streams
        base = _mix(rows * _GOLDEN + np.uint64(k0))
        base ^= np.uint64(k1)
        idx = np.arange(1, size + 1, dtype=np.uint64) * _GOLDEN
        z = base + idx  # SplitMix64's counter walk inside one row
        return _mix(z)


def keyed_normal(seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray,
                 size: int, dtype=np.float32) -> np.ndarray:
    """Standard normals, shape (len(rows), size): row i depends only on (key, rows[i]).

    One 64-bit word gives two 24-bit uniforms and, by Box-Muller, two normals, so a row
    of ``size`` normals costs ``ceil(size/2)`` hashes.
    """
    rows = np.asarray(rows).reshape(-1)
    half = (size + 1) // 2
    bits = keyed_bits(seed, purpose, coords, rows, half)
    u1 = ((bits >> np.uint64(40)).astype(np.float32) + np.float32(1.0)) * _U24  # (0, 1]
    u2 = (bits & np.uint64(0xFFFFFF)).astype(np.float32) * _U24                # [0, 1)
    np.log(u1, out=u1)
    u1 *= np.float32(-2.0)
    np.sqrt(u1, out=u1)
    u2 *= _TWO_PI
    out = np.empty((rows.size, 2 * half), dtype=np.float32)
    np.multiply(u1, np.cos(u2), out=out[:, :half])
    np.multiply(u1, np.sin(u2), out=out[:, half:])
    return out[:, :size].astype(dtype, copy=False)


def normal_per_row(seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray,
                   size: int) -> np.ndarray:
    """Standard normals (float64), one independent row of ``size`` per entry of ``rows``."""
    return keyed_normal(seed, purpose, coords, rows, size, dtype=np.float64)
