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
compared with ``tile_paths.IR_DROP_SKIP_LSB`` ADC steps; below that the correction is skipped (it
costs two extra matrix products).  For the FTJ baseline tile (14 nS devices, g_ratio
2.9e8) the worst case is ~0.3 LSB (bench tile), so it is computed, though small as the FTJ
thesis reports (§4.3, Fig. 4.8a).

Speed paths of ``forward_float`` (tests/test_analog_tileperf.py, flows/bench/tile.py):
* the elementwise part of a pass (IR-drop correction, keyed noise, ADC mismatch, ADC,
  rescale) and the DAC are compiled kernels (``fused``), one sweep per row;
* a bound-management pass that will be retried first screens its rows with an int8
  product (DAC codes times the weights rounded to int8 per column, ``torch._int_mm``):
  with that product's proven error bound and the row's keyed noise, rows that saturate
  whatever the exact product and the IR drop give are only flagged (their outputs would
  be discarded); the others take the full pass.  Exact: results equal, bit for bit,
  those of the tile with the screen off;
* the two IR-drop products run as int8 products of the DAC codes (exact small integers)
  with |W| and profile * W rounded to int8 per column (``_ir_int8_setup``: the
  correction's error bound, a few % of its worst case) when that bound lies below the
  float32 rounding bound of ``x @ W_eff`` itself (bench FTJ tile: <= 0.0063 vs >= 0.033 LSB);
  otherwise they are float32 products.  ``tile_paths.IR_DROP_INT8 = False`` turns this off.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog import converters, fused, irdrop
from aimcflow.models.analog.devices import get_device
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

from .tile_paths import FloatPaths


class AnalogTile(FloatPaths):
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

    def __init__(
        self, weights: np.ndarray, cfg: AcceleratorConfig, *, layer: int = 0, tile: int = 0
    ):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2:
            raise UserInputError(f"tile weights must be 2-D (inputs, outputs), got shape {w.shape}")
        rows, cols = w.shape
        if not (1 <= rows <= cfg.tile.rows and 1 <= cols <= cfg.tile.cols):
            raise UserInputError(
                f"weight block {rows}x{cols} does not fit a {cfg.tile.rows}x{cfg.tile.cols} "
                "tile (tile.rows x tile.cols); split it with TiledMatrix"
            )
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

        absmax = (
            np.max(np.abs(w)) if cfg.tile.weight_scaling == "global" else np.max(np.abs(w), axis=0)
        )
        absmax = np.broadcast_to(np.asarray(absmax, dtype=np.float64), (cols,)).copy()
        absmax[absmax == 0] = 1.0  # an all-zero column maps to zero conductances anyway
        self.w_scale = absmax * cfg.tile.w_clip
        self.w_norm = np.clip(w / self.w_scale, -1.0, 1.0)
        self.g_target = (
            np.stack([np.maximum(self.w_norm, 0.0), np.maximum(-self.w_norm, 0.0)]) * self.g_max
        )  # (2, r, c) S
        self.g_ratio = (
            cfg.tile.ir_drop_g_ratio
            if cfg.tile.ir_drop_g_ratio is not None
            else 1.0 / (cfg.tile.wire_resistance_ohm * self.g_max)
        )

        mis = rng.stream(cfg.seed, "adc_mismatch", self.layer, self.tile).standard_normal((2, cols))
        self.adc_gain = 1.0 + cfg.adc.gain_mismatch_sigma * mis[0]
        self.adc_offset_lsb = cfg.adc.offset_mismatch_sigma_lsb * mis[1]
        self._mismatch = cfg.adc.gain_mismatch_sigma > 0 or cfg.adc.offset_mismatch_sigma_lsb > 0
        # float path's ADC gain and offset (output units), float32; 1 and 0 change nothing
        if self._mismatch:
            self._gain_off32 = (
                self.adc_gain.astype(np.float32),
                (self.adc_offset_lsb * self.output_lsb).astype(np.float32),
            )
        else:
            self._gain_off32 = (np.ones(cols, np.float32), np.zeros(cols, np.float32))
        self._ones_cols = np.ones(cols)

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
                self.g_target.shape
            )
            self.g_prog = dev.program(self.g_target, z, cfg.device.prog_noise_scale)
        else:
            self.g_prog = self.g_target.copy()
        z = rng.stream(cfg.seed, "drift", self.layer, self.tile).standard_normal(
            self.g_target.shape
        )
        self.nu = dev.drift_nu(self.g_target, z)
        self._set_conductances(self.g_prog)
        # as aihwkit, the compensation baseline is read on the freshly programmed, not yet
        # drifted weights (read 0; see _readout)
        self.drift_alpha = 1.0
        self._baseline = self._readout(0)
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
            z = rng.stream(
                cfg.seed, "read", self.layer, self.tile, int(round(t_s * 1000))
            ).standard_normal(self.g_prog.shape)
        else:
            z = None
        g_src, s = self.g_prog, 1.0
        if cfg.noise.drift_mapping == "net":
            # aihwkit's drift_weights maps the PROGRAMMED weights back to conductances
            # before drifting them: each pair collapses to its net weight, on one device,
            # re-mapped so that max |w_prog| -> g_max; the result is mapped back by s
            w_prog = (self.g_prog[0] - self.g_prog[1]) / self.g_max
            s = max(float(np.abs(w_prog).max()), np.finfo(np.float64).tiny)
            g_src = np.stack([np.maximum(w_prog, 0.0), np.maximum(-w_prog, 0.0)])
            g_src *= self.g_max / s
        g = dev.at_time(g_src, self.nu, t_s, z, drift_scale, read_scale if z is not None else 0.0)
        self._set_conductances(g * s if s != 1.0 else g)
        if cfg.noise.drift_compensation == "global":
            # eq. 3.7: alpha = I_cal(t) / I_cal(t0); the output is rescaled by 1/alpha
            self.drift_alpha = float(self._baseline / self._readout(1 + int(round(t_s * 1000))))
        else:
            self.drift_alpha = 1.0
        self.t_s = float(t_s)

    #: image ids from here on are reserved for the drift-compensation reads (``_readout``)
    CALIBRATION_IDS = 1 << 62

    def _readout(self, read: int) -> float:
        """Mean |W_eff| as the global drift compensation reads it (normalized units).

        ``noise.compensation_readout = "ideal"``: exactly.  ``"forward"``: as aihwkit's
        ``GlobalDriftCompensation``, the mean |y| of the one-hot inputs eye(rows) pushed
        through this tile's noisy forward pass (NM/BM, DAC, IR drop, noise, ADC).  Their
        noise is keyed like any image's, with ids ``CALIBRATION_IDS + row + rows * read``
        (read 0: the baseline after programming; 1 + t in ms: the read at drift time t),
        so it never coincides with a data image's and does not depend on call order.
        """
        if self.cfg.noise.compensation_readout == "ideal":
            return max(float(np.mean(np.abs(self.w_eff))), 1e-4)
        ids = self.CALIBRATION_IDS + np.arange(self.rows, dtype=np.int64) + self.rows * read
        # forward_float answers in weight units, compensated: back to normalized units
        y = self.forward_float(np.eye(self.rows), ids) / (self.w_scale * self.drift_alpha)
        return max(float(np.mean(np.abs(y))), 1e-4)

    def _set_conductances(self, g: np.ndarray) -> None:
        self.g_now = g
        self.w_eff = (g[0] - g[1]) / self.g_max
        self._w32 = self.w_eff.astype(np.float32)
        self._abs_w = {np.float32: np.abs(self._w32), np.float64: np.abs(self.w_eff)}
        self._quantize_int8()
        self._ir_on = self._ir_drop_matters()
        # the screen bounds aihwkit's IR-drop approximation, not the nodal solve, and
        # needs positive ADC gains
        self._presat_ok = (not self._ir_on or self.cfg.tile.ir_drop_mode == "approx") and bool(
            np.all(self.adc_gain > 0)
        )
        self._presat_hits: dict[int, float] = {}  # iteration -> fraction surely saturated
        self._presat_idle: dict[int, int] = {}  # iteration -> calls since the screen ran

    def _quantize_int8(self) -> None:
        """W32 rounded to int8 per column: W32 ~ q * s with s = max|W32_col| / 127.

        ``_q8_err`` (cols,) bounds |W32 - q s| per column (measured, <= s/2); |q| is |W32|
        rounded the same way (rint is symmetric)."""
        w = self._w32.astype(np.float64)
        amax = np.abs(w).max(axis=0)
        s = np.where(amax > 0, amax / 127.0, 1.0)
        q = np.rint(w / s)
        self._q8_scale = s
        self._q8_err = np.abs(w - q * s).max(axis=0)
        self._q8 = q.astype(np.int8)
        self._q8_abs = np.abs(q).astype(np.int8)
        self._q8_maxabs = amax
        # lazy: torch (~2 s)
        import torch

        self._q8_t = torch.from_numpy(self._q8)

    def forward_codes(
        self, dac_codes: np.ndarray, images: np.ndarray, iteration: int | np.ndarray = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Integer path: DAC codes (B, rows) int64 -> (ADC codes (B, cols) int64, sat_any (B,)).

        codes = sat(round((d * input_lsb) @ W_eff [+ IR drop + noise] / output_lsb), adc.bits)
        computed in float64; noise keyed by (seed, layer, tile, iteration, image).
        """
        d = np.asarray(dac_codes)
        if d.ndim != 2 or d.shape[1] != self.rows or d.dtype.kind not in "iu":
            raise UserInputError(
                f"dac_codes must be an integer array of shape (B, {self.rows}), got "
                f"{d.dtype} {d.shape}"
            )
        lo, hi = -(1 << (self.cfg.dac.bits - 1)), (1 << (self.cfg.dac.bits - 1)) - 1
        if d.size and (d.min() < lo or d.max() > hi):
            raise UserInputError(
                f"DAC codes outside the {self.cfg.dac.bits}-bit range [{lo}, {hi}]"
            )
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

    def forward_float_stats(
        self, x: np.ndarray, images: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``forward_float`` plus the number of analog passes each vector took (B,) int."""
        cfg = self.cfg
        x = np.asarray(x)
        if x.dtype != np.float64:  # the DAC kernel reads float32 or float64 (as float32)
            x = x.astype(np.float32, copy=False)
        x = np.ascontiguousarray(x)
        b = x.shape[0]
        if cfg.mgmt.float_noise == "abs_max":
            s = fused.absmax_rows(x)
        else:
            s = np.ones(b, dtype=np.float32)
        res = np.zeros((b, self.cols), dtype=np.float64)
        passes = np.zeros(b, dtype=np.int64)
        images = np.ascontiguousarray(np.asarray(images).reshape(-1), dtype=np.int64)
        colf = (self.w_scale * self.drift_alpha).astype(np.float32)
        # all-zero inputs give zero output, as aihwkit's short cut (below float32's smallest
        # normal number counts as zero: its reciprocal would overflow the NM prescale)
        pend = np.nonzero(s >= np.finfo(np.float32).tiny)[0]
        bm = cfg.mgmt.float_bound == "iterative"
        bm_limit = cfg.mgmt.max_bm_res / self.input_lsb
        step = np.float32(self.input_lsb)
        red = 1.0
        it = 0
        while pend.size:
            scale = (s[pend] * np.float32(red)).astype(np.float32)
            r_n = pend.size
            xq = np.empty((r_n, self.rows), dtype=np.float32)
            codes = np.empty((r_n, self.rows), dtype=np.int8)
            abs_codes = np.empty((r_n, self.rows), dtype=np.int8)
            l1 = fused.dac(
                x,
                pend,
                np.float32(1.0) / scale,
                step,
                np.float32(cfg.dac.bound),
                np.float32(self._dac_cmax),
                xq,
                codes,
                abs_codes,
            )
            last = not bm or (int(red) > cfg.mgmt.max_bm_factor) or red > bm_limit
            ids = images[pend]
            sigma = self._sigma32(xq)
            keep = None
            if not last and self._presat_ok and self._screen_worth_it(it):
                # rows that surely saturate are redone at half the input: their outputs
                # would be thrown away, so only the others take the full pass
                sure = self._screen(codes, l1, ids, sigma, it)
                # only decides whether the screen is worth running next time, not results
                self._presat_hits[it] = float(sure.mean())
                if sure.any():
                    keep = np.nonzero(~sure)[0]
            if keep is None:
                sat = self._full_pass(xq, codes, abs_codes, ids, sigma, scale, it, res, pend, colf)
            else:
                sat = sure
                if keep.size:
                    sat[keep] = self._full_pass(
                        xq[keep],
                        codes[keep],
                        abs_codes[keep],
                        ids[keep],
                        sigma[keep],
                        scale[keep],
                        it,
                        res,
                        pend[keep],
                        colf,
                    )
            passes[pend] += 1
            if last:
                break
            pend = pend[sat]
            red *= 2.0
            it += 1
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
        return self.cols * converters.adc_energy_per_conversion_j(
            self.cfg.adc.kind, self.cfg.adc.bits
        )
