"""The accelerator configuration: one TOML file validated into frozen pydantic models.

Section and parameter names follow docs/SPEC.md where it names them.  Every field has
a type, a range and a docstring-like description with its unit; ``load_config`` turns any
problem into one :class:`UserInputError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserInputError


class _Section(BaseModel):
    # strict: a TOML true is not the integer 1 (nor a float); ints are still taken for floats
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _f(default, ge=None, le=None, gt=None, lt=None, description: str = ""):
    return Field(default, ge=ge, le=le, gt=gt, lt=lt, description=description)


class TileConfig(_Section):
    """One crossbar tile and how weights are mapped onto it (aihwkit MappingParameter)."""

    rows: int = _f(256, ge=1, le=1024, description="crossbar rows (inputs) per tile")
    cols: int = _f(256, ge=1, le=1024, description="crossbar columns (outputs) per tile")
    weight_scaling: Literal["global", "column"] = _f(
        "column", description="map max|W| of the whole tile (global) or of each column to g_max"
    )
    w_clip: float = _f(
        1.0, gt=0, le=10, description="w_clip * max|W| maps to g_max; larger weights are clipped"
    )
    ir_drop: float = _f(
        0.0, ge=0, le=100, description="IR-drop strength, aihwkit's ir_drop scale (0 = off)"
    )
    ir_drop_mode: Literal["approx", "exact"] = _f(
        "approx", description="aihwkit's fast approximation or an exact nodal solve"
    )
    ir_drop_g_ratio: float | None = _f(
        None,
        gt=0,
        le=1e15,
        description="wire-segment conductance / g_max (aihwkit ir_drop_g_ratio); "
        "default 1 / (wire_resistance_ohm * g_max)",
    )
    wire_resistance_ohm: float = _f(
        0.35, gt=0, le=1e4, description="wire segment resistance between crosspoints (ohm)"
    )
    read_voltage_v: float = _f(0.2, gt=0, le=5, description="read voltage at full-scale input (V)")


class DeviceConfig(_Section):
    """The memristive device: a preset of models/analog/devices plus scale knobs."""

    preset: Literal[
        "pcm", "ftj-extreme", "ftj-balanced", "ftj-constrained", "reram", "ecram-protonic", "ideal"
    ] = _f("ftj-balanced", description="device model preset (models/analog/devices)")
    g_max_siemens: float | None = _f(
        None, gt=0, le=1e-2, description="override the preset's maximum conductance (S)"
    )
    prog_noise_scale: float = _f(1.0, ge=0, le=100, description="multiplies programming noise")
    drift_scale: float = _f(1.0, ge=0, le=100, description="multiplies the drift exponent")
    read_noise_scale: float = _f(1.0, ge=0, le=100, description="multiplies 1/f read noise")


class DacConfig(_Section):
    """Input DAC: code c drives c * bound / (2**(bits-1) - 1) (normalized input units).

    aihwkit's ``inp_res = 1/(2**bits - 2)`` over ``[-inp_bound, inp_bound]``.
    """

    bits: int = _f(8, ge=2, le=32, description="signed DAC code width (bits)")
    bound: float = _f(1.0, gt=0, le=1e3, description="input bound: full-scale DAC input")


class AdcConfig(_Section):
    """Output ADC: code c means c * bound / (2**(bits-1) - 1) normalized output units.

    aihwkit's ``out_res = 1/(2**bits - 2)`` over ``[-out_bound, out_bound]``.  Variants:
    ``ideal`` (one cycle), ``ramp`` (2**bits cycles, all columns in parallel), ``sar``
    (bits cycles per conversion, one ADC per ``share`` columns).
    """

    bits: int = _f(8, ge=2, le=32, description="signed ADC code width (bits)")
    bound: float = _f(
        10.0,
        gt=0,
        le=1e4,
        description="output bound: full-scale ADC input, in normalized output units",
    )
    kind: Literal["ideal", "ramp", "sar"] = _f("ideal", description="ADC architecture")
    share: int = _f(1, ge=1, le=1024, description="columns sharing one SAR ADC")
    gain_mismatch_sigma: float = _f(0.0, ge=0, le=1, description="per-column relative gain error σ")
    offset_mismatch_sigma_lsb: float = _f(0.0, ge=0, le=64, description="per-column offset σ (LSB)")


class MgmtConfig(_Section):
    e_min: int = _f(-4, ge=-32, le=32, description="smallest input exponent")
    e_max: int = _f(7, ge=-32, le=32, description="largest input exponent")
    noise: Literal["off", "absmax_pow2"] = _f("absmax_pow2", description="integer noise management")
    bound_max_iter: int = _f(3, ge=0, le=15, description="bound-management retries, 0 = off")
    float_noise: Literal["none", "abs_max"] = _f(
        "abs_max", description="analog-float level: aihwkit NoiseManagementType"
    )
    float_bound: Literal["none", "iterative"] = _f(
        "iterative", description="analog-float level: aihwkit BoundManagementType"
    )
    max_bm_factor: float = _f(1000.0, ge=1, le=1e6, description="aihwkit max_bm_factor")
    max_bm_res: float = _f(
        0.25,
        gt=0,
        le=1e6,
        description="aihwkit max_bm_res: stop halving once the factor exceeds "
        "max_bm_res / DAC step (range units)",
    )

    @model_validator(mode="after")
    def _range(self):
        if self.e_min > self.e_max:
            raise ValueError(f"e_min ({self.e_min}) must be <= e_max ({self.e_max})")
        return self


OUT_SHIFT_BLOCK = 15
"""``nmpu.out_shift`` of a block outside a compiled network (``generate``, ``vectors``, the
benches) when the config leaves it out: docs/SPEC.md's typical value."""


