"""Level 3, "analog-golden": the analog tiles with the bit-exact integer periphery.

The program's integer schedule (:mod:`aimcflow.models.nn.schedule`) is walked: residual
adds and pooling run on their golden models (``models/periphery/residual.py``,
``pool.py``).  Per layer of a :class:`~aimcflow.models.nn.compiler.ChipProgram` and per
input vector:
the management controller golden model (``models/periphery/mgmt.py``) turns each row
tile's integer input segment into DAC codes and asks the tile (``forward_codes``, noise
keyed by image and management iteration) until bound management is satisfied; the NMPU
golden model (``models/periphery/nmpu.py``) corrects, accumulates the row tiles, scales,
adds the bias, applies the activation and saturates.  Nothing here re-implements their
numerics: this module only routes integers between them.

The first layer's input is quantized with the program's input scale (round half up,
saturate); the output value's integers times its scale give the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aimcflow.models.nn.schedule import run_walk
from aimcflow.models.periphery import mgmt as mgmt_model
from aimcflow.models.periphery import nmpu as nmpu_model
from aimcflow.models.periphery.fixedpoint import quantize_input


@dataclass
class LayerTrace:
    """What one layer did over a batch (for reports and the level-4 comparison)."""

    name: str
    rows: list = field(default_factory=list)  # integer input vectors (N, inputs) per batch
    keys: list = field(default_factory=list)  # their noise keys (N,) per batch
    a: list = field(default_factory=list)  # final ADC codes (N, T, C) per batch
    e: list = field(default_factory=list)  # final exponents (N, T, column tiles) per batch
    y: list = field(default_factory=list)  # integer outputs per batch
    out: list = field(default_factory=list)  # the NMPU outputs (N, C) per batch, row form
    iters: list = field(default_factory=list)  # bound-management iterations per (vector, tile)
    sat: list = field(default_factory=list)  # final sat_any per (vector, tile)
    adc_sat_rate: float = 0.0


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


@dataclass(frozen=True)
class ColumnJob:
    """The periphery's work for one column tile of one layer over a batch: what level 3
    computes with the golden models and level 4 with the RTL (same inputs, same outputs).

    ``x_segments[t]`` (V, rows of row tile t) integer inputs; ``tiles[t]`` the tile callable
    of row tile t (``tile(d, iteration, active) -> (a, sat_any)``, as the management golden
    model and a cosim bench call it); ``gain``/``offset`` (T, C), ``mult``/``bias`` (C,).
    """

    layer: int
    column_tile: int
    x_segments: list
    tiles: list
    gain: np.ndarray
    offset: np.ndarray
    mult: np.ndarray
    bias: np.ndarray
    mgmt: mgmt_model.MgmtParams
    nmpu: nmpu_model.NmpuParams


@dataclass(frozen=True)
class ColumnResult:
    """``y`` (V, C) outputs; per row tile: ``a`` (V, T, C), ``e``/``iters``/``sat`` (V, T)."""

    y: np.ndarray
    a: np.ndarray
    e: np.ndarray
    iters: np.ndarray
    sat: np.ndarray


def golden_periphery(job: ColumnJob) -> ColumnResult:
    """Level 3: management controller and NMPU golden models."""
    res = [
        mgmt_model.manage(x, tile, job.mgmt)
        for x, tile in zip(job.x_segments, job.tiles, strict=True)
    ]
    a = np.stack([r[0] for r in res], axis=1)
    e = np.stack([r[1] for r in res], axis=1)
    y = nmpu_model.nmpu(a, e, job.gain, job.offset, job.mult, job.bias, job.nmpu)
    return ColumnResult(
        y, a, e, np.stack([r[2] for r in res], axis=1), np.stack([r[3] for r in res], axis=1)
    )


Periphery = Callable[[ColumnJob], ColumnResult]


@dataclass
class LayerJobs:
    """One stage's periphery work over a batch: its column jobs and what is needed to turn
    their results into the stage's outputs (:meth:`finish`).  Level 3 runs the jobs with
    the golden models, level 4 with the RTL; both finish them the same way."""

    jobs: list[ColumnJob]
    rows: np.ndarray
    keys: np.ndarray
    shape: tuple
    stage: object
    col_slices: list
    n_row_tiles: int

    def finish(self, results: list[ColumnResult], trace: LayerTrace | None = None) -> np.ndarray:
        """Column results (one per job, in order) -> the stage's integer outputs."""
        V = len(self.rows)
        C = self.stage.layer.weight.shape[1]
        out = np.zeros((V, C), dtype=np.int64)
        a_layer = np.zeros((V, self.n_row_tiles, C), dtype=np.int64)
        e_layer = np.zeros((V, self.n_row_tiles, len(self.col_slices)), dtype=np.int64)
        for k, (cs, r) in enumerate(zip(self.col_slices, results, strict=True)):
            out[:, cs] = r.y
            a_layer[:, :, cs], e_layer[:, :, k] = r.a, r.e
            if trace is not None:
                trace.iters.append(r.iters.reshape(-1))
                trace.sat.append(r.sat.reshape(-1))
        y = self.stage.layer.from_rows(out, self.shape)
        if trace is not None:
            trace.rows.append(self.rows)
            trace.keys.append(self.keys)
            trace.a.append(a_layer)
            trace.e.append(e_layer)
            trace.y.append(y)
            trace.out.append(out)
        return y


