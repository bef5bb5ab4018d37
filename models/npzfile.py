"""Reading a user's ``.npz`` safely: never pickles, shapes checked before any array is read.

``np.load`` alone gives poor answers for the common mistakes: a text file ends in advice
to pass ``allow_pickle`` (which would unpickle code, and which we never suggest), and a
``.npy`` file comes back as a bare array that breaks the ``with`` statement.  This module
recognises those cases first and reads each member's header (shape, dtype) before its
data, so a field larger than the caller allows is refused without being loaded.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import UserInputError

NPY_MAGIC = b"\x93NUMPY"


def npz_headers(path: Path, what: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{field: (shape, dtype)}`` of the ``.npz`` at ``path`` without reading the arrays.
    ``what`` names the argument in messages (e.g. ``--in x.npz``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise UserInputError(f"{what}: no such file") from None
    except OSError as exc:
        raise UserInputError(f"{what}: cannot read ({exc.strerror})") from None
    if head == NPY_MAGIC:
        raise UserInputError(
            f"{what}: is a single-array .npy file; give an .npz archive of named "
            "arrays (numpy.savez(path, name=array, ...))"
        )
    if not zipfile.is_zipfile(path):
        raise UserInputError(
            f"{what}: not an .npz archive (numpy.savez output); it is neither a zip "
            "of .npy arrays nor readable as one"
        )
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                with z.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                out[name] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UserInputError(f"{what}: a damaged .npz archive ({type(exc).__name__})") from None
    return out


def load_npz(
    path: Path,
    what: str,
    check: Callable[[dict[str, tuple[tuple[int, ...], np.dtype]]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``; ``check(headers)`` runs first and may refuse
    (sizes, dtypes) before anything is loaded.  Object arrays are refused, never unpickled."""
    headers = npz_headers(path, what)
    for name, (_, dtype) in headers.items():
        if dtype.hasobject:
            raise UserInputError(f"{what}: field {name} holds Python objects; give numeric arrays")
    if check is not None:
        check(headers)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 -- headers were fine but the data is not
        raise UserInputError(f"{what}: a damaged .npz archive ({type(exc).__name__})") from None
