"""Output-directory policy of the commands, and the atomic file writers they use (defined
in :mod:`aimcflow.models.io`, below ``flows`` so that models can write atomically too).

Every file a command writes goes to a temporary name and is then renamed into place; a
command's output *directory* is staged as a whole (see :func:`prepare_out_dir`), so an
interrupted or failed command never leaves partial results.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass
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
    "check_out_file",
    "commit_outputs",
    "discard_outputs",
    "prepare_out_dir",
    "save_npz_atomic",
    "shown",
    "write_atomic_with",
    "write_json_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What each command may write into its output directory.  A run that succeeds removes the
# files of this list an earlier run left and it did not write itself, so ``--force`` never
# leaves, say, an old chip_program.npz beside new results.  Files the user put there stay:
# generate's Verilog files count as its own only when its earlier files.f names them.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "run": ("results.json", "report.html", "chip_program.npz", "chip_program.json"),
    "vmm": ("results.json", "scatter.png"),
    "sweep": (
        "results.json",
        "sweep.csv",
        "sweep.png",
        "heatmap.png",
        "compare.csv",
        "compare.md",
        "compare.png",
    ),
    "tvla": ("results.json", "tvla.png"),
    "train": ("results.json",),
    "fit": ("results.json", "model.pt2"),
    "synth": ("results.json",),
    "generate": (
        "manifest.json",
        "files.f",
        "verilator_waivers.vlt",
        # the tapeout package (flows/package): files and whole directories
        "timescale.v",
        "CLOCK_RESET.md",
        "verilator.f",
        "icarus.f",
        "yosys.ys",
        "constraints",
        "icarus",
        "librelane",
        "ports",
        "waves",
    ),
}


@dataclass
class _Staged:
    final: Path
    staging: Path
    marker: str
    owned: tuple[str, ...]
    created: list[Path]  # directories made for it (deepest last), removed on discard


_pending: list[_Staged] = []


def _oserror(what: str, exc: OSError) -> UserInputError:
    reason = exc.strerror or type(exc).__name__
    return UserInputError(f"{what}: cannot write there ({reason}); choose a writable place")


def _make_parents(d: Path, what: str) -> list[Path]:
    """Create the missing directories above ``d`` (not ``d``); returns those created."""
    missing = []
    for a in [d.parent, *d.parent.parents]:
        if a.exists():
            if not a.is_dir():
                raise UserInputError(f"{what}: {a} is a file, not a directory")
            break
        missing.append(a)
    created = []
    try:
        for a in reversed(missing):
            a.mkdir()
            created.append(a)
    except OSError as exc:
        _remove_dirs(created)
        raise _oserror(what, exc) from None
    return created


def _remove_dirs(created: list[Path]) -> None:
    for a in reversed(created):
        with suppress(OSError):
            a.rmdir()


def prepare_out_dir(
    out: str | Path | None, command: str, force: bool = False, marker: str = "results.json"
) -> Path:
    """Check a command's output directory and return the staging directory to write into.

    The default ``out/<command>/`` belongs to aimcflow and is refreshed on every run. A
    directory the user names with ``--out`` that already holds ``marker`` (results.json)
    is not overwritten unless ``--force`` is given.  Every problem (a file in the way, no
    permission, a read-only file system) is a :class:`UserInputError` raised here, before
    any work.

    The command writes into the returned hidden staging directory beside the final one;
    :func:`commit_outputs` (called by the CLI when the command returns) moves the files in,
    ``marker`` last, and :func:`discard_outputs` (on any error or interrupt) removes them,
    so an interrupted or failed command leaves neither partial results nor an empty
    directory.  Print paths through :func:`shown`.
    """
    d = Path("out") / command if out is None else Path(out)
    what = f"--out {d}"
    if d.exists() and not d.is_dir():
        raise UserInputError(f"{what}: exists and is not a directory")
    if out is not None and (d / marker).exists() and not force:
        raise UserInputError(
            f"{what}: already holds {marker} from an earlier run; "
            "choose another directory or pass --force to overwrite"
        )
    created = _make_parents(d, what)
    try:
        if d.is_dir():  # files are moved in at the end: the directory itself must take them
            fd, probe = tempfile.mkstemp(prefix=".aimcflow-probe-", dir=d)
            os.close(fd)
            os.unlink(probe)
        prefix = f".{d.name or 'out'}.partial-"
        _remove_orphaned_staging(d.parent, prefix)
        staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=d.parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would become the result's mode
    except OSError as exc:
        _remove_dirs(created)
        raise _oserror(what, exc) from None
    _pending.append(_Staged(d, staging, marker, OUTPUTS.get(command, (marker,)), created))
    return staging


def _remove_orphaned_staging(parent: Path, prefix: str) -> None:
    """Staging directories of killed runs (SIGKILL leaves no chance to clean up): their
    name carries the pid of a process that no longer exists."""
    for old in parent.glob(f"{prefix}*"):
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def shown(path: str | Path) -> Path:
    """``path`` inside a staging directory as the user will find it after the commit."""
    path = Path(path)
    for s in _pending:
        if path == s.staging or s.staging in path.parents:
            return s.final / path.relative_to(s.staging)
    return path


def commit_outputs() -> None:
    """Move every staged directory's files into place (``marker`` last)."""
    while _pending:
        s = _pending.pop(0)
        names = sorted(p.name for p in s.staging.iterdir())
        if not s.final.exists():
            os.rename(s.staging, s.final)  # the whole directory appears at once
            continue
        owned = set(s.owned)
        filelist = s.final / "files.f"
        if "files.f" in owned and filelist.is_file():
            owned |= {line.strip() for line in filelist.read_text().splitlines() if line.strip()}
        for old in s.final.iterdir():
            stale = old.name in owned and old.name not in names
            if stale and old.is_file():
                old.unlink()
            elif stale and old.is_dir():
                shutil.rmtree(old)
        for name in sorted(names, key=lambda n: n == s.marker):
            if (s.final / name).is_dir() and name in owned:  # a directory output: replaced whole
                shutil.rmtree(s.final / name)
            os.replace(s.staging / name, s.final / name)
        s.staging.rmdir()


def discard_outputs() -> None:
    """Remove every staging directory (and the parents made for it): nothing is left."""
    while _pending:
        s = _pending.pop()
        shutil.rmtree(s.staging, ignore_errors=True)
        _remove_dirs(s.created)


def check_out_file(path: str | Path, force: bool, inputs: tuple[Path, ...] = ()) -> Path:
    """Check an output *file* before any work: not a directory, not one of ``inputs``,
    not an existing file without ``force``, and its directory exists and is writable."""
    out = Path(path)
    what = f"--out {out}"
    if out.is_dir():
        raise UserInputError(f"{what}: is a directory; give a file name")
    for i in inputs:
        if out.resolve() == Path(i).resolve():
            raise UserInputError(f"{what}: is the input file too; give another name")
    if out.exists() and not force:
        raise UserInputError(f"{what}: exists; choose another name or pass --force")
    parent = out.parent
    if not parent.exists():
        raise UserInputError(f"{what}: directory {parent} does not exist")
    if not parent.is_dir():
        raise UserInputError(f"{what}: {parent} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _oserror(what, exc) from None
    return out