def _nmpu_params(cfg, lp) -> nmpu_model.NmpuParams:
    """The NMPU parameters of layer program ``lp``: the config's, with the layer's own
    activation and output format."""
    return nmpu_model.NmpuParams.from_config(
        cfg,
        activation=lp.activation,
        out_signed=lp.out_signed,
        out_bits=lp.out_bits,
        leaky_k=lp.leaky_k,
    )


def periphery_corners(prog, traces: list[LayerTrace]) -> list[dict]:
    """Per layer, how often a run reached the periphery's corners: final ADC codes at the
    most negative / most positive code, accumulators (after the last row tile) at the
    negative / positive rail of ``nmpu.acc_bits``, and the bound-management iteration
    histogram.  The accumulators are recomputed from the trace's final codes and exponents
    with the NMPU golden model's own ``affine`` and ``accumulate``."""
    out = []
    for i, (lp, tr) in enumerate(zip(prog.layers, traces, strict=True)):
        cfg = prog.layer_cfg(i)
        adc_lo, adc_hi = -(1 << (cfg.adc.bits - 1)), (1 << (cfg.adc.bits - 1)) - 1
        if not tr.a:
            out.append({"name": lp.name, "adc_rails": [0, 0], "acc_rails": [0, 0], "iters": []})
            continue
        a, e = np.concatenate(tr.a), np.concatenate(tr.e)
        p = _nmpu_params(cfg, lp)
        cols = prog.stages[i].layer.matrix.col_slices
        acc = np.concatenate(
            [
                nmpu_model.accumulate(
                    nmpu_model.affine(a[:, :, cs], lp.gain[None, :, cs], lp.offset[None, :, cs]),
                    e[:, :, k],
                    p,
                )
                for k, cs in enumerate(cols)
            ],
            axis=1,
        )
        acc_lo, acc_hi = -(1 << (p.acc_bits - 1)), (1 << (p.acc_bits - 1)) - 1
        out.append(
            {
                "name": lp.name,
                "adc_rails": [int(np.sum(a == adc_lo)), int(np.sum(a == adc_hi))],
                "acc_rails": [int(np.sum(acc == acc_lo)), int(np.sum(acc == acc_hi))],
                "iters": np.bincount(np.concatenate(tr.iters)).tolist(),
            }
        )
    return out


def layer_jobs(prog, i: int, h: np.ndarray, images: np.ndarray) -> LayerJobs:
    """Integer activations into stage ``i`` -> its column jobs (one per column tile)."""
    cfg = prog.layer_cfg(i)
    st, lp = prog.stages[i], prog.layers[i]
    rows, keys, shape = st.layer.to_rows(h, images)
    mp = mgmt_model.MgmtParams.from_config(cfg, x_bits=lp.in_bits, x_signed=lp.in_signed)
    np_ = _nmpu_params(cfg, lp)
    m = st.layer.matrix
    jobs = [
        ColumnJob(
            lp.index,
            k,
            [rows[:, rs] for rs in m.row_slices],
            [_tile_fn(m.tiles[t][k], keys) for t in range(len(m.row_slices))],
            lp.gain[:, cs],
            lp.offset[:, cs],
            lp.mult[cs],
            lp.bias[cs],
            mp,
            np_,
        )
        for k, cs in enumerate(m.col_slices)
    ]
    return LayerJobs(jobs, rows, keys, shape, st, list(m.col_slices), len(m.row_slices))


def layer_forward(
    prog,
    i: int,
    h: np.ndarray,
    images: np.ndarray,
    trace: LayerTrace | None = None,
    periphery: Periphery = golden_periphery,
) -> np.ndarray:
    """Integer activations into stage ``i`` -> its integer outputs.  ``periphery`` computes
    each column tile (default the golden models; level 4 passes an RTL-backed one)."""
    lj = layer_jobs(prog, i, h, images)
    return lj.finish([periphery(job) for job in lj.jobs], trace)


def input_codes(prog, x: np.ndarray) -> np.ndarray:
    """The first layer's integer inputs of float inputs ``x``."""
    first = prog.layers[0]
    return quantize_input(x, first.in_scale, first.in_bits, first.in_signed)


def logits_of(prog, h: np.ndarray) -> np.ndarray:
    """The output value's integers -> float logits."""
    return np.asarray(h).astype(np.float64) * prog.out_scale


def forward_golden(
    prog,
    x: np.ndarray,
    images: np.ndarray | None = None,
    batch_size: int = 512,
    traces: list[LayerTrace] | None = None,
    periphery: Periphery = golden_periphery,
    sfu: str = "int",
) -> np.ndarray:
    """Level-3 logits (float: last layer's integers times its output scale); with an
    RTL-backed ``periphery`` the same routine runs level 4.  ``sfu="float"``: the
    special-function unit's ops in float (models/nn/seq_steps.py)."""
    x = np.asarray(x)
    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    outs = []
    for b in range(0, len(x), batch_size):
        ids = images[b : b + batch_size]

        def stage(i: int, h: np.ndarray, ids=ids) -> np.ndarray:
            tr = traces[i] if traces is not None else None
            return layer_forward(prog, i, h, ids, tr, periphery)

        outs.append(
            logits_of(prog, run_walk(prog, input_codes(prog, x[b : b + batch_size]), stage, sfu))
        )
    return np.concatenate(outs)


def accuracy_golden(
    prog,
    x: np.ndarray,
    y: np.ndarray,
    images: np.ndarray | None = None,
    traces: list[LayerTrace] | None = None,
    periphery: Periphery = golden_periphery,
) -> float:
    logits = forward_golden(prog, x, images, traces=traces, periphery=periphery)
    return float(np.mean(logits.argmax(1) == y))
