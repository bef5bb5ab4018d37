"""Residual add and pooling in the flow: config -> golden -> RTL parameters, and their
``aimcflow vectors`` entries.

The golden parameters come from the config (``ResidualParams.from_config``,
``PoolParams.from_config``: the NMPU's output format, multiplier width and lanes); the
RTL's register reset values are the golden defaults (relu for the add, max for the pool,
unit coefficients), so a generated block is usable without a load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
from aimcflow.models.periphery.pool import POOL_KINDS, PoolCoeffs, PoolParams, pool
from aimcflow.models.periphery.residual import (
    ResidualCoeffs,
    ResidualParams,
    residual_add,
)

if TYPE_CHECKING:
    from aimcflow.models.config import AcceleratorConfig


def _checked(block: str, cls: type, fields: dict[str, Any]) -> Any:
    from aimcflow.flows.verilog import _checked as checked  # lazy: verilog imports this module

    return checked(block, cls, fields)


def residual_rtl_params(gp, **overrides):
    """``rtl.residual.ResidualRtlParams`` of golden ``ResidualParams`` ``gp``: widths as
    they are, the activation and output format as register reset values."""
    # lazy: amaranth (via rtl; kept out of aimcflow --help)
    from aimcflow.rtl.residual import ResidualRtlParams

    lo, hi = rtl_clamp_bounds(gp)
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


def residual_params(cfg: AcceleratorConfig, **overrides):
    """RTL parameters of the residual-add unit of a config (golden check first)."""

    return residual_rtl_params(ResidualParams.from_config(cfg), **overrides)


def pool_rtl_params(gp, **overrides):
    """``rtl.pool.PoolRtlParams`` of golden ``PoolParams`` ``gp``."""
    # lazy: amaranth (via rtl; kept out of aimcflow --help)
    from aimcflow.rtl.pool import PoolRtlParams

    fields = dict(
        lanes=gp.lanes,
        bits=gp.bits,
        mult_bits=gp.mult_bits,
        max_window=gp.max_window,
        signed_reset=gp.signed,
    )
    return _checked("pool", PoolRtlParams, fields | overrides)


def pool_params(cfg: AcceleratorConfig, **overrides):
    """RTL parameters of the pooling unit of a config (golden check first)."""

    return pool_rtl_params(PoolParams.from_config(cfg), **overrides)


def residual_component(p):
    from aimcflow.rtl.residual import ResidualAdd  # lazy: amaranth

    return ResidualAdd(p)


def pool_component(p):
    from aimcflow.rtl.pool import Pool  # lazy: amaranth

    return Pool(p)


# ------------------------------------------------------------ aimcflow vectors
# IN/OUT fields are documented in docs/SPEC.md "Block vectors on the command line"; the
# branch / map formats and the add's activation come from the config, as for the NMPU.
RESIDUAL_FIELDS = {
    "a": ("V", "N"),
    "b": ("V", "N"),
    "mult_a": (),
    "mult_b": (),
    "shift": (),
}
POOL_FIELDS = {
    "x": ("V", "C", "H", "W"),
    "kind": (),
    "window": ("P",),
    "stride": ("P",),
    "padding": ("P",),
    "mult": (),
    "shift": (),
}


def _residual_args(cfg, x):

    c = ResidualCoeffs(int(x["mult_a"]), int(x["mult_b"]), int(x["shift"]))
    return ResidualParams.from_config(cfg), c


def residual_check(cfg, x) -> None:
    residual_golden(cfg, x)  # the golden model's own checks; it is cheap


def residual_golden(cfg, x):

    gp, c = _residual_args(cfg, x)
    return {"y": residual_add(x["a"], x["b"], gp, c)}


def residual_rtl(cfg, x):
    # lazy: cocotb (bench module); flows.vector_blocks imports this module
    from aimcflow.cosim.benches import residual as bench
    from aimcflow.flows.vector_blocks import _run_file_bench

    gp, _ = _residual_args(cfg, x)
    rtl = residual_rtl_params(gp)
    return _run_file_bench(bench.build(rtl), bench.MODULE, bench.bench_params(rtl, gp), x, ("y",))


def _pool_args(cfg, x):

    if x["window"].shape != (2,):
        raise UserInputError(
            f"pool window/stride/padding have {x['window'].shape[0]} entries; allowed: 2 "
            "(rows, columns)"
        )
    kind = int(x["kind"])
    if kind not in (0, 1):
        raise UserInputError(f"pool kind = {kind}; allowed: 0 (max) or 1 (avg)")
    pair = {k: tuple(int(v) for v in x[k]) for k in ("window", "stride", "padding")}
    return (
        POOL_KINDS[kind],
        pair,
        PoolParams.from_config(cfg),
        PoolCoeffs(int(x["mult"]), int(x["shift"])),
    )


def pool_check(cfg, x) -> None:
    pool_golden(cfg, x)


def pool_golden(cfg, x):

    kind, pair, gp, c = _pool_args(cfg, x)
    return {"y": pool(x["x"], kind, pair["window"], pair["stride"], gp, c, pair["padding"])}


def pool_rtl(cfg, x):
    # lazy: cocotb (bench module); flows.vector_blocks imports this module
    from aimcflow.cosim.benches import pool as bench
    from aimcflow.flows.vector_blocks import _run_file_bench

    _, _, gp, _ = _pool_args(cfg, x)
    rtl = pool_rtl_params(gp)
    return _run_file_bench(bench.build(rtl), bench.MODULE, bench.bench_params(rtl, gp), x, ("y",))
