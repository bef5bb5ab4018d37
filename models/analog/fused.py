"""Compiled (numba) kernels of the analog tile's float path: THE implementation of the
keyed normal generator, the float DAC, the elementwise tail of an analog pass (IR-drop
correction, keyed noise, ADC gain/offset mismatch, ADC rounding/clipping/saturation,
rescale) and the "surely saturated" screen of bound management's first pass.

Why compiled: numpy runs each elementwise step as its own pass over a (batch, cols)
array; here one pass per row keeps the row in L1 (tests/test_analog_tileperf.py,
flows/bench/tile.py).  Kernels are single-threaded and compiled without fast-math, so
every float32 operation rounds as the same numpy expression would (LLVM does not fuse
multiply-add without the ``contract`` flag): the order of operations written here IS
the rounding the model specifies.

Keyed normals (``models/rng.py`` documents the key schedule): word k of row r is
``mix(base_r + (k+1) * GOLDEN)``, ``base_r = mix(r * GOLDEN + k0) ^ k1`` (SplitMix64's
finalizer ``mix``); its top 24 bits give u1 = (b + 1) 2**-24 in (0, 1], its low 24 bits
u2 = b 2**-24 in [0, 1); Box-Muller in float32: r = sqrt(-2 log u1), phi = 2 pi u2
(both float32 operations), z = r cos(phi) (element k) and r sin(phi) (element
ceil(size/2) + k).  log, cos and sin are evaluated in float64 by the polynomial kernels
below (vectorizable, unlike libm calls; error < 1e-15) and rounded to float32 once, so
they are the correctly rounded float32 values except at near-ties, where they may be one
ulp off (tests/test_analog_tileperf.py checks them against numpy's float64 functions);
numpy's own float32 log/cos/sin, which the numpy version of this generator used, differ
from these by a few ulp.  Kernels that divide are compiled with ``error_model="numpy"``
(no zero-division check), without which LLVM does not vectorize them.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
_LOW24 = np.uint64(0xFFFFFF)
_ONE_U = np.uint64(1)
_U24 = np.float32(2.0**-24)
_TWO_PI32 = np.float32(2.0 * np.pi)
_F32_HALF = np.float32(0.5)
_F32_M2 = np.float32(-2.0)
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)

# float64 constants of the log / sin / cos kernels
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: e * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_PIO2_1 = 1.57079632673412561417e00  # fdlibm's pi/2 split: q * _PIO2_1 exact for small q
_PIO2_1T = 6.07710050650619224932e-11
_INV_PIO2 = 6.36619772367581382433e-01
_MANT = np.int64((1 << 52) - 1)
_EXP_ONE = np.int64(1023 << 52)


def _bitcast(src, dst, ir_type):
    """A numba intrinsic reinterpreting the bits of a ``src`` scalar as ``dst``."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_type)

        return dst(src), codegen

    return cast


_f64_as_i64 = _bitcast(types.float64, types.int64, ir.IntType(64))
_i64_as_f64 = _bitcast(types.int64, types.float64, ir.DoubleType())
_f32_as_i32 = _bitcast(types.float32, types.int32, ir.IntType(32))
_i32_as_f32 = _bitcast(types.int32, types.float32, ir.FloatType())


@njit(inline="always", error_model="numpy")
def _log64(x):
    """ln x for normal x > 0, float64, |rel. error| < 1e-15: x = 2**e f, f in
    [sqrt(1/2), sqrt(2)), ln f = 2 atanh(s), s = (f-1)/(f+1), |s| <= 0.1716, series to s**17
    (remainder < 0.0295**9 / 19 < 1e-15)."""
    b = _f64_as_i64(x)
    e = (b >> 52) - 1023
    f = _i64_as_f64((b & _MANT) | _EXP_ONE)
    big = f > _SQRT2
    f = f * 0.5 if big else f
    e = e + 1 if big else e
    s = (f - 1.0) / (f + 1.0)
    s2 = s * s
    poly = 1.0 / 17.0
    poly = poly * s2 + 1.0 / 15.0
    poly = poly * s2 + 1.0 / 13.0
    poly = poly * s2 + 1.0 / 11.0
    poly = poly * s2 + 1.0 / 9.0
    poly = poly * s2 + 1.0 / 7.0
    poly = poly * s2 + 1.0 / 5.0
    poly = poly * s2 + 1.0 / 3.0
    poly = poly * s2 + 1.0
    ef = np.float64(e)
    return ef * _LN2_HI + (2.0 * s * poly + ef * _LN2_LO)


