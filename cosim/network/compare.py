"""The level-4 comparator: the RTL's result of a column job or of a unit job between layers
(a residual add, a pooling, a transformer step's SFU, add or pool job) against the golden
models'.

Every output activation ``y`` and every status field (``e``, ``iters``, ``sat``) is
compared; each mismatch is counted and the first :data:`MAX_REPORT` are described as dicts
(layer, tile, image, column, expected, actual) that :func:`format_mismatch` prints.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.golden import ColumnJob, ColumnResult

MAX_REPORT = 20  # mismatch descriptions kept in the result


def compare_job(
    job: ColumnJob, lp, rtl: ColumnResult, gold: ColumnResult, lj, ids, errors: list[dict]
) -> tuple[int, int]:
    """Count mismatching activations (y) and status fields; describe the first few in
    ``errors``.  ``lp``: the layer's program, ``lj``: its jobs, ``ids``: image ids."""
    per_image = len(lj.rows) // max(1, len(ids))
    col0 = lj.col_slices[job.column_tile].start
    checks = [("y", rtl.y, gold.y, None)]
    checks += [
        (n, getattr(rtl, n).astype(np.int64), getattr(gold, n).astype(np.int64), "t")
        for n in ("e", "iters", "sat")
    ]
    bad_y = bad_s = 0
    for name, got, exp, kind in checks:
        bad = np.argwhere(got != exp)
        if name == "y":
            bad_y += len(bad)
        else:
            bad_s += len(bad)
        for v, c in bad[: max(0, MAX_REPORT - len(errors))]:
            errors.append(
                {
                    "layer": int(lp.index),
                    "layer_name": lp.name,
                    "tile": int(job.column_tile),
                    "row_tile": None if kind is None else int(c),
                    "image": int(ids[v // per_image]),
                    "vector": int(v),
                    "what": name,
                    "column": int(col0 + c) if kind is None else None,
                    "expected": int(exp[v, c]),
                    "actual": int(got[v, c]),
                }
            )
    return bad_y, bad_s


def report_dac_mismatches(
    job: ColumnJob, lp, lj, ids, bad: list[tuple[int, int, int]], errors: list[dict]
) -> None:
    """Describe DAC requests other than the golden controller's, ``(vector, row tile,
    iteration)`` each, in ``errors`` (up to :data:`MAX_REPORT` in all)."""
    per_image = len(lj.rows) // max(1, len(ids))
    for v, t, k in bad[: max(0, MAX_REPORT - len(errors))]:
        errors.append(
            {
                "layer": int(lp.index),
                "layer_name": lp.name,
                "tile": int(job.column_tile),
                "row_tile": int(t),
                "image": int(ids[min(v, len(lj.rows) - 1) // per_image]),
                "vector": int(v),
                "what": f"DAC request (iteration {k})",
                "column": None,
                "expected": "the golden controller's codes",
                "actual": "different codes or an extra request",
            }
        )


def compare_op(
    step, got: np.ndarray, exp: np.ndarray, images, errors: list[dict], unit_op: str | None = None
) -> int:
    """Count the output values of one unit job of an op step (``got`` from its RTL,
    ``exp`` from its golden model, same shape; ``images[r]``: the image id of row ``r``)
    that differ; describe the first few in ``errors`` (op, unit job ``unit_op`` of a
    transformer step, image, element index (row first), expected, actual)."""
    got, exp = np.asarray(got), np.asarray(exp)
    job = {} if unit_op is None else {"job": unit_op}
    if got.shape != exp.shape:
        errors.append(
            {
                "op": step.name,
                "kind": step.kind,
                **job,
                "protocol": f"output shape {got.shape}, expected {exp.shape}",
            }
        )
        return max(1, int(exp.size))
    bad = np.argwhere(got != exp)
    for idx in bad[: max(0, MAX_REPORT - len(errors))]:
        errors.append(
            {
                "op": step.name,
                "kind": step.kind,
                **job,
                "image": int(images[int(idx[0])]),
                "element": tuple(int(i) for i in (idx[1:] if unit_op is None else idx)),
                "expected": int(exp[tuple(idx)]),
                "actual": int(got[tuple(idx)]),
            }
        )
    return len(bad)


def format_mismatch(err: dict) -> str:
    """One line: layer, tile, image, column, expected, actual (or the error as it is)."""
    if "op" in err and "element" in err:
        job = f", {err['job']} job" if "job" in err else ""
        return (
            f"{err['kind']} {err['op']}{job}, image {err['image']}, element {err['element']}: "
            f"expected {err['expected']}, actual {err['actual']}"
        )
    if "what" not in err:
        return str(err)
    return (
        f"layer {err['layer']} ({err['layer_name']}), column tile {err['tile']}"
        f"{'' if err.get('row_tile') is None else ', row tile ' + str(err['row_tile'])}, "
        f"image {err['image']} (vector {err['vector']}), {err['what']} column "
        f"{err['column']}: expected {err['expected']}, actual {err['actual']}"
    )
