"""Counter-based random streams keyed by where the noise is used, not when.

Every noise draw in the analog models comes from a Philox generator whose key is
(seed, purpose, layer, tile, image, iteration).  Because the key, not the call order,
selects the stream, results do not change with batch size, batch order or parallelism.
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


def _key(seed: int, purpose: str, *coords: int) -> tuple[int, int]:
    """Fold (seed, purpose, coords...) into Philox's 128-bit key as two uint64 words."""
    if purpose not in PURPOSES:
        raise KeyError(f"unknown noise purpose {purpose!r}; known: {sorted(PURPOSES)}")
    h = hashlib.blake2b(digest_size=16)
    for word in (int(seed), PURPOSES[purpose], len(coords), *map(int, coords)):
        h.update(int(word).to_bytes(16, "little", signed=True))
    d = h.digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def stream(seed: int, purpose: str, *coords: int) -> np.random.Generator:
    """A numpy Generator for one (seed, purpose, layer, tile, image, iteration, ...) key."""
    k0, k1 = _key(seed, purpose, *coords)
    return np.random.Generator(np.random.Philox(key=np.array([k0, k1], dtype=np.uint64)))


def normal_per_row(seed: int, purpose: str, coords: tuple[int, ...], rows: np.ndarray,
                   size: int) -> np.ndarray:
    """Standard normals, one independent row of ``size`` per entry of ``rows``.

    ``rows`` are the per-row identifiers (e.g. global image indices): row ``i`` of the
    result depends only on (seed, purpose, coords, rows[i]), never on its batch-mates.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.empty((rows.size, size), dtype=np.float64)
    for i, r in enumerate(rows):  # one Philox key per image: the batch-order invariance
        out[i] = stream(seed, purpose, *coords, int(r)).standard_normal(size)
    return out
