"""One job for one integer unit outside the tiles: what a transformer step asks of the
special-function unit, the residual unit or the pooling unit, and the golden answer.

:func:`aimcflow.models.nn.seq_steps.step_requests` composes a transformer step from
these requests; whoever drives it answers each one: level 3 with :func:`answer` (the
golden models of ``models/periphery/``), level 4 with the unit's RTL (and compares it
with :func:`answer` on the same request).  Every array is int64; formats are those of the
unit's golden model (docs/SPEC.md "Special-function unit", "Residual add", "Pooling").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from aimcflow.models.periphery import pool as pool_model
from aimcflow.models.periphery import residual as res_model
from aimcflow.models.periphery import sfu as sfu_model


@dataclass(frozen=True, kw_only=True)
class _UnitJob:
    """``image``: the batch index of the one image whose rows a job holds (a
    per-image-and-head matmul), None when its rows are the batch's images in order, an
    equal number each.  ``unit``: the unit that answers it."""

    image: int | None = None
    unit: ClassVar[str]


@dataclass(frozen=True)
class SfuRequest(_UnitJob):
    """One SFU job: ``op`` (a :data:`~aimcflow.models.periphery.sfu.OPS` name) on rows
    ``x`` (V,L) -- matmul: ``x`` (M,K) times ``b`` (K,N) -- with the MULT, SHIFT and WIDE
    registers (unused by softmax and GELU)."""

    op: str
    x: np.ndarray = field(repr=False)
    params: sfu_model.SfuParams = field(repr=False)
    b: np.ndarray | None = field(default=None, repr=False)
    mult: int = 1
    shift: int = 0
    wide: bool = False
    unit: ClassVar[str] = "sfu"


@dataclass(frozen=True)
class AddRequest(_UnitJob):
    """One residual-unit job: ``sat(rshr(a mult_a + b mult_b, shift))`` (then the
    activation) on rows ``a``, ``b`` (V,N), one row per image."""

    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    params: res_model.ResidualParams = field(repr=False)
    coeffs: res_model.ResidualCoeffs
    unit: ClassVar[str] = "residual"
    op: ClassVar[str] = "add"


@dataclass(frozen=True)
class PoolRequest(_UnitJob):
    """One pooling-unit job on maps ``x`` (V,C,H,W), one per image: ``kind`` over
    ``window`` at ``stride`` with ``padding`` (an average's reciprocal in ``coeffs``)."""

    x: np.ndarray = field(repr=False)
    kind: str
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    params: pool_model.PoolParams = field(repr=False)
    coeffs: pool_model.PoolCoeffs
    unit: ClassVar[str] = "pool"
    op: ClassVar[str] = "pool"


Request = SfuRequest | AddRequest | PoolRequest


def answer(req: Request) -> np.ndarray:
    """The golden model's output of ``req``: (M,N) for a matmul, (V,L) for the SFU's row
    ops, (V,N) for an add, (V,C,Ho,Wo) for a pooling (int64)."""
    if isinstance(req, AddRequest):
        return res_model.residual_add(req.a, req.b, req.params, req.coeffs)
    if isinstance(req, PoolRequest):
        return pool_model.pool(
            req.x, req.kind, req.window, req.stride, req.params, req.coeffs, req.padding
        )
    p = req.params
    if req.op == "matmul":
        return sfu_model.matmul(req.x, req.b, req.mult, req.shift, p, wide=req.wide)
    if req.op == "softmax":
        return sfu_model.softmax(req.x, p)
    if req.op == "layernorm":
        return sfu_model.layernorm(req.x, req.mult, req.shift, p)
    return sfu_model.gelu(req.x, p)


def row_images(req: Request, rows: int, batch: int) -> np.ndarray:
    """The batch index of each of the first ``rows`` output rows of ``req`` in a batch of
    ``batch`` images (for mismatch reports)."""
    if req.image is not None:
        return np.full(rows, req.image)
    per = max(1, len(req.x if not isinstance(req, AddRequest) else req.a) // max(1, batch))
    return np.arange(rows) // per
