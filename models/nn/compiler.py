"""Compiler: a converted float network -> a chip program.

For every analog layer (Linear / Conv2d, plus a BatchNorm and an activation directly
after it) the chip program holds the NMPU coefficients of SPEC.md:

* **Affine calibration per tile and column.**  Known DAC codes go through the programmed
  tile's integer path ``forward_codes``: the codes the management controller produces for
  the calibration images' activations at that layer (512 per tile, so the tile is fitted
  on inputs like the ones it will see) plus 256 deterministic random vectors with
  amplitudes spread over 6 octaves (so columns the data barely drives are fitted too).
  The measured ADC codes are fitted by least squares, per column, as
  ``a = alpha * a_ideal + beta`` where ``a_ideal = (d * input_lsb) @ W_norm / output_lsb``
  is what an ideal tile with the target weights answers.  Saturated codes and ideal values
  beyond the ADC range are left out.  The correction ``(a - beta) / alpha`` undoes drift,
  ADC gain/offset mismatch and the mean IR drop; read and output noise average out.
  (Random inputs alone fit worse: under PCM's state-dependent drift the digits CNN lost
  3 % at level 3 with them, 1 % with data-driven calibration.)
* **Gains** ``gain[t, c] = K[t, c] / (alpha[t, c] * K_ref[c]) * 2**-k`` in Q(gain_bits -
  gain_frac).gain_frac, with ``K = w_scale * output_lsb / input_lsb`` the tile's weight
  scale and ``K_ref[c] = max_t |K / alpha|``, so row tiles with different weight scales add
  up in one accumulator.  ``offset = -beta * gain`` in the LSB of ``gain * a``.
* **Output multiplier and bias** (BatchNorm folded): the accumulator ``acc`` stands for
  ``y = s_in * K_ref * 2**(k + e_min - gain_frac) * acc`` in layer units; the output is
  ``(y * bn_scale + bias * bn_scale + bn_shift) / s_out``, so
  ``mult = round(s_in * K_ref * 2**(k + e_min - gain_frac) * bn_scale / s_out * 2**out_shift)``
  and ``bias = round((bias * bn_scale + bn_shift) / s_out)``.
* **The shrink shift k** (per layer, >= 0) trades gain bits for multiplier bits: with the
  SPEC's typical widths ``acc`` is ~2**(gain_frac + e - e_min) times the ADC code, and a
  16-bit multiplier with ``out_shift`` 15 cannot scale that down to 8 output bits without
  losing most of its bits.  k maximises min(gain significant bits, multiplier significant
  bits) without overflowing the multiplier; both precisions are recorded per layer.
  With ``out_shift = 15`` the digits networks get ~6-7 gain bits and ~5-6 multiplier
  bits; ``out_shift = 28`` gives 12-14 and 11-14 (shrink k = 0..2) at no other cost.
* **Scales.**  The first layer's input is quantized to ``nmpu.out_bits`` (unsigned when
  the calibration inputs are all >= 0) with ``s_in = max|x_cal| / code_max``: the digits
  pixels are bounded, so nothing clips.  Each layer's output scale is
  ``s_out = P(|y_cal|) / code_max`` over the float activations of ``calibration_images``
  training images, P the 99.9th percentile for hidden layers (clipping 0.1 % of the
  activations buys resolution for the other 99.9 %) and the maximum for the last layer
  (the logits decide the argmax: clipping the largest would tie the winners).  Measured on
  the digits test split at 1 h (level 3, seed 0): percentiles 99.9, 99.99 and 100 are
  within one image of each other for both networks under baseline-ftj and pcm; 99 lost
  2 images for the MLP under pcm.  Hidden
  layers use unsigned outputs after ReLU, signed otherwise.

The chip program is saved as one ``.npz`` (every array, conductances included) plus a
``.json`` (formats, scales, precisions, layer structure).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from aimcflow.models import rng
from aimcflow.models.config import AcceleratorConfig, validate_config
from aimcflow.models.errors import UserInputError
from aimcflow.models.io import save_npz_atomic, write_json_atomic
from aimcflow.models.nn import schedule as sch
from aimcflow.models.nn import seq_steps
from aimcflow.models.nn.analog_ops import AnalogLayer, BatchNorm
from aimcflow.models.nn.convert import AnalogNetwork
from aimcflow.models.periphery import mgmt as mgmt_model
from aimcflow.models.periphery import pool as pool_model
from aimcflow.models.periphery import residual as res_model
from aimcflow.models.periphery.fixedpoint import quantize_input

HIDDEN_PERCENTILE = 99.9
CAL_VECTORS = 512  # calibration-data vectors per tile for the affine fit
CAL_RANDOM_VECTORS = 256  # plus random vectors, so columns the data barely drives are fitted
CAL_OCTAVES = 6  # input amplitudes spread over 2**0 .. 2**-6 of full scale
CAL_KEY_BASE = 1 << 48  # noise keys of calibration vectors: far from any image id


@dataclass
class Stage:
    """One analog layer with the digital ops the NMPU absorbs."""

    layer: AnalogLayer
    bn: BatchNorm | None = None
    activation: str = "none"  # none | relu | leaky
    leaky_k: int = 0
    clamp: tuple | None = None  # (lo, hi) of a ReLU6 / Hardtanh: the output saturation

    def float_forward(self, h: np.ndarray) -> np.ndarray:
        h = self.layer.forward_ideal(h)
        if self.bn is not None:
            h = self.bn(h)
        if self.activation == "relu":
            h = np.maximum(h, 0.0)
        elif self.activation == "leaky":
            h = np.where(h >= 0, h, h * 2.0**-self.leaky_k)
        if self.clamp is not None:
            h = np.clip(h, *self.clamp)
        return h


@dataclass
class LayerProgram:
    """Everything the periphery of one analog layer needs (arrays int64 unless noted)."""

    name: str
    index: int
    activation: str
    leaky_k: int
    in_bits: int
    in_signed: bool
    in_scale: float  # layer units per input LSB
    out_bits: int
    out_signed: bool
    out_scale: float  # layer units per output LSB
    row_slices: list  # [(start, stop)] of the weight matrix rows per row tile
    col_slices: list
    shrink_k: int
    gain_bits_used: float  # significant bits of the largest gain
    mult_bits_used: float  # significant bits of the largest |mult|
    gain: np.ndarray = field(repr=False)  # (T, C)
    offset: np.ndarray = field(repr=False)  # (T, C)
    mult: np.ndarray = field(repr=False)  # (C,)
    bias: np.ndarray = field(repr=False)  # (C,)
    alpha: np.ndarray = field(repr=False)  # (T, C) float: fitted ADC-code gain
    beta: np.ndarray = field(repr=False)  # (T, C) float: fitted ADC-code offset
    out_shift: int = 15  # nmpu.out_shift of this layer (config or picked from calibration)

    ARRAYS = ("gain", "offset", "mult", "bias", "alpha", "beta")

    def meta(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in self.ARRAYS}
        return d


@dataclass
class ChipProgram:
    """A compiled network: the analog net (tiles programmed), its stages, and per layer
    the fixed-point periphery coefficients."""

    net: AnalogNetwork
    stages: list[Stage]
    layers: list[LayerProgram]
    t_s: float  # drift time the tiles were calibrated at
    steps: list = field(default_factory=list)  # the integer schedule (models/nn/schedule.py)
    adds: list = field(default_factory=list)  # AddProgram per residual add
    pools: list = field(default_factory=list)  # PoolProgram per pooling
    seqs: list = field(default_factory=list)  # seq_steps.SeqProgram per transformer step
    output: int = 0  # value id of the logits
    out_scale: float = 1.0  # logits units per LSB of the output value

    # ---------------------------------------------------------------- artifact
    def save(self, stem: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.npz`` (coefficients, weights, conductances) and ``<stem>.json``."""
        stem = Path(stem)
        arrays: dict[str, np.ndarray] = {}
        for lp, st in zip(self.layers, self.stages, strict=True):
            p = f"L{lp.index}."
            for a in LayerProgram.ARRAYS:
                arrays[p + a] = getattr(lp, a)
            arrays[p + "weight"] = st.layer.weight
            if st.layer.bias is not None:
                arrays[p + "weight_bias"] = st.layer.bias
            for t, row in enumerate(st.layer.matrix.tiles):
                for k, tile in enumerate(row):
                    arrays[f"{p}T{t}.{k}.g_siemens"] = tile.g_now  # (2, r, c): G+, G-
        meta = {
            "config": self.net.cfg.model_dump(mode="json"),
            "config_digest": self.net.cfg.digest(),
            "t_s": self.t_s,
            "layers": [lp.meta() for lp in self.layers],
            "adds": [asdict(a) for a in self.adds],
            "pools": [asdict(p) for p in self.pools],
            "seqs": [sp.meta() for sp in self.seqs],
            "steps": [
                {"kind": s.kind, "name": s.name, "src": list(s.src), "out": s.out}
                for s in self.steps
            ],
            "out_scale": self.out_scale,
        }
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        save_npz_atomic(npz, **arrays)
        write_json_atomic(js, meta)
        return npz, js

    @staticmethod
    def load_arrays(stem: str | Path) -> tuple[dict, dict]:
        stem = Path(stem)
        meta = json.loads(stem.with_suffix(".json").read_text())
        with np.load(stem.with_suffix(".npz")) as z:
            arrays = {k: z[k] for k in z.files}
        return meta, arrays

    @property
    def cfg(self) -> AcceleratorConfig:
        return self.net.cfg

    def layer_cfg(self, i: int) -> AcceleratorConfig:
        """The config layer ``i`` runs under: its ``[[layer]]`` entry applied and its
        ``nmpu.out_shift`` the one the compiler used (every golden model and RTL parameter
        of that layer comes from it)."""
        return layer_cfg(self.cfg, self.layers[i])


