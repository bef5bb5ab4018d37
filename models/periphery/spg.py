"""Golden model of the stochastic pulse generator (SPG), bit-exact to ``rtl/spg.py``.

Numerics (docs/SPEC.md, "Stochastic pulse generator"; the choices SPEC leaves open are
fixed here and mirrored by the RTL):

* Values ``v`` are signed ``value_bits`` integers meaning ``v / 2**(value_bits-1)``; gains
  are unsigned ``gain_bits`` integers with ``gain_frac`` fractional bits.
* Translator: ``q = min(2**P, scale(|v| * gain, value_bits - 1 + gain_frac - P))``,
  ``P = prob_bits``; the pulse probability is ``q / 2**P``.  ``q`` needs ``P + 1`` bits.
* PRNG: one 32-bit xorshift per lane, Marsaglia's triple (13, 17, 5):
  ``s ^= s << 13; s ^= s >> 17; s ^= s << 5`` (mod 2**32).  Its transition matrix T over
  GF(2) has a primitive characteristic polynomial, so every nonzero state lies on one
  cycle of period 2**32 - 1 (checked exhaustively in ``tests/test_spg_prng.py``).
* Random number of a slot: the low ``P`` bits of the lane's current state; the state then
  advances once (``s <- T s``) for every slot that is emitted, in either mode.
* Lane seeds: lanes are numbered rows first (row ``i`` is lane ``i``), then columns
  (column ``j`` is lane ``R + j``).  ``base = seed`` (32-bit), except ``seed == 0`` gives
  ``base = 0x9E3779B9`` (the all-zero state is xorshift's fixed point).  Lane ``k`` starts
  at ``T**(k * LANE_STRIDE) base`` with ``LANE_STRIDE = 2**21``: the lanes are disjoint
  2**21-slot segments of the one m-sequence (for up to 2047 lanes), so no two lanes ever
  hold the same state in the same slot.  In hardware the jump is a constant XOR matrix.
* Stochastic mode: in each of the ``bl`` slots a lane pulses iff ``r < q``.
* Deterministic mode: ``n = rshr(bl * q, P)`` (round half up) pulses, spread by Bresenham:
  slot ``k`` (0-based within the update) pulses iff
  ``floor((k + 1) * n / bl) > floor(k * n / bl)``, i.e. an accumulator that starts at 0 per
  update, adds ``n`` every slot and pulses (subtracting ``bl``) when it reaches ``bl``.
* Sign line: +1 for ``v >= 0``, -1 for ``v < 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.fixedpoint import rshr, scale
from aimcflow.rtl.params import SpgWidths
from numpy.typing import ArrayLike, NDArray

XORSHIFT_SHIFTS = (13, 17, 5)
STATE_BITS = 32
PERIOD = (1 << STATE_BITS) - 1
LANE_STRIDE = 1 << 21
ZERO_SEED_BASE = 0x9E3779B9
SEED_BITS = 32
_MASK32 = (1 << STATE_BITS) - 1


@dataclass(frozen=True)
class SpgParams(SpgWidths):
    """Widths of the pulse generator (``[spg]`` of the accelerator config), declared once in
    :class:`~aimcflow.rtl.params.SpgWidths`."""

    @classmethod
    def from_config(cls, cfg) -> SpgParams:
        s = cfg.spg
        return cls(s.value_bits, s.gain_bits, s.gain_frac, s.prob_bits, s.max_bl)

    @property
    def gain_max(self) -> int:
        return (1 << self.gain_bits) - 1


# ---------------------------------------------------------------- the xorshift and GF(2) jumps


def xorshift_step(s: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """One xorshift32 (13, 17, 5) step, vectorized over uint32 lanes."""
    a, b, c = XORSHIFT_SHIFTS
    s = s ^ (s << np.uint32(a))
    s = s ^ (s >> np.uint32(b))
    return s ^ (s << np.uint32(c))


def _step_int(s: int) -> int:
    a, b, c = XORSHIFT_SHIFTS
    s ^= (s << a) & _MASK32
    s ^= s >> b
    return s ^ ((s << c) & _MASK32)


def _matrix_of_step() -> tuple[int, ...]:
    """T as 32 column words: column j is T applied to the unit vector e_j."""
    return tuple(_step_int(1 << j) for j in range(STATE_BITS))


def gf2_apply(m: tuple[int, ...], s: int) -> int:
    """Matrix (column words) times a 32-bit state over GF(2)."""
    out = 0
    j = 0
    while s:
        if s & 1:
            out ^= m[j]
        s >>= 1
        j += 1
    return out


def gf2_mul(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Matrix product a @ b (apply b first)."""
    return tuple(gf2_apply(a, col) for col in b)


