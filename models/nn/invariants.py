"""Checks of a network run that do not trust the golden models: properties docs/SPEC.md
states about the periphery's results, evaluated on the level-3 traces.

Level 4 compares the RTL with the golden models activation by activation, so a bug present
in both (or in the analog converter model that feeds both) passes that comparison.  These
checks restate the SPEC independently -- deliberately without calling the rules they check
(:func:`aimcflow.models.analog.converters.adc_sat_any`, the NMPU and management golden
models), since a check that calls the rule it checks cannot fail -- and bound what an
exact implementation may differ by:

- ``adc``: every final ADC code inside the ``adc.bits`` two's-complement range, and
  ``sat_any`` of an answer true exactly when one of its codes is the most negative or the
  most positive code.
- ``management``: ``0 <= iter <= bound_max_iter`` and ``e_min <= e <= e_max``; an answer
  still saturated with ``iter < bound_max_iter`` and ``e < e_max`` is never final (it
  would have been retried); an all-zero input segment is never rescaled (``e - iter = 0``:
  exponent 0, and a retry only adds 1).
- ``nmpu``: the outputs against the NMPU's formula in float64 -- ``p = gain a + offset``,
  ``acc`` the running sum of ``p * 2**(e - e_min)`` clipped to the ``acc_bits`` rails
  after every row tile, ``z = acc mult / 2**out_shift + bias``, activation, output range.
  Every intermediate is an integer below 2**53 or such an integer over a power of two,
  so float64 holds it exactly; the one rounding of the SPEC (half up, before the bias)
  differs from ``z`` by at most 1/2 output LSB, and leaky ReLU's second rounding adds
  ``2**-(leaky_k+1)``.  A truncating shift or a wrong rail exceeds that bound.

:func:`coverage_goals` checks the corners a config promises to reach (``[verify]``).
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.compiler import layer_cfg

MAX_REPORT = 8  # violations listed per check; the count is always complete


def _rails(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _nmpu_reference(lp, cfg, a, e) -> tuple[np.ndarray, float]:
    """The NMPU outputs (V, C) by the SPEC formula in float64 and the allowed |error|;
    ``a`` (V, T, C) final codes, ``e`` (V, T, column tiles) their exponents."""
    n = cfg.nmpu
    p = lp.gain[None].astype(np.float64) * a + lp.offset[None]
    e_cols = np.concatenate(
        [
            np.repeat(e[:, :, k : k + 1], c1 - c0, axis=2)
            for k, (c0, c1) in enumerate(lp.col_slices)
        ],
        axis=2,
    )
    scale = np.exp2(np.minimum(e_cols - cfg.mgmt.e_min, 62).astype(np.float64))
    lo, hi = _rails(n.acc_bits, True)
    acc = np.zeros((a.shape[0], a.shape[2]))
    for t in range(a.shape[1]):  # the SPEC saturates after each row tile
        acc = np.clip(acc + p[:, t, :] * scale[:, t, :], lo, hi)
    z = acc * lp.mult[None] / np.exp2(n.out_shift) + lp.bias[None]
    bound = 0.5
    if lp.activation == "relu":
        z = np.maximum(z, 0.0)
    elif lp.activation == "leaky":
        z = np.where(z >= 0, z, z / np.exp2(lp.leaky_k))
        bound += 2.0 ** -(lp.leaky_k + 1)
    elif lp.activation == "clamp":
        z = np.clip(z, n.clamp_lo, n.clamp_hi)
    return np.clip(z, *_rails(lp.out_bits, lp.out_signed)), bound


class _Violations:
    """Per check: the total count and the first ``MAX_REPORT`` places."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.where: dict[str, list[str]] = {}

    def add(self, check: str, bad: np.ndarray, what: str) -> None:
        idx = np.argwhere(bad)
        if idx.size:
            self.count[check] = self.count.get(check, 0) + len(idx)
            places = self.where.setdefault(check, [])
            places += [f"{what} at {tuple(int(i) for i in r)}" for r in idx[:MAX_REPORT]]

    def lines(self) -> list[str]:
        return [
            f"{c}: {n} violations; " + "; ".join(self.where[c][:MAX_REPORT])
            for c, n in self.count.items()
        ]


