"""The per-op building blocks of an analog network: digital ops (activations, batch norm,
reshapes) and :class:`AnalogLayer`, a Linear or Conv2d whose weight matrix lives on
analog tiles (a conv through im2col, keyed per patch by :func:`vector_keys`).  The
importer (:mod:`aimcflow.models.nn.importer`) builds them from a ``torch.export`` graph;
:mod:`aimcflow.models.nn.convert` assembles them into an :class:`AnalogNetwork`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

# ----------------------------------------------------------------------------- digital ops


@dataclass
class ReLU:
    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)


@dataclass
class LeakyReLU:
    name: str
    slope: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, x * self.slope)


@dataclass
class BatchNorm:
    """Eval-mode BatchNorm as a per-channel affine ``y = x * scale + shift`` on axis 1."""

    name: str
    scale: np.ndarray
    shift: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)


@dataclass
class Reshape:
    """Flatten / Unflatten: ``shape`` excludes the batch dimension; None flattens."""

    name: str
    shape: tuple[int, ...] | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.shape is None:
            return x.reshape(len(x), -1)
        return x.reshape((len(x), *self.shape))


# ------------------------------------------------------------------------------ analog ops


@dataclass
class ConvGeometry:
    in_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        kh = self.dilation[0] * (self.kernel[0] - 1) + 1
        kw = self.dilation[1] * (self.kernel[1] - 1) + 1
        ho = (h + self.padding[0] + self.padding[1] - kh) // self.stride[0] + 1
        wo = (w + self.padding[2] + self.padding[3] - kw) // self.stride[1] + 1
        return ho, wo


def im2col(x: np.ndarray, g: ConvGeometry) -> tuple[np.ndarray, int, int]:
    """(B, C, H, W) -> (B * Ho * Wo, C * kh * kw) rows in torch's weight order
    (channel-major, then kernel row, then kernel column); returns (cols, Ho, Wo)."""
    b, c, h, w = x.shape
    t, bo, le, r = g.padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, r)))
    dh, dw = g.dilation
    span = (dh * (g.kernel[0] - 1) + 1, dw * (g.kernel[1] - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, :: g.stride[0], :: g.stride[1], ::dh, ::dw]  # (B, C, Ho, Wo, kh, kw)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, c * g.kernel[0] * g.kernel[1])
    return cols, ho, wo


def vector_keys(images: np.ndarray, positions: int) -> np.ndarray:
    """Noise keys of the ``positions`` im2col vectors of each image (int64, image-major)."""
    images = np.asarray(images, dtype=np.int64)
    return (images[:, None] * positions + np.arange(positions, dtype=np.int64)).reshape(-1)


@dataclass
class AnalogLayer:
    """One Linear / Conv2d on analog tiles.  ``weight`` is W (inputs, outputs) in the
    model's weight units; ``bias`` (outputs,) is added digitally."""

    name: str
    index: int  # analog layer number: the ``layer`` coordinate of every noise key
    kind: str  # "linear" or "conv"
    weight: np.ndarray
    bias: np.ndarray | None
    conv: ConvGeometry | None = None
    matrix: Any = None  # TiledMatrix

    def build(self, cfg: AcceleratorConfig) -> None:
        """Tiles under ``cfg`` with this layer's ``[[layer]]`` entry applied."""
        self.matrix = TiledMatrix(self.weight, cfg.for_layer(self.name, self.index), self.index)

    def to_rows(self, x: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The layer's input vectors (N, inputs) and their noise keys; ``shape`` tells
        :meth:`from_rows` how to fold outputs back."""
        if self.kind == "linear":
            if x.ndim < 2:
                raise UserInputError(
                    f"layer {self.name} (Linear) got a {x.ndim}-d activation; "
                    "add nn.Flatten before it"
                )
            if x.ndim == 2:
                return x, np.asarray(images, dtype=np.int64), (len(x),)
            # (B, L, ..., D): one vector per token, each keyed like a conv patch
            lead = x.shape[:-1]
            rows = x.reshape(-1, x.shape[-1])
            return rows, vector_keys(images, int(np.prod(lead[1:]))), lead
        if x.ndim != 4:
            raise UserInputError(
                f"layer {self.name} (Conv2d) got a {x.ndim}-d activation; "
                "it needs (batch, channels, height, width): add nn.Unflatten"
            )
        cols, ho, wo = im2col(x, self.conv)
        return cols, vector_keys(images, ho * wo), (len(x), ho, wo)

    def from_rows(self, y: np.ndarray, shape: tuple) -> np.ndarray:
        if self.kind == "linear":
            return y.reshape(*shape, y.shape[-1])
        b, ho, wo = shape
        return y.reshape(b, ho, wo, -1).transpose(0, 3, 1, 2)

    def add_bias(self, y: np.ndarray) -> np.ndarray:
        return y if self.bias is None else y + self.bias

    def forward_ideal(self, x: np.ndarray) -> np.ndarray:
        """The exact float layer (numpy), for reference and calibration."""
        rows, _, shape = self.to_rows(x, np.zeros(len(x), dtype=np.int64))
        return self.from_rows(self.add_bias(rows @ self.weight), shape)

    def forward_float(self, x: np.ndarray, images: np.ndarray) -> np.ndarray:
        """Level 2: analog tiles with float periphery; bias added digitally."""
        rows, keys, shape = self.to_rows(x, images)
        return self.from_rows(self.add_bias(self.matrix.forward_float(rows, keys)), shape)


# ----------------------------------------------------------------------------- the network