def layer_cfg(cfg: AcceleratorConfig, lp: LayerProgram) -> AcceleratorConfig:
    """``cfg`` as layer program ``lp`` sees it (see :meth:`ChipProgram.layer_cfg`)."""
    c = cfg.for_layer(lp.name, lp.index)
    if c.nmpu.out_shift == lp.out_shift:
        return c
    return c.model_copy(update={"nmpu": c.nmpu.model_copy(update={"out_shift": lp.out_shift})})


def _fit_affine(a: np.ndarray, ideal: np.ndarray, adc_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column least squares a = alpha * ideal + beta over unsaturated samples."""
    ok = (np.abs(a) < adc_max) & (np.abs(ideal) < adc_max)
    n = ok.sum(0)
    w = ok.astype(np.float64)
    n_safe = np.maximum(n, 1)
    mx = (w * ideal).sum(0) / n_safe
    my = (w * a).sum(0) / n_safe
    sxx = (w * (ideal - mx) ** 2).sum(0)
    sxy = (w * (ideal - mx) * (a - my)).sum(0)
    # A column whose ideal output spans less than 2 codes (e.g. a dead unit's tiny weights
    # under global weight scaling) cannot be fitted: its slope would be all noise.  It
    # keeps alpha = 1 and only its mean offset is corrected; its signal is < 1 LSB anyway.
    span = np.where(ok, ideal, -np.inf).max(0) - np.where(ok, ideal, np.inf).min(0)
    degenerate = (n < 8) | ~(span >= 2.0) | (sxx <= 0)
    alpha = np.where(degenerate, 1.0, sxy / np.where(degenerate, 1.0, sxx))
    # A column dominated by noise (tiny weights, e.g. under global weight scaling, get large
    # relative programming noise) gives an unreliable slope, even a negative one.  Its gain
    # falls back to the median slope of the tile's reliable columns; the limit is a 10 %
    # standard error of the fitted slope (residual variance / sxx, least-squares theory).
    resid = (w * (a - my - alpha * (ideal - mx)) ** 2).sum(0) / np.maximum(n - 2, 1)
    se = np.sqrt(resid / np.where(sxx > 0, sxx, 1.0))
    reliable = ~degenerate & (alpha > 0) & (se <= 0.1 * np.abs(alpha))
    fallback = float(np.median(alpha[reliable])) if reliable.any() else 1.0
    alpha = np.where(reliable | degenerate, alpha, fallback)
    beta = np.where(degenerate, np.where(n > 0, my, 0.0), my - alpha * mx)
    return alpha, beta


def random_codes(tile, cfg: AcceleratorConfig, vectors: int = CAL_VECTORS) -> np.ndarray:
    """Deterministic random DAC codes (vectors, rows), amplitudes spread over
    ``CAL_OCTAVES`` octaves below full scale so every output range is visited."""
    dac_max = (1 << (cfg.dac.bits - 1)) - 1
    g = rng.stream(cfg.seed, "data", tile.layer, tile.tile)
    amp = dac_max * 2.0 ** -g.uniform(0, CAL_OCTAVES, size=(vectors, 1))
    return np.rint(g.uniform(-1, 1, size=(vectors, tile.rows)) * amp).astype(np.int64)


def calibrate_tile(
    tile, cfg: AcceleratorConfig, codes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fit (alpha, beta) per column of one programmed tile from known DAC codes
    ``codes`` (V, rows) int64; default :func:`random_codes`."""
    adc_max = (1 << (cfg.adc.bits - 1)) - 1
    d = random_codes(tile, cfg) if codes is None else np.asarray(codes, dtype=np.int64)
    keys = CAL_KEY_BASE + np.arange(len(d), dtype=np.int64)
    a, _ = tile.forward_codes(d, keys, 0)
    ideal = (d * tile.input_lsb) @ tile.w_norm / tile.output_lsb
    return _fit_affine(a.astype(np.float64), ideal, adc_max)


def data_codes(
    rows_int: np.ndarray,
    rs: slice,
    cfg: AcceleratorConfig,
    in_bits: int,
    in_signed: bool,
    vectors: int = CAL_VECTORS,
) -> np.ndarray:
    """DAC codes the management controller produces for calibration-data vectors (the
    controller's golden model picks the exponent), a deterministic sample of ``vectors``
    nonzero ones: the tile is calibrated on inputs like the ones it will see."""

    x = rows_int[:, rs]
    x = x[np.abs(x).max(axis=1) > 0]
    if len(x) > vectors:
        x = x[np.linspace(0, len(x) - 1, vectors).astype(np.int64)]
    mp = mgmt_model.MgmtParams.from_config(cfg, x_bits=in_bits, x_signed=in_signed)
    return mgmt_model.dac_codes(x, mgmt_model.choose_exponent(x, mp), mp)


def _code_max(bits: int, signed: bool) -> int:
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def _sig_bits(v: float) -> float:
    return float(np.log2(v)) if v > 0 else 0.0


def _out_scale(y: np.ndarray, last: bool, percentile: float, clamp, signed: bool, bits: int):
    """Output scale of a stage or an add from its float outputs ``y`` on the calibration
    images: the percentile of |y| (the maximum for the logits); a fused clamp is the
    output saturation, so its upper bound caps the top."""
    flat = np.abs(y).reshape(-1)
    top = float(np.max(flat)) if last else float(np.percentile(flat, percentile))
    if clamp is not None:
        top = min(top, float(clamp[1])) if top > 0 else float(clamp[1])
    return (top if top > 0 else 1.0) / _code_max(bits, signed)


OUT_SHIFT_MAX = 62  # nmpu.out_shift's config range


def auto_out_shift(m0: np.ndarray, mult_bits: int) -> int:
    """The largest ``out_shift`` whose output multipliers ``m0 * 2**out_shift`` (``m0`` the
    unshifted multipliers of a layer) still fit signed ``mult_bits``: the multiplier keeps
    all its bits and the shrink shift k stays 0, so the gains keep all of theirs too."""
    m0_max = float(np.max(np.abs(m0)))
    if m0_max <= 0:
        return 0
    mult_max = (1 << (mult_bits - 1)) - 1
    s = int(np.floor(np.log2((mult_max + 0.5) / m0_max)))
    return int(np.clip(s, 0, OUT_SHIFT_MAX))


def _quantize(name: str, m0, g0, beta, out_shift: int, n) -> tuple:
    """The shrink shift k, gains, offsets and output multipliers of one layer from its
    unshifted multipliers ``m0`` (C,), relative gains ``g0 = K / alpha / K_ref`` (T, C) and
    fitted offsets ``beta`` at ``out_shift`` (``n`` the layer's ``[nmpu]``)."""
    mult_max = (1 << (n.mult_bits - 1)) - 1
    gain_max = (1 << (n.gain_bits - 1)) - 1
    m0_max = float(np.max(np.abs(m0))) * 2.0**out_shift
    if m0_max > mult_max + 0.5:
        raise UserInputError(
            f"layer {name}: output multiplier {m0_max:.0f} does not fit signed "
            f"nmpu.mult_bits={n.mult_bits}; lower nmpu.out_shift (now {out_shift}) or leave "
            "it out so the compiler picks it"
        )
    k_fit = int(np.floor(np.log2((mult_max + 0.5) / m0_max))) if m0_max > 0 else n.gain_frac
    k_best = int(np.floor((n.gain_frac - _sig_bits(m0_max)) / 2))
    k = int(np.clip(k_best, 0, min(k_fit, n.gain_frac)))
    gain = np.clip(np.rint(g0 * 2.0 ** (n.gain_frac - k)), -gain_max - 1, gain_max)
    gain = gain.astype(np.int64)
    offset = np.rint(-beta * gain).astype(np.int64)
    mult = np.clip(np.rint(m0 * 2.0 ** (out_shift + k)), -mult_max - 1, mult_max).astype(np.int64)
    return k, gain, offset, mult


def _share_out_shift(cfg: AcceleratorConfig, layers: list, unshifted: list) -> None:
    """Layers whose config leaves ``nmpu.out_shift`` out and that have the same parameters
    (the same ``[[layer]]`` values, hence one periphery configuration) share the smallest
    of their own picks: every multiplier of the set fits, and the set needs one RTL build.
    ``unshifted[i]`` = (m0, g0, beta) of layer i; layers are re-quantized in place."""
    groups: dict[str, list[int]] = {}
    for i, lp in enumerate(layers):
        lc = cfg.for_layer(lp.name, lp.index)
        if lc.nmpu.out_shift is None:
            groups.setdefault(lc.digest(), []).append(i)
    for members in groups.values():
        shift = min(layers[i].out_shift for i in members)
        for i in members:
            lp = layers[i]
            if lp.out_shift == shift:
                continue
            n = cfg.for_layer(lp.name, lp.index).nmpu
            lp.shrink_k, lp.gain, lp.offset, lp.mult = _quantize(lp.name, *unshifted[i], shift, n)
            lp.out_shift = shift
            lp.gain_bits_used = _sig_bits(float(np.max(np.abs(lp.gain))))
            lp.mult_bits_used = _sig_bits(float(np.max(np.abs(lp.mult))))


def _compile_stage(
    st: Stage,
    h_in: np.ndarray,
    in_scale: float,
    in_signed: bool,
    last: bool,
    cfg: AcceleratorConfig,
    percentile: float,
    out_scale: float | None = None,
) -> tuple[LayerProgram, np.ndarray]:
    """One stage's periphery coefficients from its (dequantized) calibration inputs
    ``h_in``; returns the program and the stage's float outputs on them.  ``cfg`` is the
    network's config; the layer's ``[[layer]]`` entry applies.  ``out_scale`` fixes the
    output scale (a GELU's input format) instead of calibrating it."""
    cfg = cfg.for_layer(st.layer.name, st.layer.index)
    n = cfg.nmpu
    out_bits = n.out_bits
    # the integer inputs this layer will see on the calibration images
    rows_f, _, _ = st.layer.to_rows(h_in, np.zeros(len(h_in), dtype=np.int64))
    rows_int = quantize_input(rows_f, in_scale, out_bits, in_signed)
    h = st.float_forward(h_in)
    out_signed = st.activation != "relu"
    if out_scale is None:
        out_scale = _out_scale(h, last, percentile, st.clamp, out_signed, out_bits)

    m = st.layer.matrix
    T, C = len(m.row_slices), st.layer.weight.shape[1]
    alpha = np.ones((T, C))
    beta = np.zeros((T, C))
    kk = np.zeros((T, C))
    for t, (rs, row) in enumerate(zip(m.row_slices, m.tiles, strict=True)):
        codes = data_codes(rows_int, rs, cfg, out_bits, in_signed)
        for cs, tile in zip(m.col_slices, row, strict=True):
            both = np.concatenate([codes, random_codes(tile, cfg, CAL_RANDOM_VECTORS)])
            alpha[t, cs], beta[t, cs] = calibrate_tile(tile, cfg, both)
            kk[t, cs] = tile.w_scale * tile.output_lsb / tile.input_lsb
    ratio = kk / alpha
    k_ref = np.max(np.abs(ratio), axis=0)
    k_ref[k_ref == 0] = 1.0
    bn_scale = st.bn.scale if st.bn is not None else np.ones(C)
    bn_shift = st.bn.shift if st.bn is not None else np.zeros(C)
    b = st.layer.bias if st.layer.bias is not None else np.zeros(C)
    m0 = in_scale * k_ref * 2.0 ** (cfg.mgmt.e_min - n.gain_frac) * bn_scale / out_scale
    out_shift = n.out_shift if n.out_shift is not None else auto_out_shift(m0, n.mult_bits)
    k, gain, offset, mult = _quantize(st.layer.name, m0, ratio / k_ref, beta, out_shift, n)
    bias = np.rint((b * bn_scale + bn_shift) / out_scale).astype(np.int64)
    lp = LayerProgram(
        st.layer.name,
        st.layer.index,
        st.activation,
        st.leaky_k,
        out_bits,
        in_signed,
        in_scale,
        out_bits,
        out_signed,
        out_scale,
        [(s.start, s.stop) for s in m.row_slices],
        [(s.start, s.stop) for s in m.col_slices],
        k,
        _sig_bits(float(np.max(np.abs(gain)))),
        _sig_bits(float(np.max(np.abs(mult)))),
        gain,
        offset,
        mult,
        bias,
        alpha,
        beta,
        out_shift,
    )
    return lp, h, (m0, ratio / k_ref, beta)


def compile_network(
    net: AnalogNetwork,
    x_cal: np.ndarray,
    *,
    t_s: float | None = None,
    percentile: float = HIDDEN_PERCENTILE,
) -> ChipProgram:
    """Calibrate the (programmed, drifted) tiles of ``net`` and quantize the periphery.

    ``x_cal`` (N, features) are calibration inputs (training images, never the test
    split).  ``t_s`` is recorded as the time since programming the tiles are at.  The
    network's schedule (:func:`~aimcflow.models.nn.schedule.plan`) is followed on the
    calibration images: every value is carried as what its integers represent
    (dequantized), with its scale and signedness; a residual add's two branch scales and
    its output scale give its coefficients (``residual_coeffs``), an average pool's window
    its reciprocal (``avg_coeffs``); add and pool outputs on the calibration images come
    from their golden models, so later layers calibrate on exactly those values.
    """
    cfg = net.cfg
    out_bits = cfg.nmpu.out_bits
    steps = sch.plan(net)
    x_cal = np.asarray(x_cal, dtype=np.float64)
    in_signed = bool(x_cal.min() < 0)
    in_scale = float(np.max(np.abs(x_cal))) / _code_max(out_bits, in_signed) or 1.0
    out_value = net.output_value
    vals = {0: x_cal}  # what the integers represent, float
    fmt = {0: (in_scale, in_signed)}
    stages: list[Stage] = []
    layers: list[LayerProgram] = []
    unshifted: list = []  # per layer (m0, g0, beta): to re-quantize at a shared out_shift
    adds: list = []
    pools: list = []
    seqs: list = []
    readers: dict[int, list] = {}
    for s in steps:
        for v in s.src:
            readers.setdefault(v, []).append(s)
    for s in steps:
        last = s.out == out_value
        if s.kind == "reshape":
            vals[s.out], fmt[s.out] = s.ops[0](vals[s.src[0]]), fmt[s.src[0]]
            continue
        if s.kind == "stage":
            bn = next((op for op in s.ops if isinstance(op, BatchNorm)), None)
            st = Stage(s.ops[0], bn, s.activation, s.leaky_k, s.clamp)
            sc, sg = fmt[s.src[0]]
            h_in = vals[s.src[0]]
            if s.src[0] == 0:  # the first layer sees the quantized input
                h_in = quantize_input(h_in, sc, out_bits, sg) * sc
            fixed = None
            if [r.kind for r in readers.get(s.out, [])] == ["gelu"] and s.activation == "none":
                fixed = 2.0 ** -seq_steps.sfu_params(cfg).gelu_frac  # the SFU's GELU format
            lp, h, unshifted_lp = _compile_stage(st, h_in, sc, sg, last, cfg, percentile, fixed)
            stages.append(st)
            layers.append(lp)
            unshifted.append(unshifted_lp)
            out_fmt = (lp.out_scale, lp.out_signed)
            y_int = quantize_input(h, lp.out_scale, out_bits, lp.out_signed)
        elif s.kind in seq_steps.KINDS.values():
            sp, y_int, out_fmt = seq_steps.compile_step(
                s.kind,
                s.ops[0],
                [vals[v] for v in s.src],
                [fmt[v] for v in s.src],
                cfg,
                last,
                percentile,
            )
            seqs.append(sp)
        elif s.kind == "add":
            (sa, ga), (sb, gb) = fmt[s.src[0]], fmt[s.src[1]]
            a_int = quantize_input(vals[s.src[0]], sa, out_bits, ga)
            b_int = quantize_input(vals[s.src[1]], sb, out_bits, gb)
            z = vals[s.src[0]] + vals[s.src[1]]
            for op in s.ops[1:]:
                z = op(z)
            out_signed = s.activation != "relu"
            so = _out_scale(z, last, percentile, s.clamp, out_signed, out_bits)
            ap = sch.AddProgram(
                s.name, ga, gb, out_signed, s.activation, s.leaky_k, sa, sb, so, 1, 1, 0
            )
            params = sch.add_params(cfg, ap)
            c = res_model.residual_coeffs(sa, sb, so, params)
            ap.mult_a, ap.mult_b, ap.shift = c.mult_a, c.mult_b, c.shift
            adds.append(ap)
            y_int = res_model.residual_add(a_int, b_int, params, c)
            out_fmt = (so, out_signed)
        else:  # pool: same format out; an average's reciprocal from its window
            op = s.ops[0]
            sc, sg = fmt[s.src[0]]
            if op.kind == "avg" and not op.count_include_pad and op.padding != (0, 0):
                raise UserInputError(
                    f"layer {op.name} (avg_pool2d): count_include_pad=False with padding is "
                    "not supported by the pooling unit; allowed: count_include_pad=True"
                )
            params = pool_model.PoolParams.from_config(cfg, signed=sg)
            c = (
                pool_model.avg_coeffs(op.kernel[0] * op.kernel[1], params)
                if op.kind == "avg"
                else pool_model.PoolCoeffs()
            )
            pp = sch.PoolProgram(
                op.name, op.kind, op.kernel, op.stride, op.padding, sg, sc, c.mult, c.shift
            )
            pools.append(pp)
            x_int = quantize_input(vals[s.src[0]], sc, out_bits, sg)
            y_int = pool_model.pool(x_int, op.kind, op.kernel, op.stride, params, c, op.padding)
            out_fmt = (sc, sg)
        vals[s.out] = y_int * out_fmt[0]  # the next step calibrates on what the integers say
        fmt[s.out] = out_fmt
    _share_out_shift(cfg, layers, unshifted)
    t = t_s if t_s is not None else (net.layers[0].matrix.tiles[0][0].t_s or 0.0)
    return ChipProgram(
        net, stages, layers, float(t), steps, adds, pools, seqs, out_value, fmt[out_value][0]
    )


def config_from_meta(meta: dict) -> AcceleratorConfig:
    return validate_config(meta["config"], source="chip program")
