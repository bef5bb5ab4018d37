"""Data sets for the reference workloads.

The default is scikit-learn's ``load_digits`` (1797 handwritten 8x8 digits shipped inside
the package: nothing is downloaded), split 80/20 stratified with seed 0, pixels scaled
from 0..16 to [0, 1].  Users bring their own data as an ``.npz`` or a CIFAR directory
(:mod:`aimcflow.models.nn.datasets`, which validates them fully).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aimcflow.models.errors import UserInputError

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
    def input_shape(self) -> tuple[int, ...]:
        """Per-image shape: (features,) flat, or (channels, height, width)."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

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


def load_dataset(spec: str | Path | None = None, norm=None) -> Dataset:
    """``None`` or ``"digits"``: the built-in digits split; otherwise a user's data set
    (an ``.npz`` or a CIFAR python-version directory, :mod:`aimcflow.models.nn.datasets`),
    ``norm`` a :class:`~aimcflow.models.nn.datasets.Normalization` from the flags."""
    if spec is None or str(spec) == "digits":
        return load_digits_dataset()
    from aimcflow.models.nn.datasets import load_user_dataset

    return load_user_dataset(spec, norm)


def load_npz_dataset(path: str | Path, norm=None) -> Dataset:
    """A user's ``.npz`` (see :func:`aimcflow.models.nn.datasets.load_npz`)."""
    from aimcflow.models.nn.datasets import load_npz

    return load_npz(path, norm)
