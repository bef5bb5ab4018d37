"""Parameter sweeps: what each periphery choice does to network accuracy, run on Dask.

A sweep is the cross product of ``--set KEY=V1,V2,...`` lists over dotted config keys
(``adc.bits``, ``mgmt.noise``, ...).  Every point is a copy of the base config with those
fields replaced; all points are validated before any work starts.  Each point runs the very
functions ``aimcflow run`` uses: :func:`~aimcflow.models.nn.evaluate.drift_sweep` for the
analog-float level and :func:`~aimcflow.flows.levels.analog_golden_level` for the
analog-golden level (level 3), so a sweep point and ``aimcflow run`` under the same config
give the same accuracies.

Points are independent tasks on a ``dask.distributed`` cluster.  Every noise stream is
keyed by (seed, layer, tile, image) (``models/rng.py``), never by which process or in
which order a point runs, so the results do not depend on the worker count.
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from aimcflow.flows.io import write_atomic_with
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from pydantic import BaseModel

SWEEP_LEVELS = ("analog-float", "analog-golden")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class SweepAxis:
    """One ``--set``: a dotted config key and its values, parsed to the field's type."""

    key: str
    values: tuple


def _field(key: str):
    """The pydantic field a dotted key names, or a UserInputError saying what exists."""
    parts = key.split(".")
    model: type[BaseModel] = AcceleratorConfig
    for i, part in enumerate(parts):
        fields = model.model_fields
        where = ".".join(parts[:i]) or "the config"
        if part not in fields:
            raise UserInputError(
                f"--set {key}: unknown key '{part}' in {where}; allowed: {', '.join(fields)}"
            )
        ann = fields[part].annotation
        is_section = isinstance(ann, type) and issubclass(ann, BaseModel)
        if i < len(parts) - 1:
            if not is_section:
                raise UserInputError(f"--set {key}: '{'.'.join(parts[: i + 1])}' is not a section")
            model = ann
        elif is_section:
            raise UserInputError(
                f"--set {key}: '{key}' is a section; name one of its fields: "
                f"{', '.join(f'{key}.{f}' for f in ann.model_fields)}"
            )
    return fields[parts[-1]]


def _parse_value(key: str, text: str, annotation) -> Any:
    """``text`` converted to the field's type (range and choices are left to pydantic)."""
    t = text.strip()
    args = typing.get_args(annotation)
    base = annotation
    allows_none = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        allows_none = type(None) in args
        rest = [a for a in args if a is not type(None)]
        base = rest[0] if len(rest) == 1 else str
    if allows_none and t.lower() in ("none", "null"):
        return None
    if base is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise UserInputError(f"--set {key}: {t!r} is not a boolean; allowed: true, false")
    if base is int:
        try:
            return int(t)
        except ValueError:
            raise UserInputError(f"--set {key}: {t!r} is not an integer") from None
    if base is float:
        try:
            return float(t)
        except ValueError:
            raise UserInputError(f"--set {key}: {t!r} is not a number") from None
    if typing.get_origin(base) is Literal:
        return t  # pydantic names the allowed choices
    return t


def _replace(cfg: AcceleratorConfig, params: dict[str, Any]) -> AcceleratorConfig:
    """``cfg.replace(**params)`` with its error reworded for the command line."""
    try:
        return cfg.replace(**params)
    except UserInputError as exc:
        msg = str(exc).removeprefix("<replace>: ")
        point = ", ".join(f"{k}={v}" for k, v in params.items())
        raise UserInputError(f"--set {point}: {msg}") from None


