"""Pack numpy field arrays into the flat payload integers of an Amaranth stream, and back.

Amaranth flattens a stream's payload into one port (``i__payload``): a
``StructLayout``'s fields in declaration order and an ``ArrayLayout``'s elements in index
order, each starting at its ``offset`` from bit 0 (LSB).  :class:`PayloadCodec` reads those
offsets from the layout object itself, so the bench never restates the RTL's bit map.

Leaves are named by their path: ``"a"`` for a scalar field, and an ``ArrayLayout`` field
``"a"`` of scalars is one *vector* leaf taking arrays of shape ``(beats, count)``.
Conversion is vectorized over beats (bits via numpy); only the final big-int assembly is
one Python call per beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data


@dataclass(frozen=True)
class Leaf:
    """One scalar field, or a run of ``count`` equal scalars ``stride`` bits apart."""

    name: str
    offset: int
    width: int
    signed: bool
    count: int = 1
    stride: int = 0
    vector: bool = False  # an ArrayLayout of scalars: arrays of shape (beats, count)


def _leaves(shape, name: str, offset: int) -> list[Leaf]:
    if isinstance(shape, data.ArrayLayout):
        elem = shape.elem_shape
        if not isinstance(elem, data.Layout):
            s = Shape.cast(elem)
            return [Leaf(name, offset, s.width, s.signed, shape.length, s.width, True)]
        out = []
        for i in range(shape.length):
            out += _leaves(elem, f"{name}.{i}" if name else str(i), offset + i * elem.size)
        return out
    if isinstance(shape, data.Layout):
        out = []
        for fname, fld in shape:
            out += _leaves(
                fld.shape, f"{name}.{fname}" if name else str(fname), offset + fld.offset
            )
        return out
    s = Shape.cast(shape)
    return [Leaf(name or "value", offset, s.width, s.signed)]


class PayloadCodec:
    """Pack/unpack the payload of one stream given its Amaranth shape or layout."""

    def __init__(self, shape) -> None:
        self.width = shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width
        self.leaves = _leaves(shape, "", 0)
        self.nbytes = max(1, (self.width + 7) // 8)

    @classmethod
    def from_leaves(cls, leaves: Sequence[Leaf], width: int) -> PayloadCodec:
        self = cls.__new__(cls)
        self.width, self.leaves, self.nbytes = width, list(leaves), max(1, (width + 7) // 8)
        return self

    @property
    def names(self) -> list[str]:
        return [leaf.name for leaf in self.leaves]

    def pack(self, values: Mapping[str, np.ndarray], beats: int | None = None) -> list[int]:
        """Flat payload integers, one per beat; missing leaves are 0."""
        if beats is None:
            beats = len(np.asarray(next(iter(values.values()))))
        bits = np.zeros((beats, self.nbytes * 8), dtype=np.uint8)
        for leaf in self.leaves:
            if leaf.name not in values:
                continue
            v = np.asarray(values[leaf.name], dtype=np.int64).reshape(beats, leaf.count)
            shifts = np.arange(leaf.width, dtype=np.int64)
            b = ((v[:, :, None] >> shifts) & 1).astype(np.uint8)  # two's complement bits
            for k in range(leaf.count):
                lo = leaf.offset + k * leaf.stride
                bits[:, lo : lo + leaf.width] = b[:, k, :]
        raw = np.packbits(bits, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in raw]

    def unpack(self, words: Sequence[int]) -> dict[str, np.ndarray]:
        """Field arrays (int64) from flat payload integers; vector leaves get (beats, count)."""
        n = len(words)
        raw = np.frombuffer(
            b"".join(int(w).to_bytes(self.nbytes, "little") for w in words), dtype=np.uint8
        ).reshape(n, self.nbytes)
        bits = np.unpackbits(raw, axis=1, bitorder="little").astype(np.int64)
        out: dict[str, np.ndarray] = {}
        for leaf in self.leaves:
            weights = np.left_shift(np.int64(1), np.arange(leaf.width, dtype=np.int64))
            cols = []
            for k in range(leaf.count):
                lo = leaf.offset + k * leaf.stride
                v = bits[:, lo : lo + leaf.width] @ weights
                if leaf.signed:
                    v = np.where(v >= (1 << (leaf.width - 1)), v - (1 << leaf.width), v)
                cols.append(v)
            out[leaf.name] = np.stack(cols, axis=1) if leaf.vector else cols[0]
        return out


def port_codecs(component, names: Sequence[str]) -> dict[str, PayloadCodec]:
    """A codec per stream port ``names`` of an Amaranth component (its payload layout)."""
    return {n: PayloadCodec(getattr(component, n).payload.shape()) for n in names}