class NmpuConfig(_Section):
    lanes: int = _f(8, ge=1, le=64, description="columns processed per clock")
    gain_bits: int = _f(16, ge=2, le=32, description="signed affine gain width (bits)")
    gain_frac: int = _f(14, ge=0, le=31, description="fractional bits of the gain")
    acc_bits: int = _f(32, ge=2, le=62, description="partial-sum accumulator width (bits)")
    mult_bits: int = _f(16, ge=2, le=32, description="signed output multiplier width (bits)")
    out_shift: int | None = _f(
        None,
        ge=0,
        le=62,
        description="right shift after the output multiplier; left out: a compiled network "
        f"picks it per layer from calibration, a block alone uses {OUT_SHIFT_BLOCK}",
    )
    out_bits: int = _f(8, ge=2, le=32, description="output activation width (bits)")
    out_signed: bool | None = _f(None, description="signed output; default: by activation")
    activation: Literal["none", "relu", "leaky", "clamp"] = _f(
        "relu", description="activation for block-level vectors (networks set it per layer)"
    )
    leaky_k: int = _f(3, ge=0, le=31, description="leaky slope 2**-k")
    clamp_lo: int = _f(0, description="clamp activation lower bound (output LSB)")
    clamp_hi: int = _f(127, description="clamp activation upper bound (output LSB)")

    @model_validator(mode="after")
    def _frac(self):
        if self.gain_frac >= self.gain_bits:
            raise ValueError(f"gain_frac ({self.gain_frac}) must be < gain_bits ({self.gain_bits})")
        return self

    @property
    def shift(self) -> int:
        """``out_shift``, or :data:`OUT_SHIFT_BLOCK` when the config leaves it to the compiler."""
        return OUT_SHIFT_BLOCK if self.out_shift is None else self.out_shift

    @property
    def signed_output(self) -> bool:
        if self.out_signed is not None:
            return self.out_signed
        return self.activation in ("none", "leaky") or (
            self.activation == "clamp" and self.clamp_lo < 0
        )


