"""Atomic output files: every file aimcflow writes goes to a temporary name in the same
directory and is then renamed into place, so an interrupted or failed write never leaves a
partial file.  (The output-directory policy of the commands is ``flows/io.py``.)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from aimcflow.models.jsonable import json_default

CACHE_ENV = "AIMCFLOW_CACHE"


def cache_dir() -> Path:
    """aimcflow's one cache (Verilator builds, bench runs, trained workload weights):
    ``$AIMCFLOW_CACHE``, else ``.cache`` of the source checkout (editable install), else
    ``~/.cache/aimcflow``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / ".cache"
    return Path.home() / ".cache" / "aimcflow"


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files; results are ordinary files, so honour the umask instead
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(
        path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n"
    )


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    # np.savez appends ".npz" to names without it, so the temp name must end in .npz
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def write_atomic_with(path: str | Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)
