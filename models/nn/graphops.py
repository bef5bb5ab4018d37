"""Float digital ops of an imported graph beyond a plain chain: clamp, pooling, residual add.

These are the level-2 ("analog-float") semantics: numpy float64, exactly what torch
computes in eval mode.  Their integer counterparts (level 3) are the golden models in
``models/periphery/`` (see docs/SPEC.md); the compiler chooses the coefficients.

Activations are (B, C, H, W) for pooling; an :class:`Add` takes two activations of the
same shape.  Every op has a ``name`` (the graph node or module path it came from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Clamp:
    """``min(max(x, lo), hi)``: ReLU6 (0, 6), Hardtanh (lo, hi), clamp; None = unbounded."""

    name: str
    lo: float | None
    hi: float | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lo, self.hi)


@dataclass
class Pool:
    """2-d max or average pooling over (B, C, H, W), no dilation, floor output size.

    ``padding`` (pad_h, pad_w) pads both sides; max pooling pads with -inf (torch), average
    pooling with zeros, dividing by the whole window when ``count_include_pad`` (torch's
    default) and by the in-image part otherwise.  An adaptive average pool to 1x1 is an
    average pool whose window is the whole input.
    """

    name: str
    kind: str  # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    count_include_pad: bool = True

    def windows(self, x: np.ndarray, fill: float) -> np.ndarray:
        """(B, C, Ho, Wo, kh, kw) windows of ``x`` padded with ``fill``."""
        ph, pw = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(xp, self.kernel, axis=(2, 3))
        return win[:, :, :: self.stride[0], :: self.stride[1]]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        ho = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return ho, wo

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "max":
            return self.windows(x, -np.inf).max(axis=(-2, -1))
        s = self.windows(x, 0.0).sum(axis=(-2, -1))
        if self.count_include_pad or self.padding == (0, 0):
            return s / (self.kernel[0] * self.kernel[1])
        ones = np.ones((1, 1) + x.shape[2:])
        return s / self.windows(ones, 0.0).sum(axis=(-2, -1))


@dataclass
class Add:
    """Residual add of two activations of one shape (the graph's ``a + b``)."""

    name: str

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b
