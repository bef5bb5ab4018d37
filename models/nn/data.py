"""Data sets for the reference workloads.

The default is scikit-learn's ``load_digits`` (1797 handwritten 8x8 digits shipped inside
the package: nothing is downloaded), split 80/20 stratified with seed 0, pixels scaled
from 0..16 to [0, 1].  Users may bring their own data as an ``.npz`` holding
``x_train, y_train, x_test, y_test``; :func:`load_npz_dataset` validates it fully.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.npzfile import load_npz

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays: ``x`` float32 (N, features) in [0, 1] for digits, ``y`` int64 labels
    in ``0..n_classes-1``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def test_images(self, images: int | None) -> int:
        """How many test images ``--images`` asks for (None: the whole test split)."""
        n_test = len(self.x_test)
        if images is None:
            return n_test
        if images > n_test:
            raise UserInputError(
                f"--images {images}: the test split has only {n_test} images; give 1..{n_test}"
            )
        return images


def load_digits_dataset() -> Dataset:
    """scikit-learn digits, stratified 80/20 split (seed 0), pixels scaled to [0, 1]."""
    # lazy: scikit-learn (~1 s)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # digits pixels are integers 0..16
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return Dataset("digits", x_tr, y_tr, x_te, y_te, n_classes=10)


_FIELDS = ("x_train", "y_train", "x_test", "y_test")


def load_npz_dataset(path: str | Path) -> Dataset:
    """A user's data set: ``.npz`` with ``x_train (N, F)``, ``y_train (N,)``, ``x_test (M, F)``,
    ``y_test (M,)``; x finite floats, y integer class labels >= 0.  Any problem is a
    :class:`UserInputError` naming the field and what is allowed."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"data '{p}': no such file; give an .npz with {', '.join(_FIELDS)}")
    arrays = load_npz(p, f"data '{p}'")
    missing = [f for f in _FIELDS if f not in arrays]
    if missing:
        raise UserInputError(
            f"data '{p}': missing field(s) {', '.join(missing)}; required: {', '.join(_FIELDS)}"
        )
    x_tr, y_tr, x_te, y_te = (arrays[f] for f in _FIELDS)
    for name, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserInputError(
                f"data '{p}': {name} has shape {x.shape}; need (N, features), N >= 1"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise UserInputError(
                f"data '{p}': {name} has dtype {x.dtype}; need a float or integer array"
            )
        if not np.all(np.isfinite(x)):
            raise UserInputError(f"data '{p}': {name} contains NaN or Inf")
    if x_tr.shape[1] != x_te.shape[1]:
        raise UserInputError(
            f"data '{p}': x_train has {x_tr.shape[1]} features, "
            f"x_test {x_te.shape[1]}; they must match"
        )
    for name, y, x in (("y_train", y_tr, x_tr), ("y_test", y_te, x_te)):
        if not np.issubdtype(y.dtype, np.integer):
            raise UserInputError(f"data '{p}': {name} has dtype {y.dtype}; need integer labels")
        if y.shape != (x.shape[0],):
            raise UserInputError(f"data '{p}': {name} has shape {y.shape}; need ({x.shape[0]},)")
        if y.min() < 0:
            raise UserInputError(
                f"data '{p}': {name} has a negative label; labels are 0..classes-1"
            )
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(
        p.stem,
        x_tr.astype(np.float32),
        y_tr.astype(np.int64),
        x_te.astype(np.float32),
        y_te.astype(np.int64),
        n_classes,
    )


def load_dataset(spec: str | Path | None = None) -> Dataset:
    """``None`` or ``"digits"``: the built-in digits split; otherwise a path to an ``.npz``."""
    if spec is None or str(spec) == "digits":
        return load_digits_dataset()
    return load_npz_dataset(spec)
