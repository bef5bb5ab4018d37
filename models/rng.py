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
  2014) followed by Box-Muller, in compiled kernels (``models/analog/fused.py``, which
  also fuses it into the analog tile's pass: one implementation).  Uniforms carry 24
  bits, so |z| <= sqrt(2 ln 2^24) = 5.77: tails beyond 5.77 sigma are cut (probability
  8e-9 per draw).
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
    "hwa": 11,
}


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


def key_words(seed: int, purpose: str, coords: tuple[int, ...]) -> tuple[np.uint64, np.uint64]:
    """The two key words (k0, k1) of (seed, purpose, coords) as the compiled kernels of
    ``models/analog/fused.py`` take them."""
    k0, k1 = _key(seed, purpose, *coords)
    return np.uint64(k0), np.uint64(k1)


def _row_ids(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(rows).reshape(-1), dtype=np.int64)


def keyed_bits(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int
) -> np.ndarray:
    """Random uint64 words, shape (len(rows), size); row i depends only on the key and rows[i].

    Word k of row r is mix(base_r + (k + 1) GOLDEN), base_r = mix(r GOLDEN + k0) ^ k1
    (SplitMix64's finalizer and counter walk); computed by ``fused.keyed_bits_into``,
    the same code the normals use.
    """
    # lazy: numba kernels (compiled on first use)
    from aimcflow.models.analog import fused

    rows = _row_ids(rows)
    out = np.empty((rows.shape[0], size), dtype=np.uint64)
    fused.keyed_bits_into(out, rows, *key_words(seed, purpose, coords))
    return out


def keyed_normal(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int, dtype=np.float32
) -> np.ndarray:
    """Standard normals, shape (len(rows), size): row i depends only on (key, rows[i]).

    One 64-bit word gives two 24-bit uniforms and, by Box-Muller, two normals, so a row
    of ``size`` normals costs ``ceil(size/2)`` hashes: element k < ceil(size/2) is the
    cosine of word k, element ceil(size/2) + k its sine.  The normals
    :func:`add_keyed_normal` adds to zeros (0 + z is z), in float32.
    """
    z = np.zeros((np.asarray(rows).size, size), dtype=np.float32)
    return add_keyed_normal(z, 1.0, seed, purpose, coords, rows).astype(dtype, copy=False)


# Largest |z| keyed_normal / add_keyed_normal return: the Box-Muller radius
# sqrt(-2 ln u1) with u1 >= 2**-24, times |cos| or |sin| <= 1 (float32 adds a few ulp).
KEYED_NORMAL_MAX = float(np.sqrt(-2.0 * np.log(2.0**-24)))


def add_keyed_normal(
    y: np.ndarray,
    sigma: np.ndarray | float,
    seed: int,
    purpose: str,
    coords: tuple[int, ...],
    rows: np.ndarray,
) -> np.ndarray:
    """y += sigma * keyed_normal(..., size=y.shape[1]) in place: the float32 noise
    f32(r sigma) cos(phi) (sigma folded into the Box-Muller radius), added in y's dtype.

    ``sigma`` is a scalar or a per-row (B, 1) array.  y must be C-contiguous float32 or
    float64.
    """
    # lazy: numba kernels (compiled on first use)
    from aimcflow.models.analog import fused

    rows = _row_ids(rows)
    sig = np.ascontiguousarray(
        np.broadcast_to(np.asarray(sigma, dtype=np.float32).reshape(-1), (rows.shape[0],))
    )
    fused.add_keyed_normal_into(y, rows, *key_words(seed, purpose, coords), sig)
    return y


def normal_per_row(
    seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray, size: int
) -> np.ndarray:
    """Standard normals (float64), one independent row of ``size`` per entry of ``rows``."""
    return keyed_normal(seed, purpose, coords, rows, size, dtype=np.float64)
