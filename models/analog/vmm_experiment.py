"""The VMM-error experiment of the FTJ thesis §4.2.1 (after Rasch et al., ref. [43]).

Weights W ~ N(0, 1) scaled to max|W| = 1, inputs uniform on [-1, 1]; at each drift time
the relative error ||y - y_ideal||_2 / ||y_ideal||_2 over the whole batch (Frobenius
norms), mean and std over repeats, each repeat a freshly programmed array (its own
programming noise, drift exponents, read noise and output noise: repeat r uses layer id
r in every noise key).  W and x are the same for every repeat (keyed by cfg.seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from aimcflow.models import rng
from aimcflow.models.analog.tiled import TiledMatrix
from aimcflow.models.config import AcceleratorConfig


@dataclass
class VmmResult:
    drift_s: list[float]
    errors: np.ndarray  # (repeats, len(drift_s))
    scatter: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.errors.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        # sample std over repeats (ddof=1); 0 for a single repeat
        return (
            self.errors.std(axis=0, ddof=1)
            if self.errors.shape[0] > 1
            else np.zeros(self.errors.shape[1])
        )


def problem(
    cfg: AcceleratorConfig, rows: int, cols: int, vectors: int
) -> tuple[np.ndarray, np.ndarray]:
    """The experiment's W (rows, cols) and x (vectors, rows), keyed by cfg.seed."""
    w = rng.stream(cfg.seed, "weights", rows, cols).standard_normal((rows, cols))
    w /= np.abs(w).max()
    x = rng.stream(cfg.seed, "data", rows, vectors).uniform(-1.0, 1.0, (vectors, rows))
    return w, x


def relative_error(y: np.ndarray, y_ideal: np.ndarray) -> float:
    """||y - y_ideal||_2 / ||y_ideal||_2 over the whole batch."""
    return float(np.linalg.norm(y - y_ideal) / np.linalg.norm(y_ideal))


def run_vmm(
    cfg: AcceleratorConfig,
    rows: int,
    cols: int,
    vectors: int,
    drift_s: list[float],
    repeats: int,
    scatter_points: int = 20000,
    progress=None,
) -> VmmResult:
    """Run the experiment; ``progress(done, total)`` is called after each (repeat, time)."""
    w, x = problem(cfg, rows, cols, vectors)
    y_ideal = x @ w
    images = np.arange(vectors)
    errors = np.zeros((repeats, len(drift_s)))
    scatter = {}
    n_pts = min(scatter_points, y_ideal.size)
    pick = rng.stream(cfg.seed, "data", 1).choice(y_ideal.size, n_pts, replace=False)
    for r in range(repeats):
        m = TiledMatrix(w, cfg, layer=r)
        m.program()
        for k, t in enumerate(drift_s):
            m.drift(t)
            y = m.forward_float(x, images)
            errors[r, k] = relative_error(y, y_ideal)
            if r == 0:
                scatter[t] = (y_ideal.reshape(-1)[pick], y.reshape(-1)[pick])
            if progress:
                progress(r * len(drift_s) + k + 1, repeats * len(drift_s))
    return VmmResult(list(drift_s), errors, scatter)
