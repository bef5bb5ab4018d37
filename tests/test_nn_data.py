"""Data loading: the digits split and the validation of a user's .npz."""

import numpy as np
import pytest
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.data import load_dataset, load_digits_dataset, load_npz_dataset


def test_digits_split_is_stratified_80_20_in_unit_range():
    d = load_digits_dataset()
    n = len(d.x_train) + len(d.x_test)
    assert n == 1797  # the size of scikit-learn's digits
    assert len(d.x_test) == int(np.ceil(0.2 * n))  # sklearn rounds the test share up
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1 and d.x_train.max() == 1
    # stratified: every class's test share is within one image of 20 % of the class
    for c in range(10):
        total = np.sum(d.y_train == c) + np.sum(d.y_test == c)
        assert abs(np.sum(d.y_test == c) - 0.2 * total) <= 1
    again = load_digits_dataset()  # seed 0 makes the split reproducible
    np.testing.assert_array_equal(d.y_test, again.y_test)


def _save(tmp_path, **arrays):
    p = tmp_path / "data.npz"
    np.savez(p, **arrays)
    return p


def _good():
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.random((20, 4)),
        y_train=rng.integers(0, 3, 20),
        x_test=rng.random((5, 4)),
        y_test=rng.integers(0, 3, 5),
    )


def test_user_npz_roundtrip(tmp_path):
    good = _good()
    d = load_dataset(_save(tmp_path, **good))
    assert (
        d.n_features == 4
        and d.n_classes == int(max(good["y_train"].max(), good["y_test"].max())) + 1
    )
    np.testing.assert_allclose(d.x_test, good["x_test"].astype(np.float32))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda a: a.pop("y_test"), "missing field"),
        (lambda a: a.update(x_test=np.ones((5, 3))), "features"),
        (lambda a: a.update(y_train=np.ones(20) * 0.5), "integer labels"),
        (lambda a: a.update(y_train=np.ones(19, dtype=int)), "shape"),
        (lambda a: a.update(y_test=-np.ones(5, dtype=int)), "negative label"),
        (lambda a: a.update(x_train=np.full((20, 4), np.nan)), "NaN"),
        (lambda a: a.update(x_train=np.ones(20)), "shape"),
    ],
)
def test_user_npz_errors_name_the_problem(tmp_path, change, words):
    arrays = _good()
    change(arrays)
    with pytest.raises(UserInputError, match=words):
        load_npz_dataset(_save(tmp_path, **arrays))


def test_user_npz_not_a_file(tmp_path):
    with pytest.raises(UserInputError, match="no such file"):
        load_npz_dataset(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(UserInputError, match="not an .npz archive"):
        load_npz_dataset(bad)
