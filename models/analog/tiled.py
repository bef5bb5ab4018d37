"""A matrix larger than one tile: row tiles x column tiles of :class:`AnalogTile`.

Row tiles split the inputs (their partial outputs are summed digitally, in float at the
"analog-float" level), column tiles split the outputs.  Tile ``(t_row, t_col)`` gets the
noise id ``tile = t_row * n_col_tiles + t_col`` so every tile of a layer draws its own
streams.
"""

from __future__ import annotations

import numpy as np
from aimcflow.models.analog.tile import AnalogTile
from aimcflow.models.config import AcceleratorConfig
from aimcflow.models.errors import UserInputError


def _slices(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class TiledMatrix:
    """weights (in, out) on ceil(in/tile.rows) x ceil(out/tile.cols) tiles.

    Attributes: ``tiles[t_row][t_col]``, ``row_slices``, ``col_slices``.
    """

    def __init__(self, weights: np.ndarray, cfg: AcceleratorConfig, layer: int = 0):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.size == 0:
            raise UserInputError(
                f"layer {layer}: weights must be a non-empty 2-D matrix, got shape {w.shape}"
            )
        self.shape = w.shape
        self.cfg = cfg
        self.layer = layer
        self.row_slices = _slices(w.shape[0], cfg.tile.rows)
        self.col_slices = _slices(w.shape[1], cfg.tile.cols)
        nc = len(self.col_slices)
        self.tiles = [
            [
                AnalogTile(w[rs, cs], cfg, layer=layer, tile=i * nc + j)
                for j, cs in enumerate(self.col_slices)
            ]
            for i, rs in enumerate(self.row_slices)
        ]

    def all_tiles(self):
        return [t for row in self.tiles for t in row]

    def program(self) -> None:
        for t in self.all_tiles():
            t.program()

    def drift(self, t_s: float) -> None:
        for t in self.all_tiles():
            t.drift(t_s)

    def forward_float(self, x: np.ndarray, images: np.ndarray) -> np.ndarray:
        """(B, in) -> (B, out): row-tile partial outputs summed in float."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.shape[0]:
            raise UserInputError(
                f"layer {self.layer}: input must have shape (B, {self.shape[0]}), got {x.shape}"
            )
        out = np.zeros((x.shape[0], self.shape[1]), dtype=np.float64)
        for rs, row in zip(self.row_slices, self.tiles, strict=True):
            xs = x[:, rs]
            for cs, t in zip(self.col_slices, row, strict=True):
                out[:, cs] += t.forward_float(xs, images)
        return out
