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

Speed paths of ``forward_float`` (tests/test_analog_tileperf.py, flows/bench_tile.py):
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
  otherwise they are float32 products.  ``IR_DROP_INT8 = False`` turns this off.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog import converters, fused, irdrop
from aimcflow.models.analog.devices import get_device
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError

IR_DROP_SKIP_LSB = 1e-3  # skip IR drop whose worst-case output change is below this many LSB
# float path: IR-drop products in int8 when provably within float32's own rounding bound
IR_DROP_INT8 = True
_U32 = 2.0**-24  # float32 unit roundoff


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
        import torch

        self._q8_t = torch.from_numpy(self._q8)

    def _ir_drop_matters(self) -> bool:
        s = self.cfg.tile.ir_drop
        self._ir_worst = np.zeros(self.cols)
        self._ir_int8 = None
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
        if IR_DROP_INT8:
            self._ir_int8 = self._ir_int8_setup(colsum)
        return True

    def _ir_int8_setup(self, colsum: np.ndarray):
        """int8 operands of the IR-drop products, or None when their error bound is not
        below the float32 rounding bound of x @ W itself (n u32 sum|x||w|, Higham's
        gamma_n, at its largest: every |x_j| = bound).

        a = |x| @ |W| becomes step A (|c| @ |qa|) and p = (x prof) @ W becomes step B
        (c @ qp), c the DAC codes (exact integers, |x_j| = step |c_j|), qa = rint(|W|/A),
        qp = rint(prof W / B) per column (A, B: column max / 127).  Each rounded weight is
        off by at most half its step, so |a~ - a| <= da = A/2 sum|c| step <= A/2 n bound
        and |p~ - p| <= dp = B/2 n bound.  With P = sum_j prof_j |w_j| bound >= |p|, p~,
        and c(t) = t (1/2 - t/5 + t^2/20) increasing and 1/2-Lipschitz on [0, 8/3]
        (c' = 1/2 - 2t/5 + 3t^2/20 lies in (0, 1/2] there), t = (n/g) a:
          |c(t~) p~ - c(t) p| <= (1/2)(n/g) da (P + dp) + c(t_max) dp,
        times ``tile.ir_drop``; float32 evaluation of the formula adds a few ulp of the
        worst case (16 u32 of it, generous).  tests/test_analog_tileperf.py checks it.
        """
        import torch

        n, b, scale = self.rows, self.cfg.dac.bound, self.cfg.tile.ir_drop
        alpha = n / self.g_ratio
        step = float(np.float32(self.input_lsb))
        prof = irdrop.profile(n)
        wp = self._w32.astype(np.float64) * prof[:, None]
        bmax = np.abs(wp).max(axis=0)
        bs = np.where(bmax > 0, bmax / 127.0, 1.0)
        qp = np.rint(wp / bs)
        a_max = colsum * b
        p_max = (np.abs(self.w_eff) * prof[:, None]).sum(axis=0) * b
        da = self._q8_err * n * b
        dp = np.abs(wp - qp * bs).max(axis=0) * n * b
        t_max = alpha * (a_max + da)
        err = scale * (0.5 * alpha * da * (p_max + dp) + _ir_c(t_max) * dp)
        err += 16 * _U32 * self._ir_worst
        # beyond t = 8/3 the Lipschitz constant 1/2 of c is not proven: no bound
        self._ir_int8_err = np.where(t_max <= 8.0 / 3.0, err, np.inf)
        self._ir_int8_ops = (
            torch.from_numpy(self._q8_abs),
            torch.from_numpy(qp.astype(np.int8)),
            step * self._q8_scale,
            step * bs,
        )
        f32_bound = n * _U32 * colsum * b
        return self._ir_int8_ops if np.all(self._ir_int8_err <= f32_bound) else None

    # ------------------------------------------------------------------ the analog MVM
    def _analog(self, xq: np.ndarray, images: np.ndarray, iteration: int) -> np.ndarray:
        """Integer path's MVM (float64) of DAC outputs xq (b, rows) with IR drop, weight
        and output noise, ADC mismatch: the analog column values just before the ADC."""
        y = xq @ self.w_eff
        if self._ir_on:
            t = self.cfg.tile
            if t.ir_drop_mode == "approx":
                y = irdrop.approx(
                    y,
                    xq,
                    self.w_eff,
                    t.ir_drop,
                    self.g_ratio,
                    self._abs_w[np.float64],
                    self._prof[np.float64],
                )
            else:
                gp, gn = self.g_now / self.g_max
                y = irdrop.exact(xq, gp, gn, self.g_ratio / t.ir_drop)
        n = self.cfg.noise
        if n.out_noise > 0 or n.w_noise > 0:
            rng.add_keyed_normal(
                y,
                self._noise_sigma(xq),
                self.cfg.seed,
                "out",
                (self.layer, self.tile, int(iteration)),
                images,
            )
        if self._mismatch:
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

    def _sigma32(self, xq: np.ndarray) -> np.ndarray:
        """``_noise_sigma`` per row as float32 (B,) (the generator's precision)."""
        sig = np.asarray(self._noise_sigma(xq), dtype=np.float32).reshape(-1)
        return np.ascontiguousarray(np.broadcast_to(sig, (xq.shape[0],)))

    def _screen(
        self, codes: np.ndarray, l1: np.ndarray, ids: np.ndarray, sigma: np.ndarray, it: int
    ) -> np.ndarray:
        """Rows (R,) bool whose ADC saturates in the full pass whatever the IR drop adds.

        Exact, not a heuristic.  ``codes @ q8`` times ``step * q8_scale`` is ``xq @ W32``
        within ``step sum|c| (q8_err + (n + 2) 2 u32 max|W32|)`` per row and column: the
        int8 rounding of the weights, float32 rounding of the exact product (gamma_n
        sum|x||w|) and of xq = c step.  The keyed noise is the very noise the full pass
        adds (keyed by image and iteration), the approximate IR-drop correction of
        column j is bounded by ``_ir_worst[j]`` (plus ``_ir_int8_err[j]`` when int8
        products compute it), and ADC gains are positive, so a column
        beyond the saturation threshold by more than these bounds saturates in the full
        pass too.  Only a pass whose result would be discarded (bound management retries
        every saturated row) may skip the full pass for these rows.
        """
        import torch

        n = self.cfg.noise
        step = float(np.float32(self.input_lsb))
        acc = torch._int_mm(torch.from_numpy(codes), self._q8_t).numpy()
        gain = self.adc_gain if self._mismatch else np.ones(self.cols)
        off = self.adc_offset_lsb * self.output_lsb if self._mismatch else np.zeros(self.cols)
        # code beyond +-cmax <=> value (y0 - IR + noise) gain + off beyond +-(cmax + 1/2)
        # LSB; solved for y0 + noise per column (gain > 0).  0.01 LSB of slack covers
        # float32 rounding of the pass's own steps (~1e-5 LSB)
        thr = (self._adc_cmax + 0.51) * self.output_lsb
        ir_bound = self._ir_worst
        if self._ir_int8 is not None:  # the int8 correction may exceed it by its error
            ir_bound = ir_bound + self._ir_int8_err
        ir = ir_bound * gain
        hi = ((thr + ir - off) / gain).astype(np.float32)
        lo = ((-thr - ir - off) / gain).astype(np.float32)
        col_err = self._q8_err + (self.rows + 2) * 2 * _U32 * self._q8_maxabs
        k0, k1 = rng.key_words(self.cfg.seed, "out", (self.layer, self.tile, int(it)))
        return fused.screen(
            acc,
            step * self._q8_scale,
            l1 * (step * (1 + 4 * _U32)),
            col_err,
            hi,
            lo,
            n.out_noise > 0 or n.w_noise > 0,
            k0,
            k1,
            ids,
            sigma,
            rng.KEYED_NORMAL_MAX * 1.001,
        )

    def _screen_worth_it(self, it: int) -> bool:
        """Whether pass ``it`` screens its rows: when it caught >= 5 % of the rows last
        time, and every 16th call anyway, since the inputs may change (e.g. one-hot
        calibration reads, which never saturate, followed by data).  Decides speed only."""
        if self._presat_hits.get(it, 1.0) >= 0.05:
            return True
        idle = self._presat_idle.get(it, 0) + 1
        self._presat_idle[it] = idle % 16
        return idle >= 16

    def _full_pass(
        self,
        xq: np.ndarray,
        codes: np.ndarray,
        abs_codes: np.ndarray,
        ids: np.ndarray,
        sigma: np.ndarray,
        scale: np.ndarray,
        it: int,
        res: np.ndarray,
        rows: np.ndarray,
        colf: np.ndarray,
    ) -> np.ndarray:
        """One float-level analog pass of R rows: MVM, IR drop, noise, ADC; writes the
        outputs (NM/BM and the column scale undone, float64) to res[rows]; returns the
        per-row saturation flags."""
        cfg = self.cfg
        t = cfg.tile
        ir_flag = False
        fa = fp = self._ones_cols
        if self._ir_on and t.ir_drop_mode == "exact":
            gp, gn = self.g_now / self.g_max
            y = irdrop.exact(xq, gp, gn, self.g_ratio / t.ir_drop).astype(np.float32)
        else:
            y = xq @ self._w32
        a = p = y  # placeholders when the kernel applies no IR drop
        if self._ir_on and t.ir_drop_mode == "approx":
            ir_flag = True
            if self._ir_int8 is not None:
                import torch

                qa, qp, fa, fp = self._ir_int8
                a = torch._int_mm(torch.from_numpy(abs_codes), qa).numpy()
                p = torch._int_mm(torch.from_numpy(codes), qp).numpy()
            else:  # irdrop.approx's float32 products; fused.pass_tail applies _apply
                a = np.abs(xq) @ self._abs_w[np.float32]
                p = np.multiply(xq, self._prof[np.float32]) @ self._w32
        n = cfg.noise
        k0, k1 = rng.key_words(cfg.seed, "out", (self.layer, self.tile, int(it)))
        gain, off = self._gain_off32
        return fused.pass_tail(
            y,
            a,
            p,
            fa,
            fp,
            ir_flag,
            np.float32(self.rows / self.g_ratio),
            np.float32(t.ir_drop),
            n.out_noise > 0 or n.w_noise > 0,
            k0,
            k1,
            ids,
            sigma,
            gain,
            off,
            np.float32(1.0) / np.float32(self.output_lsb),
            np.float32(self._adc_cmax),
            (scale * np.float32(self.output_lsb)).astype(np.float32),
            res,
            rows,
            colf,
        )

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
