"""Plots of ``aimcflow sweep``: accuracy (%) with 95 % confidence-interval error bars.

The accuracy axis never runs above 100 %: its top is 100 and its bottom a little below the
lowest error bar (never below 0).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from aimcflow.flows.args import fmt_duration
from aimcflow.flows.io import write_atomic_with

LEVELS = ("analog_float", "analog_golden")
MARGIN_PCT = 2.0  # room below the lowest error bar (percentage points)


def _series(results: Sequence[dict], level: str) -> tuple[list[float], list[list[float]]]:
    """Mean accuracy (%) and [below, above] CI error lengths (%) of ``results`` at
    ``level``; NaN for a level not run, zero-length bars where there is no CI (1 repeat)."""
    ys, err = [], [[], []]
    for r in results:
        lv = r["levels"][level]
        if lv.get("accuracy") is None:
            ys.append(math.nan)
            err[0].append(0.0)
            err[1].append(0.0)
            continue
        m = 100.0 * lv["accuracy"]
        ys.append(m)
        lo, hi = (m, m) if lv["ci95"] is None else (100.0 * lv["ci95"][0], 100.0 * lv["ci95"][1])
        err[0].append(m - lo)
        err[1].append(hi - m)
    return ys, err


def _finish(ax, lows: list[float]) -> None:
    finite = [v for v in lows if math.isfinite(v)]
    bottom = max(0.0, math.floor(min(finite)) - MARGIN_PCT) if finite else 0.0
    ax.set_ylim(bottom, 100.0)
    ax.set_ylabel("accuracy (%), mean and 95 % CI")
    ax.grid(True, alpha=0.3)


def _label(key: str, v) -> str:
    """A tick label: read times as the sweep's table prints them (1 s, 1 h, 1 d, 1 y)."""
    if key == "drift_s":
        return fmt_duration(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _save(fig, path: Path) -> None:
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")


def plot_sweep(path: Path, axes: Sequence, points: Sequence[dict], title: str):
    """``--set`` sweep: accuracy vs the first swept key, one line per value of the other
    keys, one panel per level; written atomically as PNG.  Returns the figure."""
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    levels = [lv for lv in LEVELS if lv in points[0]["levels"]]
    first, rest = axes[0], axes[1:]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first.values)
    xs = list(first.values) if numeric else list(range(len(first.values)))
    fig = Figure(figsize=(5.5 * len(levels), 4.0), layout="constrained")
    panels = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, level in zip(panels, levels, strict=True):
        lows: list[float] = []
        for combo in itertools.product(*(a.values for a in rest)):
            want = {a.key: v for a, v in zip(rest, combo, strict=True)}
            line = [
                next(
                    p
                    for p in points
                    if p["params"][first.key] == v
                    and all(p["params"][k] == w for k, w in want.items())
                )
                for v in first.values
            ]
            ys, err = _series(line, level)
            lows += list(np.asarray(ys) - np.asarray(err[0]))
            label = ", ".join(f"{k}={w}" for k, w in want.items()) or None
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xlabel(first.key)
        ax.set_title(level.replace("_", "-"))
        # a tick per swept value (also one whose points all failed, so the gap shows)
        ax.set_xticks(xs, [str(v) for v in first.values])
        _finish(ax, lows)
        if rest:
            ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    _save(fig, path)
    return fig


def plot_grid(path: Path, factors: Sequence, title: str):
    """One-factor-at-a-time grid: one panel per factor (accuracy vs its settings, one line
    per level, the baseline setting marked); ``factors`` as
    :func:`aimcflow.flows.sweep_grid.factor_settings` gives them.  Returns the figure."""
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    cols = 3
    rows = math.ceil(len(factors) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    panels = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (f, settings) in zip(panels, factors, strict=False):
        xs = list(range(len(settings)))
        lows: list[float] = []
        results = [p for _, p in settings]
        for level in LEVELS:
            if level not in results[0]["levels"]:
                continue
            ys, err = _series(results, level)
            lows += list(np.asarray(ys) - np.asarray(err[0]))
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=level.replace("_", "-"))
        base = [i for i, p in enumerate(results) if p["factor"] == "baseline"]
        for i in base:
            ax.axvline(i, color="0.6", linestyle=":", linewidth=1)
        ax.set_xticks(xs, [_label(f.key, v) for v, _ in settings])
        ax.set_xlabel(f"{f.key} (dotted: baseline)")
        ax.set_title(f.name)
        _finish(ax, lows)
        ax.legend(fontsize="small")
    return _finish_figure(fig, panels[len(factors) :], title, path)


def plot_compare(path: Path, rows: Sequence[tuple[str, list]], title: str):
    """Several networks on one grid: per row (a config x level) a panel per comparison
    factor, A* against the factor's settings with one line per network and its 95 % CI as
    error bars (dotted: the config's own setting, the baseline point); ``rows`` as
    :func:`aimcflow.flows.sweep_compare.plot_panels` gives them.  Returns the figure."""
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    cols = max(len(panels) for _, panels in rows)
    fig = Figure(figsize=(4.6 * cols, 3.6 * len(rows)), layout="constrained")
    grid = fig.subplots(len(rows), cols, squeeze=False)
    for axes, (row_title, panels) in zip(grid, rows, strict=True):
        for ax, (fname, key, labels, base, lines) in zip(axes, panels, strict=False):
            xs = list(range(len(labels)))
            for model, (means, halfs) in lines.items():
                ax.errorbar(xs, means, yerr=halfs, marker="o", capsize=3, label=model)
            if base is not None:
                ax.axvline(base, color="0.6", linestyle=":", linewidth=1)
            ax.axhline(1.0, color="0.8", linewidth=0.8)  # A* = 1: the float network's accuracy
            ax.set_xticks(xs, labels)
            ax.set_xlabel(f"{key} (dotted: baseline)")
            ax.set_ylabel("A*, mean and 95 % CI")
            ax.set_title(f"{row_title}: {fname}", fontsize="medium")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
    unused = [
        ax for axes, (_, panels) in zip(grid, rows, strict=True) for ax in axes[len(panels) :]
    ]
    return _finish_figure(fig, unused, title, path)


def _finish_figure(fig, unused: Sequence, title: str, path: Path):
    """Hide the ``unused`` panels, title the figure, write it atomically; returns it."""
    for ax in unused:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="medium")
    _save(fig, path)
    return fig
