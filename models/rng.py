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


def _mix(z: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64 finalizer, in place on a uint64 array (multiplications wrap mod 2**64).

    ``tmp``: a scratch array of z's shape; passing it avoids allocating temporaries.
    """
    if tmp is None:
        tmp = np.empty_like(z)
    np.right_shift(z, np.uint64(30), out=tmp)
    z ^= tmp
    z *= _M1
    np.right_shift(z, np.uint64(27), out=tmp)
    z ^= tmp
    z *= _M2
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp
    return z


def _keyed_bits(seed, purpose, coords, rows, size) -> tuple[np.ndarray, np.ndarray]:
    """keyed_bits plus a scratch array of the same shape (reused by the caller)."""
    k0, k1 = _key(seed, purpose, *coords)
    rows = np.asarray(rows).astype(np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        # per-row base: a hash of (key, row id), so rows are unrelated streams
        base = _mix(rows * _GOLDEN + np.uint64(k0))
        base ^= np.uint64(k1)
        idx = np.arange(1, size + 1, dtype=np.uint64) * _GOLDEN
        z = np.add(base, idx)  # SplitMix64's counter walk inside one row
        tmp = np.empty_like(z)
        return _mix(z, tmp), tmp


def keyed_bits(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int
) -> np.ndarray:
    """Random uint64 words, shape (len(rows), size); row i depends only on the key and rows[i]."""
    return _keyed_bits(seed, purpose, coords, rows, size)[0]


def _box_muller(seed, purpose, coords, rows, size):
    """(radius, angle) halves of Box-Muller for ceil(size/2) words per row, float32."""
    rows = np.asarray(rows).reshape(-1)
    half = (size + 1) // 2
    bits, tmp = _keyed_bits(seed, purpose, coords, rows, half)
    u1 = np.right_shift(bits, np.uint64(40), out=tmp).astype(np.float32)
    u1 += np.float32(1.0)
    u1 *= _U24  # (0, 1]
    u2 = np.bitwise_and(bits, np.uint64(0xFFFFFF), out=tmp).astype(np.float32)
    u2 *= _U24  # [0, 1)
    np.log(u1, out=u1)
    u1 *= np.float32(-2.0)
    np.sqrt(u1, out=u1)
    u2 *= _TWO_PI
    return u1, u2, half


def keyed_normal(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int, dtype=np.float32
) -> np.ndarray:
    """Standard normals, shape (len(rows), size): row i depends only on (key, rows[i]).

    One 64-bit word gives two 24-bit uniforms and, by Box-Muller, two normals, so a row
    of ``size`` normals costs ``ceil(size/2)`` hashes: element k < ceil(size/2) is the
    cosine of word k, element ceil(size/2) + k its sine.
    """
    r, phi, half = _box_muller(seed, purpose, coords, rows, size)
    out = np.empty((r.shape[0], 2 * half), dtype=np.float32)
    np.multiply(r, np.cos(phi), out=out[:, :half])
    np.multiply(r, np.sin(phi), out=out[:, half:])
    return out[:, :size].astype(dtype, copy=False)


# Largest |z| keyed_normal / add_keyed_normal return: the Box-Muller radius
# sqrt(-2 ln u1) with u1 >= 2**-24, times |cos| or |sin| <= 1 (float32 adds a few ulp).
KEYED_NORMAL_MAX = float(np.sqrt(-2.0 * np.log(2.0**-24)))

_CHUNK_WORDS = 32768  # hash words per block: keeps the scratch arrays (2 x 256 KiB) in L2


def add_keyed_normal(
    y: np.ndarray,
    sigma: np.ndarray | float,
    seed: int,
    purpose: str,
    coords: tuple[int, ...],
    rows: np.ndarray,
) -> np.ndarray:
    """y += sigma * keyed_normal(..., size=y.shape[1]) in place (the same normals, up to
    float32 rounding of the product), with the scale folded into the half-size Box-Muller
    radius: fewer passes over y.  Works in blocks of rows so its temporaries stay in cache.

    ``sigma`` is a scalar or a per-row (B, 1) array.
    """
    rows = np.asarray(rows).reshape(-1)
    size = y.shape[1]
    half = (size + 1) // 2
    sigma = np.asarray(sigma, dtype=np.float32)
    per_row = sigma.ndim > 0
    step = max(1, _CHUNK_WORDS // half)
    for i in range(0, rows.size, step):
        blk = slice(i, i + step)
        r, phi, _ = _box_muller(seed, purpose, coords, rows[blk], size)
        r *= sigma[blk] if per_row else sigma
        c = np.cos(phi)
        c *= r
        y[blk, :half] += c
        np.sin(phi, out=phi)
        phi *= r
        y[blk, half:] += phi[:, : size - half]
    return y


def normal_per_row(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int
) -> np.ndarray:
    """Standard normals (float64), one independent row of ``size`` per entry of ``rows``."""
    return keyed_normal(seed, purpose, coords, rows, size, dtype=np.float64)
