"""Statistics over a sweep point's repeats, and the sweep's CSV table.

Every repeat ``r`` of a point is an independent programming seeded ``cfg.seed + r``
(programming, read and output noise all drawn afresh), so the N accuracies of a point are
N independent draws.  Their 95 % confidence interval for the mean is Student's t:

    mean ± t_{0.975, N-1} · s / sqrt(N),   s = sample std (ddof = 1)

(no interval for N = 1: one draw says nothing about its spread).  The same holds for A*
(FTJ thesis eq. 3.8).

CSV columns (``sweep.csv``, one row per point x level x statistic):

``point``
    0-based point index, as in ``results.json``'s ``points``.
``factor``
    the non-ideality a named grid varies at this point (``baseline`` for the grid's
    baseline); empty for a ``--set`` sweep.
one column per swept config key
    the point's value of that key (empty where a one-factor-at-a-time grid leaves the
    key at its baseline value).
``drift_s``
    the read time after programming (s).
``level``
    ``analog_float`` or ``analog_golden``.
``statistic``
    ``mean``, ``std`` (sample, ddof = 1), ``ci95_low``, ``ci95_high`` (Student t, above)
    or ``n`` (repeats that produced a value).
``accuracy``
    the statistic of the test accuracy, a fraction in [0, 1].
``a_star``
    the statistic of A*; empty where A* is undefined (float model no better than chance).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aimcflow.flows.io import write_text_atomic

CONFIDENCE = 0.95
STATISTICS = ("mean", "std", "ci95_low", "ci95_high", "n")


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and 95 % Student-t interval of N draws (ci None when N < 2)."""

    n: int
    mean: float
    std: float
    ci95: tuple[float, float] | None

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "ci95": None if self.ci95 is None else list(self.ci95),
        }


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for ``n`` draws (n - 1 degrees of freedom)."""
    from scipy.stats import t  # lazy: scipy.stats (~0.5 s)

    return float(t.ppf(0.5 + confidence / 2.0, n - 1))


def summarize(values: Sequence[float]) -> Summary | None:
    """Summary of the finite ``values`` (None when there is none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return None
    mean = float(np.mean(v))
    if n == 1:
        return Summary(1, mean, 0.0, None)
    std = float(np.std(v, ddof=1))
    half = t_quantile(n) * std / math.sqrt(n)
    return Summary(n, mean, std, (mean - half, mean + half))


def ci_half_width(ci: Sequence[float] | None) -> float | None:
    """Half the width of a Student-t interval (symmetric about the mean, so ``mean ±
    half`` is the interval); None where there is no interval (N < 2)."""
    return None if ci is None else (ci[1] - ci[0]) / 2.0


def _stat(s: dict | None, name: str):
    if s is None:
        return ""
    if name == "n":
        return s["n"]
    if name in ("mean", "std"):
        return s[name]
    if s["ci95"] is None:
        return ""
    return s["ci95"][0 if name == "ci95_low" else 1]


def csv_text(points: Sequence[dict], keys: Sequence[str]) -> str:
    """The CSV (module docstring) of sweep ``points`` whose config params use ``keys``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["point", "factor", *keys, "drift_s", "level", "statistic", "accuracy", "a_star"])
    for i, p in enumerate(points):
        head = [i, p.get("factor") or "", *(p["params"].get(k, "") for k in keys), p["drift_s"]]
        for level, r in p["levels"].items():
            if r.get("accuracy") is None:
                continue  # level not run at this point (reason in results.json)
            for stat in STATISTICS:
                w.writerow(
                    [
                        *head,
                        level,
                        stat,
                        _stat(r["accuracy_stats"], stat),
                        _stat(r.get("a_star_stats"), stat),
                    ]  # fmt: skip
                )
    return buf.getvalue()


def write_csv(path: Path, points: Sequence[dict], keys: Sequence[str]) -> None:
    write_text_atomic(path, csv_text(points, keys))