def parse_set(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2,...`` split into the key and its raw value strings."""
    key, eq, vals = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise UserInputError(f"--set {text!r}: give KEY=V1,V2,... (e.g. adc.bits=4,6,8)")
    values = [v.strip() for v in vals.split(",")]
    if not vals.strip() or any(not v for v in values):
        raise UserInputError(f"--set {text!r}: empty value in the list; give KEY=V1,V2,...")
    return key, values


def build_axes(cfg: AcceleratorConfig, sets: Sequence[str]) -> list[SweepAxis]:
    """Parse and validate every ``--set``: each value alone under ``cfg``."""
    if not sets:
        raise UserInputError("give at least one --set KEY=V1,V2,... (e.g. --set adc.bits=4,6,8)")
    axes: list[SweepAxis] = []
    for text in sets:
        key, raw = parse_set(text)
        if key in (a.key for a in axes):
            raise UserInputError(f"--set {key}: given twice; list all its values in one --set")
        field = _field(key)
        values = []
        for r in raw:
            v = _parse_value(key, r, field.annotation)
            point_cfg = _replace(cfg, {key: v})
            v = _get(point_cfg, key)  # the value as the config holds it (e.g. coerced)
            if v in values:
                raise UserInputError(f"--set {key}: value {r!r} is listed twice")
            values.append(v)
        axes.append(SweepAxis(key, tuple(values)))
    return axes


def _get(cfg: AcceleratorConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


MAX_POINTS = 2000
"""Largest sweep (points of the cross product): each point runs a network at one or two
levels, seconds to a minute each, so 2000 points is already hours on a small cluster."""


def grid(cfg: AcceleratorConfig, axes: Sequence[SweepAxis]) -> list[tuple[dict, AcceleratorConfig]]:
    """Every point of the cross product (first axis slowest) with its validated config."""
    n = 1
    for a in axes:
        n *= len(a.values)
    if n > MAX_POINTS:
        raise UserInputError(
            f"the --set values make {n} points ("
            + " x ".join(f"{len(a.values)} {a.key}" for a in axes)
            + f"); allowed: at most {MAX_POINTS} points per sweep"
        )
    points = []
    for combo in itertools.product(*(a.values for a in axes)):
        params = {a.key: v for a, v in zip(axes, combo, strict=True)}
        points.append((params, _replace(cfg, params)))
    return points


def evaluate_point(
    cfg: AcceleratorConfig,
    model,
    data,
    n_images: int,
    t_s: float,
    repeats: int,
    levels: Sequence[str],
    err_float: float,
    err_chance: float,
) -> dict:
    """One sweep point: the levels of ``aimcflow run`` under ``cfg`` on the first
    ``n_images`` test images, read ``t_s`` seconds after programming.

    analog-float: mean (and std, A*) over ``repeats`` programmings seeded ``cfg.seed + r``;
    analog-golden: the seed-``cfg.seed`` programming compiled and run at level 3.
    Accuracies are fractions in [0, 1]."""
    # lazy: torch, amaranth -- ``aimcflow sweep --help`` imports this module (SWEEP_LEVELS)
    from aimcflow.flows.levels import analog_golden_level
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.evaluate import drift_sweep, normalized_accuracy

    x, y = data.x_test[:n_images], data.y_test[:n_images]
    images = np.arange(n_images, dtype=np.int64)  # global test-split ids: the noise keys
    net = convert(model, cfg, program=False)
    out: dict[str, dict] = {}
    if "analog-float" in levels:
        (r,) = drift_sweep(net, x, y, [t_s], repeats, err_float, err_chance, images=images, cfg=cfg)
        out["analog_float"] = {
            "accuracy": r.mean,
            "std": r.std,
            "a_star": _finite(r.a_star_mean),
            "accuracies": [float(a) for a in r.accuracies],
        }
    if "analog-golden" in levels:
        golden, _, _ = analog_golden_level(net, cfg, data, x, y, images, t_s)
        if golden["accuracy"] is None:
            out["analog_golden"] = {"accuracy": None, "reason": golden["reason"]}
        else:
            out["analog_golden"] = {
                "accuracy": golden["accuracy"],
                "a_star": _finite(
                    normalized_accuracy(1.0 - golden["accuracy"], err_float, err_chance)
                ),
                "analog_float_same_tiles": golden["analog_float_same_tiles"],
                "layers": golden["layers"],
            }
    return out


def _finite(v) -> float | None:
    """A* is undefined (NaN) when the float model is no better than chance: JSON null."""
    v = float(v)
    return v if np.isfinite(v) else None


def run_points(
    client,
    points: Sequence[tuple[dict, AcceleratorConfig]],
    model,
    data,
    n_images: int,
    t_s: float,
    repeats: int,
    levels: Sequence[str],
    err_float: float,
    err_chance: float,
    on_done: Callable[[int], None] | None = None,
) -> list[dict]:
    """Evaluate every point on ``client``'s cluster; results in ``points`` order whatever
    order they finish in.  ``on_done(i)`` is called as point ``i`` finishes."""
    from distributed import as_completed  # lazy: dask (~2 s)

    model_f, data_f = client.scatter([model, data], broadcast=True, hash=False)
    futures = [
        client.submit(
            evaluate_point,
            cfg,
            model_f,
            data_f,
            n_images,
            t_s,
            repeats,
            tuple(levels),
            err_float,
            err_chance,
            pure=False,
        )
        for _, cfg in points
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[dict | None] = [None] * len(points)
    try:
        for fut in as_completed(futures, loop=client.loop):
            i = index[fut.key]
            results[i] = fut.result()  # re-raises a worker's exception here
            if on_done is not None:
                on_done(i)
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [{"params": p, "levels": r} for (p, _), r in zip(points, results, strict=True)]


def _json_value(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def plot_sweep(path: Path, axes: Sequence[SweepAxis], points: Sequence[dict], title: str) -> None:
    """Accuracy (%) vs the first swept key, one line per value of the other keys, one
    panel per level; written atomically as PNG."""
    from matplotlib.figure import Figure  # lazy: matplotlib (~1 s)

    levels = [lv for lv in ("analog_float", "analog_golden") if lv in points[0]["levels"]]
    first, rest = axes[0], axes[1:]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first.values)
    xs = list(first.values) if numeric else list(range(len(first.values)))
    fig = Figure(figsize=(5.5 * len(levels), 4.0), layout="constrained")
    panels = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, level in zip(panels, levels, strict=True):
        for combo in itertools.product(*(a.values for a in rest)):
            want = {a.key: v for a, v in zip(rest, combo, strict=True)}
            acc = [
                next(
                    p["levels"][level]["accuracy"]
                    for p in points
                    if p["params"][first.key] == v
                    and all(p["params"][k] == w for k, w in want.items())
                )
                for v in first.values
            ]
            ys = [np.nan if a is None else 100.0 * a for a in acc]
            label = ", ".join(f"{k}={w}" for k, w in want.items()) or None
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel(first.key)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(level.replace("_", "-"))
        # a tick per swept value (also one whose points all failed, so the gap shows)
        ax.set_xticks(xs, [str(v) for v in first.values])
        ax.grid(True, alpha=0.3)
        if rest:
            ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")