class NoiseConfig(_Section):
    """Which non-idealities are on; output-referred noise levels (aihwkit IOParameters)."""

    out_noise: float = _f(
        0.0, ge=0, le=10, description="output noise σ, normalized output units (aihwkit out_noise)"
    )
    w_noise: float = _f(
        0.0,
        ge=0,
        le=1,
        description="short-term weight noise σ, additive constant, relative to "
        "w_max: adds σ·‖x‖₂ output noise per MVM (aihwkit w_noise)",
    )
    programming: bool = _f(False, description="apply the device's programming noise")
    drift: bool = _f(False, description="apply the device's conductance drift")
    read: bool = _f(False, description="apply the device's 1/f read noise")
    drift_compensation: Literal["none", "global"] = _f(
        "none", description="global drift compensation (FTJ thesis eq. 3.6/3.7)"
    )
    compensation_readout: Literal["ideal", "forward"] = _f(
        "ideal",
        description="how the compensation reads mean |W|: 'ideal' exactly; 'forward' as "
        "aihwkit's GlobalDriftCompensation, one-hot inputs through the noisy forward pass",
    )
    drift_mapping: Literal["devices", "net"] = _f(
        "devices",
        description="'devices': each device of the pair drifts and reads with its own "
        "conductance; 'net': aihwkit's converter round trip, the programmed pair collapsed "
        "to its net weight and re-mapped (max |w_prog| -> g_max) at every drift",
    )
    t_inference_s: float = _f(1.0, ge=0, le=1e10, description="default time since programming (s)")


class SpgConfig(_Section):
    value_bits: int = _f(8, ge=2, le=16, description="signed value width; v means v/2**(bits-1)")
    gain_bits: int = _f(16, ge=1, le=24, description="unsigned gain width (bits)")
    gain_frac: int = _f(8, ge=0, le=23, description="fractional bits of the gain")
    prob_bits: int = _f(16, ge=2, le=24, description="P: random-number / probability width")
    max_bl: int = _f(255, ge=1, le=65535, description="largest bit length the RTL accepts")
    deterministic: bool = _f(False, description="spread round(BL*q/2**P) pulses evenly")


class ClockConfig(_Section):
    """The periphery's one clock domain."""

    period_ns: float = _f(10.0, gt=0, le=1e6, description="periphery clock period (ns)")


class SfuConfig(_Section):
    """Special-function unit (transformer ops outside the tiles), docs/SPEC.md."""

    lanes: int = _f(8, ge=1, le=64, description="elements per beat")
    seq_max: int = _f(64, ge=2, le=1024, description="longest softmax row (sequence length)")
    width_max: int = _f(64, ge=2, le=1024, description="widest layernorm row / matmul K")
    in_bits: int = _f(8, ge=2, le=16, description="signed matmul operand and GELU width (bits)")
    wide_bits: int = _f(
        16, ge=2, le=24, description="signed softmax/layernorm input, wide matmul output (bits)"
    )
    out_bits: int = _f(8, ge=2, le=24, description="signed softmax/layernorm/matmul output (bits)")
    mult_bits: int = _f(16, ge=2, le=24, description="signed output multiplier width (bits)")
    sm_frac: int = _f(8, ge=0, le=16, description="fractional bits of the softmax input")
    gelu_frac: int = _f(4, ge=0, le=15, description="fractional bits of GELU input and output")


def _optional(model: type[BaseModel], name: str):
    """An optional copy of ``model``'s field ``name``: same range and description,
    default None (= the section's value)."""
    f = model.model_fields[name]
    lim = {
        k: getattr(m, k)
        for m in f.metadata
        if (k := type(m).__name__.lower()) in ("ge", "gt", "le", "lt")
    }
    return Field(None, description=f.description, **lim)


class _LayerAdc(_Section):
    bits: int | None = _optional(AdcConfig, "bits")


class _LayerDac(_Section):
    bits: int | None = _optional(DacConfig, "bits")


class _LayerNmpu(_Section):
    out_shift: int | None = _optional(NmpuConfig, "out_shift")


class _LayerMgmt(_Section):
    bound_max_iter: int | None = _optional(MgmtConfig, "bound_max_iter")


class _LayerNoise(_Section):
    out_noise: float | None = _optional(NoiseConfig, "out_noise")
    w_noise: float | None = _optional(NoiseConfig, "w_noise")


MAX_LAYER_INDEX = 4095
"""Largest layer index a ``[[layer]]`` entry may name (networks are far smaller)."""

LAYER_KEYS = (
    "adc.bits",
    "dac.bits",
    "nmpu.out_shift",
    "mgmt.bound_max_iter",
    "noise.out_noise",
    "noise.w_noise",
)
"""The dotted keys a ``[[layer]]`` entry may override."""


