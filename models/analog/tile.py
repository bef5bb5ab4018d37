"""One analog crossbar tile: weights -> conductances -> DAC, MVM, IR drop, noise, ADC.

Units.  Weights ``W`` (rows, cols) = (inputs, outputs) are in the layer's units.  The tile
maps them to normalized weights ``W_norm = clip(W / w_scale, -1, 1)`` with ``w_scale`` =
``w_clip * max|W|`` of the whole tile (``tile.weight_scaling = "global"``) or of each
column (``"column"``), and to a differential pair of conductances
``G+ = max(W_norm, 0) * g_max``, ``G- = max(-W_norm, 0) * g_max`` (siemens; aihwkit's
``SinglePairConductanceConverter`` with g_min = 0).  The effective normalized weight the
crossbar computes with is ``W_eff = (G+ - G-) / g_max``.  Inputs are in units of the DAC
full scale, outputs in "normalized output units": sums of ``W_eff``-weighted inputs.

The forward pass follows aihwkit 1.2's ``ForwardBackwardPassIOManaged`` in order:
noise management (scale by max|x|), DAC (round to the step, clip to +-bound), MVM,
IR drop, short-term weight noise and output noise, ADC (round, clip, saturation test),
bound management (halve the input and redo while an output saturates).  Short-term
weight noise of aihwkit's "additive constant" kind adds ``w_noise * ||x_dac||_2`` output
noise per column; together with ``out_noise`` it is one Gaussian of std
``sqrt(out_noise^2 + (w_noise ||x||)^2)`` (the sum of two independent Gaussians).

Rounding: DAC and ADC round half up (SPEC.md's rule); aihwkit uses nearbyint (ties to
even), so the two differ only on exact ties.

Randomness: programming noise and drift exponents are keyed by (seed, layer, tile); read
noise by (seed, layer, tile, t in ms); per-MVM noise by (seed, layer, tile, iteration,
image).  The same image at the same management iteration always sees the same noise,
whatever the batch it is in (tests/test_analog_tile.py).

IR drop is evaluated only when it can matter: its worst case over all inputs within the
DAC bound, ``scale * c(a_max) * sum_j |w_ij| * bound`` (a_max from the same bound), is
compared with ``IR_DROP_SKIP_LSB`` ADC steps; below that the correction is skipped (it
costs two extra matrix products).  For the FTJ baseline tile (14 nS devices, g_ratio
2.9e8) the worst case is ~1e-2 LSB, so it is computed, though negligible as the FTJ
thesis reports (§4.3, Fig. 4.8a).
"""

from __future__ import annotations

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog import converters, irdrop
from aimcflow.models.analog.devices import get_device
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

IR_DROP_SKIP_LSB = 1e-3  # skip IR drop whose worst-case output change is below this many LSB


def _ir_c(a: np.ndarray) -> np.ndarray:
    return a * (0.5 + a * (-0.2 + 0.05 * a))


