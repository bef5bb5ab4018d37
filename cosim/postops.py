"""Residual add and pooling, the integer ops between layers: config -> golden -> RTL
parameters, and their ``aimcflow vectors`` specs (registered in :mod:`.blocks`).

The golden parameters come from the config (``ResidualParams.from_config``,
``PoolParams.from_config``: the NMPU's output format, multiplier width and lanes); the
RTL's register reset values are the golden defaults (the config's activation for the add,
max for the pool, unit coefficients), so a generated block is usable without a load.

Vector files (docs/SPEC.md "Block vectors on the command line"): the branch / map formats
and the add's activation come from the config, as for the NMPU; ``pool``'s ``window``,
``stride`` and ``padding`` are (rows, cols) pairs, ``kind`` 0 = max, 1 = avg.
"""

from __future__ import annotations

from typing import Any

from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
from aimcflow.models.periphery.pool import POOL_KINDS, PoolCoeffs, PoolParams, pool
from aimcflow.models.periphery.residual import ResidualCoeffs, ResidualParams, residual_add
from aimcflow.rtl.pool import PoolRtlParams
from aimcflow.rtl.residual import ResidualRtlParams

from .rtlparams import _checked
from .vectors import Arrays, VectorBlock, _run_file_bench


def residual_rtl_params(gp: ResidualParams, **overrides) -> ResidualRtlParams:
    """RTL parameters of golden ``gp``: widths as they are, the activation and output
    format as register reset values.  Refused parameters raise :class:`UserInputError`."""
    lo, hi = rtl_clamp_bounds(gp)  # duck-typed: the NMPU's output-format fields
    fields = dict(
        lanes=gp.lanes,
        in_bits=gp.in_bits,
        mult_bits=gp.mult_bits,
        out_bits=gp.out_bits,
        activation_reset=ACTIVATIONS.index(gp.activation),
        out_signed_reset=gp.out_signed,
        leaky_k_reset=gp.leaky_k,
        clamp_lo_reset=lo,
        clamp_hi_reset=hi,
    )
    return _checked("residual", ResidualRtlParams, fields | overrides)


def residual_params(cfg: AcceleratorConfig, **overrides) -> ResidualRtlParams:
    """RTL parameters of the residual-add unit of a config (golden check first)."""
    return residual_rtl_params(ResidualParams.from_config(cfg), **overrides)


def pool_rtl_params(gp: PoolParams, **overrides) -> PoolRtlParams:
    """RTL parameters of golden ``gp`` (the map format as the SIGNED reset value)."""
    fields = dict(
        lanes=gp.lanes,
        bits=gp.bits,
        mult_bits=gp.mult_bits,
        max_window=gp.max_window,
        signed_reset=gp.signed,
    )
    return _checked("pool", PoolRtlParams, fields | overrides)


def pool_params(cfg: AcceleratorConfig, **overrides) -> PoolRtlParams:
    """RTL parameters of the pooling unit of a config (golden check first)."""
    return pool_rtl_params(PoolParams.from_config(cfg), **overrides)


# ------------------------------------------------------------ aimcflow vectors
def _residual_args(cfg: AcceleratorConfig, x: Arrays):
    c = ResidualCoeffs(int(x["mult_a"]), int(x["mult_b"]), int(x["shift"]))
    return ResidualParams.from_config(cfg), c


def _residual_golden(cfg: AcceleratorConfig, x: Arrays) -> Arrays:
    gp, c = _residual_args(cfg, x)
    return {"y": residual_add(x["a"], x["b"], gp, c)}


def _residual_check(cfg: AcceleratorConfig, x: Arrays) -> None:
    _residual_golden(cfg, x)  # the golden model's own checks; it is cheap


def _residual_rtl(cfg: AcceleratorConfig, x: Arrays, sim: str) -> Arrays:
    from .benches import residual as bench  # lazy: bench modules import cocotb

    gp, _ = _residual_args(cfg, x)
    rtl = residual_rtl_params(gp)
    return _run_file_bench(
        bench.build(rtl, sim=sim), bench.MODULE, bench.bench_params(rtl, gp), x, ("y",)
    )


RESIDUAL_VECTORS = VectorBlock(
    name="residual",
    fields={"a": ("V", "N"), "b": ("V", "N"), "mult_a": (), "mult_b": (), "shift": ()},
    outputs=("y",),
    check=_residual_check,
    golden=_residual_golden,
    rtl=_residual_rtl,
)


def _pool_args(
    cfg: AcceleratorConfig, x: Arrays
) -> tuple[str, dict[str, Any], PoolParams, PoolCoeffs]:
    if x["window"].shape != (2,):
        raise UserInputError(
            f"pool window/stride/padding have {x['window'].shape[0]} entries; allowed: 2 "
            "(rows, columns)"
        )
    kind = int(x["kind"])
    if kind not in (0, 1):
        raise UserInputError(f"pool kind = {kind}; allowed: 0 (max) or 1 (avg)")
    pair = {k: tuple(int(v) for v in x[k]) for k in ("window", "stride", "padding")}
    coeffs = PoolCoeffs(int(x["mult"]), int(x["shift"]))
    return POOL_KINDS[kind], pair, PoolParams.from_config(cfg), coeffs


def _pool_golden(cfg: AcceleratorConfig, x: Arrays) -> Arrays:
    kind, pair, gp, c = _pool_args(cfg, x)
    return {"y": pool(x["x"], kind, pair["window"], pair["stride"], gp, c, pair["padding"])}


def _pool_check(cfg: AcceleratorConfig, x: Arrays) -> None:
    _pool_golden(cfg, x)


def _pool_rtl(cfg: AcceleratorConfig, x: Arrays, sim: str) -> Arrays:
    from .benches import pool as bench  # lazy: bench modules import cocotb

    _, _, gp, _ = _pool_args(cfg, x)
    rtl = pool_rtl_params(gp)
    return _run_file_bench(
        bench.build(rtl, sim=sim), bench.MODULE, bench.bench_params(rtl, gp), x, ("y",)
    )


POOL_VECTORS = VectorBlock(
    name="pool",
    fields={
        "x": ("V", "C", "H", "W"),
        "kind": (),
        "window": ("P",),
        "stride": ("P",),
        "padding": ("P",),
        "mult": (),
        "shift": (),
    },
    outputs=("y",),
    check=_pool_check,
    golden=_pool_golden,
    rtl=_pool_rtl,
)