class LayerOverride(_Section):
    """One ``[[layer]]`` entry: parameters of one analog layer that differ from the
    sections', matched by the layer's ``name`` or its ``index`` (order of the analog
    layers in the network, from 0); exactly one of the two."""

    name: str | None = _f(None, description="layer name as the network reports it")
    index: int | None = _f(None, ge=0, le=MAX_LAYER_INDEX, description="analog layer index")
    adc: _LayerAdc = _LayerAdc()
    dac: _LayerDac = _LayerDac()
    nmpu: _LayerNmpu = _LayerNmpu()
    mgmt: _LayerMgmt = _LayerMgmt()
    noise: _LayerNoise = _LayerNoise()

    @model_validator(mode="after")
    def _one_key(self):
        if (self.name is None) == (self.index is None):
            raise ValueError('give exactly one of name = "..." or index = N')
        return self

    @property
    def label(self) -> str:
        return f"name = {self.name!r}" if self.name is not None else f"index = {self.index}"

    def values(self) -> dict:
        """The overridden dotted keys and their values."""
        out = {}
        for key in LAYER_KEYS:
            sec, leaf = key.split(".")
            v = getattr(getattr(self, sec), leaf)
            if v is not None:
                out[key] = v
        return out

    def matches(self, name: str, index: int) -> bool:
        return self.name == name if self.name is not None else self.index == index


