"""Accelerator config -> RTL elaboration parameters, for every periphery block.

The one place that maps an :class:`AcceleratorConfig` onto ``rtl/``'s parameter
dataclasses (``rtl/`` never sees the config).  A config the RTL cannot build is refused
here with a :class:`UserInputError` naming the config key: the golden model's parameter
check runs first (its messages use config names), then the RTL's own, so ``generate``,
``lint``, ``synth``, ``vectors``, level 4 and the benches all refuse the same configs with
the same words.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery import spg as spg_golden
from aimcflow.models.periphery.mgmt import MgmtParams
from aimcflow.models.periphery.nmpu import NmpuParams, rtl_clamp_bounds
from aimcflow.models.periphery.secure_mac import SecureMacSpec, rtl_mask_seeds
from aimcflow.models.periphery.sfu import SfuParams
from aimcflow.rtl.ascon import AsconParams
from aimcflow.rtl.codes import activation_code, noise_code
from aimcflow.rtl.params import MgmtRtlParams, MgmtWidths, NmpuRtlParams, NmpuWidths, SpgWidths
from aimcflow.rtl.periphery_top import PeripheryTopParams
from aimcflow.rtl.plain_mac import MacParams
from aimcflow.rtl.secure_mac import SecureMacParams
from aimcflow.rtl.sfu import SfuRtlParams
from aimcflow.rtl.spg import SpgRtlParams

MAX_TILES = 4
"""Row tiles the NMPU's coefficient memory holds per layer (``max_tiles``): a flow choice,
not a config key yet; ``vectors nmpu`` refuses inputs with more row tiles."""


def _rtl_error(block: str, exc: Exception) -> UserInputError:
    return UserInputError(f"the {block} RTL cannot be built for this config: {exc}")


def _checked(block: str, cls: type, fields: dict[str, Any]) -> Any:
    """``cls(**fields)``; the RTL's refusal becomes a :class:`UserInputError`."""
    try:
        return cls(**fields)
    except (ValueError, TypeError) as exc:
        raise _rtl_error(block, exc) from None


def _widths(cls: type, gp) -> dict[str, Any]:
    """The fields of the widths class ``cls`` (shared by a golden and an RTL parameter
    class) as ``gp`` holds them."""
    return {f.name: getattr(gp, f.name) for f in dataclasses.fields(cls)}


def nmpu_rtl_params(gp, max_tiles: int, max_cols: int, **overrides):
    """``rtl.params.NmpuRtlParams`` of golden ``NmpuParams`` ``gp``: the widths as they are,
    the run-time choices (activation, signedness, leaky k, clamp bounds) as register reset
    values, and the memories sized for ``max_tiles`` row tiles of ``max_cols`` columns.
    ``overrides`` replace single fields.  Refused parameters raise :class:`UserInputError`."""
    lo, hi = rtl_clamp_bounds(gp)
    fields = _widths(NmpuWidths, gp) | dict(
        max_tiles=max_tiles,
        max_cols=max_cols,
        activation_reset=activation_code(gp.activation),
        out_signed_reset=gp.out_signed,
        leaky_k_reset=gp.leaky_k,
        clamp_lo_reset=lo,
        clamp_hi_reset=hi,
    )
    return _checked("nmpu", NmpuRtlParams, fields | overrides)


def nmpu_params(cfg: AcceleratorConfig, **overrides):
    """``rtl.params.NmpuRtlParams`` of a config (after the golden model's own check)."""
    gp = NmpuParams.from_config(cfg)  # UserInputError with config key names
    sizes = dict(max_tiles=MAX_TILES, max_cols=cfg.tile.cols)
    return nmpu_rtl_params(gp, **(sizes | overrides))


def mgmt_rtl_params(gp, x_lanes: int, lanes: int, max_rows: int, **overrides):
    """``rtl.params.MgmtRtlParams`` of golden ``MgmtParams`` ``gp``: the widths as they are,
    the noise mode and retry bound as register reset values, ``x_lanes`` input values and
    ``lanes`` ADC codes per beat, an input buffer of ``max_rows`` rows.  ``overrides``
    replace single fields.  Refused parameters raise :class:`UserInputError`."""
    fields = _widths(MgmtWidths, gp) | dict(
        x_lanes=x_lanes,
        lanes=lanes,
        max_rows=max_rows,
        noise_reset=noise_code(gp.noise),
        bound_max_iter_reset=gp.bound_max_iter,
    )
    return _checked("mgmt", MgmtRtlParams, fields | overrides)