def periphery_invariants(prog, traces) -> list[str]:
    """Every violation (one line each, at most ``MAX_REPORT`` per check and layer) of the
    module docstring's properties in the level-3 ``traces`` of ``prog``; empty when all
    hold."""
    out: list[str] = []
    for lp, tr in zip(prog.layers, traces, strict=True):
        if not tr.a:
            continue
        cfg = layer_cfg(prog.cfg, lp)  # [[layer]] entries and the compiler's out_shift
        m = cfg.mgmt
        adc_lo, adc_hi = _rails(cfg.adc.bits, True)
        K = len(lp.col_slices)
        found = _Violations()
        for b, (a, e, rows) in enumerate(zip(tr.a, tr.e, tr.rows, strict=True)):
            found.add("adc range", (a < adc_lo) | (a > adc_hi), f"batch {b}: code outside the ADC")
            seg_zero = np.stack(
                [~np.any(rows[:, r0:r1] != 0, axis=1) for r0, r1 in lp.row_slices], axis=1
            )
            for k, (c0, c1) in enumerate(lp.col_slices):
                ak, ek = a[:, :, c0:c1], e[:, :, k]
                sat = tr.sat[b * K + k].reshape(ek.shape)
                it = tr.iters[b * K + k].reshape(ek.shape)
                at_rail = np.any((ak == adc_lo) | (ak == adc_hi), axis=2)
                where = f"batch {b}, column tile {k}: (vector, row tile)"
                found.add("adc sat_any", sat != at_rail, f"{where} sat_any disagrees with codes")
                found.add("mgmt iter", (it < 0) | (it > m.bound_max_iter), f"{where} iter range")
                found.add("mgmt e", (ek < m.e_min) | (ek > m.e_max), f"{where} e out of range")
                retry = sat & (it < m.bound_max_iter) & (ek < m.e_max)
                found.add("mgmt final", retry, f"{where} saturated answer not retried")
                found.add("mgmt zero", seg_zero & (ek - it != 0), f"{where} zero segment rescaled")
            ref, bound = _nmpu_reference(lp, cfg, a, e)
            found.add(
                "nmpu", np.abs(tr.out[b] - ref) > bound, f"batch {b}: |y - formula| > {bound}"
            )
        out += [f"{lp.name}: {line}" for line in found.lines()]
    return out


COVERAGE_GOALS = ("adc_rails", "acc_rails", "bm_retries", "zero_segment")
"""Corners a config's ``[verify] goals`` may promise (summed over all layers):
``adc_rails`` final ADC codes at the most negative and the most positive code;
``acc_rails`` accumulators at both ``acc_bits`` rails; ``bm_retries`` at least two
bound-management retries of one answer; ``zero_segment`` an all-zero input segment."""


def coverage_goals(goals, layers: list[dict], traces, prog) -> list[str]:
    """The promised corners of ``goals`` that the run did not reach, one line each.
    ``layers``: level 3's per-layer report (``adc_rail_codes``, ``acc_rail_sums``,
    ``bm_iterations_hist``)."""
    missed = []
    adc = np.sum([lay["adc_rail_codes"] for lay in layers], axis=0)
    acc = np.sum([lay["acc_rail_sums"] for lay in layers], axis=0)
    retries = max(
        (int(np.flatnonzero(lay["bm_iterations_hist"]).max(initial=0)) for lay in layers),
        default=0,
    )
    zero = sum(
        int(np.sum(~np.any(rows[:, r0:r1] != 0, axis=1)))
        for lp, tr in zip(prog.layers, traces, strict=True)
        for rows in tr.rows
        for r0, r1 in lp.row_slices
    )
    checks = {
        "adc_rails": (adc[0] > 0 and adc[1] > 0, f"final ADC codes at the rails {adc.tolist()}"),
        "acc_rails": (acc[0] > 0 and acc[1] > 0, f"accumulators at the rails {acc.tolist()}"),
        "bm_retries": (retries >= 2, f"at most {retries} bound-management retries"),
        "zero_segment": (zero > 0, "no all-zero input segment"),
    }
    for g in goals:
        ok, what = checks[g]
        if not ok:
            missed.append(f"coverage goal {g} not reached: {what}")
    return missed