class AcceleratorConfig(_Section):
    """One accelerator: tile, device, converters, management, NMPU, noise, pulse generator."""

    name: str = _f("custom", description="free-form name shown in reports")
    seed: int = _f(0, ge=0, le=2**63 - 1, description="root seed of every noise stream")
    tile: TileConfig = TileConfig()
    device: DeviceConfig = DeviceConfig()
    dac: DacConfig = DacConfig()
    adc: AdcConfig = AdcConfig()
    mgmt: MgmtConfig = MgmtConfig()
    nmpu: NmpuConfig = NmpuConfig()
    noise: NoiseConfig = NoiseConfig()
    spg: SpgConfig = SpgConfig()
    clock: ClockConfig = ClockConfig()
    sfu: SfuConfig = SfuConfig()
    layer: tuple[LayerOverride, ...] = Field(
        (), strict=False, description="[[layer]] entries: per-layer periphery parameters"
    )  # not strict: TOML gives the entries as a list

    def layer_entry(self, name: str, index: int) -> LayerOverride | None:
        """The ``[[layer]]`` entry of the analog layer ``name`` / ``index``, if any."""
        hits = [e for e in self.layer if e.matches(name, index)]
        return hits[0] if hits else None

    def for_layer(self, name: str, index: int) -> AcceleratorConfig:
        """The config one analog layer sees: its ``[[layer]]`` entry applied to the
        sections, and no ``[[layer]]`` list (so its digest names its parameter set)."""
        return self.for_entry(self.layer_entry(name, index))

    def for_entry(self, e: LayerOverride | None) -> AcceleratorConfig:
        """The config with ``[[layer]]`` entry ``e`` (None: none) applied, no list."""
        vals = e.values() if e is not None else {}
        if not self.layer and not vals:
            return self
        data = self.model_dump()
        data["layer"] = []
        for key, value in vals.items():
            sec, leaf = key.split(".")
            data[sec][leaf] = value
        return validate_config(data, source=f"[[layer]] {e.label}" if e else "<layer>")

    def check_layers(self, layers: list[tuple[str, int]], what: str = "the network") -> None:
        """Raise :class:`UserInputError` unless every ``[[layer]]`` entry names exactly one
        of ``layers`` ((name, index) of the analog layers) and no layer has two entries."""
        seen: dict[int, str] = {}
        for k, e in enumerate(self.layer):
            hit = [i for n, i in layers if e.matches(n, i)]
            if not hit:
                allowed = ", ".join(f"{n} (index {i})" for n, i in layers)
                raise UserInputError(
                    f"[[layer]] entry {k} ({e.label}) names no analog layer of {what}; "
                    f"allowed: {allowed}"
                )
            if hit[0] in seen:
                raise UserInputError(
                    f"[[layer]] entries {seen[hit[0]]} and {k} ({e.label}) both set layer "
                    f"index {hit[0]}; give one entry per layer"
                )
            seen[hit[0]] = str(k)

    def digest(self) -> str:
        """Stable hash of every parameter: names Verilator builds and manifests."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **sections) -> AcceleratorConfig:
        """A copy with some fields replaced, dotted keys allowed: replace(**{"adc.bits": 4})."""
        data = self.model_dump()
        for key, value in sections.items():
            node = data
            *path, leaf = key.split(".")
            for p in path:
                node = node[p]
            node[leaf] = value
        return validate_config(data, source="<replace>")


PRESETS = ("baseline-ftj", "pcm", "ideal", "stress", "cnn-adc-per-layer")


_TYPE_NAMES = {
    bool: "a boolean (true/false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _toml(value) -> str:
    """``value`` as it reads in TOML (true, not Python's True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


_BOUND_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _field_bounds(loc: tuple) -> str:
    """' in lo..hi' (or ' >= lo') from the Field of ``loc`` in AcceleratorConfig, if any."""
    model, info = AcceleratorConfig, None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return ""
        info = fields[part]
        model = info.annotation
    lim = {
        k: getattr(m, k)
        for m in getattr(info, "metadata", [])
        if (k := type(m).__name__.lower()) in _BOUND_OPS
    }
    if "ge" in lim and "le" in lim and "gt" not in lim and "lt" not in lim:
        return f" in {lim['ge']}..{lim['le']}"
    bounds = _bounds(lim)
    return f" ({bounds})" if bounds else ""


def _bounds(lim: dict) -> str:
    """``'>= lo and <= hi'`` of pydantic's bound names (ge, gt, le, lt) present in ``lim``."""
    return " and ".join(f"{op} {lim[k]}" for k, op in _BOUND_OPS.items() if k in lim)


def _format_error(err: dict, source: str) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if len(err["loc"]) > 2 and err["loc"][0] == "layer":  # a [[layer]] entry's key
        loc = f"[[layer]] entry {err['loc'][1]}: " + ".".join(str(p) for p in err["loc"][2:])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{source}: unknown key '{loc}'"
    if kind == "literal_error":
        return f"{source}: {loc} = {_toml(value)} is not allowed; allowed: {ctx.get('expected')}"
    if kind == "value_error":  # a rule across fields: name them, not the whole section
        return f"{source}: [{loc}]: {str(ctx.get('error', err['msg']))}"
    wanted = {"int_type": int, "float_type": float, "bool_type": bool, "string_type": str}
    if kind in wanted:
        got = _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")
        return (
            f"{source}: {loc} = {_toml(value)} is {got}; give {_TYPE_NAMES[wanted[kind]]}"
            f"{_field_bounds(tuple(err['loc']))}"
        )
    allowed = _bounds(ctx)
    if allowed:
        return f"{source}: {loc} = {_toml(value)} is out of range; allowed: {allowed}"
    return f"{source}: {loc} = {_toml(value)}: {err['msg']}"


def validate_config(data: dict, source: str = "<config>") -> AcceleratorConfig:
    """Validate a parsed TOML dict; raise UserInputError naming key, value, allowed range."""
    try:
        return AcceleratorConfig.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        msg = _format_error(errs[0], source)
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
        raise UserInputError(msg) from None


def load_config(path: str | Path | None = None) -> AcceleratorConfig:
    """Load a TOML config file, or a preset by name (``baseline-ftj``, ``pcm``, ``ideal``).

    ``None`` gives the default preset ``baseline-ftj``.
    """
    if path is None:
        path = "baseline-ftj"
    name = str(path)
    if name in PRESETS:
        text = resources.files("aimcflow.configs").joinpath(f"{name}.toml").read_text()
        source = f"preset {name}"
    else:
        p = Path(name)
        if not p.is_file():
            raise UserInputError(
                f"config '{name}' not found: give a TOML file path or a preset "
                f"({', '.join(PRESETS)})"
            )
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserInputError(
                f"{source}: not UTF-8 text (byte {exc.start}); a TOML config is UTF-8"
            ) from None
        except OSError as exc:
            raise UserInputError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{source}: not valid TOML: {exc}") from None
    if not data:
        raise UserInputError(
            f"{source}: holds no settings; a config file sets at least its name (name = "
            '"..."); keys it leaves out take the built-in defaults (aimcflow generate lists '
            f"every value in manifest.json), not those of a preset ({', '.join(PRESETS)})"
        )
    return validate_config(data, source)


Bits = Annotated[int, Field(ge=1, le=64)]
