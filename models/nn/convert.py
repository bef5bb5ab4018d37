"""Map a trained torch model onto analog tiles: the "analog-float" level (level 2).

:func:`convert` imports the model's ``torch.export`` graph
(:mod:`aimcflow.models.nn.importer`, which lists the supported aten ops) and turns

* every linear and conv2d into an :class:`AnalogLayer` whose weight matrix
  ``W`` (inputs, outputs) lives on a :class:`~aimcflow.models.analog.tiled.TiledMatrix`;
  a conv layer is run through im2col (one matrix row per input-channel x kernel position,
  in torch's ``weight.reshape(out, -1)`` order); the bias stays digital (float here);
* batch norm (eval statistics), the activations, reshapes, pooling and residual adds
  (:mod:`aimcflow.models.nn.graphops`) into digital ops, in float here.

Anything else is a :class:`UserInputError` naming the graph node and its op; so are NaN or
Inf parameters.  The resulting :class:`AnalogNetwork` is pure numpy: its forward is
keyed by global image ids so the analog noise an image sees does not depend on which
batch it is in.  Noise keys: a linear layer passes the image id; a conv layer's im2col
vector for output position ``p`` of image ``i`` is keyed ``i * positions + p``
(:func:`vector_keys`), so different patches of one image get independent noise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
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
    """A converted model: analog layers and digital ops, numpy in and out.

    ``wires[k]`` are the value ids op ``k`` reads: value 0 is the network input, value
    ``k + 1`` the output of op ``k`` (None: a chain, each op reads the previous value).
    ``output`` is the value id of the logits (None: the last op's)."""

    ops: list
    cfg: AcceleratorConfig
    n_features: int
    meta: dict = field(default_factory=dict)
    wires: list | None = None
    output: int | None = None

    def wire(self, k: int) -> tuple[int, ...]:
        return (k,) if self.wires is None else tuple(self.wires[k])

    @property
    def output_value(self) -> int:
        return len(self.ops) if self.output is None else self.output

    def run(self, x, step):
        """Evaluate the graph on ``x``: ``step(op, *inputs)`` computes one op; values are
        dropped after their last reader so a deep network holds only live activations."""
        last_use: dict[int, int] = {}
        for k in range(len(self.ops)):
            for v in self.wire(k):
                last_use[v] = k
        out = self.output_value
        vals = {0: x}
        for k, op in enumerate(self.ops):
            srcs = self.wire(k)
            vals[k + 1] = step(op, *(vals[v] for v in srcs))
            for v in srcs:
                if last_use.get(v) == k and v != out:
                    vals.pop(v, None)
        return vals[out]

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
            ids = images[i : i + batch_size]

            def step(op, *h, ids=ids):
                return op.forward_float(h[0], ids) if isinstance(op, AnalogLayer) else op(*h)

            out.append(self.run(x[i : i + batch_size], step))
        return np.concatenate(out)

    def forward_ideal(self, x: np.ndarray) -> np.ndarray:
        """The model in float64 numpy without any analog effect (checks the conversion)."""

        def step(op, *h):
            return op.forward_ideal(h[0]) if isinstance(op, AnalogLayer) else op(*h)

        return self.run(np.asarray(x, dtype=np.float64), step)

    def accuracy(
        self, x: np.ndarray, y: np.ndarray, images: np.ndarray | None = None, batch_size: int = 512
    ) -> float:
        return float(np.mean(self.forward_float(x, images, batch_size).argmax(1) == y))


def ops_from_model(model, input_shape: tuple[int, ...] | None = None) -> list:
    """The model's ops in order (for a chain: what :class:`AnalogNetwork` runs); see
    :func:`~aimcflow.models.nn.importer.import_model`."""
    # lazy: import cycle (the importer builds this module's ops)
    from aimcflow.models.nn.importer import import_model

    return import_model(model, input_shape).ops


def convert(
    model,
    cfg: AcceleratorConfig,
    *,
    n_features: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    program: bool = True,
) -> AnalogNetwork:
    """Map ``model`` onto analog tiles under ``cfg``.

    ``model`` is an ``nn.Module`` (exported with ``torch.export`` on inputs of
    ``input_shape``, the per-image shape; default ``(n_features,)`` or what the first
    layer tells), an ``ExportedProgram``, or an already imported
    :class:`~aimcflow.models.nn.importer.Imported` graph (the sweep imports once).  With
    ``program`` the tiles are programmed and drifted to ``cfg.noise.t_inference_s``, ready
    for :meth:`AnalogNetwork.forward_float`.
    """
    # lazy: import cycle (the importer builds this module's ops)
    from aimcflow.models.nn.importer import Imported, import_model

    if input_shape is None and n_features is not None:
        input_shape = (int(n_features),)
    imp = model if isinstance(model, Imported) else import_model(model, input_shape)
    ops = [copy.deepcopy(op) for op in imp.ops]  # each network owns its tiles
    net = AnalogNetwork(
        ops,
        cfg,
        int(np.prod(imp.input_shape)) if imp.input_shape else 0,
        wires=list(imp.wires),
        output=imp.output,
    ).build()
    if program:
        net.program()
        net.drift(cfg.noise.t_inference_s)
    return net
