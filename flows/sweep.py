"""Parameter sweeps: what each periphery choice does to network accuracy, run on Dask.

A sweep is the cross product of ``--set KEY=V1,V2,...`` lists over dotted config keys
(``adc.bits``, ``mgmt.noise``, ...).  Every point is a copy of the base config with those
fields replaced; all points are validated before any work starts.  Each point runs the very
functions ``aimcflow run`` uses: :func:`~aimcflow.models.nn.evaluate.drift_sweep` for the
analog-float level and :func:`~aimcflow.flows.levels.analog_golden_level` for the
analog-golden level (level 3), so a sweep point and ``aimcflow run`` under the same config
give the same accuracies.

Each point runs ``repeats`` times, repeat ``r`` with every tile seeded ``cfg.seed + r``
(fresh programming, read and output noise) at every level; the repeats are summarized as
mean, std and 95 % Student-t interval (:mod:`aimcflow.flows.sweep_stats`).

Every point x repeat is an independent task on a ``dask.distributed`` cluster.  Every noise stream is
keyed by (seed, layer, tile, image) (``models/rng.py``), never by which process or in
which order a point runs, so the results do not depend on the worker count.
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aimcflow.flows.sweep_stats import summarize
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


def grid(
    cfg: AcceleratorConfig, axes: Sequence[SweepAxis], t_s: float
) -> list[tuple[str | None, dict, AcceleratorConfig, float]]:
    """Every point of the cross product (first axis slowest) as (factor None, params,
    validated config, read time ``t_s``)."""
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
        points.append((None, params, _replace(cfg, params), t_s))
    return points


def evaluate_repeat(
    cfg: AcceleratorConfig,
    model,
    data,
    n_images: int,
    t_s: float,
    repeat: int,
    levels: Sequence[str],
    err_float: float,
    err_chance: float,
) -> dict:
    """Repeat ``repeat`` of one sweep point: the levels of ``aimcflow run`` under ``cfg``
    with every tile seeded ``cfg.seed + repeat`` (fresh programming, read and output
    noise), on the first ``n_images`` test images read ``t_s`` seconds after programming.
    Accuracies are fractions in [0, 1]."""
    # lazy: torch, amaranth -- ``aimcflow sweep --help`` imports this module (SWEEP_LEVELS)
    from aimcflow.flows.levels import analog_golden_level
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.evaluate import drift_sweep, normalized_accuracy, repeat_config

    x, y = data.x_test[:n_images], data.y_test[:n_images]
    images = np.arange(n_images, dtype=np.int64)  # global test-split ids: the noise keys
    rcfg = repeat_config(cfg, repeat)
    net = convert(model, cfg, program=False)
    out: dict[str, dict] = {}
    if "analog-float" in levels:
        (r,) = drift_sweep(net, x, y, [t_s], 1, err_float, err_chance, images=images, cfg=rcfg)
        out["analog_float"] = {
            "accuracy": float(r.accuracies[0]),
            "a_star": _finite(r.a_star[0]),
        }
    if "analog-golden" in levels:
        golden, _, _ = analog_golden_level(net, rcfg, data, x, y, images, t_s)
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


def aggregate(repeats: Sequence[dict]) -> dict:
    """One point's per-repeat level results (repeat order) as mean, std and 95 % CI of
    accuracy and A* (:mod:`aimcflow.flows.sweep_stats`), with every repeat's values.
    ``layers`` (level 3's per-layer statistics) is kept for repeat 0 only."""
    out: dict[str, dict] = {}
    for level in repeats[0]:
        rs = [r[level] for r in repeats]
        if any(r["accuracy"] is None for r in rs):  # the periphery cannot be built: all fail
            out[level] = {"accuracy": None, "reason": rs[0]["reason"]}
            continue
        acc = summarize([r["accuracy"] for r in rs])
        a_star = summarize([r["a_star"] for r in rs])
        d = {
            "accuracy": acc.mean,
            "std": acc.std,
            "ci95": None if acc.ci95 is None else list(acc.ci95),
            "a_star": None if a_star is None else a_star.mean,
            "a_star_std": None if a_star is None else a_star.std,
            "a_star_ci95": None if a_star is None or a_star.ci95 is None else list(a_star.ci95),
            "accuracy_stats": acc.as_dict(),
            "a_star_stats": None if a_star is None else a_star.as_dict(),
            "accuracies": [r["accuracy"] for r in rs],
            "a_stars": [r["a_star"] for r in rs],
        }
        if "analog_float_same_tiles" in rs[0]:
            d["analog_float_same_tiles"] = [r["analog_float_same_tiles"] for r in rs]
            d["layers"] = rs[0]["layers"]
        out[level] = d
    return out


def _finite(v) -> float | None:
    """A* is undefined (NaN) when the float model is no better than chance: JSON null."""
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(frozen=True)
class SweepGroup:
    """One network's points in a sweep that runs several (``--model``/``--config`` lists):
    the imported graph, its points (as :func:`grid` gives them) and the float and chance
    errors A* is normalized by."""

    model: Any
    points: Sequence[tuple[str | None, dict, AcceleratorConfig, float]]
    err_float: float
    err_chance: float


def run_groups(
    client,
    groups: Sequence[SweepGroup],
    data,
    n_images: int,
    repeats: int,
    levels: Sequence[str],
    on_done: Callable[[], None] | None = None,
) -> list[list[dict]]:
    """Evaluate every group's point x repeat as its own task on ``client``'s cluster, all
    submitted at once (one cluster, one queue: the workers never wait for a group to end).
    Returns per group its points' results in ``points`` order (repeats in seed order)
    whatever order they finish in.  ``on_done()`` is called as each task finishes."""
    from distributed import as_completed  # lazy: dask (~2 s)

    data_f, *model_fs = client.scatter(
        [data, *(g.model for g in groups)], broadcast=True, hash=False
    )
    futures = []
    for gi, (g, model_f) in enumerate(zip(groups, model_fs, strict=True)):
        for i, (_, _, cfg, t_s) in enumerate(g.points):
            for r in range(repeats):
                fut = client.submit(
                    evaluate_repeat, cfg, model_f, data_f, n_images, t_s, r, tuple(levels),
                    g.err_float, g.err_chance, pure=False,
                )  # fmt: skip
                futures.append(((gi, i, r), fut))
    index = {f.key: k for k, f in futures}
    results: list[list[list[dict | None]]] = [[[None] * repeats for _ in g.points] for g in groups]
    try:
        for fut in as_completed([f for _, f in futures], loop=client.loop):
            gi, i, r = index[fut.key]
            results[gi][i][r] = fut.result()  # re-raises a worker's exception here
            if on_done is not None:
                on_done()
    finally:
        client.cancel([f for _, f in futures if not f.done()])
    return [
        [
            {"factor": factor, "params": p, "drift_s": t_s, "levels": aggregate(rs)}
            for (factor, p, _, t_s), rs in zip(g.points, res, strict=True)
        ]
        for g, res in zip(groups, results, strict=True)
    ]


def run_points(
    client,
    points: Sequence[tuple[str | None, dict, AcceleratorConfig, float]],
    model,
    data,
    n_images: int,
    repeats: int,
    levels: Sequence[str],
    err_float: float,
    err_chance: float,
    on_done: Callable[[], None] | None = None,
) -> list[dict]:
    """Evaluate every point x repeat of one network as its own task on ``client``'s
    cluster (:func:`run_groups` with one group); results in ``points`` order."""
    (out,) = run_groups(
        client,
        [SweepGroup(model, points, err_float, err_chance)],
        data,
        n_images,
        repeats,
        levels,
        on_done,
    )
    return out
