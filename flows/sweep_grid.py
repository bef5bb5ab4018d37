"""Named sweep grids, and the ranking of non-idealities by the accuracy they cost.

``thesis-3.3`` is the sensitivity analysis of the FTJ thesis (Table 3.3 and §4.2.3): it
varies *one non-ideality at a time* while the rest of the tile stays at the baseline (the
``--config``, by default ``baseline-ftj``, read at ``--drift``), not a cross product.  Its
factors and settings (the baseline's own setting is the shared baseline point):

============== ==================== =====================================================
factor         config key           settings
============== ==================== =====================================================
DAC precision  ``dac.bits``         4, 5, 6, 7, 8 bits (thesis ``forward.in_res``)
ADC precision  ``adc.bits``         4, 5, 6, 7, 8 bits (thesis ``forward.out_res``)
output noise   ``noise.out_noise``  0, 10, 20, 30, 40 % -> 0, 0.1, 0.2, 0.3, 0.4
weight noise   ``noise.w_noise``    0, 10, 20, 30, 40 % -> 0, 0.1, 0.2, 0.3, 0.4
IR drop        ``tile.ir_drop``     scale 0, 1, 2, 5, 10 (aihwkit ``ir_drop``)
drift          read time ``drift_s`` 1 s, 1 h, 1 d, 1 y after programming
============== ==================== =====================================================

The thesis' percentages are aihwkit's ``forward.out_noise`` / ``forward.w_noise`` as
fractions: output noise σ in normalized output units (the output of one full-scale weight
at full-scale input is 1), weight noise σ relative to w_max; 40 % is 0.4.

Ranking: for each factor, its worst setting is the one with the lowest mean accuracy; the
accuracy it costs is ``baseline - worst``, taken repeat by repeat (repeat r of every point
uses the same seed, so the differences are paired) and summarized with a Student-t 95 %
interval over the N paired differences (:mod:`aimcflow.flows.sweep_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aimcflow.flows.sweep import _get
from aimcflow.flows.sweep_stats import summarize
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

DRIFT_KEY = "drift_s"
_YEAR_S = 365.0 * 86400.0


@dataclass(frozen=True)
class Factor:
    """One non-ideality a grid varies: a dotted config key (or ``drift_s``) and its
    settings."""

    name: str
    key: str
    values: tuple


GRIDS: dict[str, tuple[Factor, ...]] = {
    "thesis-3.3": (
        Factor("DAC precision", "dac.bits", (4, 5, 6, 7, 8)),
        Factor("ADC precision", "adc.bits", (4, 5, 6, 7, 8)),
        Factor("output noise", "noise.out_noise", (0.0, 0.1, 0.2, 0.3, 0.4)),
        Factor("weight noise", "noise.w_noise", (0.0, 0.1, 0.2, 0.3, 0.4)),
        Factor("IR drop", "tile.ir_drop", (0.0, 1.0, 2.0, 5.0, 10.0)),
        Factor("drift", DRIFT_KEY, (1.0, 3600.0, 86400.0, _YEAR_S)),
    ),
}


COMPARISON_FACTORS: dict[str, tuple[str, ...]] = {
    # the robustness the thesis compares CNN and Transformer under: read time (drift) and
    # the two noise sources; converter widths and IR drop stay in the tables only
    "thesis-3.3": ("drift", "output noise", "weight noise"),
}
"""Per grid, the factors a sweep over several models plots and judges (a panel and a
verdict per factor); its tables list every factor of the grid."""


def grid_name(text: str) -> str:
    """A known grid name, else a UserInputError listing the allowed ones."""
    if text not in GRIDS:
        raise UserInputError(f"--grid {text}: no such grid; allowed: {', '.join(GRIDS)}")
    return text


def grid_points(
    cfg: AcceleratorConfig, name: str, t_s: float
) -> list[tuple[str, dict, AcceleratorConfig, float]]:
    """The one-factor-at-a-time points of grid ``name`` around ``cfg`` read at ``t_s``:
    (factor, params, config, read time), the baseline first (factor ``baseline``, no
    params).  A setting equal to the baseline's is the baseline point, not run twice."""
    points = [("baseline", {}, cfg, t_s)]
    for f in GRIDS[grid_name(name)]:
        base = t_s if f.key == DRIFT_KEY else _get(cfg, f.key)
        for v in f.values:
            if v == base:
                continue
            if f.key == DRIFT_KEY:
                points.append((f.name, {DRIFT_KEY: v}, cfg, float(v)))
                continue
            try:
                point_cfg = cfg.replace(**{f.key: v})
            except UserInputError as exc:
                msg = str(exc).removeprefix("<replace>: ")
                raise UserInputError(f"--grid {name}: {f.name} {f.key}={v}: {msg}") from None
            points.append((f.name, {f.key: v}, point_cfg, t_s))
    return points


def factor_settings(
    name: str, cfg: AcceleratorConfig, points: Sequence[dict]
) -> list[tuple[Factor, list[tuple[object, dict]]]]:
    """Per factor of grid ``name`` around baseline ``cfg``: its settings (baseline
    included) with their results, in ascending setting order."""
    base = next(p for p in points if p["factor"] == "baseline")
    out = []
    for f in GRIDS[name]:
        rows = [(p["params"][f.key], p) for p in points if p["factor"] == f.name]
        base_v = base["drift_s"] if f.key == DRIFT_KEY else _get(cfg, f.key)
        rows.append((base_v, base))
        out.append((f, sorted(rows, key=lambda r: r[0])))
    return out


def rank(name: str, cfg: AcceleratorConfig, points: Sequence[dict], level: str) -> list[dict]:
    """The factors of grid ``name`` ranked by the accuracy their worst setting costs at
    ``level`` (largest mean drop first; module docstring).  Settings the level could not
    run (e.g. a periphery the compiler refuses) are listed in ``not_run``, not ranked."""
    ranking = []
    base = next(p for p in points if p["factor"] == "baseline")["levels"][level]
    if base.get("accuracy") is None:
        return []
    for f, rows in factor_settings(name, cfg, points):
        settings = [(v, p["levels"][level]) for v, p in rows if p["factor"] != "baseline"]
        ran = [(v, r) for v, r in settings if r.get("accuracy") is not None]
        not_run = [v for v, r in settings if r.get("accuracy") is None]
        if not ran:
            continue
        worst_v, worst = min(ran, key=lambda vr: vr[1]["accuracy"])
        diffs = [
            b - w
            for b, w in zip(base["accuracies"], worst["accuracies"], strict=True)
            if b is not None and w is not None
        ]
        s = summarize(diffs)
        ranking.append(
            {
                "factor": f.name,
                "key": f.key,
                "worst_setting": worst_v,
                "baseline_accuracy": base["accuracy"],
                "worst_accuracy": worst["accuracy"],
                "accuracy_drop": None if s is None else s.as_dict(),
                "not_run": not_run,  # settings this level could not run (reason per point)
            }
        )
    ranking.sort(key=lambda r: -(r["accuracy_drop"] or {"mean": -1.0})["mean"])
    return ranking
