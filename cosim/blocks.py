"""The block registry: every periphery block by name, with its Verilog module name, its
``config -> RTL parameters`` factory (:mod:`.rtlparams`), its ``parameters -> component``
factory and, for blocks ``aimcflow vectors`` runs, its vector spec (:mod:`.vectors`).

``generate``, ``lint``, ``synth``, ``vectors`` and the TVLA designs all look blocks up
here (:data:`BLOCKS`); a new block is one more entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.rtl.ascon import AsconDecrypt
from aimcflow.rtl.mgmt import MgmtController
from aimcflow.rtl.nmpu import Nmpu
from aimcflow.rtl.periphery_top import PeripheryTop
from aimcflow.rtl.plain_mac import PlainMac
from aimcflow.rtl.pool import Pool
from aimcflow.rtl.residual import ResidualAdd
from aimcflow.rtl.secure_mac import SecureMac
from aimcflow.rtl.sfu import Sfu
from aimcflow.rtl.spg import StochasticPulseGenerator

from .postops import POOL_VECTORS, RESIDUAL_VECTORS, pool_params, residual_params
from .rtlparams import (
    ascon_params,
    mgmt_params,
    nmpu_params,
    plain_mac_params,
    secure_mac_params,
    sfu_params,
    spg_params,
    top_params,
)
from .runner import amaranth_verilog
from .vectors import (
    MGMT_VECTORS,
    NMPU_VECTORS,
    SFU_VECTORS,
    SPG_VECTORS,
    Arrays,
    VectorBlock,
    compute,
)


def _top(p):
    return PeripheryTop(p["nmpu"], p["mgmt"])


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
    #: the IN/OUT table, golden and RTL runs of ``aimcflow vectors`` (None: no vectors)
    vectors: VectorBlock | None = None


BLOCKS: dict[str, RtlBlock] = {
    "nmpu": RtlBlock("nmpu", "aimcflow_nmpu", nmpu_params, Nmpu, vectors=NMPU_VECTORS),
    "mgmt": RtlBlock("mgmt", "aimcflow_mgmt", mgmt_params, MgmtController, vectors=MGMT_VECTORS),
    "periphery_top": RtlBlock("periphery_top", "aimcflow_periphery_top", top_params, _top),
    # the integer ops between layers: residual add and max / average pooling
    "residual": RtlBlock(
        "residual", "aimcflow_residual", residual_params, ResidualAdd, vectors=RESIDUAL_VECTORS
    ),
    "pool": RtlBlock("pool", "aimcflow_pool", pool_params, Pool, vectors=POOL_VECTORS),
    # one lane per row and column of the tile: 1024 lanes (~9 MB of Verilog, ~1 min to
    # elaborate) for a 512 x 512 tile, so it is generated when asked for by name
    "spg": RtlBlock(
        "spg",
        "aimcflow_spg",
        spg_params,
        StochasticPulseGenerator,
        default=False,
        vectors=SPG_VECTORS,
    ),
    # the secure-inference blocks: separate macros, generated when named
    "plain_mac": RtlBlock("plain_mac", "aimcflow_plain_mac", plain_mac_params, PlainMac, False),
    "secure_mac": RtlBlock(
        "secure_mac", "aimcflow_secure_mac", secure_mac_params, SecureMac, False
    ),
    "ascon_decrypt": RtlBlock(
        "ascon_decrypt", "aimcflow_ascon_decrypt", ascon_params, AsconDecrypt, False
    ),
    # the transformer special-function unit: generated when named
    "sfu": RtlBlock("sfu", "aimcflow_sfu", sfu_params, Sfu, False, vectors=SFU_VECTORS),
}


def params_dict(params: Any) -> dict[str, Any]:
    """JSON-ready dict of a params dataclass (or a dict of them)."""
    if isinstance(params, dict):
        return {k: params_dict(v) for k, v in params.items()}
    return dataclasses.asdict(params)


@dataclass(frozen=True)
class GeneratedBlock:
    name: str
    module: str
    verilog: str
    params: dict[str, Any]

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


def generate_block(cfg: AcceleratorConfig, name: str, **overrides) -> GeneratedBlock:
    """Verilog of one block (no ``src`` attributes: the text depends only on parameters)."""
    params = block_params(cfg, name, **overrides)
    b = BLOCKS[name]
    return GeneratedBlock(
        name, b.module, amaranth_verilog(b.component(params), b.module), params_dict(params)
    )


def generate_all(cfg: AcceleratorConfig, names: list[str] | None = None) -> list[GeneratedBlock]:
    """Every block's Verilog; parameters are all checked before any Verilog is produced."""
    names = names or block_names()
    for n in names:  # validate everything first: a bad config fails before any work
        block_params(cfg, n)
    return [generate_block(cfg, n) for n in names]


def vector_blocks() -> list[str]:
    """The blocks ``aimcflow vectors`` runs."""
    return [n for n, b in BLOCKS.items() if b.vectors is not None]


def run_vectors(block_name: str, cfg: AcceleratorConfig, path: Path, sim: str) -> Arrays:
    """Validate the IN file of block ``block_name``, then compute OUT with the golden
    model or the RTL (``sim``)."""
    names = vector_blocks()
    if block_name not in names:
        raise UserInputError(f"unknown block {block_name!r}; allowed: {', '.join(names)}")
    out = compute(BLOCKS[block_name].vectors, cfg, path, sim)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
