"""IR drop on the crossbar wires, two ways.

Geometry (aihwkit's): input (row) ``j = 0 .. n-1`` meets every output line; an output
(column) line is held at virtual ground by its sense amplifier at the ``j = 0`` end, and
one wire segment of conductance ``G_w`` separates neighbouring crosspoints (and crosspoint
0 from the amplifier).  Everything is in normalized units: weights are conductances in
units of g_max, inputs are voltages in units of the full-scale read voltage, and
``g_ratio = G_w / g_max`` (aihwkit's ``ir_drop_g_ratio``).

* :func:`approx` — aihwkit 1.2's fast approximation (``ForwardBackwardPassIOManaged::
  applyIrDrop``): a_i = n / g_ratio * sum_j |w_ij| |x_j|,
  c_i = a_i (0.5 - 0.2 a_i + 0.05 a_i^2), y_i -= scale * c_i * sum_j w_ij x_j (1 - (1 - j/n)^2).
* :func:`exact` — a nodal solve of the resistive network with ``scipy.sparse``: every
  column line (G+ and G- of the differential pair are separate lines) is a chain of
  nodes; the device current G_ij (x_j - v_ij) flows in at node j and out through the
  chain to the amplifier.  Row lines are ideal drivers, as in the approximation, unless
  ``row_g_ratio`` gives their segment conductance too (the row driver sits at the
  column-0 side; then the whole 2-D network is solved).  For tiles up to 256 x 256:
  the column-only system (one sparse LU of 2 m chains) takes ~3 s for 256 x 256 and 64
  vectors on this machine, the 2-D system (4 n m nodes) ~30 s.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def profile(n: int) -> np.ndarray:
    """aihwkit's IR-drop input weighting 1 - (1 - j/n)^2 for rows j = 0 .. n-1."""
    p = 1.0 - np.arange(n, dtype=np.float64) / n
    return 1.0 - p * p


def approx(
    y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    scale: float,
    g_ratio: float,
    abs_w: np.ndarray | None = None,
    prof: np.ndarray | None = None,
) -> np.ndarray:
    """aihwkit's IR-drop correction applied to ideal outputs ``y = x @ w`` (returns new y).

    x (B, n) inputs, w (n, m) effective weights (G+ - G-) / g_max.  ``|w|`` stands for
    the summed conductance on the line as in aihwkit (one line per weight).  ``abs_w``
    and ``prof`` (= ``profile(n)``) may be passed precomputed, in y's dtype.
    """
    n = w.shape[0]
    dt = y.dtype
    if abs_w is None:
        abs_w = np.abs(w).astype(dt, copy=False)
    if prof is None:
        prof = profile(n).astype(dt)
    a = np.abs(x) @ abs_w
    p = (x * prof) @ w
    return _apply(y, a, p, n, scale, g_ratio)


def _apply(
    y: np.ndarray, a: np.ndarray, p: np.ndarray, n: int, scale: float, g_ratio: float
) -> np.ndarray:
    """y - scale c(a n / g_ratio) p, in place on a and p (returns p); the operations and
    their order are those of the formula, so in-place evaluation rounds identically.
    The float path's compiled kernel (``fused.ir_drop_rows``) performs the same float32
    operations in the same order (tests/test_analog_tileperf.py: bit for bit)."""
    dt = y.dtype.type
    a *= dt(n / g_ratio)
    c = np.multiply(a, dt(0.05))
    c += dt(-0.2)
    c *= a
    c += dt(0.5)
    c *= a
    c *= p
    c *= dt(scale)
    return np.subtract(y, c, out=p)


def _column_system(g: np.ndarray, g_w: float) -> sp.csc_matrix:
    """Nodal matrix of all column lines: g (n, L) device conductances, node (j, l)."""
    n, lines = g.shape
    # Laplacian of a chain with a grounded segment at node 0: diag 2 G_w (1 G_w at the far
    # end), off-diagonals -G_w; plus the device conductance to the (driven) row.
    main = np.full((lines, n), 2.0 * g_w)
    main[:, -1] = g_w
    main += g.T
    off = np.full((lines, n - 1), -g_w)
    offs = np.concatenate([off, np.zeros((lines, 1))], axis=1).reshape(-1)[:-1]
    return sp.diags([main.reshape(-1), offs, offs], [0, 1, -1], format="csc")


def exact(
    x: np.ndarray,
    g_pos: np.ndarray,
    g_neg: np.ndarray,
    g_ratio: float,
    row_g_ratio: float | None = None,
) -> np.ndarray:
    """Outputs (B, m) of the resistive crossbar with wire resistance, in normalized units.

    x (B, n) row voltages; g_pos, g_neg (n, m) conductances in units of g_max; column
    segment conductance ``g_ratio``; rows ideal unless ``row_g_ratio`` is given.  Output
    m is the current of line G+ minus line G- into the amplifiers.
    """
    x = np.asarray(x, dtype=np.float64)
    n, m = g_pos.shape
    g = np.concatenate([g_pos, g_neg], axis=1).astype(np.float64)  # (n, 2m): lines
    lines = 2 * m
    if row_g_ratio is None:
        a = _column_system(g, g_ratio)
        rhs = (g.T[None, :, :] * x[:, None, :]).reshape(x.shape[0], -1).T  # (L*n, B)
        v = spla.splu(a).solve(np.ascontiguousarray(rhs))
        v = v.T.reshape(x.shape[0], lines, n)
        i_line = g_ratio * v[:, :, 0]  # current through the segment into the amplifier
    else:
        i_line = _exact_2d(x, g, g_ratio, row_g_ratio)
    return i_line[:, :m] - i_line[:, m:]


def _exact_2d(x: np.ndarray, g: np.ndarray, g_col: float, g_row: float) -> np.ndarray:
    """Full 2-D network: row nodes r(j, l) and column nodes c(j, l); returns line currents."""
    n, lines = g.shape
    nn = n * lines
    rid = np.arange(nn).reshape(n, lines)  # row node (j, l)
    cid = nn + rid  # column node (j, l)
    rows, cols, vals = [], [], []

    def stamp_vec(i, j, gval):
        gv = np.broadcast_to(gval, i.shape).reshape(-1)
        i = i.reshape(-1)
        j = j.reshape(-1)
        rows.append(np.concatenate([i, j, i, j]))
        cols.append(np.concatenate([i, j, j, i]))
        vals.append(np.concatenate([gv, gv, -gv, -gv]))

    stamp_vec(rid, cid, g)  # devices
    stamp_vec(rid[:, :-1], rid[:, 1:], np.float64(g_row))  # row wires along l
    stamp_vec(cid[:-1, :], cid[1:, :], np.float64(g_col))  # column wires along j
    diag_extra = np.zeros(2 * nn)
    diag_extra[rid[:, 0]] += g_row  # driver segment of each row
    diag_extra[cid[0, :]] += g_col  # amplifier segment of each line
    a = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * nn, 2 * nn)
    ).tocsc() + sp.diags(diag_extra, format="csc")
    rhs = np.zeros((2 * nn, x.shape[0]))
    rhs[rid[:, 0], :] = g_row * x.T
    v = spla.splu(a).solve(rhs)
    return (g_col * v[cid[0, :], :]).T
