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

if TYPE_CHECKING:
    from aimcflow.models.config import AcceleratorConfig


def _checked(block: str, cls: type, fields: dict[str, Any]) -> Any:
    try:
        return cls(**fields)
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"the {block} RTL cannot be built for this config: {exc}") from None


def residual_rtl_params(gp, **overrides):
    """``rtl.residual.ResidualRtlParams`` of golden ``ResidualParams`` ``gp``: widths as
    they are, the activation and output format as register reset values."""
    from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
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
    from aimcflow.models.periphery.residual import ResidualParams

    return residual_rtl_params(ResidualParams.from_config(cfg), **overrides)


def pool_rtl_params(gp, **overrides):
    """``rtl.pool.PoolRtlParams`` of golden ``PoolParams`` ``gp``."""
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
    from aimcflow.models.periphery.pool import PoolParams

    return pool_rtl_params(PoolParams.from_config(cfg), **overrides)


def residual_component(p):
    from aimcflow.rtl.residual import ResidualAdd

    return ResidualAdd(p)


def pool_component(p):
    from aimcflow.rtl.pool import Pool

    return Pool(p)