@njit(inline="always", error_model="numpy")
def _sincos64(x):
    """(sin x, cos x) for 0 <= x < 8, float64, |error| < 1e-15: x = q pi/2 + d with
    |d| <= pi/4 (Cody-Waite, q < 6), Taylor series of sin d to d**15, cos d to d**16."""
    qf = np.floor(x * _INV_PIO2 + 0.5)
    d = (x - qf * _PIO2_1) - qf * _PIO2_1T
    d2 = d * d
    sp = -1.0 / 1307674368000.0
    sp = sp * d2 + 1.0 / 6227020800.0
    sp = sp * d2 - 1.0 / 39916800.0
    sp = sp * d2 + 1.0 / 362880.0
    sp = sp * d2 - 1.0 / 5040.0
    sp = sp * d2 + 1.0 / 120.0
    sp = sp * d2 - 1.0 / 6.0
    sn = d + d * d2 * sp
    cp = 1.0 / 20922789888000.0
    cp = cp * d2 - 1.0 / 87178291200.0
    cp = cp * d2 + 1.0 / 479001600.0
    cp = cp * d2 - 1.0 / 3628800.0
    cp = cp * d2 + 1.0 / 40320.0
    cp = cp * d2 - 1.0 / 720.0
    cp = cp * d2 + 1.0 / 24.0
    cp = cp * d2 - 0.5
    cs = 1.0 + d2 * cp
    q = np.int64(qf) & 3
    s_out = cs if (q & 1) else sn
    c_out = sn if (q & 1) else cs
    s_out = -s_out if (q >= 2) else s_out
    c_out = -c_out if (q == 1 or q == 2) else c_out
    return s_out, c_out