class AnalogTile:
    """One crossbar tile holding a weight block W of shape (rows, cols) = (inputs, outputs).

    rows <= cfg.tile.rows, cols <= cfg.tile.cols; ``forward_float(x) ≈ x @ W``.

    Attributes:
        w_scale: (cols,) digital scale, W ≈ W_norm * w_scale (layer units per unit weight).
        input_lsb: value of one DAC code in normalized input units (bound / (2**(b-1)-1)).
        output_lsb: value of one ADC code in normalized output units.
        drift_alpha: global drift-compensation factor (FTJ thesis eq. 3.7, inverted):
            outputs are multiplied by it; 1 when compensation is off.  ``forward_codes``
            returns raw ADC codes: the NMPU folds ``drift_alpha * w_scale`` into its gain.
        t_s: seconds since programming of the current conductances (None: targets).
    """

    def __init__(self, weights: np.ndarray, cfg: AcceleratorConfig, *, layer: int = 0,
                 tile: int = 0):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2:
            raise UserInputError(f"tile weights must be 2-D (inputs, outputs), got shape {w.shape}")
        rows, cols = w.shape
        if not (1 <= rows <= cfg.tile.rows and 1 <= cols <= cfg.tile.cols):
            raise UserInputError(
                f"weight block {rows}x{cols} does not fit a {cfg.tile.rows}x{cfg.tile.cols} "
                "tile (tile.rows x tile.cols); split it with TiledMatrix")
        if not np.all(np.isfinite(w)):
            raise UserInputError("tile weights contain NaN or Inf")
        self.cfg = cfg
        self.layer = int(layer)
        self.tile = int(tile)
        self.rows, self.cols = rows, cols
        self.device = get_device(cfg.device.preset, cfg.device.g_max_siemens)
        self.g_max = self.device.g_max_siemens
        self.input_lsb = converters.lsb(cfg.dac.bits, cfg.dac.bound)
        self.output_lsb = converters.lsb(cfg.adc.bits, cfg.adc.bound)
        self._adc_cmax = (1 << (cfg.adc.bits - 1)) - 1
        self._dac_cmax = (1 << (cfg.dac.bits - 1)) - 1

        absmax = np.max(np.abs(w)) if cfg.tile.weight_scaling == "global" else np.max(
            np.abs(w), axis=0)
        absmax = np.broadcast_to(np.asarray(absmax, dtype=np.float64), (cols,)).copy()
        absmax[absmax == 0] = 1.0  # an all-zero column maps to zero conductances anyway
        self.w_scale = absmax * cfg.tile.w_clip
        self.w_norm = np.clip(w / self.w_scale, -1.0, 1.0)
        self.g_target = np.stack([np.maximum(self.w_norm, 0.0),
                                  np.maximum(-self.w_norm, 0.0)]) * self.g_max  # (2, r, c) S
        self.g_ratio = (cfg.tile.ir_drop_g_ratio if cfg.tile.ir_drop_g_ratio is not None
                        else 1.0 / (cfg.tile.wire_resistance_ohm * self.g_max))

        mis = rng.stream(cfg.seed, "adc_mismatch", self.layer, self.tile).standard_normal((2, cols))
        self.adc_gain = 1.0 + cfg.adc.gain_mismatch_sigma * mis[0]
        self.adc_offset_lsb = cfg.adc.offset_mismatch_sigma_lsb * mis[1]
        self._mismatch = cfg.adc.gain_mismatch_sigma > 0 or cfg.adc.offset_mismatch_sigma_lsb > 0

        prof = irdrop.profile(rows)
        self._prof = {np.float32: prof.astype(np.float32), np.float64: prof}
        # until program() runs, the tile computes with its exact targets
        self.g_prog = self.g_target.copy()
        self.nu = np.zeros_like(self.g_target)
        self.drift_alpha = 1.0
        self._baseline = None
        self.t_s: float | None = None
        self._set_conductances(self.g_target)

    # ------------------------------------------------------------------ programming, drift
    def program(self) -> None:
        """Program the conductances: programming noise and drift exponents keyed by
        (cfg.seed, layer, tile); the drift-compensation reference is read right after."""
        cfg, dev = self.cfg, self.device
        if cfg.noise.programming and cfg.device.prog_noise_scale > 0:
            z = rng.stream(cfg.seed, "program", self.layer, self.tile).standard_normal(
                self.g_target.shape)
            self.g_prog = dev.program(self.g_target, z, cfg.device.prog_noise_scale)
        else:
            self.g_prog = self.g_target.copy()
        z = rng.stream(cfg.seed, "drift", self.layer, self.tile).standard_normal(self.g_target.shape)
        self.nu = dev.drift_nu(self.g_target, z)
        self._set_conductances(self.g_prog)
        # aihwkit reads the compensation baseline (mean |y| of one-hot inputs, i.e. mean
        # |W_eff|) on the freshly programmed, not yet drifted weights.  We read it without
        # output noise and converters (the calibration current of thesis eq. 3.6 is a
        # long-averaged read); aihwkit pushes the one-hot reads through its noisy forward.
        self._baseline = self._readout()
        self.drift_alpha = 1.0
        self.t_s = 0.0

    def drift(self, t_s: float) -> None:
        """Conductances t_s seconds after programming: drift, read noise, compensation.

        Read noise is drawn once per call, keyed by (seed, layer, tile, t in ms), as
        aihwkit's ``drift_weights`` does (aihwkit applies 1/f read noise to the weights at
        drift time, not per MVM; per-MVM fluctuation is the short-term ``w_noise``).
        Programs the tile first if ``program()`` has not run.
        """
        if not t_s >= 0:
            raise UserInputError(f"drift time must be >= 0 s, got {t_s}")
        cfg, dev = self.cfg, self.device
        if self._baseline is None:
            self.program()
        drift_scale = cfg.device.drift_scale if cfg.noise.drift else 0.0
        read_scale = cfg.device.read_noise_scale if cfg.noise.read else 0.0
        if read_scale:
            z = rng.stream(cfg.seed, "read", self.layer, self.tile,
                           int(round(t_s * 1000))).standard_normal(self.g_prog.shape)
        else:
            z = None
        g = dev.at_time(self.g_prog, self.nu, t_s, z, drift_scale, read_scale if z is not None
                        else 0.0)
        self._set_conductances(g)
        if cfg.noise.drift_compensation == "global":
            # eq. 3.7: alpha = I_cal(t) / I_cal(t0); the output is rescaled by 1/alpha
            self.drift_alpha = float(self._baseline / self._readout())
        else:
            self.drift_alpha = 1.0
        self.t_s = float(t_s)

    def _readout(self) -> float:
        return max(float(np.mean(np.abs(self.w_eff))), 1e-4)

    def _set_conductances(self, g: np.ndarray) -> None:
        self.g_now = g
        self.w_eff = (g[0] - g[1]) / self.g_max
        self._w32 = self.w_eff.astype(np.float32)
        self._abs_w = {np.float32: np.abs(self._w32), np.float64: np.abs(self.w_eff)}
        self._ir_on = self._ir_drop_matters()

    def _ir_drop_matters(self) -> bool:
        s = self.cfg.tile.ir_drop
        if s <= 0:
            return False
        if self.cfg.tile.ir_drop_mode == "exact":
            return True
        colsum = np.abs(self.w_eff).sum(axis=0)
        b = self.cfg.dac.bound
        a_max = self.rows / self.g_ratio * colsum * b
        worst = s * _ir_c(a_max) * colsum * b
        return bool(np.max(worst) >= IR_DROP_SKIP_LSB * self.output_lsb)

    # ------------------------------------------------------------------ the analog MVM
    def _analog(self, xq: np.ndarray, images: np.ndarray, iteration: int) -> np.ndarray:
        """MVM of DAC outputs xq (b, rows) with IR drop, weight and output noise, ADC
        mismatch: the analog column values just before the ADC quantizer."""
        w = self._w32 if xq.dtype == np.float32 else self.w_eff
        y = xq @ w
        if self._ir_on:
            t = self.cfg.tile
            if t.ir_drop_mode == "approx":
                y = irdrop.approx(y, xq, w, t.ir_drop, self.g_ratio,
                                  self._abs_w[y.dtype.type], self._prof[y.dtype.type])
            else:
                gp, gn = self.g_now / self.g_max
                y = irdrop.exact(xq, gp, gn, self.g_ratio / t.ir_drop).astype(y.dtype)
        n = self.cfg.noise
        if n.out_noise > 0 or n.w_noise > 0:
            if n.w_noise > 0:
                sigma = np.sqrt(n.out_noise**2 + n.w_noise**2 * np.einsum("ij,ij->i", xq, xq))
                sigma = sigma[:, None]
            else:
                sigma = n.out_noise
            rng.add_keyed_normal(y, sigma, self.cfg.seed, "out",
                                 (self.layer, self.tile, int(iteration)), images)
        if self._mismatch:
            y = y * self.adc_gain.astype(y.dtype) + (self.adc_offset_lsb * self.output_lsb).astype(
                y.dtype)
        return y

    def forward_codes(self, dac_codes: np.ndarray, images: np.ndarray,
                      iteration: int | np.ndarray = 0) -> tuple[np.ndarray, np.ndarray]:
        """Integer path: DAC codes (B, rows) int64 -> (ADC codes (B, cols) int64, sat_any (B,)).

        codes = sat(round((d * input_lsb) @ W_eff [+ IR drop + noise] / output_lsb), adc.bits)
        computed in float64; noise keyed by (seed, layer, tile, iteration, image).
        """
        d = np.asarray(dac_codes)
        if d.ndim != 2 or d.shape[1] != self.rows or d.dtype.kind not in "iu":
            raise UserInputError(
                f"dac_codes must be an integer array of shape (B, {self.rows}), got "
                f"{d.dtype} {d.shape}")
        lo, hi = -(1 << (self.cfg.dac.bits - 1)), (1 << (self.cfg.dac.bits - 1)) - 1
        if d.size and (d.min() < lo or d.max() > hi):
            raise UserInputError(f"DAC codes outside the {self.cfg.dac.bits}-bit range [{lo}, {hi}]")
        images = np.asarray(images).reshape(-1)
        if images.shape[0] != d.shape[0]:
            raise UserInputError(f"images has {images.shape[0]} ids for {d.shape[0]} vectors")
        its = np.broadcast_to(np.asarray(iteration, dtype=np.int64), (d.shape[0],))
        x = d.astype(np.float64) * self.input_lsb
        y = np.empty((d.shape[0], self.cols), dtype=np.float64)
        for it in np.unique(its):  # few distinct iterations: one keyed draw each
            sel = its == it
            y[sel] = self._analog(x[sel], images[sel], int(it))
        return converters.adc_codes(y, self.cfg.adc.bits, self.output_lsb)

    def forward_float(self, x: np.ndarray, images: np.ndarray) -> np.ndarray:
        """Level "analog-float": x (B, rows) float in the layer's input units -> (B, cols).

        aihwkit semantics: abs-max noise management, iterative bound management (the
        input is halved while any output saturates, until the factor exceeds
        ``max_bm_factor`` or ``max_bm_res / input_lsb``), DAC, MVM, IR drop, noise, ADC;
        the result is rescaled to weight units (w_scale, drift_alpha applied), float64.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.rows:
            raise UserInputError(f"input must have shape (B, {self.rows}), got {x.shape}")
        images = np.asarray(images).reshape(-1)
        if images.shape[0] != x.shape[0]:
            raise UserInputError(f"images has {images.shape[0]} ids for {x.shape[0]} vectors")
        y, _ = self.forward_float_stats(x, images)
        return y

    def forward_float_stats(self, x: np.ndarray, images: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        """``forward_float`` plus the number of analog passes each vector took (B,) int."""
        cfg = self.cfg
        x = np.asarray(x, dtype=np.float32)
        b = x.shape[0]
        if cfg.mgmt.float_noise == "abs_max":
            s = np.maximum(x.max(axis=1), -x.min(axis=1))  # max|x| without a temporary
        else:
            s = np.ones(b, dtype=np.float32)
        out = None
        passes = np.zeros(b, dtype=np.int64)
        images = np.asarray(images).reshape(-1)
        # all-zero inputs give zero output, as aihwkit's short cut (below float32's smallest
        # normal number counts as zero: its reciprocal would overflow the NM prescale)
        pend = np.nonzero(s >= np.finfo(np.float32).tiny)[0]
        bm = cfg.mgmt.float_bound == "iterative"
        bm_limit = cfg.mgmt.max_bm_res / self.input_lsb
        olsb = np.float32(self.output_lsb)
        red = 1.0
        it = 0
        while pend.size:
            full = pend.size == b
            xs = x if full else x[pend]
            scale = (s[pend] * np.float32(red)).astype(np.float32)
            xq = converters.dac_float(xs, cfg.dac.bits, cfg.dac.bound,
                                      (np.float32(1.0) / scale)[:, None])
            y = self._analog(xq, images[pend], it)
            y, sat = converters.adc_float_codes(y, cfg.adc.bits, cfg.adc.bound)
            y *= (scale * olsb)[:, None]  # codes -> output units -> undo NM/BM scaling
            if out is None and full:
                out = y
            else:
                if out is None:
                    out = np.zeros((b, self.cols), dtype=np.float32)
                out[pend] = y
            passes[pend] += 1
            if not bm or (int(red) > cfg.mgmt.max_bm_factor) or red > bm_limit:
                break
            pend = pend[sat]
            red *= 2.0
            it += 1
        if out is None:
            out = np.zeros((b, self.cols), dtype=np.float32)
        res = np.multiply(out, (self.w_scale * self.drift_alpha).astype(np.float32),
                          dtype=np.float64)
        return res, passes

    # ------------------------------------------------------------------ converter figures
    @property
    def adc_latency_cycles(self) -> int:
        """Cycles for one conversion of every column (converters.adc_latency_cycles)."""
        a = self.cfg.adc
        return converters.adc_latency_cycles(a.kind, a.bits, self.cols, a.share)

    @property
    def adc_energy_per_mvm_j(self) -> float:
        """ADC energy of one MVM: cols conversions (J)."""
        return self.cols * converters.adc_energy_per_conversion_j(self.cfg.adc.kind,
                                                                  self.cfg.adc.bits)
