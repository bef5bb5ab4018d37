"""Users' data sets (``--data PATH``): an ``.npz`` or a CIFAR "python version" directory.

``.npz``: ``x_train, y_train, x_test, y_test``.  ``x`` is (N, features) flat, (N, H, W)
(one channel), or images (N, C, H, W) ("NCHW") or (N, H, W, C) ("NHWC"), uint8 or float;
the layout is told by an optional ``layout`` field ("NCHW"/"NHWC"), by ``--data-layout``,
or guessed when exactly one of the two places holds 1, 3 or 4 channels.  ``y`` are
integer labels ``0 .. classes - 1``.  Normalization ``x = (x * scale - mean) / std``
(``mean``/``std`` one value or one per channel): optional fields ``scale``, ``mean``,
``std`` in the file, each overridden by ``--data-scale``/``--data-mean``/``--data-std``;
by default ``scale`` is 1/255 for uint8 and 1 for float data, ``mean`` 0, ``std`` 1.

CIFAR-10 (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) or CIFAR-100 (``train``,
``test``; fine labels) directory: those files are pickles; they are read with an
unpickler that admits only the numpy array reconstruction and builtin types they
contain (never code), and must hold ``data`` (N, 3072) uint8 and ``labels`` /
``fine_labels``.  Pixels are scaled to [0, 1] unless the flags say otherwise.

Bounds, checked before any large allocation: at most :data:`MAX_IMAGES` images per split,
:data:`MAX_IMAGE_VALUES` values per image, labels below :data:`MAX_CLASSES`, files up to
:data:`MAX_FILE_BYTES`.  Every problem (mismatched lengths, a label out of range, NaN or
Inf, a single class, an empty split, an unknown layout) is a :class:`UserInputError`
naming the field and what is allowed.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.data import Dataset, load_digits_dataset
from aimcflow.models.npzfile import load_npz as read_npz

FIELDS = ("x_train", "y_train", "x_test", "y_test")
MAX_IMAGES = 2_000_000  # per split
MAX_IMAGE_VALUES = 3 * 512 * 512  # values per image
MAX_CLASSES = 100_000
MAX_FILE_BYTES = 8 << 30
LAYOUTS = ("auto", "nchw", "nhwc")
CIFAR10 = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels")
CIFAR100 = (["train"], ["test"], b"fine_labels")


@dataclass(frozen=True)
class Normalization:
    """Flags that override the file: layout, scale and per-channel mean/std (None: the
    file's value or the default)."""

    layout: str = "auto"
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def load_user_dataset(spec: str | Path, norm: Normalization | None = None) -> Dataset:
    """An ``.npz`` file or a CIFAR directory (see the module docstring)."""
    p = Path(spec)
    if p.is_dir():
        return load_cifar_dir(p, norm)
    return load_npz(p, norm)


# ----------------------------------------------------------------------------- .npz
def load_npz(path: str | Path, norm: Normalization | None = None) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise UserInputError(
            f"data '{p}': no such file or directory; give an .npz with {', '.join(FIELDS)} "
            "or a CIFAR-10/100 python-version directory"
        )
    _check_size(p)

    def check(headers: dict) -> None:  # before any array is read: fields and sizes
        missing = [f for f in FIELDS if f not in headers]
        if missing:
            raise UserInputError(
                f"data '{p}': missing field(s) {', '.join(missing)}; required: {', '.join(FIELDS)}"
            )
        for name in ("x_train", "x_test"):
            shape = headers[name][0]
            if shape and (shape[0] > MAX_IMAGES or math.prod(shape[1:]) > MAX_IMAGE_VALUES):
                raise UserInputError(
                    f"data '{p}': {name} has shape {shape}; at most {MAX_IMAGES} images of "
                    f"{MAX_IMAGE_VALUES} values"
                )

    arrays = read_npz(p, f"data '{p}'", check)
    stated = Normalization(
        layout=str(arrays["layout"]).lower() if "layout" in arrays else "auto",
        scale=_scalar(p, "scale", arrays["scale"]) if "scale" in arrays else None,
        mean=_vector(p, "mean", arrays["mean"]) if "mean" in arrays else None,
        std=_vector(p, "std", arrays["std"]) if "std" in arrays else None,
    )
    if stated.layout not in LAYOUTS:
        raise UserInputError(f"data '{p}': layout {stated.layout!r}; allowed: NCHW, NHWC")
    return build_dataset(p, *(arrays[f] for f in FIELDS), _merge(stated, norm))


def _scalar(p: Path, name: str, a: np.ndarray) -> float:
    if a.size != 1 or not np.issubdtype(a.dtype, np.number):
        raise UserInputError(f"data '{p}': {name} must be one number")
    return float(a.reshape(-1)[0])


def _vector(p: Path, name: str, a: np.ndarray) -> tuple[float, ...]:
    if a.ndim > 1 or a.size == 0 or a.size > 4 or not np.issubdtype(a.dtype, np.number):
        raise UserInputError(f"data '{p}': {name} must be one number or one per channel (<= 4)")
    return tuple(float(v) for v in a.reshape(-1))


def _merge(stated: Normalization, flags: Normalization | None) -> Normalization:
    if flags is None:
        return stated
    return Normalization(
        flags.layout if flags.layout != "auto" else stated.layout,
        flags.scale if flags.scale is not None else stated.scale,
        flags.mean if flags.mean is not None else stated.mean,
        flags.std if flags.std is not None else stated.std,
    )


def _check_size(p: Path) -> None:
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserInputError(
            f"data '{p}': {size} bytes; files up to {MAX_FILE_BYTES} bytes are accepted"
        )


# ------------------------------------------------------------------------- validation
def _images(p: Path, name: str, x: np.ndarray, layout: str) -> np.ndarray:
    """``x`` as (N, features) or (N, C, H, W), its dtype and shape checked."""
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise UserInputError(f"data '{p}': {name} has dtype {x.dtype}; need float or integer")
    if x.ndim not in (2, 3, 4) or x.shape[0] == 0 or 0 in x.shape:
        raise UserInputError(
            f"data '{p}': {name} has shape {x.shape}; need (N, features), (N, H, W), "
            "(N, C, H, W) or (N, H, W, C) with N >= 1 (an empty split is not allowed)"
        )
    if x.shape[0] > MAX_IMAGES or int(np.prod(x.shape[1:])) > MAX_IMAGE_VALUES:
        raise UserInputError(
            f"data '{p}': {name} has shape {x.shape}; at most {MAX_IMAGES} images of "
            f"{MAX_IMAGE_VALUES} values"
        )
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if layout == "auto":
            first, last = x.shape[1] in (1, 3, 4), x.shape[3] in (1, 3, 4)
            if first == last:
                raise UserInputError(
                    f"data '{p}': {name} has shape {x.shape}; cannot tell NCHW from NHWC: "
                    "add a 'layout' field or give --data-layout nchw|nhwc"
                )
            layout = "nchw" if first else "nhwc"
        if layout == "nhwc":
            x = x.transpose(0, 3, 1, 2)
    return x


def _labels(p: Path, name: str, y: np.ndarray, n: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise UserInputError(f"data '{p}': {name} has dtype {y.dtype}; need integer labels")
    if y.shape != (n,):
        raise UserInputError(
            f"data '{p}': {name} has shape {y.shape}; need ({n},): one label per image"
        )
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= MAX_CLASSES:
        raise UserInputError(
            f"data '{p}': {name} holds label {lo if lo < 0 else hi}; labels are "
            f"0 .. classes - 1 with at most {MAX_CLASSES} classes"
        )
    return y.astype(np.int64)


def _normalize(p: Path, x: np.ndarray, norm: Normalization, scale_default: float) -> np.ndarray:
    scale = norm.scale if norm.scale is not None else scale_default
    out = x.astype(np.float32) * np.float32(scale)
    channels = x.shape[1] if x.ndim == 4 else 1
    for name, v, neutral in (("mean", norm.mean, 0.0), ("std", norm.std, 1.0)):
        v = (neutral,) if v is None else v
        if len(v) not in (1, channels):
            raise UserInputError(
                f"data '{p}': {name} has {len(v)} values; give one or one per channel ({channels})"
            )
        if name == "std" and min(v) <= 0:
            raise UserInputError(f"data '{p}': std must be > 0")
    mean = np.asarray(norm.mean or (0.0,), dtype=np.float32)
    std = np.asarray(norm.std or (1.0,), dtype=np.float32)
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)  # flat: one channel, one value each
    return (out - mean.reshape(shape)) / std.reshape(shape)


def build_dataset(p, x_tr, y_tr, x_te, y_te, norm: Normalization) -> Dataset:
    """Validate and normalize four arrays into a :class:`Dataset` named after ``p``."""
    p = Path(p)
    x_tr = _images(p, "x_train", np.asarray(x_tr), norm.layout)
    x_te = _images(p, "x_test", np.asarray(x_te), norm.layout)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise UserInputError(
            f"data '{p}': x_train images have shape {x_tr.shape[1:]}, x_test "
            f"{x_te.shape[1:]}; they must match"
        )
    y_tr = _labels(p, "y_train", np.asarray(y_tr), len(x_tr))
    y_te = _labels(p, "y_test", np.asarray(y_te), len(x_te))
    if len(np.unique(y_tr)) < 2:
        raise UserInputError(
            f"data '{p}': y_train holds a single class ({int(y_tr[0])}); need at least 2"
        )
    for name, x in (("x_train", x_tr), ("x_test", x_te)):
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise UserInputError(f"data '{p}': {name} contains NaN or Inf")
    scale_default = 1.0 / 255.0 if x_tr.dtype == np.uint8 else 1.0
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(
        p.stem or p.name,
        _normalize(p, x_tr, norm, scale_default),
        y_tr,
        _normalize(p, x_te, norm, scale_default),
        y_te,
        n_classes,
    )


# ----------------------------------------------------------------------------- CIFAR
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Admits only numpy's array/dtype reconstruction and ``_codecs.encode`` (how a
    Python 2 pickle stores byte strings); every other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _read_batch(p: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    _check_size(p)
    try:
        with open(p, "rb") as fh:
            obj = _CifarUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 -- anything unreadable is the user's input problem
        raise UserInputError(
            f"data '{p}': not a CIFAR python-version batch ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise UserInputError(f"data '{p}': holds a {type(obj).__name__}, not a CIFAR batch dict")
    obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
    key = label_key.decode()
    if "data" not in obj or key not in obj:
        raise UserInputError(f"data '{p}': a CIFAR batch needs 'data' and '{key}'")
    x = obj["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise UserInputError(
            f"data '{p}': 'data' must be a uint8 array (N, 3072); got "
            f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}"
        )
    y = obj[key]
    if not isinstance(y, (list, np.ndarray)) or not all(
        isinstance(v, (int, np.integer)) for v in (y.tolist() if isinstance(y, np.ndarray) else y)
    ):
        raise UserInputError(f"data '{p}': '{key}' must be a list of integer labels")
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (len(x),):
        raise UserInputError(f"data '{p}': {len(x)} images but {y.size} labels; they must match")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar_dir(d: Path, norm: Normalization | None = None) -> Dataset:
    for train, test, key in (CIFAR10, CIFAR100):
        if all((d / f).is_file() for f in (*train, *test)):
            parts = [_read_batch(d / f, key) for f in train]
            tests = [_read_batch(d / f, key) for f in test]
            x_tr = np.concatenate([a for a, _ in parts])
            y_tr = np.concatenate([b for _, b in parts])
            x_te = np.concatenate([a for a, _ in tests])
            y_te = np.concatenate([b for _, b in tests])
            flags = norm or Normalization()
            ds = build_dataset(
                d, x_tr, y_tr, x_te, y_te, Normalization("nchw", flags.scale, flags.mean, flags.std)
            )
            return ds
    raise UserInputError(
        f"data '{d}': a directory that is not a CIFAR python version; need "
        f"{', '.join(CIFAR10[0] + CIFAR10[1])} (CIFAR-10) or train, test (CIFAR-100)"
    )


def load_dataset(spec: str | Path | None = None, norm=None) -> Dataset:
    """``None`` or ``"digits"``: the built-in digits split; otherwise a user's data set
    (an ``.npz`` or a CIFAR python-version directory, :mod:`aimcflow.models.nn.datasets`),
    ``norm`` a :class:`~aimcflow.models.nn.datasets.Normalization` from the flags."""
    if spec is None or str(spec) == "digits":
        return load_digits_dataset()
    return load_user_dataset(spec, norm)


def load_npz_dataset(path: str | Path, norm=None) -> Dataset:
    """A user's ``.npz`` (see :func:`aimcflow.models.nn.datasets.load_npz`)."""
    return load_npz(path, norm)