@njit(inline="always", error_model="numpy")
def _mix(z):
    """SplitMix64's finalizer (uint64, multiplications wrap mod 2**64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", error_model="numpy")
def row_base(row, k0, k1):
    """Per-row base word of the keyed stream: mix(row * GOLDEN + k0) ^ k1."""
    return _mix(np.uint64(row) * _GOLDEN + k0) ^ k1


@njit(inline="always", error_model="numpy")
def _word_normals(base, k, sigma):
    """(f32(r sigma), cos phi, sin phi) of word k: the float32 operations of the rule."""
    bits = _mix(base + np.uint64(k + 1) * _GOLDEN)
    u1 = np.float32((bits >> _S40) + _ONE_U) * _U24
    u2 = np.float32(bits & _LOW24) * _U24
    lg = np.float32(_log64(np.float64(u1)))
    r = np.sqrt(lg * _F32_M2)
    phi = u2 * _TWO_PI32
    sn, cs = _sincos64(np.float64(phi))
    return r * sigma, np.float32(cs), np.float32(sn)


@njit(inline="always", error_model="numpy")
def _fill_row(buf, base, half, sigma):
    """buf[k] = f32(r sigma) cos(phi_k), buf[half + k] = f32(r sigma) sin(phi_k), k < half
    (float32 products); buf has 2 * half elements."""
    for k in range(half):
        rs, cs, sn = _word_normals(base, k, sigma)
        buf[k] = rs * cs
        buf[half + k] = rs * sn


@njit(inline="always", error_model="numpy")
def _normal_at(base, k, half, sigma):
    """Element k of the row ``_fill_row`` fills (the same operations, one element)."""
    w = k if k < half else k - half
    rs, cs, sn = _word_normals(base, w, sigma)
    return rs * cs if k < half else rs * sn


@njit(cache=True, error_model="numpy")
def keyed_bits_into(out, rows, k0, k1):
    """out[i, k] = word k of row id rows[i] (uint64)."""
    for i in range(out.shape[0]):
        base = row_base(rows[i], k0, k1)
        for k in range(out.shape[1]):
            out[i, k] = _mix(base + np.uint64(k + 1) * _GOLDEN)


@njit(cache=True, error_model="numpy")
def add_keyed_normal_into(y, rows, k0, k1, sigma):
    """y[i, :] += the first y.shape[1] keyed normals of row rows[i], scaled by sigma[i]
    (float32 noise added in y's dtype)."""
    m = y.shape[1]
    half = (m + 1) // 2
    buf = np.empty(2 * half, dtype=np.float32)
    for i in range(y.shape[0]):
        _fill_row(buf, row_base(rows[i], k0, k1), half, sigma[i])
        for k in range(m):
            y[i, k] += buf[k]


# ---------------------------------------------------------------------------- the DAC
@njit(cache=True, error_model="numpy")
def absmax_rows(x):
    """max_j |float32(x[i, j])| per row (float32).  The maximum is taken over the bit
    patterns as int32 (for floats >= 0 their order is the numbers' order): an integer
    reduction vectorizes, a float max (NaN rules) does not."""
    s = np.zeros(x.shape[0], dtype=np.float32)
    for i in range(x.shape[0]):
        m = np.int32(0)
        for j in range(x.shape[1]):
            m = max(m, _f32_as_i32(abs(np.float32(x[i, j]))))
        s[i] = _i32_as_f32(m)
    return s


@njit(cache=True, error_model="numpy")
def dac(x, rows, prescale, step, bound, cmax, xq, codes, abs_codes):
    """Float DAC of rows ``rows`` of x (converted to float32 first), prescale (R,) float32:
    xq = clip(floor(x * f32(prescale / step) + 1/2) * step, -bound, bound) (float32, the
    aihwkit quantizer in float32 operations), codes = the same rounded value clipped to
    +-cmax as int8, abs_codes = |codes|.  Returns per row sum |codes| (int64)."""
    n = x.shape[1]
    l1 = np.zeros(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        r = rows[i]
        f = prescale[i] / step
        acc = 0
        for j in range(n):
            q = np.floor(np.float32(x[r, j]) * f + _F32_HALF)
            v = q * step
            xq[i, j] = min(max(v, -bound), bound)
            c = np.int32(min(max(q, -cmax), cmax))
            codes[i, j] = np.int8(c)
            a = abs(c)
            abs_codes[i, j] = np.int8(a)
            acc += a
        l1[i] = acc
    return l1


# ---------------------------------------------------------------------------- pass tail
@njit(inline="always", error_model="numpy")
def _ir_row(buf, y, a, p, fa, fp, n_over_g, ir_scale):
    """buf = y - aihwkit's IR-drop correction, in irdrop._apply's float32 operations and
    order (bit-for-bit tested), from a = f32(a fa), p = f32(p fp)."""
    for k in range(y.shape[0]):
        av = np.float32(a[k] * fa[k]) * n_over_g
        pv = np.float32(p[k] * fp[k])
        c = av * np.float32(0.05)
        c = c + np.float32(-0.2)
        c = c * av
        c = c + _F32_HALF
        c = c * av
        c = c * pv
        c = c * ir_scale
        buf[k] = y[k] - c


@njit(cache=True, error_model="numpy")
def ir_drop_rows(y, a, p, fa, fp, n_over_g, ir_scale):
    """``y - IR`` for every row (float32 (R, m)), as ``pass_tail`` computes it."""
    out = np.empty(y.shape, dtype=np.float32)
    for i in range(y.shape[0]):
        _ir_row(out[i], y[i], a[i], p[i], fa, fp, n_over_g, ir_scale)
    return out


@njit(inline="always", error_model="numpy")
def _adc_row(v_in, z, gain, off, inv_lsb, cmax, rowscale, out, colf):
    """ADC of one row: returns the number of codes beyond +-cmax (before clipping)."""
    n_sat = 0
    for k in range(v_in.shape[0]):
        v = v_in[k] + z[k]
        v = v * gain[k]
        v = v + off[k]
        v = np.floor(v * inv_lsb + _F32_HALF)
        n_sat += (v > cmax) | (v < -cmax)
        v = min(max(v, -cmax), cmax)
        out[k] = np.float64(v * rowscale) * np.float64(colf[k])
    return n_sat


@njit(cache=True, error_model="numpy")
def pass_tail(
    y,
    a,
    p,
    fa,
    fp,
    ir_on,
    n_over_g,
    ir_scale,
    noise_on,
    k0,
    k1,
    ids,
    sigma,
    gain,
    off,
    inv_lsb,
    cmax,
    rowscale,
    out,
    out_rows,
    colf,
):
    """The elementwise end of an analog pass, for R rows, in one sweep per row:

    v = y - IR  (aihwkit's correction from a = f32(a fa) and p = f32(p fp): int32
    accumulators of the int8 products times their column scales, or float32 products with
    fa = fp = 1), v += keyed noise (row ids, std sigma), v = v gain + off (ADC mismatch),
    code = floor(v inv_lsb + 1/2), saturated when beyond +-cmax, clipped;
    out[out_rows[i]] = float64(code * rowscale[i]) * float64(colf)  (codes -> output units
    -> NM/BM undone, then the digital column scale in float64).  Returns sat (R,) bool.
    y, a, p (R, m); fa, fp (m,) float64; gain, off, colf (m,) float32; sigma, rowscale (R,).
    Without noise, zeros are added (x + 0 rounds to x; a -0 becomes +0, the same code).
    """
    r_n, m = y.shape
    half = (m + 1) // 2
    z = np.zeros(2 * half, dtype=np.float32)
    buf = np.empty(m, dtype=np.float32)
    sat = np.zeros(r_n, dtype=np.bool_)
    for i in range(r_n):
        if noise_on:
            _fill_row(z, row_base(ids[i], k0, k1), half, sigma[i])
        if ir_on:
            _ir_row(buf, y[i], a[i], p[i], fa, fp, n_over_g, ir_scale)
            src = buf
        else:
            src = y[i]
        n_sat = _adc_row(src, z, gain, off, inv_lsb, cmax, rowscale[i], out[out_rows[i]], colf)
        sat[i] = n_sat > 0
    return sat


@njit(cache=True, error_model="numpy")
def screen(acc, col_scale, l1, col_err, hi, lo, noise_on, k0, k1, ids, sigma, zmax):
    """Rows (R,) bool that surely saturate, from an approximate product.

    ``acc * col_scale`` (float64) approximates the analog pass's ``xq @ W`` within
    ``l1 * col_err`` (per row and column; the caller derives that bound); a row is surely
    saturated when some column exceeds ``hi`` (or falls below ``lo``) by more than it,
    with the row's keyed noise added: first against the noise's bound ``zmax * sigma``,
    then, only for the rows that test leaves open, with the noise itself.
    """
    r_n, m = acc.shape
    half = (m + 1) // 2
    sure = np.zeros(r_n, dtype=np.bool_)
    for i in range(r_n):
        zb = zmax * sigma[i] if noise_on else 0.0
        row = acc[i]
        li = l1[i]
        hits = 0
        for k in range(m):
            v = row[k] * col_scale[k]
            e = li * col_err[k] + zb
            hits += (v - e >= hi[k]) | (v + e <= lo[k])
        if hits == 0 and noise_on:
            # the noise itself, drawn only for the columns the bound left open
            base = row_base(ids[i], k0, k1)
            for k in range(m):
                v = row[k] * col_scale[k]
                e = li * col_err[k]
                if v + e + zb >= hi[k] or v - e - zb <= lo[k]:
                    zk = _normal_at(base, k, half, sigma[i])
                    if (v - e) + zk >= hi[k] or (v + e) + zk <= lo[k]:
                        hits = 1
                        break
        sure[i] = hits > 0
    return sure
