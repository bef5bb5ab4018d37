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
2.9e8) the worst case is ~0.3 LSB (bench tile), so it is computed, though small as the FTJ
thesis reports (§4.3, Fig. 4.8a).

Speed paths of ``forward_float`` (tests/test_analog_tileperf.py):
* a bound-management pass that will be retried computes the IR-drop correction only for
  rows that might not saturate: the noisy product plus the correction's worst case
  decides exactly which rows saturate anyway (their outputs would be discarded); the
  results are the same bit for bit;
* the two IR-drop products run in bfloat16 (fp32 accumulation) when their error bound,
  ``irdrop.BF16_REL_ERROR`` of the correction's worst case, is below the float32
  rounding bound of ``x @ W_eff`` itself (bench FTJ tile: 0.009 vs >= 0.033 LSB);
  ``IR_DROP_BF16 = False`` turns this off.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog import converters, irdrop
from aimcflow.models.analog.devices import get_device
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

IR_DROP_SKIP_LSB = 1e-3  # skip IR drop whose worst-case output change is below this many LSB
# float path: IR-drop products in bfloat16 when provably within float32's own rounding bound
IR_DROP_BF16 = True


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
            z = rng.stream(
                cfg.seed, "read", self.layer, self.tile, int(round(t_s * 1000))
            ).standard_normal(self.g_prog.shape)
        else:
            z = None
        g = dev.at_time(
            self.g_prog, self.nu, t_s, z, drift_scale, read_scale if z is not None else 0.0
        )
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
        # _surely_saturated bounds aihwkit's IR-drop approximation, not the nodal solve
        # and needs positive ADC gains; without IR drop there is nothing to skip
        self._presat_ok = (
            self._ir_on
            and self.cfg.tile.ir_drop_mode == "approx"
            and bool(np.all(self.adc_gain > 0))
        )
        self._presat_hits: dict[int, float] = {}  # iteration -> fraction surely saturated

    def _ir_drop_matters(self) -> bool:
        s = self.cfg.tile.ir_drop
        self._ir_worst = np.zeros(self.cols)
        self._ir_bf16 = None
        if s <= 0:
            return False
        if self.cfg.tile.ir_drop_mode == "exact":
            return True
        colsum = np.abs(self.w_eff).sum(axis=0)
        b = self.cfg.dac.bound
        a_max = self.rows / self.g_ratio * colsum * b
        # |approx correction| <= scale c(a) |(x prof) @ w| with c increasing in a >= 0 and
        # a, |(x prof) @ w| largest when every |x_j| = bound: per column, over all inputs
        worst = s * _ir_c(a_max) * colsum * b
        if np.max(worst) < IR_DROP_SKIP_LSB * self.output_lsb:
            return False
        self._ir_worst = worst
        # bfloat16 products for the correction when their error bound lies below the
        # float32 rounding bound of x @ W itself (n u32 sum|x||w|, Higham's gamma_n)
        f32_bound = self.rows * 2.0**-24 * colsum * b
        if IR_DROP_BF16 and np.all(irdrop.BF16_REL_ERROR * worst <= f32_bound):
            import torch

            self._ir_bf16 = (
                torch.from_numpy(self._w32).to(torch.bfloat16),
                torch.from_numpy(self._abs_w[np.float32]).to(torch.bfloat16),
            )
        return True

    # ------------------------------------------------------------------ the analog MVM
    def _analog(
        self,
        xq: np.ndarray,
        images: np.ndarray,
        iteration: int,
        y: np.ndarray | None = None,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """MVM of DAC outputs xq (b, rows) with IR drop, weight and output noise, ADC
        mismatch: the analog column values just before the ADC quantizer.

        ``y``: the ideal product ``xq @ W_eff`` if already computed (used in place);
        ``noise``: the keyed noise ``_keyed_noise`` returns for these rows, if drawn."""
        w = self._w32 if xq.dtype == np.float32 else self.w_eff
        if y is None:
            y = xq @ w
        if self._ir_on:
            t = self.cfg.tile
            if t.ir_drop_mode == "approx" and self._ir_bf16 is not None and w is self._w32:
                y = irdrop.approx_bf16(
                    y, xq, *self._ir_bf16, self._prof[np.float32], t.ir_drop, self.g_ratio
                )
            elif t.ir_drop_mode == "approx":
                y = irdrop.approx(
                    y,
                    xq,
                    w,
                    t.ir_drop,
                    self.g_ratio,
                    self._abs_w[y.dtype.type],
                    self._prof[y.dtype.type],
                )
            else:
                gp, gn = self.g_now / self.g_max
                y = irdrop.exact(xq, gp, gn, self.g_ratio / t.ir_drop).astype(y.dtype)
        n = self.cfg.noise
        if noise is not None:
            y += noise  # 0 + z is z exactly: the same sums as drawing into y
        elif n.out_noise > 0 or n.w_noise > 0:
            sigma = self._noise_sigma(xq)
            rng.add_keyed_normal(
                y, sigma, self.cfg.seed, "out", (self.layer, self.tile, int(iteration)), images
            )
        if self._mismatch:  # y is this pass's own array: in place, same operations
            y *= self.adc_gain.astype(y.dtype)
            y += (self.adc_offset_lsb * self.output_lsb).astype(y.dtype)
        return y

    def _noise_sigma(self, xq: np.ndarray) -> np.ndarray | float:
        """Std of the summed output and short-term weight noise: (b, 1) or a scalar."""
        n = self.cfg.noise
        if n.w_noise > 0:
            sigma = np.sqrt(n.out_noise**2 + n.w_noise**2 * np.einsum("ij,ij->i", xq, xq))
            return sigma[:, None]
        return n.out_noise

    def _keyed_noise(self, xq: np.ndarray, images: np.ndarray, iteration: int) -> np.ndarray | None:
        """The output + short-term weight noise ``_analog`` adds to these rows (float32),
        None when both are off."""
        n = self.cfg.noise
        if not (n.out_noise > 0 or n.w_noise > 0):
            return None
        z = np.zeros((xq.shape[0], self.cols), dtype=np.float32)
        return rng.add_keyed_normal(
            z,
            self._noise_sigma(xq),
            self.cfg.seed,
            "out",
            (self.layer, self.tile, int(iteration)),
            images,
        )

    def _surely_saturated(
        self, y0: np.ndarray, noise: np.ndarray | None, xq: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows (b,) bool whose ADC saturates in ``_analog`` whatever the IR drop adds.

        Exact, not a heuristic: ``y0 = xq @ W`` plus the very noise ``_analog`` adds (keyed
        by image and iteration), the approximate IR-drop correction of column j is
        bounded by ``_ir_worst[j]`` (it is skipped here: two matrix products) and ADC gains
        are positive, so a column beyond the saturation threshold by more than that bound
        saturates in the full pass too.  Only a pass whose result would be discarded (bound
        management retries every saturated row) may skip the full pass for these rows.

        Without ``noise`` (noise not drawn yet; ``xq`` gives its std) the noise's bound
        ``rng.KEYED_NORMAL_MAX`` sigma joins the margin: a cheaper, coarser first test.
        """
        t_hi = t_lo = y0 + noise if noise is not None else y0
        n = self.cfg.noise
        if noise is None and (n.out_noise > 0 or n.w_noise > 0):
            sig = np.asarray(self._noise_sigma(xq), dtype=np.float64)
            m = (
                np.broadcast_to(sig.reshape(-1, 1), (y0.shape[0], 1))
                * (rng.KEYED_NORMAL_MAX * 1.001)
            ).astype(np.float32)
            t_hi, t_lo = y0 - m, y0 + m
        gain = self.adc_gain if self._mismatch else np.ones(self.cols)
        off = self.adc_offset_lsb * self.output_lsb if self._mismatch else np.zeros(self.cols)
        # code beyond +-cmax <=> value (y0 - IR + noise) gain + off beyond +-(cmax + 1/2)
        # LSB; solved for y0 + noise per column (gain > 0).  0.01 LSB of slack covers
        # float32 rounding of the skipped, reordered and divided steps (~1e-5 LSB)
        thr = (self._adc_cmax + 0.51) * self.output_lsb
        ir = self._ir_worst * gain
        hi = np.greater_equal(t_hi, ((thr + ir - off) / gain).astype(np.float32)).any(axis=1)
        lo = np.less_equal(t_lo, ((-thr - ir - off) / gain).astype(np.float32)).any(axis=1)
        return hi | lo

    def _pass(
        self,
        xq: np.ndarray,
        images: np.ndarray,
        it: int,
        scale: np.ndarray,
        y0: np.ndarray | None = None,
        noise: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One float-level analog pass: outputs in NM/BM-undone output units, sat flags."""
        cfg = self.cfg
        y = self._analog(xq, images, it, y0, noise)
        y, sat = converters.adc_float_codes(y, cfg.adc.bits, cfg.adc.bound)
        y *= (scale * np.float32(self.output_lsb))[:, None]  # codes -> output units -> undo NM/BM
        return y, sat

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
        red = 1.0
        it = 0
        while pend.size:
            full = pend.size == b
            xs = x if full else x[pend]
            scale = (s[pend] * np.float32(red)).astype(np.float32)
            xq = converters.dac_float(
                xs, cfg.dac.bits, cfg.dac.bound, (np.float32(1.0) / scale)[:, None]
            )
            last = not bm or (int(red) > cfg.mgmt.max_bm_factor) or red > bm_limit
            ids = images[pend]
            y0 = noise = sure = None
            if not last and self._presat_ok and self._presat_hits.get(it, 1.0) >= 0.05:
                # rows that surely saturate are redone at half the input: their IR-drop
                # correction and ADC results would be thrown away, so it is not computed
                y0 = xq @ self._w32
                # first with the noise's bound, then with the noise itself for the rest:
                # noise is keyed per row, so drawing it for a subset gives the same values
                sure = self._surely_saturated(y0, None, xq)
                rest = np.nonzero(~sure)[0]
                noise = self._keyed_noise(xq[rest], ids[rest], it)
                sure_r = self._surely_saturated(y0[rest], noise)
                sure[rest] = sure_r
                # only decides whether the test is worth running next time, not results
                self._presat_hits[it] = float(sure.mean())
                if not sure.any():
                    sure = None
            if sure is None:
                y, sat = self._pass(xq, ids, it, scale, y0, noise)
                done = pend
            else:
                keep_r = np.nonzero(~sure_r)[0]
                keep = rest[keep_r]
                y, sat_k = self._pass(
                    xq[keep],
                    ids[keep],
                    it,
                    scale[keep],
                    y0[keep],
                    None if noise is None else noise[keep_r],
                )
                sat = sure
                sat[keep] = sat_k
                done = pend[keep]
            if out is None and done.size == b:
                out = y
            else:
                if out is None:
                    out = np.zeros((b, self.cols), dtype=np.float32)
                out[done] = y
            passes[pend] += 1
            if last:
                break
            pend = pend[sat]
            red *= 2.0
            it += 1
        if out is None:
            out = np.zeros((b, self.cols), dtype=np.float32)
        res = np.multiply(
            out, (self.w_scale * self.drift_alpha).astype(np.float32), dtype=np.float64
        )
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