def gf2_pow(m: tuple[int, ...], k: int) -> tuple[int, ...]:
    result = tuple(1 << j for j in range(STATE_BITS))
    while k:
        if k & 1:
            result = gf2_mul(m, result)
        m = gf2_mul(m, m)
        k >>= 1
    return result


T_MATRIX = _matrix_of_step()


def lane_seeds(seed: int, lanes: int) -> NDArray[np.uint32]:
    """Initial xorshift state of each lane: ``T**(k * LANE_STRIDE) base`` for lane k."""
    _check_seed(seed)
    base = ZERO_SEED_BASE if seed == 0 else int(seed)
    jump = gf2_pow(T_MATRIX, LANE_STRIDE)
    out = np.empty(lanes, dtype=np.uint32)
    s = base
    for k in range(lanes):  # once per run, not per slot: the jump is a constant matrix
        out[k] = s
        s = gf2_apply(jump, s)
    return out


def rtl_lane_jumps(lanes: int) -> tuple[tuple[int, ...], ...]:
    """Per-lane seed-jump matrices ``T**(k * LANE_STRIDE)`` (32 column words each, lane k =
    0..lanes-1) for ``rtl/spg.py``'s ``SpgRtlParams.lane_jumps``: the RTL wires these constants
    into XOR networks, so the jump rule lives only here."""
    if not 1 <= lanes <= PERIOD // LANE_STRIDE:
        raise ValueError(
            f"{lanes} lanes: allowed 1 .. {PERIOD // LANE_STRIDE} (disjoint xorshift segments)"
        )
    jump = gf2_pow(T_MATRIX, LANE_STRIDE)
    mats = [tuple(1 << j for j in range(STATE_BITS))]
    for _ in range(1, lanes):
        mats.append(gf2_mul(jump, mats[-1]))
    return tuple(mats)


def _check_seed(seed: int) -> None:
    if not (0 <= int(seed) < (1 << SEED_BITS)):
        raise UserInputError(f"spg seed {seed} is out of range; allowed: 0 .. 2**32-1")


# ---------------------------------------------------------------- translator


def translate(v: ArrayLike, gain: ArrayLike, p: SpgParams) -> NDArray[np.int64]:
    """Pulse probability numerator ``q`` (unsigned, P+1 bits; probability = q / 2**P)."""
    v = np.asarray(v, dtype=np.int64)
    gain = np.asarray(gain, dtype=np.int64)
    q = scale(np.abs(v) * gain, p.translator_shift)
    return np.minimum(q, np.int64(1) << p.prob_bits)


def sign_of(v: ArrayLike) -> NDArray[np.int64]:
    """+1 for v >= 0, -1 for v < 0 (zero counts as positive)."""
    return np.where(np.asarray(v) < 0, -1, 1).astype(np.int64)


def deterministic_count(q: ArrayLike, bl: int, p: SpgParams) -> NDArray[np.int64]:
    """``round(bl * q / 2**P)``, round half up: pulses per update in deterministic mode."""
    return rshr(np.asarray(q, dtype=np.int64) * int(bl), p.prob_bits)


