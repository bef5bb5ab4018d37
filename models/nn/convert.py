"""Map a trained torch model onto analog tiles: the "analog-float" level (level 2).

:func:`convert` walks an ``nn.Sequential`` (nested ones are flattened) and turns

* every ``nn.Linear`` and ``nn.Conv2d`` into an :class:`AnalogLayer` whose weight matrix
  ``W`` (inputs, outputs) lives on a :class:`~aimcflow.models.analog.tiled.TiledMatrix`;
  a conv layer is run through im2col (one matrix row per input-channel x kernel position,
  in torch's ``weight.reshape(out, -1)`` order); the bias stays digital (float here);
* ``BatchNorm1d/2d`` (eval statistics), ``ReLU``, ``LeakyReLU``, ``Flatten``,
  ``Unflatten``, ``Identity`` and ``Dropout`` (identity at inference) into digital ops.

Anything else is a :class:`UserInputError` naming the layer and its type; so are NaN or
Inf parameters.  The resulting :class:`AnalogNetwork` is pure numpy: its forward is
keyed by global image ids so the analog noise an image sees does not depend on which
batch it is in.  Noise keys: a linear layer passes the image id; a conv layer's im2col
vector for output position ``p`` of image ``i`` is keyed ``i * positions + p``
(:func:`vector_keys`), so different patches of one image get independent noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

SUPPORTED = (
    "Linear",
    "Conv2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "ReLU",
    "LeakyReLU",
    "Flatten",
    "Unflatten",
    "Identity",
    "Dropout",
)


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
        self.matrix = TiledMatrix(self.weight, cfg, self.index)

    def to_rows(self, x: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The layer's input vectors (N, inputs) and their noise keys; ``shape`` tells
        :meth:`from_rows` how to fold outputs back."""
        if self.kind == "linear":
            if x.ndim != 2:
                raise UserInputError(
                    f"layer {self.name} (Linear) got a {x.ndim}-d activation; "
                    "add nn.Flatten before it"
                )
            return x, np.asarray(images, dtype=np.int64), (len(x),)
        if x.ndim != 4:
            raise UserInputError(
                f"layer {self.name} (Conv2d) got a {x.ndim}-d activation; "
                "it needs (batch, channels, height, width): add nn.Unflatten"
            )
        cols, ho, wo = im2col(x, self.conv)
        return cols, vector_keys(images, ho * wo), (len(x), ho, wo)

    def from_rows(self, y: np.ndarray, shape: tuple) -> np.ndarray:
        if self.kind == "linear":
            return y
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


@dataclass
class AnalogNetwork:
    """A converted model: a chain of analog layers and digital ops, numpy in and out."""

    ops: list
    cfg: AcceleratorConfig
    n_features: int
    meta: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[AnalogLayer]:
        return [op for op in self.ops if isinstance(op, AnalogLayer)]

    def build(self, cfg: AcceleratorConfig | None = None) -> AnalogNetwork:
        """(Re)create every layer's tiles from ``cfg`` (e.g. another seed for a repeat)."""
        if cfg is not None:
            self.cfg = cfg
        for layer in self.layers:
            layer.build(self.cfg)
        return self

    def program(self) -> None:
        for layer in self.layers:
            layer.matrix.program()

    def drift(self, t_s: float) -> None:
        for layer in self.layers:
            layer.matrix.drift(float(t_s))

    def forward_float(
        self, x: np.ndarray, images: np.ndarray | None = None, batch_size: int = 512
    ) -> np.ndarray:
        """Logits (B, classes) at the analog-float level.  ``images`` are the global image ids
        (noise keys; default ``0..B-1``); the batch split does not change the result."""
        x = np.asarray(x, dtype=np.float64)
        images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
        out = []
        for i in range(0, len(x), batch_size):
            h, ids = x[i : i + batch_size], images[i : i + batch_size]
            for op in self.ops:
                h = op.forward_float(h, ids) if isinstance(op, AnalogLayer) else op(h)
            out.append(h)
        return np.concatenate(out)

    def forward_ideal(self, x: np.ndarray) -> np.ndarray:
        """The model in float64 numpy without any analog effect (checks the conversion)."""
        h = np.asarray(x, dtype=np.float64)
        for op in self.ops:
            h = op.forward_ideal(h) if isinstance(op, AnalogLayer) else op(h)
        return h

    def accuracy(
        self, x: np.ndarray, y: np.ndarray, images: np.ndarray | None = None, batch_size: int = 512
    ) -> float:
        return float(np.mean(self.forward_float(x, images, batch_size).argmax(1) == y))


def _leaves(module, prefix: str = "") -> Iterator[tuple[str, Any]]:
    # lazy: torch (~2 s)
    from torch import nn

    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, full + ".")
        else:
            yield full, child