def mgmt_params(cfg: AcceleratorConfig, **overrides):
    """``rtl.params.MgmtRtlParams`` of a config (after the golden model's own check)."""
    gp = MgmtParams.from_config(cfg)
    sizes = dict(x_lanes=cfg.nmpu.lanes, lanes=cfg.nmpu.lanes, max_rows=cfg.tile.rows)
    return mgmt_rtl_params(gp, **(sizes | overrides))


def top_params(cfg: AcceleratorConfig, **ov) -> dict[str, Any]:
    """The NMPU's and the controller's parameters of ``periphery_top`` under ``cfg``."""
    blocks = {"nmpu": nmpu_params(cfg), "mgmt": mgmt_params(cfg)}
    _checked("periphery_top", PeripheryTopParams, blocks)
    return blocks


def spg_rtl_params(rows: int, cols: int, gp):
    """``rtl.spg.SpgRtlParams`` of an R x C pulse generator with golden widths ``gp``
    (``models.periphery.spg.SpgParams``) and the golden model's per-lane seed-jump
    constants (the GF(2) jumps live only in the golden model)."""
    return _checked(
        "spg",
        SpgRtlParams,
        _widths(SpgWidths, gp)
        | {"rows": rows, "cols": cols, "lane_jumps": spg_golden.rtl_lane_jumps(rows + cols)},
    )


def spg_params(cfg: AcceleratorConfig, **overrides):
    """The pulse generator of one tile: ``tile.rows`` + ``tile.cols`` lanes, ``[spg]`` widths."""
    p = spg_rtl_params(cfg.tile.rows, cfg.tile.cols, spg_golden.SpgParams.from_config(cfg))
    return dataclasses.replace(p, **overrides) if overrides else p


MAC_LANES = 64
"""Lanes of the plain and secure MACs (the dot-product length N of the TVLA experiment): not a
config key."""


def plain_mac_params(cfg: AcceleratorConfig | None = None, n: int = MAC_LANES):
    """The unprotected MAC: ``n`` lanes, 8-bit weights and activations (``cfg`` unused)."""
    return _checked("plain_mac", MacParams, {"n": n})


def secure_mac_params(cfg: AcceleratorConfig | None = None, n: int = MAC_LANES):
    """The share-masked MAC with the golden model's reset states of its mask generators
    (seeded once from ``SecureMacSpec.seed``; ``cfg`` unused)."""
    return _checked(
        "secure_mac", SecureMacParams, {"n": n, "mask_seeds": rtl_mask_seeds(SecureMacSpec(n=n))}
    )


def ascon_params(cfg: AcceleratorConfig | None = None, max_blocks: int = 64):
    """The Ascon-AEAD128 weight decryptor, messages up to ``max_blocks`` 16-byte blocks."""
    return _checked("ascon_decrypt", AsconParams, {"max_blocks": max_blocks})


def sfu_rtl_params(gp: SfuParams) -> SfuRtlParams:
    """``rtl.sfu.SfuRtlParams`` of golden ``SfuParams`` ``gp``: its widths and the constants
    it derives (exp polynomial, LOG2E, GELU clip and KA, reciprocal and root widths), so the
    RTL holds exactly the golden model's numbers."""
    c0, c1, c2 = gp.exp_coefs
    fields = {
        f.name: getattr(gp, f.name) for f in dataclasses.fields(SfuRtlParams) if hasattr(gp, f.name)
    }
    fields.update(exp_c0=c0, exp_c1=c1, exp_c2=c2)
    return _checked("sfu", SfuRtlParams, fields)


def sfu_params(cfg: AcceleratorConfig, **overrides) -> SfuRtlParams:
    """The SFU of a config's ``[sfu]`` section (after the golden model's own check);
    ``overrides`` replace golden fields (e.g. ``seq_max``)."""
    return sfu_rtl_params(SfuParams.from_config(cfg, **overrides))
