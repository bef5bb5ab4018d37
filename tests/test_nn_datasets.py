"""User data sets: .npz (flat, NCHW, NHWC; normalization) and CIFAR python-version
directories made here; every kind of bad data exits 2 with no output."""

import pickle

import numpy as np
import pytest
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.datasets import Normalization, load_user_dataset
from flow_helpers import cli

U = 2.0**-24
"""float32 unit roundoff.  uint8 images load as ``float32(x) * float32(1/255)`` (two
roundings) and the reference ``x / float32(255)`` rounds once: they agree to ``3 U``
relatively."""
UINT8_RTOL = 3 * U


def _images(n, seed, classes=3, shape=(3, 8, 8)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_nchw_and_nhwc_uint8_agree_and_scale_to_unit(tmp_path):
    x, y = _images(12, 0)
    xt, yt = _images(4, 1)
    a = load_user_dataset(_npz(tmp_path / "a.npz", x_train=x, y_train=y, x_test=xt, y_test=yt))
    b = load_user_dataset(
        _npz(
            tmp_path / "b.npz",
            x_train=x.transpose(0, 2, 3, 1),
            y_train=y,
            x_test=xt.transpose(0, 2, 3, 1),
            y_test=yt,
        )
    )
    assert a.input_shape == b.input_shape == (3, 8, 8)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_allclose(a.x_train, x / np.float32(255), rtol=UINT8_RTOL)


def test_normalization_from_file_and_flags(tmp_path):
    x, y = _images(12, 0)
    xt, yt = _images(4, 1)
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.3])
    p = _npz(tmp_path / "n.npz", x_train=x, y_train=y, x_test=xt, y_test=yt, mean=mean, std=std)
    d = load_user_dataset(p)
    want = (x / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    # float32 (x s - mean) / std against float64: |x s| <= 1 carries 2 U, mean (<= 0.5)
    # 0.5 U, the difference (<= 0.7) 0.7 U; / std (>= 0.2) makes that 16 U, and std's and
    # the division's roundings on |y| <= 2.5 add 5 U: 21 U ~ 1.3e-6 absolute
    np.testing.assert_allclose(d.x_train, want, rtol=0, atol=21 * U)
    d2 = load_user_dataset(p, Normalization(scale=1.0, mean=(0.0,), std=(1.0,)))  # flags win
    np.testing.assert_array_equal(d2.x_train, x.astype(np.float32))


def _cifar_batch(path, n, seed, label_key, classes):
    x, y = _images(n, seed, classes, (3, 32, 32))
    batch = {
        b"batch_label": b"test",
        label_key: [int(v) for v in y],
        b"data": x.reshape(n, -1),
        b"filenames": [b"f%d.png" % i for i in range(n)],
    }
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return x, y


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_directory(tmp_path, kind):
    if kind == "cifar10":
        names, test, key, classes = (
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
            b"labels",
            10,
        )
    else:
        names, test, key, classes = ["train"], "test", b"fine_labels", 100
    parts = [_cifar_batch(tmp_path / f, 4, i, key, classes) for i, f in enumerate(names)]
    xt, yt = _cifar_batch(tmp_path / test, 3, 99, key, classes)
    d = load_user_dataset(tmp_path)
    assert d.input_shape == (3, 32, 32) and len(d.y_train) == 4 * len(names)
    np.testing.assert_array_equal(d.y_train, np.concatenate([b for _, b in parts]))
    np.testing.assert_allclose(d.x_test, xt / np.float32(255), rtol=UINT8_RTOL)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_cifar_pickle_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for f in ("train", "test"):
        with open(tmp_path / f, "wb") as fh:
            pickle.dump({b"data": _Evil(), b"fine_labels": [0]}, fh, protocol=2)
    with pytest.raises(
        UserInputError, match="posix.system is not allowed|os.system is not allowed"
    ):
        load_user_dataset(tmp_path)
    assert not (tmp_path / "pwned.txt").exists()


def _good_flat():
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.random((30, 64)),
        y_train=np.arange(30) % 10,
        x_test=rng.random((8, 64)),
        y_test=np.arange(8) % 10,
    )


BAD = [
    (lambda a: a.update(y_train=a["y_train"][:-1]), "one label per image"),
    (lambda a: a.update(y_test=np.full(8, 10**9)), "holds label 1000000000"),
    (lambda a: a.update(y_train=-np.ones(30, dtype=int)), "holds label -1"),
    (lambda a: a.update(x_test=np.ones((8, 63))), "must match"),
    (lambda a: a.update(x_train=np.full((30, 64), np.nan)), "NaN"),
    (lambda a: a.update(y_train=np.zeros(30, dtype=int)), "single class"),
    (lambda a: a.update(x_test=np.zeros((0, 64)), y_test=np.zeros(0, dtype=int)), "empty split"),
    (lambda a: a.update(x_train=np.ones((30, 5, 5, 5))), "cannot tell NCHW from NHWC"),
]


@pytest.mark.parametrize("change, words", BAD)
@pytest.mark.parametrize("command", ["run", "fit", "sweep"])
def test_bad_data_exits_2_without_output(tmp_path, capsys, monkeypatch, change, words, command):
    monkeypatch.chdir(tmp_path)
    arrays = _good_flat()
    change(arrays)
    _npz(tmp_path / "d.npz", **arrays)
    extra = {
        "run": ["--model", "digits-mlp"],
        "fit": ["--model", "digits-mlp", "--epochs", "1"],
        "sweep": ["--model", "digits-mlp", "--set", "adc.bits=6"],
    }[command]
    assert cli(command, *extra, "--data", "d.npz", "--out", "o") == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_shape_that_does_not_fit_the_model_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arrays = _good_flat()
    arrays.update(x_train=np.random.default_rng(0).random((30, 10)), x_test=np.ones((8, 10)))
    _npz(tmp_path / "d.npz", **arrays)
    assert (
        cli("fit", "--model", "digits-cnn", "--epochs", "1", "--data", "d.npz", "--out", "o") == 2
    )
    assert "needs flat square images" in capsys.readouterr().err
    assert cli("run", "--model", "resnet20", "--data", "d.npz", "--out", "o") == 2
    assert "resnet20 needs (channels, height, width) images" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
