"""Beat builders for the periphery streams: the one place that encodes the beat protocols
documented in ``rtl/nmpu.py`` and ``rtl/mgmt.py``, in two forms of the same rules:
field arrays (numpy, first axis = beat: what :class:`aimcflow.cosim.packing.PayloadCodec`
packs for cocotb) and per-beat dicts of ints and lists (what Amaranth's ``ctx.set``
takes, :func:`as_dicts`).

Arrays are anything numpy can convert to integers; nothing here imports the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .codes import MgmtReg, NmpuLoad, NmpuReg, activation_code, noise_code
from .params import MgmtRtlParams, NmpuRtlParams


def groups(cols: int, lanes: int) -> int:
    """Column groups ``ceil(cols / lanes)``."""
    return -(-cols // lanes)


def lane_beats(v, lanes: int) -> np.ndarray:
    """Beat padding: ``v`` (..., n) -> (prod(...) * ceil(n/lanes), lanes), each row split
    into beats of ``lanes`` values in order, the last beat of a row zero-padded."""
    v = np.asarray(v, dtype=np.int64)
    n = v.shape[-1]
    G = groups(n, lanes)
    pad = [(0, 0)] * (v.ndim - 1) + [(0, G * lanes - n)]
    return np.pad(v, pad).reshape(-1, lanes)


def last_flags(beats: int, n: int = 1) -> np.ndarray:
    """``last`` of ``n`` back-to-back packets of ``beats`` beats each: 1 on each final beat."""
    return np.tile(np.arange(beats) == beats - 1, n).astype(np.int64)


def as_dicts(fields: dict[str, np.ndarray]) -> list[dict]:
    """Field arrays (first axis = beat) -> one dict of ints / int lists per beat."""
    cols = {k: np.asarray(v).tolist() for k, v in fields.items()}
    n = len(next(iter(cols.values())))
    return [{k: c[i] for k, c in cols.items()} for i in range(n)]


def _lane_slice(row: Sequence, g: int, lanes: int) -> list[int]:
    """Columns ``g*lanes .. g*lanes+lanes-1`` of ``row``, zero-padded past its end."""
    return lane_beats(np.asarray(row)[g * lanes : (g + 1) * lanes], lanes)[0].tolist()


def nmpu_reg_beat(p: NmpuRtlParams, reg: NmpuReg, value: int) -> dict:
    """A ``load`` beat writing register ``reg``."""
    return {
        "kind": NmpuLoad.REG.value,
        "tile": 0,
        "group": NmpuReg(reg).value,
        "a": [0] * p.lanes,
        "b": [int(value)] + [0] * (p.lanes - 1),
    }


def nmpu_load_beats(
    p: NmpuRtlParams,
    gain: Sequence,
    offset: Sequence,
    mult: Sequence,
    bias: Sequence,
    *,
    activation: str,
    out_signed: bool,
    leaky_k: int,
    clamp_lo: int,
    clamp_hi: int,
) -> list[dict]:
    """Every ``load`` beat for ``gain``/``offset`` (T,C), ``mult``/``bias`` (C,) and the
    registers.  ``clamp_lo``/``clamp_hi`` must already be saturated to the output range
    (golden model ``rtl_clamp_bounds``)."""
    T, C = len(gain), len(mult)
    if not 1 <= T <= p.max_tiles or not 1 <= C <= p.max_cols:
        raise ValueError(f"T={T}, C={C} exceed max_tiles={p.max_tiles}, max_cols={p.max_cols}")
    G = groups(C, p.lanes)
    beats = [
        nmpu_reg_beat(p, reg, v)
        for reg, v in (
            (NmpuReg.ACTIVATION, activation_code(activation)),
            (NmpuReg.OUT_SIGNED, int(out_signed)),
            (NmpuReg.LEAKY_K, leaky_k),
            (NmpuReg.CLAMP_LO, clamp_lo),
            (NmpuReg.CLAMP_HI, clamp_hi),
            (NmpuReg.N_TILES, T),
            (NmpuReg.N_COLS, C),
        )
    ]
    for t in range(T):
        for g in range(G):
            beats.append(
                {
                    "kind": NmpuLoad.TILE_COEF.value,
                    "tile": t,
                    "group": g,
                    "a": _lane_slice(gain[t], g, p.lanes),
                    "b": _lane_slice(offset[t], g, p.lanes),
                }
            )
    for g in range(G):
        beats.append(
            {
                "kind": NmpuLoad.COL_COEF.value,
                "tile": 0,
                "group": g,
                "a": _lane_slice(mult, g, p.lanes),
                "b": _lane_slice(bias, g, p.lanes),
            }
        )
    return beats


def nmpu_input_fields(a, e, lanes: int) -> dict[str, np.ndarray]:
    """``i`` stream fields for ``a`` (V,T,C) and ``e`` (V,T): per vector, tile-major,
    group-minor, the row tile's exponent on each of its beats."""
    a = np.asarray(a, dtype=np.int64)
    V, T, C = a.shape
    e = np.asarray(e, dtype=np.int64).reshape(V * T)
    return {"a": lane_beats(a, lanes), "e": np.repeat(e, groups(C, lanes))}


