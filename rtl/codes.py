"""The codes the periphery blocks share with their golden models, beat builders and the
flow: register numbers, ``load`` beat kinds and the run-time choices the registers hold.

The one home of each code (``amaranth.lib.enum``, so the RTL can use the members as
constants).  Run-time choices are also named in configs and golden models by their
lower-case member names (``"relu"``, ``"absmax_pow2"``): :data:`ACTIVATIONS`,
:data:`NOISE_MODES`; a register holds the member's value.
"""

from __future__ import annotations

from amaranth.lib import enum


class Activation(enum.Enum, shape=2):
    """The NMPU's activation register (config ``nmpu.activation``)."""

    NONE = 0
    RELU = 1
    LEAKY = 2
    CLAMP = 3


class NmpuLoad(enum.Enum, shape=2):
    """``kind`` of an NMPU ``load`` beat (``rtl/nmpu.py``)."""

    TILE_COEF = 0  # gain/offset of one row tile's column group
    COL_COEF = 1  # mult/bias of one column group
    REG = 2  # register number ``group`` := ``b[0]``


class NmpuReg(enum.Enum, shape=3):
    """NMPU register numbers (written by ``NmpuLoad.REG`` beats)."""

    ACTIVATION = 0
    OUT_SIGNED = 1
    LEAKY_K = 2
    CLAMP_LO = 3
    CLAMP_HI = 4
    N_TILES = 5
    N_COLS = 6


class NoiseMode(enum.Enum, shape=1):
    """The management controller's noise-management register (config ``mgmt.noise``)."""

    OFF = 0
    ABSMAX_POW2 = 1


class MgmtReg(enum.Enum, shape=1):
    """Management-controller register numbers (its ``load`` stream)."""

    NOISE = 0
    BOUND_MAX_ITER = 1


ACTIVATIONS = tuple(a.name.lower() for a in Activation)
"""Activation names in code order: ``("none", "relu", "leaky", "clamp")``."""
NOISE_MODES = tuple(m.name.lower() for m in NoiseMode)
"""Noise-management names in code order: ``("off", "absmax_pow2")``."""


def activation_code(name: str) -> int:
    """Register value of activation ``name`` (a member of :data:`ACTIVATIONS`)."""
    return Activation[name.upper()].value


def noise_code(name: str) -> int:
    """Register value of noise mode ``name`` (a member of :data:`NOISE_MODES`)."""
    return NoiseMode[name.upper()].value


class ResidualReg(enum.Enum, shape=3):
    """Residual-add register numbers (``rtl/residual.py``): the activation registers keep
    the NMPU's numbers (:class:`NmpuReg`), then the two branch multipliers and the shift."""

    ACTIVATION = NmpuReg.ACTIVATION.value
    OUT_SIGNED = NmpuReg.OUT_SIGNED.value
    LEAKY_K = NmpuReg.LEAKY_K.value
    CLAMP_LO = NmpuReg.CLAMP_LO.value
    CLAMP_HI = NmpuReg.CLAMP_HI.value
    MULT_A = 5
    MULT_B = 6
    SHIFT = 7


class PoolKind(enum.Enum, shape=1):
    """The pooling unit's kind register (``rtl/pool.py``)."""

    MAX = 0
    AVG = 1


POOL_KINDS = tuple(k.name.lower() for k in PoolKind)
"""Pooling kind names in code order: ``("max", "avg")``."""


class PoolReg(enum.Enum, shape=2):
    """Pooling-unit register numbers."""

    KIND = 0
    SIGNED = 1
    MULT = 2
    SHIFT = 3


class SfuOp(enum.Enum, shape=2):
    """The special-function unit's op register (``rtl/sfu.py``); golden models name the ops
    by the lower-case member names (:data:`SFU_OPS`)."""

    MATMUL = 0
    SOFTMAX = 1
    LAYERNORM = 2
    GELU = 3


class SfuReg(enum.Enum, shape=3):
    """Special-function-unit register numbers."""

    OP = 0
    LEN = 1
    MULT = 2
    SHIFT = 3
    WIDE = 4


SFU_OPS = tuple(o.name.lower() for o in SfuOp)
"""SFU op names in code order: ``("matmul", "softmax", "layernorm", "gelu")``."""
