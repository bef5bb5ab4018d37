"""Block vectors (``aimcflow vectors BLOCK``): the data-driven table of SPEC.md.

A block with vectors carries a :class:`VectorBlock` in the block registry
(:data:`aimcflow.cosim.blocks.BLOCKS`, ``vectors``): its IN fields with symbolic shapes (``("V", "T", "C")``; ``()`` = scalar), its OUT fields, a range check
(delegated to the golden model's own checks, so widths live in one place), the golden
function and the RTL simulation.  Validation is generic: a missing field, a non-int64
dtype, a wrong number of dimensions, a dimension that disagrees with another field's, or
a value outside its width is a :class:`UserInputError` *before* anything runs.

Adding vectors to a block is one :class:`VectorBlock` here, named in its registry entry.

Choices SPEC.md leaves open (recorded here, tested in tests/test_flow_vectors.py):

- IN arrays must be exactly int64 (an int32 or float array is refused, not converted).
- ``mgmt``: ``w`` is signed 16-bit (``models.periphery.mgmt.IDEAL_TILE_W_BITS``), ``shift`` in 0 .. 62;
  OUT ``sat_any`` is int64 0/1 like every other OUT field.
- ``nmpu``: any T and C; the Verilated NMPU's memories are sized
  ``max(4, T)`` row tiles x ``max(tile.cols, C)`` columns for the file.
- ``sfu``: ``op`` selects the operation; the row ops ignore ``b`` (any (K,N) array),
  softmax and gelu ignore ``mult``/``shift``; only matmul reads ``wide``.  Row lengths
  are bounded by the ``[sfu]`` parameters (the RTL is not resized for a file).
- ``--sim icarus`` runs the same bench on an Icarus Verilog build
  (:mod:`aimcflow.cosim.icarus`); its OUT must equal Verilator's bit for bit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError
from aimcflow.models.npzfile import load_npz
from aimcflow.models.periphery import sfu as sfu_golden
from aimcflow.models.periphery import spg as spg_golden
from aimcflow.models.periphery.fixedpoint import signed_range
from aimcflow.models.periphery.mgmt import IDEAL_TILE_W_BITS as W_BITS
from aimcflow.models.periphery.mgmt import MgmtParams, check_x, ideal_linear_tile, manage
from aimcflow.models.periphery.nmpu import NmpuParams, check_operands, check_range, nmpu
from aimcflow.models.periphery.sfu import OPS as SFU_OPS
from aimcflow.models.periphery.sfu import SfuParams

from .icarus import icarus_version
from .rtlparams import MAX_TILES, mgmt_params, nmpu_params, sfu_params
from .runner import cache_dir

Arrays = dict[str, np.ndarray]
SIMULATORS = ("verilator", "icarus", "golden")


@dataclass(frozen=True)
class VectorBlock:
    """One block of ``aimcflow vectors``.

    ``fields``: IN field name -> symbolic dims.  ``outputs``: OUT field names.
    ``check(cfg, arrays)``: raise :class:`UserInputError` for a value outside its width.
    ``golden(cfg, arrays) -> Arrays`` and ``rtl(cfg, arrays, sim) -> Arrays`` compute OUT
    (``sim``: ``"verilator"`` or ``"icarus"``).
    """

    name: str
    fields: Mapping[str, tuple[str, ...]]
    outputs: tuple[str, ...]
    check: Callable[[AcceleratorConfig, Arrays], None]
    golden: Callable[[AcceleratorConfig, Arrays], Arrays]
    rtl: Callable[[AcceleratorConfig, Arrays, str], Arrays]


MAX_DIM = {"V": 1_000_000, "T": 64, "R": 1024, "C": 1024}
"""Largest size of each symbolic dimension of an IN file: V vectors; T row tiles; R rows and
C columns (the config's tile limit, ``tile.rows``/``tile.cols`` <= 1024).  The RTL memories
are sized from T, R and C, so these bound the Verilator build as well as the run."""
MAX_FIELD_ELEMENTS = 1 << 26
"""Largest IN field (elements; 512 MiB of int64), checked before it is read."""


def _check_sizes(block: VectorBlock, path: Path, headers: dict) -> None:
    for name, dims in block.fields.items():
        if name not in headers:
            continue  # reported as missing below
        shape = headers[name][0]
        for sym, n in zip(dims, shape, strict=False):
            if n > MAX_DIM.get(sym, n):
                raise UserInputError(
                    f"--in {path}: field {name} has {sym} = {n}; allowed: {sym} <= {MAX_DIM[sym]}"
                )
        if int(np.prod(shape, dtype=np.int64)) > MAX_FIELD_ELEMENTS:
            raise UserInputError(
                f"--in {path}: field {name} has shape {shape}; allowed: at most "
                f"{MAX_FIELD_ELEMENTS} elements per field"
            )


def load_inputs(block: VectorBlock, path: Path) -> Arrays:
    """Read and structurally validate an IN ``.npz`` (fields, dtype, shapes, sizes)."""
    present = load_npz(path, f"--in {path}", lambda h: _check_sizes(block, path, h))
    missing = [k for k in block.fields if k not in present]
    if missing:
        raise UserInputError(
            f"--in {path}: missing field{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; {block.name} needs "
            + ", ".join(f"{k} {_dims(d)}" for k, d in block.fields.items())
        )
    sizes: dict[str, tuple[int, str]] = {}
    out: Arrays = {}
    for name, dims in block.fields.items():
        arr = present[name]
        if arr.dtype != np.int64:
            raise UserInputError(f"--in {path}: field {name} has dtype {arr.dtype}; allowed: int64")
        if arr.ndim != len(dims):
            raise UserInputError(
                f"--in {path}: field {name} has shape {arr.shape}; expected {_dims(dims)}"
            )
        for sym, n in zip(dims, arr.shape, strict=True):
            if n < 1:
                raise UserInputError(
                    f"--in {path}: field {name} has shape {arr.shape}; dimension {sym} must be >= 1"
                )
            if sym in sizes and sizes[sym][0] != n:
                other_n, other = sizes[sym]
                raise UserInputError(
                    f"--in {path}: field {name} has shape {arr.shape} but {other} says "
                    f"{sym} = {other_n}; expected {name} {_dims(dims)}"
                )
            sizes.setdefault(sym, (n, name))
        out[name] = arr
    return out


def _dims(dims: tuple[str, ...]) -> str:
    return "scalar" if not dims else "(" + ",".join(dims) + ")"


def compute(block: VectorBlock, cfg: AcceleratorConfig, path: Path, sim: str) -> Arrays:
    """Validate IN, then compute OUT with the golden model or the RTL."""
    if sim not in SIMULATORS:
        raise UserInputError(f"--sim {sim!r}; allowed: {', '.join(SIMULATORS)}")
    arrays = load_inputs(block, path)
    block.check(cfg, arrays)
    if sim == "icarus":
        icarus_version()  # ToolMissing (exit 2, says how to install) before any work
    out = block.golden(cfg, arrays) if sim == "golden" else block.rtl(cfg, arrays, sim)
    return {k: np.asarray(out[k], dtype=np.int64) for k in block.outputs}


def _run_file_bench(
    build, module: str, params: dict[str, Any], inputs: Arrays, outputs: tuple[str, ...]
) -> Arrays:
    tmp_root = cache_dir() / "vectors"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vectors-", dir=tmp_root) as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **inputs)
        build.run(module, {**params, "in": str(src), "out": str(dst)}, testcase="file_vectors")
        with np.load(dst) as f:
            return {k: f[k] for k in outputs}


# ------------------------------------------------------------------------- nmpu
def _nmpu_golden_params(cfg):
    return NmpuParams.from_config(cfg)


def _nmpu_check(cfg, x: Arrays) -> None:
    check_operands(
        x["a"], x["e"], x["gain"], x["offset"], x["mult"], x["bias"], _nmpu_golden_params(cfg)
    )


def _nmpu_golden(cfg, x: Arrays) -> Arrays:
    return {
        "y": nmpu(
            x["a"], x["e"], x["gain"], x["offset"], x["mult"], x["bias"], _nmpu_golden_params(cfg)
        )
    }


def _nmpu_rtl(cfg, x: Arrays, sim: str) -> Arrays:
    from .benches import nmpu as bench  # lazy: bench modules import cocotb

    V, T, C = x["a"].shape
    # the memories are sized for this file when it exceeds the config's tile
    rtl = nmpu_params(cfg, max_tiles=max(MAX_TILES, T), max_cols=max(cfg.tile.cols, C))
    b = bench.build(rtl, sim=sim)
    return _run_file_bench(
        b, bench.MODULE, bench.bench_params(rtl, _nmpu_golden_params(cfg)), x, ("y",)
    )


NMPU_VECTORS = VectorBlock(
    name="nmpu",
    fields={
        "a": ("V", "T", "C"),
        "e": ("V", "T"),
        "gain": ("T", "C"),
        "offset": ("T", "C"),
        "mult": ("C",),
        "bias": ("C",),
    },
    outputs=("y",),
    check=_nmpu_check,
    golden=_nmpu_golden,
    rtl=_nmpu_rtl,
)


# ------------------------------------------------------------------------- mgmt
def _mgmt_golden_params(cfg):
    return MgmtParams.from_config(cfg)


def _mgmt_check(cfg, x: Arrays) -> None:
    check_x(x["x"], _mgmt_golden_params(cfg))
    check_range("w", x["w"], *signed_range(W_BITS), f"signed {W_BITS}-bit weight")
    check_range("shift", x["shift"], 0, 62, "shift")


def _mgmt_golden(cfg, x: Arrays) -> Arrays:
    gp = _mgmt_golden_params(cfg)
    a, e, it, sat = manage(x["x"], ideal_linear_tile(x["w"], int(x["shift"]), gp.adc_bits), gp)
    return {"a": a, "e": e, "iter": it, "sat_any": sat}


def _mgmt_rtl(cfg, x: Arrays, sim: str) -> Arrays:
    from .benches import mgmt as bench  # lazy: bench modules import cocotb

    R = x["x"].shape[1]
    rtl = mgmt_params(cfg, max_rows=max(cfg.tile.rows, R))
    b = bench.build(rtl, sim=sim)
    return _run_file_bench(
        b,
        bench.MODULE,
        bench.bench_params(rtl, _mgmt_golden_params(cfg)),
        x,
        ("a", "e", "iter", "sat_any"),
    )


MGMT_VECTORS = VectorBlock(
    name="mgmt",
    fields={"x": ("V", "R"), "w": ("R", "C"), "shift": ()},
    outputs=("a", "e", "iter", "sat_any"),
    check=_mgmt_check,
    golden=_mgmt_golden,
    rtl=_mgmt_rtl,
)


# ------------------------------------------------------------------------- spg
def _spg_check(cfg, x: Arrays) -> None:
    spg_golden.validate_inputs(
        x["x"],
        x["d"],
        x["gain_x"],
        x["gain_d"],
        int(x["bl"]),
        spg_golden.SpgParams.from_config(cfg),
        what="--in spg",
    )
    spg_golden.lane_seeds(int(x["seed"]), 0)  # range check of the seed only


def _spg_arrays(o) -> Arrays:
    return {
        "row_pulses": o.row_pulses,
        "col_pulses": o.col_pulses,
        "row_sign": o.row_sign,
        "col_sign": o.col_sign,
    }


def _spg_golden(cfg, x: Arrays) -> Arrays:
    return _spg_arrays(
        spg_golden.generate(
            x["x"],
            x["d"],
            x["gain_x"],
            x["gain_d"],
            int(x["bl"]),
            int(x["seed"]),
            spg_golden.SpgParams.from_config(cfg),
            deterministic=cfg.spg.deterministic,
        )
    )


def _spg_rtl(cfg, x: Arrays, sim: str) -> Arrays:
    from .benches import spg as bench  # lazy: bench modules import cocotb

    V = x["x"].shape[0]
    params = bench.rtl_params(
        x["x"].shape[1], x["d"].shape[1], spg_golden.SpgParams.from_config(cfg)
    )
    seg = {
        "seed": int(x["seed"]),
        "x": x["x"],
        "d": x["d"],
        "gain_x": x["gain_x"],
        "gain_d": x["gain_d"],
        "bl": int(x["bl"]),
        "deterministic": np.full(V, cfg.spg.deterministic),
    }
    (out,), _ = bench.simulate(params, [seg], build=bench.build_spg(params, sim=sim))
    return _spg_arrays(out)


SPG_VECTORS = VectorBlock(
    name="spg",
    fields={
        "x": ("V", "R"),
        "d": ("V", "C"),
        "gain_x": ("V",),
        "gain_d": ("V",),
        "bl": (),
        "seed": (),
    },
    outputs=("row_pulses", "col_pulses", "row_sign", "col_sign"),
    check=_spg_check,
    golden=_spg_golden,
    rtl=_spg_rtl,
)


# -------------------------------------------------------------------------- sfu
def _sfu_golden(cfg, x: Arrays) -> Arrays:
    """``op`` 0 matmul (``x`` @ ``b``), 1 softmax, 2 layernorm, 3 gelu of the rows of ``x``;
    ``b`` is ignored by the row ops, ``mult``/``shift`` by softmax and gelu, ``wide`` by all
    but matmul.  The golden model's own checks name any value outside its width."""
    gp = SfuParams.from_config(cfg)
    op = int(x["op"])
    if not 0 <= op < len(SFU_OPS):
        raise UserInputError(
            f"--in: op {op}; allowed: " + ", ".join(f"{i} ({n})" for i, n in enumerate(SFU_OPS))
        )
    wide = int(x["wide"])
    if wide not in (0, 1):
        raise UserInputError(f"--in: wide {wide}; allowed: 0 or 1")
    mult, shift = int(x["mult"]), int(x["shift"])
    name = SFU_OPS[op]
    if name == "matmul":
        return {"y": sfu_golden.matmul(x["x"], x["b"], mult, shift, gp, bool(wide))}
    if name == "softmax":
        return {"y": sfu_golden.softmax(x["x"], gp)}
    if name == "layernorm":
        return {"y": sfu_golden.layernorm(x["x"], mult, shift, gp)}
    if x["x"].shape[1] > gp.k_max:
        raise UserInputError(
            f"--in: gelu row length {x['x'].shape[1]}; allowed: 1 .. {gp.k_max} (sfu parameters)"
        )
    return {"y": sfu_golden.gelu(x["x"], gp)}


def _sfu_check(cfg, x: Arrays) -> None:
    _sfu_golden(cfg, x)  # every check lives in the golden model; it is cheap


def _sfu_rtl(cfg, x: Arrays, sim: str) -> Arrays:
    from .benches import sfu as bench  # lazy: bench modules import cocotb

    rtl = sfu_params(cfg)
    return _run_file_bench(
        bench.build(rtl, sim=sim),
        bench.MODULE,
        bench.bench_params(rtl, SfuParams.from_config(cfg)),
        x,
        ("y",),
    )


SFU_VECTORS = VectorBlock(
    name="sfu",
    fields={"op": (), "x": ("V", "K"), "b": ("K", "N"), "mult": (), "shift": (), "wide": ()},
    outputs=("y",),
    check=_sfu_check,
    golden=_sfu_golden,
    rtl=_sfu_rtl,
)