def _np(t, what: str) -> np.ndarray:
    a = t.detach().cpu().double().numpy().copy()
    if not np.all(np.isfinite(a)):
        raise UserInputError(f"layer {what} has NaN or Inf values; the model cannot be mapped")
    return a


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_geometry(name: str, m) -> ConvGeometry:
    if m.groups != 1:
        raise UserInputError(
            f"layer {name} (Conv2d): groups={m.groups} is not supported; allowed: groups=1"
        )
    if m.padding_mode != "zeros":
        raise UserInputError(
            f"layer {name} (Conv2d): padding_mode={m.padding_mode!r} is not "
            "supported; allowed: 'zeros'"
        )
    k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    if m.padding == "valid":
        pad = (0, 0, 0, 0)
    elif m.padding == "same":  # torch puts the odd extra pixel at the end
        th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
        pad = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = _pair(m.padding)
        pad = (ph, ph, pw, pw)
    return ConvGeometry(m.in_channels, k, s, pad, d)


def ops_from_model(model) -> list:
    """The model's layers as analog layers and digital ops (no tiles built yet)."""
    # lazy: torch (~2 s)
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise UserInputError(
            f"model is a {type(model).__name__}; supported: nn.Sequential of {', '.join(SUPPORTED)}"
        )
    ops: list = []
    n_analog = 0
    for name, m in _leaves(model):
        kind = type(m).__name__
        if isinstance(m, nn.Linear):
            ops.append(
                AnalogLayer(
                    name,
                    n_analog,
                    "linear",
                    _np(m.weight, name).T.copy(),
                    None if m.bias is None else _np(m.bias, name),
                )
            )
            n_analog += 1
        elif isinstance(m, nn.Conv2d):
            w = _np(m.weight, name)
            ops.append(
                AnalogLayer(
                    name,
                    n_analog,
                    "conv",
                    w.reshape(w.shape[0], -1).T.copy(),
                    None if m.bias is None else _np(m.bias, name),
                    _conv_geometry(name, m),
                )
            )
            n_analog += 1
        elif type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
            if m.running_mean is None or m.running_var is None:
                raise UserInputError(
                    f"layer {name} ({kind}) has no running statistics "
                    "(track_running_stats=False); cannot run at inference"
                )
            mean, var = _np(m.running_mean, name), _np(m.running_var, name)
            gamma = _np(m.weight, name) if m.weight is not None else np.ones_like(mean)
            beta = _np(m.bias, name) if m.bias is not None else np.zeros_like(mean)
            scale = gamma / np.sqrt(var + m.eps)
            ops.append(BatchNorm(name, scale, beta - mean * scale))
        elif type(m) is nn.ReLU:
            ops.append(ReLU(name))
        elif type(m) is nn.LeakyReLU:
            ops.append(LeakyReLU(name, float(m.negative_slope)))
        elif type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise UserInputError(
                    f"layer {name} (Flatten): only start_dim=1, end_dim=-1 is supported"
                )
            ops.append(Reshape(name, None))
        elif type(m) is nn.Unflatten:
            if m.dim != 1:
                raise UserInputError(f"layer {name} (Unflatten): only dim=1 is supported")
            ops.append(Reshape(name, tuple(int(s) for s in m.unflattened_size)))
        elif type(m) in (nn.Identity, nn.Dropout):
            continue
        else:
            raise UserInputError(
                f"layer {name} has unsupported type {kind}; supported: {', '.join(SUPPORTED)}"
            )
    if n_analog == 0:
        raise UserInputError("model has no Linear or Conv2d layer: nothing to map onto tiles")
    return ops


def convert(
    model, cfg: AcceleratorConfig, *, n_features: int | None = None, program: bool = True
) -> AnalogNetwork:
    """Map ``model`` (an ``nn.Sequential``) onto analog tiles under ``cfg``.

    With ``program`` the tiles are programmed and drifted to ``cfg.noise.t_inference_s``,
    ready for :meth:`AnalogNetwork.forward_float`.  ``n_features`` (the flat input width)
    is checked by a float forward of the original model when given.
    """
    ops = ops_from_model(model)
    if n_features is not None:
        check_input_width(model, n_features)
    net = AnalogNetwork(ops, cfg, n_features or 0).build()
    if program:
        net.program()
        net.drift(cfg.noise.t_inference_s)
    return net


def check_input_width(model, n_features: int, n_classes: int | None = None) -> None:
    """The model must map flat (B, n_features) inputs to (B, n_classes) logits."""
    # lazy: torch (~2 s)
    import torch

    try:
        with torch.no_grad():
            out = model(torch.zeros(2, n_features))
    except Exception as exc:  # noqa: BLE001 -- a model that cannot run the data is user input
        raise UserInputError(
            f"model does not accept (batch, {n_features}) inputs: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(out, torch.Tensor):  # e.g. an LSTM's (output, (h, c)) tuple
        raise UserInputError(
            f"model returns a {type(out).__name__}, not a tensor of logits; supported: an "
            f"nn.Sequential of {', '.join(SUPPORTED)}"
        )
    if out.ndim != 2 or (n_classes is not None and out.shape[1] != n_classes):
        want = f"(batch, {n_classes})" if n_classes is not None else "(batch, classes)"
        raise UserInputError(f"model returns shape {tuple(out.shape)} for 2 inputs; need {want}")
