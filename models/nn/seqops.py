"""Float digital ops of a transformer graph (level 2, "analog-float"): what torch computes in
eval mode, in numpy float64.  Their integer counterparts (level 3) are the special-function
unit's golden model (``models/periphery/sfu.py``: attention's two matmuls and softmax,
LayerNorm, GELU), the residual unit (an add of a constant such as a positional embedding)
and the pooling unit (the mean over tokens); :mod:`aimcflow.models.nn.seq_steps` compiles
and runs them.

Activations keep the batch as axis 0: tokens are (B, L, D), heads (B, H, L, d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


@dataclass
class Permute:
    """A transpose/permute of the non-batch axes (data movement); ``perm`` over all axes,
    ``perm[0] == 0``."""

    name: str
    perm: tuple[int, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(x, self.perm))


@dataclass
class AddConst:
    """``x + c`` with a constant tensor ``c`` (a learned positional embedding), broadcast
    over the batch: ``c`` has the activation's shape without the batch axis."""

    name: str
    const: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x + self.const[None]


@dataclass
class LayerNorm:
    """LayerNorm over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    (population variance).  ``gamma``/``beta`` None: folded into the linear layers that
    read the output (the importer does that when every reader is one)."""

    name: str
    eps: float
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None

    def normalize(self, x: np.ndarray) -> np.ndarray:
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.normalize(x)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y


@dataclass
class GELU:
    """``x * Phi(x)`` with the exact (erf) Phi; the SFU's polynomial erf approximates it."""

    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


@dataclass
class Attention:
    """``softmax(q k^T * scale) v`` over the last two axes of (B, H, L, d) q, k, v (no mask,
    no dropout): ``scaled_dot_product_attention`` or an explicit matmul-softmax-matmul."""

    name: str
    scale: float

    def __call__(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = np.einsum("...ld,...md->...lm", q, k) * self.scale
        return np.einsum("...lm,...md->...ld", softmax(s), v)


@dataclass
class TokenMean:
    """The mean over the token axis: (B, L, D) -> (B, D) (a ViT's mean pooling)."""

    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=1)


@dataclass
class ConcatConst:
    """``cat([c, x], axis)`` (``front``) or ``cat([x, c], axis)`` with a constant ``c`` of
    the per-image shape, broadcast over the batch: a ViT's class token."""

    name: str
    const: np.ndarray
    axis: int
    front: bool = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c = np.broadcast_to(self.const[None], (len(x), *self.const.shape)).astype(x.dtype)
        return np.concatenate([c, x] if self.front else [x, c], axis=self.axis)


@dataclass
class Select:
    """``x.select(axis, index)`` (data movement): a ViT's class-token readout ``x[:, 0]``."""

    name: str
    axis: int
    index: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.take(x, self.index, axis=self.axis))
