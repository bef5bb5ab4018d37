"""Beat builders for the periphery streams: the one place that encodes the beat protocols
documented in ``rtl/nmpu.py`` and ``rtl/mgmt.py`` as Python payloads (dicts of ints and
lists, accepted by Amaranth's ``ctx.set`` and easy to pack for cocotb).

Arrays are anything indexable with integer values (numpy int64 works); nothing here
imports numpy, torch or the models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .nmpu import (
    LOAD_COL_COEF,
    LOAD_REG,
    LOAD_TILE_COEF,
    REG_ACTIVATION,
    REG_CLAMP_HI,
    REG_CLAMP_LO,
    REG_LEAKY_K,
    REG_N_COLS,
    REG_N_TILES,
    REG_OUT_SIGNED,
)
from .params import MgmtRtlParams, NmpuRtlParams

ACTIVATION_CODES = {"none": 0, "relu": 1, "leaky": 2, "clamp": 3}
NOISE_CODES = {"off": 0, "absmax_pow2": 1}


def _lane_slice(row: Sequence, g: int, lanes: int) -> list[int]:
    """Columns ``g*lanes .. g*lanes+lanes-1`` of ``row``, zero-padded past its end."""
    vals = [int(v) for v in row[g * lanes : (g + 1) * lanes]]
    return vals + [0] * (lanes - len(vals))


def groups(cols: int, lanes: int) -> int:
    """Column groups ``ceil(cols / lanes)``."""
    return -(-cols // lanes)


def nmpu_reg_beat(p: NmpuRtlParams, reg: int, value: int) -> dict:
    """A ``load`` beat writing register ``reg``."""
    return {
        "kind": LOAD_REG,
        "tile": 0,
        "group": reg,
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
            (REG_ACTIVATION, ACTIVATION_CODES[activation]),
            (REG_OUT_SIGNED, int(out_signed)),
            (REG_LEAKY_K, leaky_k),
            (REG_CLAMP_LO, clamp_lo),
            (REG_CLAMP_HI, clamp_hi),
            (REG_N_TILES, T),
            (REG_N_COLS, C),
        )
    ]
    for t in range(T):
        for g in range(G):
            beats.append(
                {
                    "kind": LOAD_TILE_COEF,
                    "tile": t,
                    "group": g,
                    "a": _lane_slice(gain[t], g, p.lanes),
                    "b": _lane_slice(offset[t], g, p.lanes),
                }
            )
    for g in range(G):
        beats.append(
            {
                "kind": LOAD_COL_COEF,
                "tile": 0,
                "group": g,
                "a": _lane_slice(mult, g, p.lanes),
                "b": _lane_slice(bias, g, p.lanes),
            }
        )
    return beats


def nmpu_input_beats(p: NmpuRtlParams, a: Sequence, e: Sequence) -> Iterator[dict]:
    """``i`` beats for ``a`` (V,T,C) and ``e`` (V,T): per vector, tile-major, group-minor."""
    for av, ev in zip(a, e, strict=True):
        for t, at in enumerate(av):
            for g in range(groups(len(at), p.lanes)):
                yield {"a": _lane_slice(at, g, p.lanes), "e": int(ev[t])}


def nmpu_outputs(beats: Sequence[dict], cols: int, lanes: int) -> list[list[int]]:
    """``y`` (V,C) from the ``o`` beats (as dicts, ``to_py``), dropping padding lanes."""
    G = groups(cols, lanes)
    if len(beats) % G:
        raise ValueError(f"{len(beats)} output beats is not a multiple of {G} groups")
    rows = []
    for v in range(len(beats) // G):
        row = [y for b in beats[v * G : (v + 1) * G] for y in b["y"]]
        rows.append(row[:cols])
    return rows


def mgmt_x_beats(p: MgmtRtlParams, x: Sequence) -> list[dict]:
    """``x`` beats of one segment ``x`` (R,): ``x_lanes`` values each, ``last`` on the final."""
    n = groups(len(x), p.x_lanes)
    return [{"x": _lane_slice(x, b, p.x_lanes), "last": int(b == n - 1)} for b in range(n)]


def mgmt_answer_beats(p: MgmtRtlParams, a: Sequence, sat_any: bool) -> list[dict]:
    """Tile-answer beats for ADC codes ``a`` (C,): ``lanes`` codes each, ``sat_any`` on
    every beat, ``last`` on the final."""
    n = groups(len(a), p.lanes)
    return [
        {"a": _lane_slice(a, b, p.lanes), "sat_any": int(bool(sat_any)), "last": int(b == n - 1)}
        for b in range(n)
    ]
