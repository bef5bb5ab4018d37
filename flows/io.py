"""Output-directory policy of the commands, and the atomic file writers they use (defined
in :mod:`aimcflow.models.io`, below ``flows`` so that models can write atomically too).
"""

from __future__ import annotations

from pathlib import Path

from aimcflow.models.errors import UserInputError
from aimcflow.models.io import (
    atomic_path,
    save_npz_atomic,
    write_atomic_with,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "atomic_path",
    "prepare_out_dir",
    "save_npz_atomic",
    "write_atomic_with",
    "write_json_atomic",
    "write_text_atomic",
]


def prepare_out_dir(out: str | Path | None, command: str, force: bool = False) -> Path:
    """Resolve and create a command's output directory.

    The default ``out/<command>/`` belongs to aimcflow and is refreshed on every run. A
    directory the user names with ``--out`` that already holds a ``results.json`` is not
    overwritten unless ``--force`` is given.
    """
    if out is None:
        d = Path("out") / command
    else:
        d = Path(out)
        if d.exists() and not d.is_dir():
            raise UserInputError(f"--out {d}: exists and is not a directory")
        if (d / "results.json").exists() and not force:
            raise UserInputError(
                f"--out {d}: already holds results.json from an earlier run; "
                "choose another directory or pass --force to overwrite"
            )
    d.mkdir(parents=True, exist_ok=True)
    return d