def bresenham_slots(n: ArrayLike, bl: int) -> NDArray[np.uint8]:
    """Pulse pattern (..., bl) of ``n`` pulses spread evenly over ``bl`` slots."""
    n = np.asarray(n, dtype=np.int64)[..., None]
    k = np.arange(bl, dtype=np.int64)
    return (((k + 1) * n) // bl > (k * n) // bl).astype(np.uint8)


# ---------------------------------------------------------------- validation


def validate_inputs(
    x: np.ndarray,
    d: np.ndarray,
    gain_x: np.ndarray,
    gain_d: np.ndarray,
    bl: int,
    p: SpgParams,
    what: str = "spg",
) -> None:
    """Range checks of every SPG input; any problem is one UserInputError."""
    if not (1 <= int(bl) <= p.max_bl):
        raise UserInputError(
            f"{what}: bl = {bl} is out of range; allowed: 1 .. {p.max_bl} (spg.max_bl)"
        )
    lo, hi = -(1 << (p.value_bits - 1)), (1 << (p.value_bits - 1)) - 1
    for name, a in (("x", x), ("d", d)):
        if a.size and (a.min() < lo or a.max() > hi):
            bad = a.min() if a.min() < lo else a.max()
            raise UserInputError(
                f"{what}: {name} holds {int(bad)}, outside the signed "
                f"{p.value_bits}-bit range {lo} .. {hi} (spg.value_bits)"
            )
    for name, g in (("gain_x", gain_x), ("gain_d", gain_d)):
        if g.size and (g.min() < 0 or g.max() > p.gain_max):
            bad = g.min() if g.min() < 0 else g.max()
            raise UserInputError(
                f"{what}: {name} = {int(bad)} overflows the translator's unsigned "
                f"{p.gain_bits}-bit gain; allowed: 0 .. {p.gain_max} "
                f"(= {p.gain_max / (1 << p.gain_frac):g} with {p.gain_frac} fractional bits)"
            )


# ---------------------------------------------------------------- the generator


@dataclass
class SpgOutput:
    """Pulse trains of V updates: pulses 0/1 (uint8), signs +1/-1 (int64)."""

    row_pulses: NDArray[np.uint8]  # (V, BL, R)
    col_pulses: NDArray[np.uint8]  # (V, BL, C)
    row_sign: NDArray[np.int64]  # (V, R)
    col_sign: NDArray[np.int64]  # (V, C)


class PulseGenerator:
    """R row lanes and C column lanes whose xorshift states carry over between calls,
    exactly as the RTL's do between updates after one seed load."""

    def __init__(self, rows: int, cols: int, seed: int, params: SpgParams | None = None):
        self.rows, self.cols = int(rows), int(cols)
        self.params = params or SpgParams()
        self.state = lane_seeds(seed, self.rows + self.cols)

    def random_numbers(self, slots: int) -> NDArray[np.int64]:
        """The next ``slots`` P-bit random numbers of every lane, shape (slots, lanes)."""
        mask = np.uint32((1 << self.params.prob_bits) - 1)
        out = np.empty((slots, self.state.size), dtype=np.uint32)
        s = self.state
        for t in range(slots):  # a sequential recurrence over time; vectorized over lanes
            out[t] = s & mask
            s = xorshift_step(s)
        self.state = s
        return out.astype(np.int64)

    def generate(
        self,
        x: ArrayLike,
        d: ArrayLike,
        gain_x: ArrayLike,
        gain_d: ArrayLike,
        bl: int,
        deterministic: bool = False,
        validate: bool = True,
    ) -> SpgOutput:
        """Pulse trains for V updates: ``x`` (V, R), ``d`` (V, C) values, gains (V,)."""
        p = self.params
        x = np.atleast_2d(np.asarray(x, dtype=np.int64))
        d = np.atleast_2d(np.asarray(d, dtype=np.int64))
        gain_x = np.atleast_1d(np.asarray(gain_x, dtype=np.int64))
        gain_d = np.atleast_1d(np.asarray(gain_d, dtype=np.int64))
        bl = int(bl)
        V = x.shape[0]
        if (
            x.shape != (V, self.rows)
            or d.shape != (V, self.cols)
            or gain_x.shape != (V,)
            or gain_d.shape != (V,)
        ):
            raise UserInputError(
                f"spg: shapes x {x.shape}, d {d.shape}, gain_x {gain_x.shape}, gain_d "
                f"{gain_d.shape} do not match (V, {self.rows}), (V, {self.cols}), (V,), (V,)"
            )
        if validate:
            validate_inputs(x, d, gain_x, gain_d, bl, p)
        q = np.concatenate(
            [translate(x, gain_x[:, None], p), translate(d, gain_d[:, None], p)], axis=1
        )  # (V, L)
        r = self.random_numbers(V * bl).reshape(V, bl, -1)
        if deterministic:
            n = deterministic_count(q, bl, p)  # (V, L)
            pulses = np.moveaxis(bresenham_slots(n, bl), -1, 1)  # (V, BL, L)
        else:
            pulses = (r < q[:, None, :]).astype(np.uint8)
        return SpgOutput(
            pulses[:, :, : self.rows], pulses[:, :, self.rows :], sign_of(x), sign_of(d)
        )


def generate(
    x: ArrayLike,
    d: ArrayLike,
    gain_x: ArrayLike,
    gain_d: ArrayLike,
    bl: int,
    seed: int,
    params: SpgParams | None = None,
    deterministic: bool = False,
) -> SpgOutput:
    """``aimcflow vectors spg --sim golden``: one seed load, then V updates in order."""
    x = np.atleast_2d(np.asarray(x, dtype=np.int64))
    d = np.atleast_2d(np.asarray(d, dtype=np.int64))
    _check_seed(seed)
    gen = PulseGenerator(x.shape[1], d.shape[1], seed, params)
    return gen.generate(x, d, gain_x, gain_d, bl, deterministic)
