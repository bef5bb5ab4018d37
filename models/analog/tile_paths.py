"""The speed paths of :meth:`AnalogTile.forward_float <aimcflow.models.analog.tile.AnalogTile>`
(see that module's docstring): whether IR drop matters and its int8 products, the int8
saturation screen of a bound-management pass, and the full pass.

:class:`FloatPaths` is a base of ``AnalogTile``: its methods read the tile's programmed
state (conductances, scales, keyed-noise parameters) and write nothing but their caches.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog import fused, irdrop

IR_DROP_SKIP_LSB = 1e-3  # skip IR drop whose worst-case output change is below this many LSB
# float path: IR-drop products in int8 when provably within float32's own rounding bound
IR_DROP_INT8 = True
_U32 = 2.0**-24  # float32 unit roundoff


def _ir_c(a: np.ndarray) -> np.ndarray:
    return a * (0.5 + a * (-0.2 + 0.05 * a))


class FloatPaths:
    """Methods of :class:`~aimcflow.models.analog.tile.AnalogTile`'s float path."""

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
        # lazy: torch (~2 s)
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
        # lazy: torch (~2 s)
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
                # lazy: torch (~2 s)
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
