"""Level 3, "analog-golden": the analog tiles with the bit-exact integer periphery.

Per layer of a :class:`~aimcflow.models.nn.compiler.ChipProgram` and per input vector:
the management controller golden model (``models/periphery/mgmt.py``) turns each row
tile's integer input segment into DAC codes and asks the tile (``forward_codes``, noise
keyed by image and management iteration) until bound management is satisfied; the NMPU
golden model (``models/periphery/nmpu.py``) corrects, accumulates the row tiles, scales,
adds the bias, applies the activation and saturates.  Nothing here re-implements their
numerics: this module only routes integers between them.

The first layer's input is quantized with the program's input scale (round half up,
saturate); the last layer's integer output times its scale gives the logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from aimcflow.models.periphery import mgmt as mgmt_model
from aimcflow.models.periphery import nmpu as nmpu_model
from aimcflow.models.periphery.fixedpoint import sat, satu


@dataclass
class LayerTrace:
    """What one layer did over a batch (for reports and the level-4 comparison)."""

    name: str
    rows: list = field(default_factory=list)  # integer input vectors (N, inputs) per batch
    keys: list = field(default_factory=list)  # their noise keys (N,) per batch
    a: list = field(default_factory=list)  # final ADC codes (N, T, C) per batch
    e: list = field(default_factory=list)  # final exponents (N, T, column tiles) per batch
    y: list = field(default_factory=list)  # integer outputs per batch
    iters: list = field(default_factory=list)  # bound-management iterations per (vector, tile)
    sat: list = field(default_factory=list)  # final sat_any per (vector, tile)
    adc_sat_rate: float = 0.0


def quantize_input(x: np.ndarray, scale: float, bits: int, signed: bool) -> np.ndarray:
    """Float inputs -> integer codes: round half up of x/scale, saturated to the format."""
    q = np.floor(np.asarray(x, dtype=np.float64) / scale + 0.5).astype(np.int64)
    return sat(q, bits) if signed else satu(q, bits)


def _tile_fn(tile, keys: np.ndarray):
    """The management controller's view of one tile: only active vectors are converted."""

    def ask(d, iteration, active):
        a = np.zeros((d.shape[0], tile.cols), dtype=np.int64)
        s = np.zeros(d.shape[0], dtype=bool)
        idx = np.nonzero(active)[0]
        if idx.size:
            a[idx], s[idx] = tile.forward_codes(d[idx], keys[idx], iteration[idx])
        return a, s

    return ask


def layer_forward(
    prog, i: int, h: np.ndarray, images: np.ndarray, trace: LayerTrace | None = None
) -> np.ndarray:
    """Integer activations into stage ``i`` -> its integer outputs."""
    cfg = prog.cfg
    st, lp = prog.stages[i], prog.layers[i]
    for op in st.pre:
        h = op(h)
    rows, keys, shape = st.layer.to_rows(h, images)
    mp = mgmt_model.MgmtParams.from_config(cfg, x_bits=lp.in_bits, x_signed=lp.in_signed)
    np_ = nmpu_model.NmpuParams.from_config(
        cfg,
        activation=lp.activation,
        out_signed=lp.out_signed,
        out_bits=lp.out_bits,
        leaky_k=lp.leaky_k,
    )
    m = st.layer.matrix
    out = np.zeros((len(rows), st.layer.weight.shape[1]), dtype=np.int64)
    a_layer = np.zeros((len(rows), len(m.row_slices), out.shape[1]), dtype=np.int64)
    e_layer = np.zeros((len(rows), len(m.row_slices), len(m.col_slices)), dtype=np.int64)
    for k, cs in enumerate(m.col_slices):
        a_all = np.zeros((len(rows), len(m.row_slices), cs.stop - cs.start), dtype=np.int64)
        e_all = np.zeros((len(rows), len(m.row_slices)), dtype=np.int64)
        for t, rs in enumerate(m.row_slices):
            a, e, it, sat_any = mgmt_model.manage(rows[:, rs], _tile_fn(m.tiles[t][k], keys), mp)
            a_all[:, t], e_all[:, t] = a, e
            a_layer[:, t, cs], e_layer[:, t, k] = a, e
            if trace is not None:
                trace.iters.append(it)
                trace.sat.append(sat_any)
        out[:, cs] = nmpu_model.nmpu(
            a_all, e_all, lp.gain[:, cs], lp.offset[:, cs], lp.mult[cs], lp.bias[cs], np_
        )
    y = st.layer.from_rows(out, shape)
    if trace is not None:
        trace.rows.append(rows)
        trace.keys.append(keys)
        trace.a.append(a_layer)
        trace.e.append(e_layer)
        trace.y.append(y)
    return y


def forward_golden(
    prog,
    x: np.ndarray,
    images: np.ndarray | None = None,
    batch_size: int = 512,
    traces: list[LayerTrace] | None = None,
) -> np.ndarray:
    """Level-3 logits (float: last layer's integers times its output scale)."""
    x = np.asarray(x)
    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    first = prog.layers[0]
    outs = []
    for b in range(0, len(x), batch_size):
        h = quantize_input(x[b : b + batch_size], first.in_scale, first.in_bits, first.in_signed)
        ids = images[b : b + batch_size]
        for i in range(len(prog.stages)):
            h = layer_forward(prog, i, h, ids, traces[i] if traces is not None else None)
        for op in prog.post:
            h = op(h)
        outs.append(h)
    return np.concatenate(outs).astype(np.float64) * prog.layers[-1].out_scale


def accuracy_golden(
    prog,
    x: np.ndarray,
    y: np.ndarray,
    images: np.ndarray | None = None,
    traces: list[LayerTrace] | None = None,
) -> float:
    return float(np.mean(forward_golden(prog, x, images, traces=traces).argmax(1) == y))
