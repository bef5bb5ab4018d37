"""Accelerator config -> RTL elaboration parameters -> Verilog, for every periphery block.

The one place that maps an :class:`AcceleratorConfig` onto ``rtl/params.py``'s dataclasses
(``rtl/`` never sees the config).  A config the RTL cannot build is refused here with a
:class:`UserInputError` naming the config key: the golden model's parameter check runs
first (its messages use config names), then the RTL's own, so ``generate``, ``lint``,
``synth``, ``vectors`` and the benches all refuse the same configs with the same words.

Blocks are a registry (:data:`BLOCKS`): name -> Verilog module name and a factory
``config -> (component, params)``; a new block is one more entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

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


def nmpu_rtl_params(gp, max_tiles: int, max_cols: int, **overrides):
    """``rtl.params.NmpuRtlParams`` of golden ``NmpuParams`` ``gp``: the widths as they are,
    the run-time choices (activation, signedness, leaky k, clamp bounds) as register reset
    values, and the memories sized for ``max_tiles`` row tiles of ``max_cols`` columns.
    ``overrides`` replace single fields.  Refused parameters raise :class:`UserInputError`."""
    from aimcflow.models.periphery.nmpu import ACTIVATIONS, rtl_clamp_bounds
    from aimcflow.rtl.params import NmpuRtlParams

    lo, hi = rtl_clamp_bounds(gp)
    fields = dict(
        lanes=gp.lanes,
        adc_bits=gp.adc_bits,
        gain_bits=gp.gain_bits,
        gain_frac=gp.gain_frac,
        acc_bits=gp.acc_bits,
        mult_bits=gp.mult_bits,
        out_shift=gp.out_shift,
        out_bits=gp.out_bits,
        e_min=gp.e_min,
        e_max=gp.e_max,
        offset_bits=gp.offset_bits,
        bias_bits=gp.bias_bits,
        max_tiles=max_tiles,
        max_cols=max_cols,
        activation_reset=ACTIVATIONS.index(gp.activation),
        out_signed_reset=gp.out_signed,
        leaky_k_reset=gp.leaky_k,
        clamp_lo_reset=lo,
        clamp_hi_reset=hi,
    )
    return _checked("nmpu", NmpuRtlParams, fields | overrides)


def nmpu_params(cfg: AcceleratorConfig, **overrides):
    """``rtl.params.NmpuRtlParams`` of a config (after the golden model's own check)."""
    from aimcflow.models.periphery.nmpu import NmpuParams

    gp = NmpuParams.from_config(cfg)  # UserInputError with config key names
    sizes = dict(max_tiles=MAX_TILES, max_cols=cfg.tile.cols)
    return nmpu_rtl_params(gp, **(sizes | overrides))


def mgmt_rtl_params(gp, x_lanes: int, lanes: int, max_rows: int, **overrides):
    """``rtl.params.MgmtRtlParams`` of golden ``MgmtParams`` ``gp``: the widths as they are,
    the noise mode and retry bound as register reset values, ``x_lanes`` input values and
    ``lanes`` ADC codes per beat, an input buffer of ``max_rows`` rows.  ``overrides``
    replace single fields.  Refused parameters raise :class:`UserInputError`."""
    from aimcflow.models.periphery.mgmt import NOISE_MODES
    from aimcflow.rtl.params import MgmtRtlParams

    fields = dict(
        dac_bits=gp.dac_bits,
        adc_bits=gp.adc_bits,
        e_min=gp.e_min,
        e_max=gp.e_max,
        x_bits=gp.x_bits,
        x_signed=gp.x_signed,
        x_lanes=x_lanes,
        lanes=lanes,
        max_rows=max_rows,
        noise_reset=NOISE_MODES.index(gp.noise),
        bound_max_iter_reset=gp.bound_max_iter,
    )
    return _checked("mgmt", MgmtRtlParams, fields | overrides)


def mgmt_params(cfg: AcceleratorConfig, **overrides):
    """``rtl.params.MgmtRtlParams`` of a config (after the golden model's own check)."""
    from aimcflow.models.periphery.mgmt import MgmtParams

    gp = MgmtParams.from_config(cfg)
    sizes = dict(x_lanes=cfg.nmpu.lanes, lanes=cfg.nmpu.lanes, max_rows=cfg.tile.rows)
    return mgmt_rtl_params(gp, **(sizes | overrides))


def conv_cycles(cfg: AcceleratorConfig) -> int:
    """Clocks one conversion of a tile's columns keeps ``periphery_top``'s ``busy`` high:
    the configured ADC kind's latency (``models/analog/converters.py``)."""
    from aimcflow.models.analog.converters import adc_latency_cycles

    a = cfg.adc
    return adc_latency_cycles(a.kind, a.bits, cfg.tile.cols, a.share)


def _top_params(cfg: AcceleratorConfig, **ov) -> dict[str, Any]:
    from aimcflow.rtl.periphery_top import PeripheryTopParams

    blocks = {"nmpu": nmpu_params(cfg), "mgmt": mgmt_params(cfg), "conv_cycles": conv_cycles(cfg)}
    _checked("periphery_top", PeripheryTopParams, blocks | ov)
    return blocks | ov


def spg_rtl_params(rows: int, cols: int, gp):
    """``rtl.spg.SpgParams`` of an R x C pulse generator with golden widths ``gp``
    (``models.periphery.spg.SpgParams``) and the golden model's per-lane seed-jump
    constants (the GF(2) jumps live only in the golden model)."""
    from aimcflow.models.periphery import spg as golden
    from aimcflow.rtl.spg import SpgParams

    return _checked(
        "spg",
        SpgParams,
        {
            "rows": rows,
            "cols": cols,
            "value_bits": gp.value_bits,
            "gain_bits": gp.gain_bits,
            "gain_frac": gp.gain_frac,
            "prob_bits": gp.prob_bits,
            "max_bl": gp.max_bl,
            "lane_jumps": golden.rtl_lane_jumps(rows + cols),
        },
    )


def spg_params(cfg: AcceleratorConfig, **overrides):
    """The pulse generator of one tile: ``tile.rows`` + ``tile.cols`` lanes, ``[spg]`` widths."""
    from aimcflow.models.periphery.spg import SpgParams as GoldenSpg

    p = spg_rtl_params(cfg.tile.rows, cfg.tile.cols, GoldenSpg.from_config(cfg))
    return dataclasses.replace(p, **overrides) if overrides else p


def _spg(p):
    from aimcflow.rtl.spg import StochasticPulseGenerator

    return StochasticPulseGenerator(p)


MAC_LANES = 64
"""Lanes of the plain and secure MACs (issue 6's N): not a config key."""


def plain_mac_params(cfg: AcceleratorConfig | None = None, n: int = MAC_LANES):
    """The unprotected MAC: ``n`` lanes, 8-bit weights and activations (``cfg`` unused)."""
    from aimcflow.rtl.plain_mac import MacParams

    return _checked("plain_mac", MacParams, {"n": n})


def secure_mac_params(cfg: AcceleratorConfig | None = None, n: int = MAC_LANES):
    """The share-masked MAC (``cfg`` unused); its mask generators are seeded from its
    ``seed`` port after reset, not from parameters."""
    from aimcflow.rtl.secure_mac import SecureMacParams

    return _checked("secure_mac", SecureMacParams, {"n": n})


def ascon_params(cfg: AcceleratorConfig | None = None, max_blocks: int = 64):
    """The Ascon-AEAD128 weight decryptor, messages up to ``max_blocks`` 16-byte blocks."""
    from aimcflow.rtl.ascon import AsconParams

    return _checked("ascon_decrypt", AsconParams, {"max_blocks": max_blocks})


def _plain_mac(p):
    from aimcflow.rtl.plain_mac import PlainMac

    return PlainMac(p)


def _secure_mac(p):
    from aimcflow.rtl.secure_mac import SecureMac

    return SecureMac(p)


def _ascon(p):
    from aimcflow.rtl.ascon import AsconDecrypt

    return AsconDecrypt(p)


def _nmpu(p):
    from aimcflow.rtl.nmpu import Nmpu

    return Nmpu(p)


def _mgmt(p):
    from aimcflow.rtl.mgmt import MgmtController

    return MgmtController(p)


def _top(p):
    from aimcflow.rtl.periphery_top import PeripheryTop

    return PeripheryTop(p["nmpu"], p["mgmt"], p["conv_cycles"])


@dataclass(frozen=True)
class RtlBlock:
    """One generated block: its Verilog module name, ``config -> params`` (validating) and
    ``params -> component``."""

    name: str
    module: str
    params: Callable[..., Any]
    component: Callable[[Any], Any]
    #: part of ``generate``/``lint`` when no ``--blocks`` is given
    default: bool = True


BLOCKS: dict[str, RtlBlock] = {
    "nmpu": RtlBlock("nmpu", "aimcflow_nmpu", nmpu_params, _nmpu),
    "mgmt": RtlBlock("mgmt", "aimcflow_mgmt", mgmt_params, _mgmt),
    "periphery_top": RtlBlock("periphery_top", "aimcflow_periphery_top", _top_params, _top),
    # one lane per row and column of the tile: 1024 lanes (~9 MB of Verilog, ~1 min to
    # elaborate) for a 512 x 512 tile, so it is generated when asked for by name
    "spg": RtlBlock("spg", "aimcflow_spg", spg_params, _spg, default=False),
    # the secure-inference blocks of issue 6: separate macros, generated when named
    "plain_mac": RtlBlock("plain_mac", "aimcflow_plain_mac", plain_mac_params, _plain_mac, False),
    "secure_mac": RtlBlock(
        "secure_mac", "aimcflow_secure_mac", secure_mac_params, _secure_mac, False
    ),
    "ascon_decrypt": RtlBlock(
        "ascon_decrypt", "aimcflow_ascon_decrypt", ascon_params, _ascon, False
    ),
}


def params_dict(params: Any) -> dict[str, Any]:
    """JSON-ready dict of a params dataclass (or a dict of them)."""
    if isinstance(params, dict):
        return {k: params_dict(v) for k, v in params.items()}
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else params


@dataclass(frozen=True)
class GeneratedBlock:
    """One block's Verilog.  ``memories``: its arrays (``MemorySpec.describe()``);
    ``models``: behavioural Verilog of the SRAM macros it instantiates, by module name
    (none with flops)."""

    name: str
    module: str
    verilog: str
    params: dict[str, Any]
    memories: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    models: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()


def block_names() -> list[str]:
    """The blocks generated when none are named."""
    return [n for n, b in BLOCKS.items() if b.default]


def parse_blocks(text: str | None, option: str = "--blocks") -> list[str]:
    """A comma-separated block list (``all``: every block; None: the default blocks)."""
    if text is None:
        return block_names()
    names = [b.strip() for b in text.split(",") if b.strip()]
    if names == ["all"]:
        return list(BLOCKS)
    bad = [b for b in names if b not in BLOCKS]
    if bad or not names:
        raise UserInputError(
            f"{option} {text!r}: unknown block(s) {', '.join(bad) or '(none given)'}; "
            f"allowed: {', '.join(BLOCKS)} or all"
        )
    return names


def block_params(cfg: AcceleratorConfig, name: str, **overrides) -> Any:
    """Validated RTL parameters of block ``name`` under ``cfg``."""
    if name not in BLOCKS:
        raise UserInputError(f"unknown block {name!r}; allowed: {', '.join(BLOCKS)}")
    return BLOCKS[name].params(cfg, **overrides)


def with_memories(params: Any, style: str) -> Any:
    """``params`` (a dataclass or a dict of them) with every ``memories`` field set to
    ``style`` (``flops`` or ``macro``, ``rtl/memories.py``); blocks without memory arrays
    have no such field and are returned as they are."""
    if isinstance(params, dict):
        return {k: with_memories(v, style) for k, v in params.items()}
    if dataclasses.is_dataclass(params) and any(
        f.name == "memories" for f in dataclasses.fields(params)
    ):
        return dataclasses.replace(params, memories=style)
    return params


def generate_block(
    cfg: AcceleratorConfig, name: str, memories: str = "flops", **overrides
) -> GeneratedBlock:
    """Verilog of one block (no ``src`` attributes: the text depends only on parameters),
    its memory arrays built as ``memories`` (``flops`` or ``macro``)."""
    from aimcflow.cosim.runner import amaranth_verilog
    from aimcflow.rtl.memories import component_specs, macros_verilog

    params = with_memories(block_params(cfg, name, **overrides), memories)
    b = BLOCKS[name]
    component = b.component(params)
    verilog = amaranth_verilog(component, b.module)
    specs = component_specs(component)
    return GeneratedBlock(
        name,
        b.module,
        verilog,
        params_dict(params),
        [s.describe() for s in specs],
        macros_verilog(specs),
    )


def generate_all(
    cfg: AcceleratorConfig, names: list[str] | None = None, memories: str = "flops"
) -> list[GeneratedBlock]:
    """Every block's Verilog; parameters are all checked before any Verilog is produced."""
    names = names or block_names()
    for n in names:  # validate everything first: a bad config fails before any work
        block_params(cfg, n)
    return [generate_block(cfg, n, memories) for n in names]