def nmpu_input_beats(p: NmpuRtlParams, a: Sequence, e: Sequence) -> list[dict]:
    """``i`` beats for ``a`` (V,T,C) and ``e`` (V,T) (:func:`nmpu_input_fields`)."""
    return as_dicts(nmpu_input_fields(a, e, p.lanes))


def nmpu_output_values(y, cols: int, lanes: int) -> np.ndarray:
    """``y`` (V,C) from the ``y`` fields of ``V * ceil(cols/lanes)`` ``o`` beats
    (beats, lanes), dropping padding lanes."""
    G = groups(cols, lanes)
    y = np.asarray(y, dtype=np.int64).reshape(-1, lanes)
    if len(y) % G:
        raise ValueError(f"{len(y)} output beats is not a multiple of {G} groups")
    return y.reshape(-1, G * lanes)[:, :cols]


def nmpu_outputs(beats: Sequence[dict], cols: int, lanes: int) -> list[list[int]]:
    """``y`` (V,C) from the ``o`` beats (as dicts, ``to_py``), dropping padding lanes."""
    return nmpu_output_values([b["y"] for b in beats], cols, lanes).tolist()


def segment_beats(x, lanes: int) -> dict[str, np.ndarray]:
    """``x``/``dac`` stream fields of segments ``x`` (N,R): ``lanes`` values a beat,
    ``last`` on each segment's final beat."""
    x = np.asarray(x, dtype=np.int64)
    return {"x": lane_beats(x, lanes), "last": last_flags(groups(x.shape[-1], lanes), len(x))}


def answer_beats(a, sat_any, lanes: int) -> dict[str, np.ndarray]:
    """``adc`` stream fields of tile answers ``a`` (N,C) with ``sat_any`` (N,): ``lanes``
    codes a beat, the answer's ``sat_any`` on each of its beats, ``last`` on its final."""
    a = np.asarray(a, dtype=np.int64)
    G = groups(a.shape[-1], lanes)
    return {
        "a": lane_beats(a, lanes),
        "sat_any": np.repeat(np.asarray(sat_any, dtype=np.int64).reshape(-1), G),
        "last": last_flags(G, len(a)),
    }


def mgmt_reg_beats(noise: str, bound_max_iter: int) -> dict[str, np.ndarray]:
    """The management controller's ``load`` fields that set both run-time registers:
    noise mode (a name of :data:`aimcflow.rtl.codes.NOISE_MODES`) and the retry bound."""
    return {
        "reg": np.array([MgmtReg.NOISE.value, MgmtReg.BOUND_MAX_ITER.value], dtype=np.int64),
        "value": np.array([noise_code(noise), int(bound_max_iter)], dtype=np.int64),
    }


def mgmt_x_beats(p: MgmtRtlParams, x: Sequence) -> list[dict]:
    """``x`` beats of one segment ``x`` (R,): ``x_lanes`` values each, ``last`` on the final."""
    return as_dicts(segment_beats(np.asarray(x)[None], p.x_lanes))


def mgmt_answer_beats(p: MgmtRtlParams, a: Sequence, sat_any: bool) -> list[dict]:
    """Tile-answer beats for ADC codes ``a`` (C,): ``lanes`` codes each, ``sat_any`` on
    every beat, ``last`` on the final."""
    return as_dicts(answer_beats(np.asarray(a)[None], [bool(sat_any)], p.lanes))
