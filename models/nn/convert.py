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

import numpy as np
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.nn.analog_ops import AnalogLayer
from aimcflow.models.nn.importer import Imported, import_model


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
        self.cfg.check_layers([(a.name, a.index) for a in self.layers])
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
