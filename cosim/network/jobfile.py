"""The level-4 job file: how :func:`~aimcflow.cosim.network.host.run_level4` hands the chip
program (programmed tiles, which only Python can evaluate) to the simulator process.

Never a user's file, and never trusted as one: the host signs the bytes with a fresh
random key (HMAC-SHA256) that reaches the simulator only through its run parameters, so a
file placed by anyone else is refused before a byte is unpickled; and the unpickler admits
only aimcflow's own classes, numpy arrays and scalars, and torch tensors rebuilt with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import secrets
from pathlib import Path
from typing import Any

_PLAIN_GLOBALS = {
    ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("numpy", "dtype"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("torch._utils", "_rebuild_tensor_v2"),
}


def _storage_from_bytes(b: bytes):
    # lazy: torch (~2 s); the storage bytes are torch.save output: tensors only
    import torch

    return torch.load(io.BytesIO(b), weights_only=True)


class _JobUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "torch.storage" and name == "_load_from_bytes":
            return _storage_from_bytes
        if (
            (module, name) in _PLAIN_GLOBALS
            or module.split(".")[0] == "aimcflow"
            or (module == "numpy" and name in ("float16", "float32", "float64", "int64", "int32"))
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"level-4 job file: global {module}.{name} is not allowed")


def write_job(path: Path, job: dict[str, Any]) -> str:
    """Write ``job`` to ``path``; returns the hex key :func:`read_job` needs."""
    key = secrets.token_bytes(32)
    blob = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    path.write_bytes(hmac.new(key, blob, hashlib.sha256).digest() + blob)
    return key.hex()


def read_job(path: str | Path, key_hex: str) -> dict[str, Any]:
    """The job :func:`write_job` wrote with this key; anything else raises ``ValueError``."""
    data = Path(path).read_bytes()
    tag, blob = data[:32], data[32:]
    if not hmac.compare_digest(
        tag, hmac.new(bytes.fromhex(key_hex), blob, hashlib.sha256).digest()
    ):
        raise ValueError(f"level-4 job file {path}: not written by this run (signature mismatch)")
    return _JobUnpickler(io.BytesIO(blob)).load()
