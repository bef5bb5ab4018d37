"""Per-layer sensitivity: one analog layer degraded at a time, the others kept ideal.

``aimcflow sweep --per-layer KEY=V1,V2,...`` is the FTJ thesis' per-layer analysis (Table
4.3: each layer in turn moved to a degraded tile, the rest not).  ``KEY`` is one of
:data:`PER_LAYER_KEYS`; every point is ``--config`` with

* the swept parameter at its *ideal* value on every layer (:func:`ideal_value`: output and
  weight noise 0; for converter widths, which have no ideal value at the integer levels,
  the config's own width),
* and one ``[[layer]]`` entry (``models/config.py``) giving one layer the setting.

The first point (factor ``reference``) has no layer degraded.  The result is a heatmap of
mean accuracy by layer (rows) and setting (columns), with the accuracy drop against the
reference, mean ± 95 % CI paired by seed, in :func:`heatmap_rows`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from aimcflow.flows.report_sweep import _save
from aimcflow.flows.sweep import _field, _get, _parse_value, parse_set
from aimcflow.flows.sweep_stats import summarize
from aimcflow.models.config import AcceleratorConfig, validate_config
from aimcflow.models.errors import UserInputError

PER_LAYER_KEYS = ("adc.bits", "dac.bits", "noise.out_noise", "noise.w_noise")
"""The parameters ``--per-layer`` may vary (a subset of the ``[[layer]]`` keys)."""

_NOISE_KEYS = ("noise.out_noise", "noise.w_noise")
LAYER_PARAM = "layer"  # the point parameter naming the degraded layer


def ideal_value(cfg: AcceleratorConfig, key: str):
    """The value the layers not under test keep: 0 for noise, the config's width else."""
    return 0.0 if key in _NOISE_KEYS else _get(cfg, key)


def parse_per_layer(cfg: AcceleratorConfig, text: str) -> tuple[str, tuple]:
    """``KEY=V1,V2,...`` of ``--per-layer``: the key (one of :data:`PER_LAYER_KEYS`) and its
    values, each checked against the key's range."""
    key, raw = parse_set(text)
    if key not in PER_LAYER_KEYS:
        raise UserInputError(
            f"--per-layer {key}: not a per-layer parameter; allowed: {', '.join(PER_LAYER_KEYS)}"
        )
    field = _field(key)
    values = []
    for r in raw:
        v = _parse_value(key, r, field.annotation)
        try:
            v = _get(cfg.replace(**{key: v}), key)
        except UserInputError as exc:
            msg = str(exc).removeprefix("<replace>: ")
            raise UserInputError(f"--per-layer {key}={r}: {msg}") from None
        if v in values:
            raise UserInputError(f"--per-layer {key}: value {r!r} is listed twice")
        values.append(v)
    return key, tuple(values)


def layer_points(
    cfg: AcceleratorConfig,
    key: str,
    values: Sequence,
    layers: Sequence[tuple[str, int]],
    t_s: float,
) -> list[tuple[str, dict, AcceleratorConfig, float]]:
    """The points (factor, params, config, read time): the reference (no layer degraded),
    then per analog layer (name, index) and value, that layer at the value."""
    if cfg.layer:
        raise UserInputError(
            "--per-layer: the config already has [[layer]] entries; give a config without "
            "them (the sweep writes its own)"
        )
    ref = ideal_value(cfg, key)
    base = cfg.replace(**{key: ref})
    points = [("reference", {LAYER_PARAM: "-", key: ref}, base, t_s)]
    sec, leaf = key.split(".")
    for name, index in layers:
        for v in values:
            data = base.model_dump()
            data["layer"] = [{"index": index, sec: {leaf: v}}]
            point_cfg = validate_config(data, source=f"--per-layer {key}={v}")
            points.append((f"layer {name}", {LAYER_PARAM: name, key: v}, point_cfg, t_s))
    return points


def heatmap_rows(results: Sequence[dict], key: str, level: str) -> dict:
    """The heatmap of one level: ``layers`` (row names), ``settings`` (column values),
    ``accuracy`` [row][col] mean (None: not run), ``drop`` [row][col] reference - point,
    paired by seed ({n, mean, std, ci95} or None), and the reference's accuracy."""
    ref = results[0]["levels"][level]
    layers = list(dict.fromkeys(p["params"][LAYER_PARAM] for p in results[1:]))
    settings = list(dict.fromkeys(p["params"][key] for p in results[1:]))
    acc = [[None] * len(settings) for _ in layers]
    drop = [[None] * len(settings) for _ in layers]
    for p in results[1:]:
        i = layers.index(p["params"][LAYER_PARAM])
        j = settings.index(p["params"][key])
        r = p["levels"][level]
        if r.get("accuracy") is None:
            continue
        acc[i][j] = r["accuracy"]
        if ref.get("accuracy") is not None:
            s = summarize([a - b for a, b in zip(ref["accuracies"], r["accuracies"], strict=True)])
            drop[i][j] = None if s is None else s.as_dict()
    return {
        "key": key,
        "layers": layers,
        "settings": settings,
        "reference_accuracy": ref.get("accuracy"),
        "reference_ci95": ref.get("ci95"),
        "accuracy": acc,
        "drop": drop,
    }


def plot_heatmap(path, maps: dict, title: str) -> None:
    """One heatmap panel per level: mean accuracy (%) by layer and setting, each cell
    annotated with the mean and the 95 % CI half-width of the drop against the reference."""
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    levels = list(maps)
    width = max(9.0, 1.6 + 1.6 * len(maps[levels[0]]["settings"]) * len(levels))
    fig = Figure(figsize=(width, 4.5))
    axs = fig.subplots(1, len(levels))
    axs = np.atleast_1d(axs)
    grids = {
        lv: np.array(
            [[np.nan if v is None else 100 * v for v in row] for row in maps[lv]["accuracy"]]
        )
        for lv in levels
    }
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    vmin = float(np.floor(finite.min())) if finite.size else 0.0  # one scale for all panels
    for ax, lv in zip(axs, levels, strict=True):
        m, a = maps[lv], grids[lv]
        im = ax.imshow(a, cmap="viridis", vmin=min(vmin, 99.0), vmax=100)
        ax.set_xticks(range(len(m["settings"])), [f"{v:g}" for v in m["settings"]])
        ax.set_yticks(range(len(m["layers"])), m["layers"])
        ax.set_xlabel(m["key"] + " of the one degraded layer")
        ax.set_ylabel("degraded layer")
        ref = m["reference_accuracy"]
        ref_txt = "-" if ref is None else f"{100 * ref:.2f} %"
        ax.set_title(f"{lv.replace('_', '-')}; reference {ref_txt}", fontsize=9)
        for i, row in enumerate(m["accuracy"]):
            for j, v in enumerate(row):
                d = m["drop"][i][j]
                if v is None:
                    txt = "not run"
                elif d is None or d["ci95"] is None:
                    txt = f"{100 * v:.1f}"
                else:
                    half = 100 * (d["ci95"][1] - d["ci95"][0]) / 2
                    txt = f"{100 * v:.1f}\n{-100 * d['mean']:+.1f}±{half:.1f}"
                dark = v is None or 100 * v < (vmin + 100) / 2  # text readable on the colour
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="w" if dark else "k")
        fig.colorbar(im, ax=ax, label="accuracy (%)")
    fig.suptitle(textwrap.fill(title, 110), fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    _save(fig, path)
